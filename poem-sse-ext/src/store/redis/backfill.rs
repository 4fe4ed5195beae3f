//! The one read of a channel's history from Redis, when this instance starts following it.
//!
//! The history fills the channel's [`ChannelLog`] once; every stream of the channel then resumes
//! from that log (one replay path for every store), and concurrent subscribes share the one
//! backfill. Reads are bounded before they are made: by the retention's count, and by its byte
//! bound through batch sizes estimated from the entries' sizes.

use std::sync::Arc;

use ::redis::{Pipeline, RedisResult, Value};
use bytes::Bytes;
use futures_util::FutureExt;

use super::{
    follow::{ChannelInner, Fill, Follow},
    reply::{parse_entries, StreamId, StreamInfo},
    shared::Shared,
};
use crate::{
    store::{ChannelLog, Retention, StoreError},
    wire::frame_with_id,
};

/// Longest `id: <ms>-<seq>\n` line the store writes (two `u64`s).
pub(super) const ID_LINE_MAX: usize = "id: ".len() + 20 + 1 + 20 + 1;
/// Most entries one history read asks for.
const MAX_BATCH: usize = 512;
/// Entries asked for when nothing tells their size yet.
const BLIND_BATCH: usize = 16;
const OPERATION: &str = "subscribe";

/// Starts reading `inner`'s history in a task of its own (so that a subscribe that gives up
/// does not cancel it for the others), and returns the shared outcome.
pub(super) fn start(shared: &Arc<Shared>, inner: &Arc<ChannelInner>) -> Fill {
    let task = tokio::spawn(fill(Arc::clone(shared), Arc::clone(inner)));
    async move {
        task.await.unwrap_or_else(|err| {
            Err(StoreError::Backend(format!(
                "reading the channel's history failed: {err}"
            )))
        })
    }
    .boxed()
    .shared()
}

/// Resets the channel to "not followed" when a backfill ends without following it (an error,
/// or a panic), so that the next subscribe tries again.
struct IdleUnlessLive<'a>(&'a ChannelInner);

impl Drop for IdleUnlessLive<'_> {
    fn drop(&mut self) {
        self.0.set_idle_if_filling();
    }
}

async fn fill(shared: Arc<Shared>, inner: Arc<ChannelInner>) -> Result<Arc<Follow>, StoreError> {
    let _idle = IdleUnlessLive(&inner);
    let History {
        log,
        position,
        added,
    } = read(&shared, &inner.key).await?;
    // The invariant that makes history and live one sequence: the history is every entry up to
    // `position` (the stream's last id when the read began; later entries were not read), and
    // the reader starts after `position` only once the log holds that history. Each entry
    // reaches the log once, and in order: the reader's appends all have keys above `position`.
    let follow = Arc::new(Follow::new(&inner, log, position, added));
    shared.start_following(&inner, Arc::clone(&follow));
    Ok(follow)
}

/// A channel's log filled with its history, and the stream position it leads up to.
struct History {
    log: Arc<ChannelLog>,
    position: StreamId,
    added: u64,
}

/// Reads the newest retained entries of `key`, newest first, in batches, and builds the log.
async fn read(shared: &Shared, key: &str) -> Result<History, StoreError> {
    let retention = shared.retention;
    let mut pipe = Pipeline::new();
    if let Some(min_id) = StreamId::min_for_age(retention.max_age) {
        pipe.cmd("XTRIM")
            .arg(key)
            .arg("MINID")
            .arg(min_id.to_string())
            .ignore();
    }
    pipe.cmd("XINFO").arg("STREAM").arg(key);
    let mut connection = shared.commands.connection();
    let mut replies: Vec<RedisResult<Value>> = shared
        .commands
        .run(
            OPERATION,
            Some(key),
            pipe.ignore_errors().query_async(&mut connection),
        )
        .await?;
    let reply = replies.pop().unwrap_or(Ok(Value::Nil));
    let info = StreamInfo::from_reply(reply)
        .map_err(|err| shared.commands.error(&err, Some(key), OPERATION))?;
    let Some(info) = info else {
        return Ok(History {
            log: ChannelLog::new(retention, 0, StreamId::ZERO.event_id()),
            position: StreamId::ZERO,
            added: 0,
        });
    };
    let mut collected = Collected::new(retention);
    // Inclusive of the last id XINFO saw: entries added since are the reader's.
    let mut end = info.last_generated.to_string();
    let mut count = collected.next_count(info.last_entry_size);
    loop {
        let mut range = ::redis::cmd("XREVRANGE");
        range.arg(key).arg(&end).arg("-").arg("COUNT").arg(count);
        let reply: Value = shared
            .commands
            .run(OPERATION, Some(key), range.query_async(&mut connection))
            .await?;
        let entries = parse_entries(reply)
            .map_err(|err| shared.commands.error(&err, Some(key), OPERATION))?;
        let exhausted = entries.len() < count;
        let Some(oldest) = entries.last().map(|(id, _)| *id) else {
            break;
        };
        if collected.take(entries) || exhausted {
            break;
        }
        end = format!("({oldest}");
        count = collected.next_count(None);
    }
    Ok(collected.into_history(&info))
}

/// The entries kept so far, newest first, within the retention.
struct Collected {
    retention: Retention,
    kept: Vec<(StreamId, Bytes)>,
    bytes: usize,
    /// Entries read, with or without a frame of ours.
    read: u64,
    oldest_read: Option<StreamId>,
    /// The newest entry that did not fit: the history stops after it.
    floor: Option<StreamId>,
}

impl Collected {
    fn new(retention: Retention) -> Self {
        Self {
            retention,
            kept: Vec::new(),
            bytes: 0,
            read: 0,
            oldest_read: None,
            floor: None,
        }
    }

    /// How many entries to ask for next: enough to find the entry that does not fit (one more
    /// than the count bound), and about as many as the byte bound has room for, judging by the
    /// entries kept so far (or by `size_hint`, the newest entry's size, before any).
    fn next_count(&self, size_hint: Option<usize>) -> usize {
        let events_left = (self.retention.max_events + 1).saturating_sub(self.kept.len());
        let average = match (self.kept.len(), size_hint) {
            (0, Some(size)) => Some(size + ID_LINE_MAX),
            (0, None) => None,
            (n, _) => Some(self.bytes / n),
        };
        let by_bytes = match average {
            Some(size) => self.retention.max_bytes.saturating_sub(self.bytes) / size.max(1) + 1,
            None => BLIND_BATCH,
        };
        events_left.min(by_bytes).clamp(1, MAX_BATCH)
    }

    /// Keeps what fits of `entries` (newest first); `true` once something did not.
    fn take(&mut self, entries: Vec<(StreamId, Option<Bytes>)>) -> bool {
        for (id, body) in entries {
            self.read += 1;
            self.oldest_read = Some(id);
            let Some(body) = body else { continue };
            let frame = frame_with_id(&id.to_string(), &body);
            if self.kept.len() >= self.retention.max_events
                || self.bytes + frame.len() > self.retention.max_bytes
            {
                self.floor = Some(id);
                return true;
            }
            self.bytes += frame.len();
            self.kept.push((id, frame));
        }
        false
    }

    /// The log: the kept entries, above a floor that says what Redis (or the retention) no
    /// longer has, so that a resume point below it gets [`ResetReason::Evicted`].
    ///
    /// [`ResetReason::Evicted`]: crate::store::ResetReason::Evicted
    fn into_history(self, info: &StreamInfo) -> History {
        // Complete: every entry since the stream began was read (nothing was trimmed or
        // deleted), so even "before the first entry" resumes exactly.
        let complete = self.floor.is_none()
            && self.read == info.length
            && info.entries_added == info.length
            && info.max_deleted == StreamId::ZERO;
        let floor = match (self.floor, self.kept.last(), self.oldest_read) {
            _ if complete => None,
            (Some(floor), _, _) => Some(floor.key()),
            // Trimmed by Redis: the newest trimmed id is not recorded, but nothing was issued
            // between the oldest entry and the key just below it.
            (None, Some(_), Some(oldest)) => Some(oldest.key() - 1),
            (None, _, _) => Some(info.last_generated.key()),
        }
        .map(|floor| floor.max(info.max_deleted.key()));
        let log = match floor {
            None | Some(0) => ChannelLog::new(self.retention, 0, StreamId::ZERO.event_id()),
            Some(key) => {
                ChannelLog::after_gap(self.retention, key, StreamId::from_key(key).event_id())
            }
        };
        for (id, frame) in self.kept.into_iter().rev() {
            // Keys at or below the floor are ignored; frames fit (checked above).
            let _ = log.append_entry_aged(id.key(), id.event_id(), frame, id.age());
        }
        History {
            log,
            position: info.last_generated,
            added: info.entries_added,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of entry `n`, stamped a moment ago (entries older than the age bound would be
    /// evicted at once).
    fn id(n: u64) -> StreamId {
        // One base for the whole test run: reading the clock on each call would move the ids of
        // one test apart whenever a millisecond passes between two calls.
        static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(|| {
            StreamId::min_for_age(std::time::Duration::from_secs(60)).map_or(0, |id| id.ms)
        });
        StreamId {
            ms: base + n,
            seq: 0,
        }
    }

    fn entries(ms: impl Iterator<Item = u64>) -> Vec<(StreamId, Option<Bytes>)> {
        ms.map(|ms| (id(ms), Some(Bytes::from_static(b"data: x\n\n"))))
            .collect()
    }

    fn info(length: u64, last: u64, added: u64) -> StreamInfo {
        StreamInfo {
            length,
            last_generated: id(last),
            max_deleted: StreamId::ZERO,
            entries_added: added,
            first_entry: None,
            last_entry_size: None,
        }
    }

    #[tokio::test]
    async fn the_count_bound_stops_the_read_and_sets_the_floor_at_the_first_entry_left_out() {
        let mut collected = Collected::new(Retention::default().max_events(3));
        assert_eq!(collected.next_count(Some(9)), 4, "one more than kept");
        assert!(collected.take(entries((1..=10).rev())));
        let history = collected.into_history(&info(10, 10, 10));
        assert_eq!(history.log.len_and_bytes().0, 3);
        assert_eq!(history.log.check_resume(id(7).key()), None);
        assert!(history.log.check_resume(id(6).key()).is_some());
        assert_eq!(history.position, id(10));
    }

    #[tokio::test]
    async fn a_stream_read_from_its_first_entry_resumes_from_the_beginning() {
        let mut collected = Collected::new(Retention::default());
        assert!(!collected.take(entries((1..=3).rev())));
        let history = collected.into_history(&info(3, 3, 3));
        assert_eq!(history.log.check_resume(0), None);
        // ... but not once Redis trimmed something: the oldest kept entry is the edge.
        let mut collected = Collected::new(Retention::default());
        assert!(!collected.take(entries((5..=7).rev())));
        let history = collected.into_history(&info(3, 7, 7));
        assert!(history.log.check_resume(id(3).key()).is_some());
        assert_eq!(history.log.check_resume(id(5).key() - 1), None);
    }

    #[tokio::test]
    async fn the_byte_bound_sizes_the_batches_before_they_are_read() {
        let guess = 9 + ID_LINE_MAX;
        let retention = Retention::default().max_bytes(guess * 10);
        let mut collected = Collected::new(retention);
        assert_eq!(
            collected.next_count(Some(9)),
            11,
            "from the newest entry's size"
        );
        assert_eq!(collected.next_count(None), BLIND_BATCH, "no size known yet");
        assert!(!collected.take(entries((90..=94).rev())));
        // From the frames kept so far (all of one size here).
        let frame = frame_with_id(&id(94).to_string(), b"data: x\n\n").len();
        assert_eq!(collected.bytes, 5 * frame);
        assert_eq!(
            collected.next_count(None),
            (guess * 10 - 5 * frame) / frame + 1
        );
    }
}
