//! Catch-up reads: before a read of a channel's log answers ([`StoreChannel::recent`], a resume
//! with a `Last-Event-ID`), the log is topped up with what Redis holds now, so that the read sees
//! every publish acknowledged before it began, on this instance or any other (read-your-writes),
//! not only what this instance's reader has brought so far.
//!
//! The reader stays the one feed of live events, and the log the one place streams read from. A
//! catch-up only asks for the entries after the reader's position (one `XRANGE`, never a blocking
//! command, one key and so one slot) and hands them to the same [`Follow`], which appends each
//! entry once, in id order, whoever (reader or catch-up) brings it first. Concurrent reads of one
//! channel share catch-ups: a read waits for one that *began* after it did, so a reconnect storm
//! of a channel costs about one round trip per round-trip time, not one per stream.
//!
//! A catch-up applies only what it can prove follows the position without a hole: the `XRANGE`
//! starts *at* the position, and the position must come back as its first entry (Redis trims
//! only the oldest entries, so everything after a retained entry is there). When it does not
//! (the stream was trimmed past the position, a failover lost it, the stream was recreated), the
//! catch-up applies nothing and the reader's gap handling gives the channel's one reset.
//!
//! A publish does not put its own entry into the log: a read has to ask Redis anyway (for the
//! other instances' writes), and proving the entry's place in the log would cost the publish a
//! read of every entry since the log's position, which under concurrent publishes grows with
//! the publishes in flight. Publishing stays one `XADD` round trip.
//!
//! [`StoreChannel::recent`]: crate::store::StoreChannel::recent

use ::redis::{Pipeline, RedisResult, Value};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    follow::Follow,
    reply::{parse_entries, protocol_error, Entries, StreamId, StreamInfo},
    shared::Shared,
};
use crate::store::StoreError;

/// Most entries one catch-up command asks for.
const BATCH: usize = 512;

/// Brings `follow`'s log up to what Redis holds now, for a read (`operation`) that begins now.
///
/// # Errors
/// The command's failure ([`StoreError::WrongKeyType`] when the key is not a stream). The log
/// is then as the reader left it.
pub(super) async fn catch_up(
    shared: &Shared,
    follow: &Follow,
    operation: &'static str,
) -> Result<(), StoreError> {
    follow
        .catch_ups
        .run(|| top_up(shared, follow, operation))
        .await
}

/// Tops the log up, batch by batch, until a batch comes back short (or a retention's worth was
/// read: anything older would be evicted again at once).
async fn top_up(
    shared: &Shared,
    follow: &Follow,
    operation: &'static str,
) -> Result<(), StoreError> {
    let key = follow.key.as_str();
    let mut left = shared.retention.max_events.saturating_add(BATCH);
    loop {
        let (from, generation) = follow.catch_up_point();
        let mut pipe = Pipeline::new();
        // Inclusive of `from`: its presence proves that nothing after it was trimmed.
        let start = if from == StreamId::ZERO {
            "-".to_owned()
        } else {
            from.to_string()
        };
        pipe.cmd("XRANGE")
            .arg(key)
            .arg(start)
            .arg("+")
            .arg("COUNT")
            .arg(BATCH);
        if from == StreamId::ZERO {
            // From the beginning: whole only if the stream never lost an entry. Asked after the
            // range, so that what it says held when the range was read too.
            pipe.cmd("XINFO").arg("STREAM").arg(key);
        }
        let mut connection = shared.commands.connection();
        let replies: Vec<RedisResult<Value>> = shared
            .commands
            .run(
                operation,
                Some(key),
                pipe.ignore_errors().query_async(&mut connection),
            )
            .await?;
        let mut replies = replies.into_iter();
        let range = replies
            .next()
            .unwrap_or_else(|| Err(protocol_error("a reply per command")))
            .and_then(parse_entries)
            .map_err(|err| shared.commands.error(&err, Some(key), operation))?;
        let full = range.len() >= BATCH;
        let info = replies.next().map(StreamInfo::from_reply).transpose();
        let info = info.map_err(|err| shared.commands.error(&err, Some(key), operation))?;
        let Some(entries) = after_position(from, range, info.as_ref().map(Option::as_ref)) else {
            return Ok(());
        };
        let read = entries.len();
        follow.catch_up(generation, entries);
        left = left.saturating_sub(read);
        if !full || left == 0 {
            return Ok(());
        }
    }
}

/// The entries of `range` (an `XRANGE` from `from`, inclusive) that follow `from`, if they
/// provably follow it without a hole. `info` is the stream after the range was read, when `from`
/// is the beginning (`None` when it was not asked for).
fn after_position(
    from: StreamId,
    mut range: Entries,
    info: Option<Option<&StreamInfo>>,
) -> Option<Entries> {
    if from != StreamId::ZERO {
        if range.first().map(|(id, _)| *id) != Some(from) {
            return None;
        }
        range.remove(0);
        return Some(range);
    }
    let whole = match info.flatten() {
        Some(info) => info.entries_added == info.length && info.max_deleted == StreamId::ZERO,
        // No stream: only an empty range is whole (a stream deleted in between lost entries).
        None => range.is_empty(),
    };
    whole.then_some(range)
}

/// The catch-ups of one followed channel: one at a time, each shared by the reads that began
/// before it did.
#[derive(Default)]
pub(super) struct CatchUps {
    /// Catch-ups begun so far, counted before their command is sent.
    begun: AtomicU64,
    /// The number of the last catch-up that ended, and its failure. Held while one runs, so that
    /// they run one at a time (the lock is fair: waiters are served in order).
    ended: tokio::sync::Mutex<(u64, Option<StoreError>)>,
}

impl CatchUps {
    /// Waits until a catch-up that began after this call has ended, running one if none is due;
    /// returns its outcome.
    ///
    /// A read that finds catch-up `n` running needs `n + 1` (`n`'s command may have been sent
    /// before the read began); every read that arrives while `n` runs shares that one.
    async fn run<F>(&self, catch_up: impl FnOnce() -> F) -> Result<(), StoreError>
    where
        F: std::future::Future<Output = Result<(), StoreError>>,
    {
        let arrived = self.begun.load(Ordering::Acquire);
        let mut ended = self.ended.lock().await;
        if ended.0 > arrived {
            return ended.1.clone().map_or(Ok(()), Err);
        }
        let number = self.begun.fetch_add(1, Ordering::AcqRel) + 1;
        let outcome = catch_up().await;
        *ended = (number, outcome.clone().err());
        outcome
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };

    use bytes::Bytes;

    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId { ms, seq: 0 }
    }

    fn entries(ms: &[u64]) -> Entries {
        ms.iter()
            .map(|&ms| (id(ms), Some(Bytes::from_static(b"data: x\n\n"))))
            .collect()
    }

    fn info(length: u64, added: u64) -> StreamInfo {
        StreamInfo {
            length,
            last_generated: id(added),
            max_deleted: StreamId::ZERO,
            entries_added: added,
            first_entry: None,
            last_entry_size: None,
        }
    }

    #[test]
    fn only_what_provably_follows_the_position_is_applied() {
        let after = |from, range: &[u64], info| {
            after_position(from, entries(range), info)
                .map(|e| e.iter().map(|(id, _)| id.ms).collect::<Vec<_>>())
        };
        assert_eq!(after(id(5), &[5, 6, 7], None), Some(vec![6, 7]));
        assert_eq!(after(id(5), &[5], None), Some(vec![]));
        // The position is gone: trimmed past, lost, or another stream.
        assert_eq!(after(id(5), &[9, 10], None), None);
        assert_eq!(after(id(5), &[], None), None);
        // From the beginning: only a stream that never lost an entry.
        let (whole, trimmed) = (info(2, 2), info(2, 4));
        assert_eq!(
            after(StreamId::ZERO, &[1, 2], Some(Some(&whole))),
            Some(vec![1, 2])
        );
        assert_eq!(after(StreamId::ZERO, &[3, 4], Some(Some(&trimmed))), None);
        assert_eq!(after(StreamId::ZERO, &[], Some(None)), Some(vec![]));
        assert_eq!(after(StreamId::ZERO, &[1], Some(None)), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_that_arrive_during_a_catch_up_share_the_next_one() {
        let catch_ups = Arc::new(CatchUps::default());
        let ran = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::watch::channel(false);
        let run = |catch_ups: Arc<CatchUps>| {
            let (ran, mut gate) = (Arc::clone(&ran), gate.clone());
            tokio::spawn(async move {
                catch_ups
                    .run(|| async move {
                        ran.fetch_add(1, Ordering::SeqCst);
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(())
                    })
                    .await
            })
        };
        let first = run(Arc::clone(&catch_ups));
        while ran.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // These began after the first catch-up was sent: it can not answer them.
        let waiting: Vec<_> = (0..50).map(|_| run(Arc::clone(&catch_ups))).collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(ran.load(Ordering::SeqCst), 1, "one at a time");
        release.send_replace(true);
        first.await.expect("first").expect("ok");
        for read in waiting {
            read.await.expect("read").expect("ok");
        }
        assert_eq!(ran.load(Ordering::SeqCst), 2, "the 50 shared one catch-up");
    }
}
