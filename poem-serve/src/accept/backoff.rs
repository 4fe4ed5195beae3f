//! The accept loop's backoff: what it does when `accept` fails.
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
    pin::Pin,
    time::{Duration, Instant},
};

use tokio::time::Sleep;

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

/// [`AcceptBackoff`] on tokio's clock: the pause after a failure and the end of an episode as
/// timers the accept loop waits on beside `accept`.
pub(crate) struct Backoff {
    state: AcceptBackoff,
    /// Armed while accepting is paused after a failure.
    resume: Pin<Box<Sleep>>,
    paused: bool,
    /// Armed while an episode of failures lasts.
    quiet: Pin<Box<Sleep>>,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Self {
            state: AcceptBackoff::default(),
            resume: Box::pin(tokio::time::sleep(Duration::ZERO)),
            paused: false,
            quiet: Box::pin(tokio::time::sleep(Duration::ZERO)),
        }
    }

    /// Whether accepting waits for the pause to end (or a connection to close).
    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Records a failed `accept` at `at`; pauses accepting when the server is out of a
    /// resource.
    pub(crate) fn failed(&mut self, err: &io::Error, at: tokio::time::Instant) {
        if let Retry::After(delay) = self.state.failed(err, at.into_std()) {
            self.resume.as_mut().reset(at + delay);
            self.paused = true;
        }
        self.arm_quiet();
    }

    /// Records a successful `accept`.
    pub(crate) fn succeeded(&mut self) {
        self.state.succeeded();
    }

    /// A connection ended and freed its file descriptor: a paused accept may try again now.
    pub(crate) fn connection_closed(&mut self) {
        self.paused = false;
    }

    /// Completes when the pause ends or the episode may have gone quiet, having handled it;
    /// never while neither timer is armed.
    pub(crate) async fn timer(&mut self) {
        tokio::select! {
            biased;
            () = &mut self.resume, if self.paused => self.paused = false,
            () = &mut self.quiet, if self.state.quiet_at().is_some() => {
                // tokio's clock, as for the failures (it may be paused in tests).
                self.state.end_if_quiet(tokio::time::Instant::now().into_std());
                self.arm_quiet();
            }
            else => std::future::pending().await,
        }
    }

    /// Ends the current episode, if any, with its line (when the server stops).
    pub(crate) fn end(&mut self) {
        self.state.end();
    }

    fn arm_quiet(&mut self) {
        if let Some(quiet_at) = self.state.quiet_at() {
            self.quiet.as_mut().reset(quiet_at.into());
        }
    }
}

impl std::fmt::Debug for Backoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backoff")
            .field("state", &self.state)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
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
    use super::*;
    use crate::test_log::logged;

    const EMFILE: i32 = 24;

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
