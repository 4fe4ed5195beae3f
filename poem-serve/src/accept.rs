//! What the accept loop does when `accept` fails.
//!
//! Out of file descriptors (`EMFILE`, `ENFILE`) or kernel memory (`ENOBUFS`, `ENOMEM`), the
//! waiting connection stays in the listen queue and the next `accept` fails the same way at once:
//! retried immediately, the loop spins on a core and writes a warning per attempt. So the server
//! backs off (10 ms, doubling to 1 s while nothing is accepted; the loop also retries early when
//! one of its connections closes and frees a descriptor).
//!
//! A server at its limit alternates: a connection closes, one is accepted, the next accept fails.
//! All of that is one episode, which lasts until accepts have gone [`QUIET`] without a failure:
//! one warning when it begins, one line with the count of failed attempts when it ends.
//!
//! An error that belongs to one connection only (the client reset it while it waited in the
//! queue) is logged at debug level, and the next one is accepted at once.

use std::{
    io,
    time::{Duration, Instant},
};

/// The first wait after an accept failed.
const FIRST_DELAY: Duration = Duration::from_millis(10);
/// The longest wait between attempts.
const MAX_DELAY: Duration = Duration::from_secs(1);
/// How long accepts must go without a failure for an episode to end.
pub(crate) const QUIET: Duration = Duration::from_secs(5);

/// What to do after a failed `accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The error concerned one connection: accept the next one now.
    Now,
    /// The server is out of a resource: wait this long (or until a connection closes).
    After(Duration),
}

/// The current episode of failing accepts, if any.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff {
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
    accepted: u64,
    /// The wait after the last failure; `None` after an accept succeeded.
    delay: Option<Duration>,
}

impl AcceptBackoff {
    /// Records a failed `accept` at `now` and says when to try again. Warns when an episode
    /// begins.
    pub(crate) fn failed(&mut self, err: &io::Error, now: Instant) -> Retry {
        if concerns_one_connection(err) {
            tracing::debug!(%err, "accept failed for one connection");
            return Retry::Now;
        }
        self.end_if_quiet(now);
        let episode = self.episode.get_or_insert_with(|| {
            tracing::warn!(
                %err,
                "accept failed: backing off (10 ms doubling to 1 s, sooner when a connection \
                 closes) until it works again; raise the file limit (ulimit -n) if this recurs"
            );
            Episode {
                started: now,
                last_failure: now,
                failures: 0,
                accepted: 0,
                delay: None,
            }
        });
        episode.failures += 1;
        episode.last_failure = now;
        let delay = episode
            .delay
            .map_or(FIRST_DELAY, |delay| (delay * 2).min(MAX_DELAY));
        episode.delay = Some(delay);
        Retry::After(delay)
    }

    /// Records a successful `accept`: the next failure waits the shortest time again.
    pub(crate) fn succeeded(&mut self) {
        if let Some(episode) = &mut self.episode {
            episode.accepted += 1;
            episode.delay = None;
        }
    }

    /// When the current episode ends if no accept fails before.
    pub(crate) fn quiet_at(&self) -> Option<Instant> {
        self.episode.as_ref().map(|e| e.last_failure + QUIET)
    }

    /// Ends the current episode if accepts have gone [`QUIET`] without a failure by `now`.
    pub(crate) fn end_if_quiet(&mut self, now: Instant) {
        if self.quiet_at().is_some_and(|quiet_at| now >= quiet_at) {
            self.end();
        }
    }

    /// Ends the current episode, if any, with one line saying what it was.
    pub(crate) fn end(&mut self) {
        if let Some(episode) = self.episode.take() {
            tracing::info!(
                failed_attempts = episode.failures,
                accepted_meanwhile = episode.accepted,
                lasted = ?episode.last_failure.duration_since(episode.started),
                "accept works again"
            );
        }
    }
}

/// Whether `err` is about the connection being accepted rather than the server.
fn concerns_one_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::PermissionDenied
    )
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    const EMFILE: i32 = 24;

    /// The log lines written while `f` runs.
    fn logged(f: impl FnOnce()) -> Vec<String> {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Lines {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn out_of_descriptors_backs_off_doubling_to_a_second_and_warns_once() {
        let mut backoff = AcceptBackoff::default();
        let now = Instant::now();
        let mut delays = Vec::new();
        let lines = logged(|| {
            for _ in 0..1_000 {
                delays.push(backoff.failed(&io::Error::from_raw_os_error(EMFILE), now));
            }
        });
        let ms = |ms| Retry::After(Duration::from_millis(ms));
        let doubling = [10, 20, 40, 80, 160, 320, 640, 1000, 1000].map(ms);
        assert_eq!(delays[..9], doubling);
        assert!(delays[9..].iter().all(|d| *d == ms(1000)));
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("WARN") && lines[0].contains("accept failed"));
    }

    /// At the limit, accepts succeed and fail by turns: one episode, one warning, and each
    /// success brings the wait back to the shortest.
    #[test]
    fn an_episode_lasts_until_accepts_go_quiet_and_ends_with_its_count() {
        let mut backoff = AcceptBackoff::default();
        let enfile = || io::Error::from_raw_os_error(23);
        let start = Instant::now();
        let lines = logged(|| {
            for i in 0..100u32 {
                let now = start + Duration::from_millis(50) * i;
                assert_eq!(
                    backoff.failed(&enfile(), now),
                    Retry::After(Duration::from_millis(10))
                );
                backoff.succeeded();
                backoff.end_if_quiet(now + Duration::from_millis(20));
            }
            let last = start + Duration::from_millis(50) * 99;
            assert_eq!(backoff.quiet_at(), Some(last + QUIET));
            backoff.end_if_quiet(last + QUIET - Duration::from_millis(1));
            assert!(backoff.episode.is_some(), "ended before it was quiet");
            backoff.end_if_quiet(last + QUIET);
            assert!(backoff.episode.is_none());
            backoff.failed(&enfile(), last + QUIET * 2);
        });
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines[0].contains("accept failed"));
        assert!(
            lines[1].contains("accept works again")
                && lines[1].contains("failed_attempts=100")
                && lines[1].contains("accepted_meanwhile=100"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("accept failed"),
            "a new episode warns again"
        );
    }

    #[test]
    fn an_error_of_one_connection_is_retried_at_once_without_an_episode() {
        let mut backoff = AcceptBackoff::default();
        let lines = logged(|| {
            let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
            assert_eq!(backoff.failed(&aborted, Instant::now()), Retry::Now);
            backoff.succeeded();
            backoff.end();
        });
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert!(lines[0].contains("DEBUG"));
        assert!(backoff.episode.is_none());
    }
}
