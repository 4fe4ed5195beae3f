//! The in-process log of one channel, and the cursors that read it.

use std::{
    collections::VecDeque,
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, Weak},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{sync::Notify, time::Instant};

mod cursor;
mod evict;
mod gaps;

pub(crate) use cursor::DEFAULT_MAX_CHUNK_BYTES;
pub use cursor::{CursorItem, LogCursor};
use gaps::{Break, Floor};

use super::{budget::HistoryBudget, EventId, Recent, Reset, ResetReason, Retention, StoreError};
use crate::sync::waiters::{Waiter, Waiters};
use crate::wire::StoredEvent;

/// The ordered, bounded log of one channel's encoded frames.
///
/// Every entry has a key, a `u128` that orders entries (the in-memory store uses the sequence
/// number; a Redis store packs the stream id's `ms` and `seq`). Keys only grow, except across a
/// [`break_at`](Self::break_at). Cursors hold a key and read the entries after it; each registers
/// its waker once, and every append wakes them all.
///
/// A gap is one signal whatever caused it: a cursor that has missed events (it fell behind the
/// retained tail, or the backend broke the history with [`break_at`](Self::break_at)) yields one
/// [`CursorItem::Reset`] and continues from the head (after a break: from the break, so that
/// what the backend appended since still arrives).
pub struct ChannelLog {
    state: RwLock<LogState>,
    /// The cursors' wakers, woken after every append, *after* the write lock is released. A
    /// cursor registers before it reads the log, so an append that lands between its read and
    /// its wait still wakes it: no lost wake-ups, and no per-subscriber queue.
    waiters: Waiters,
    /// Waking every cursor is O(subscribers). So that an append costs the same whether nobody or
    /// 100,000 streams listen, it only signals this `Notify`; the channel's fan-out task then
    /// wakes `waiters`. Appends made while a fan-out pass runs coalesce into the next pass
    /// (a `Notify` permit), and none is missed: the wake-up always follows the append it announces.
    /// `None` when the log was made outside a tokio runtime: appends then wake cursors inline.
    fanout: Option<Arc<Notify>>,
    retention: Retention,
    /// The store-wide bound this log's bytes count against, if any.
    budget: Option<Arc<HistoryBudget>>,
    /// This log, for the budget's records.
    me: Weak<ChannelLog>,
}

struct LogState {
    entries: VecDeque<Entry>,
    bytes: usize,
    head_key: u128,
    head_id: EventId,
    /// A cursor (or resume point) below `floor.key` has missed events, for `floor.reason`: the
    /// newest evicted entry, the history a log was started after, or the last break.
    floor: Option<Floor>,
    /// How many times [`ChannelLog::break_at`] ran. A cursor remembers the count it last saw, so
    /// that a break resets it whatever its position (even one placed above the head).
    breaks: u64,
    /// The newest break, once there was one.
    last_break: Option<Break>,
}

struct Entry {
    key: u128,
    frame: Bytes,
    at: Instant,
}

impl ChannelLog {
    /// An empty log whose head is `(head_key, head_id)`: the position meaning "the beginning".
    ///
    /// Inside a tokio runtime this spawns the log's fan-out task, which ends when the log is
    /// dropped.
    pub fn new(retention: Retention, head_key: u128, head_id: EventId) -> Arc<Self> {
        Self::build(retention, head_key, head_id, None)
    }

    fn build(
        retention: Retention,
        head_key: u128,
        head_id: EventId,
        budget: Option<Arc<HistoryBudget>>,
    ) -> Arc<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let log = Arc::new_cyclic(|me| Self {
            state: RwLock::new(LogState {
                entries: VecDeque::new(),
                bytes: 0,
                head_key,
                head_id,
                floor: None,
                breaks: 0,
                last_break: None,
            }),
            waiters: Waiters::default(),
            fanout: runtime.as_ref().map(|_| Arc::new(Notify::new())),
            retention,
            budget,
            me: me.clone(),
        });
        if let (Some(runtime), Some(fanout)) = (runtime, &log.fanout) {
            runtime.spawn(fan_out(Arc::downgrade(&log), Arc::clone(fanout)));
        }
        log
    }

    /// An empty log that starts at `(head_key, head_id)` after history it does not hold (a
    /// channel recreated in the same process, or one whose older entries stay in a shared
    /// backend): a cursor below `head_key` has missed events and gets
    /// [`ResetReason::Evicted`].
    pub fn after_gap(retention: Retention, head_key: u128, head_id: EventId) -> Arc<Self> {
        Self::after_gap_within(retention, head_key, head_id, None)
    }

    /// [`ChannelLog::after_gap`], counting its bytes against a store-wide budget.
    pub(crate) fn after_gap_within(
        retention: Retention,
        head_key: u128,
        head_id: EventId,
        budget: Option<Arc<HistoryBudget>>,
    ) -> Arc<Self> {
        let log = Self::build(retention, head_key, head_id, budget);
        if head_key > 0 {
            log.write().floor = Some(Floor {
                key: head_key,
                reason: ResetReason::Evicted,
            });
        }
        log
    }

    /// The key and id of the newest entry (or of the beginning).
    pub fn head(&self) -> (u128, EventId) {
        let state = self.read();
        (state.head_key, state.head_id.clone())
    }

    /// Appends the next entry: `make` gets the key after the head and returns the entry's id and
    /// its encoded frame (already carrying the id line). Runs under the write lock, so keys are
    /// assigned and appended in one order.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] when the frame alone exceeds the byte bound.
    pub fn append_next(
        &self,
        make: impl FnOnce(u128) -> (EventId, Bytes),
    ) -> Result<EventId, StoreError> {
        let id = {
            let mut state = self.write();
            let key = state.head_key + 1;
            let (id, frame) = make(key);
            self.check_size(&frame)?;
            self.push(&mut state, key, id.clone(), frame);
            id
        };
        self.announce();
        self.enforce_budget();
        Ok(id)
    }

    /// Appends an entry whose key was given elsewhere (by a shared backend). An entry whose key is
    /// not above the head is a duplicate and is ignored; returns whether it was appended.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] when the frame alone exceeds the byte bound.
    pub fn append_entry(&self, key: u128, id: EventId, frame: Bytes) -> Result<bool, StoreError> {
        self.append_entry_aged(key, id, frame, Duration::ZERO)
    }

    /// [`append_entry`](Self::append_entry) for an entry that is already `age` old (history read
    /// from a shared backend, stamped by its clock): the age bound counts from when it was
    /// written, not from when this log got it. An entry older than the bound is evicted at once.
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] when the frame alone exceeds the byte bound.
    pub fn append_entry_aged(
        &self,
        key: u128,
        id: EventId,
        frame: Bytes,
        age: Duration,
    ) -> Result<bool, StoreError> {
        {
            let mut state = self.write();
            if key <= state.head_key {
                return Ok(false);
            }
            self.check_size(&frame)?;
            let now = Instant::now();
            let at = now.checked_sub(age).unwrap_or(now);
            self.push_at(&mut state, key, id, frame, at);
        }
        self.announce();
        Ok(true)
    }

    /// Evicts entries older than the age bound. Appends do this too; call it before reading
    /// history so that no expired event is replayed.
    pub fn evict_expired(&self) {
        let now = Instant::now();
        // Checked under the read lock first: in a reconnect storm every subscribe calls this, and
        // taking the write lock each time would serialize them for nothing.
        let expired = self.read().entries.front().is_some_and(|oldest| {
            now.saturating_duration_since(oldest.at) > self.retention.max_age
        });
        if expired {
            let mut state = self.write();
            self.evict(&mut state, now);
        }
    }

    /// A cursor that delivers every entry after `key`. Entries up to `replay_through` are counted
    /// as replayed, the rest as live.
    pub fn cursor(self: &Arc<Self>, key: u128, replay_through: u128) -> LogCursor {
        self.cursor_in(&self.read(), key, replay_through)
    }

    /// A cursor after the head, or after `key` when that is possible, together with the reset
    /// that explains a jump to the head.
    pub fn cursor_after(self: &Arc<Self>, key: Option<u128>) -> (LogCursor, Option<Reset>) {
        // One read lock for the check and the cursor: a break in between would otherwise leave
        // a cursor of the new history at a position judged in the old one.
        let state = self.read();
        let head_key = state.head_key;
        match key.map(|key| (key, Self::check(&state, key))) {
            Some((key, None)) => (self.cursor_in(&state, key, head_key), None),
            Some((_, Some(reason))) => (
                self.cursor_in(&state, head_key, head_key),
                Some(Reset {
                    reason,
                    resume_from: state.head_id.clone(),
                }),
            ),
            None => (self.cursor_in(&state, head_key, head_key), None),
        }
    }

    fn cursor_in(self: &Arc<Self>, state: &LogState, key: u128, replay_through: u128) -> LogCursor {
        LogCursor {
            log: Arc::clone(self),
            position: cursor::Key::new(key),
            replay_through: cursor::Key::new(replay_through),
            breaks: state.breaks,
            skipped_to: None,
            waiter: Waiter::default(),
        }
    }

    /// The newest `max` retained frames, oldest first, and the head they lead up to.
    pub fn recent(&self, max: usize) -> Recent {
        let state = self.read();
        let skip = state.entries.len().saturating_sub(max);
        Recent {
            head: state.head_id.clone(),
            events: state
                .entries
                .iter()
                .skip(skip)
                .filter_map(|entry| StoredEvent::decode(&entry.frame))
                .collect(),
        }
    }

    /// Number of entries and encoded bytes retained.
    pub fn len_and_bytes(&self) -> (usize, usize) {
        let state = self.read();
        (state.entries.len(), state.bytes)
    }

    /// Tells the cursors that something was appended (through the fan-out task when there is one).
    fn announce(&self) {
        match &self.fanout {
            Some(fanout) => fanout.notify_one(),
            None => self.wake_cursors(),
        }
    }

    fn wake_cursors(&self) {
        self.waiters.wake_all();
    }

    fn check_size(&self, frame: &Bytes) -> Result<(), StoreError> {
        if frame.len() > self.retention.max_bytes {
            return Err(StoreError::TooLarge {
                size: frame.len(),
                limit: self.retention.max_bytes,
            });
        }
        Ok(())
    }

    fn push(&self, state: &mut LogState, key: u128, id: EventId, frame: Bytes) {
        self.push_at(state, key, id, frame, Instant::now());
    }

    fn push_at(&self, state: &mut LogState, key: u128, id: EventId, frame: Bytes, at: Instant) {
        if let Some(budget) = &self.budget {
            budget.added(self.me.clone(), key, frame.len());
        }
        state.bytes += frame.len();
        state.entries.push_back(Entry { key, frame, at });
        state.head_key = key;
        state.head_id = id;
        self.evict(state, Instant::now());
    }

    /// Reads what follows `position` for a cursor that last saw `breaks` breaks, at most
    /// `max_bytes` of frames (always at least one).
    fn read_after(
        &self,
        position: u128,
        breaks: u64,
        max_bytes: usize,
        replay_through: u128,
    ) -> Read {
        let state = self.read();
        if breaks != state.breaks {
            let (reset, resume_key) = state.break_reset();
            return Read::Gap {
                resume_key,
                breaks: state.breaks,
                reset,
            };
        }
        if let Some(reason) = state.gap_below(position) {
            // Behind an eviction: on at the head, as a slow reader's cursor always goes.
            return Read::Gap {
                resume_key: state.head_key,
                breaks: state.breaks,
                reset: Reset {
                    reason,
                    resume_from: state.head_id.clone(),
                },
            };
        }
        let start = state.entries.partition_point(|entry| entry.key <= position);
        let mut ready = state.entries.range(start..);
        let Some(first) = ready.next() else {
            return Read::Nothing;
        };
        let mut frames = Frames {
            count: 1,
            replayed: usize::from(first.key <= replay_through),
            last_key: first.key,
            chunk: first.frame.clone(),
            live_since: (first.key > replay_through).then_some(first.at),
        };
        let mut joined: Option<BytesMut> = None;
        for entry in ready {
            let total = joined.as_ref().map_or(frames.chunk.len(), BytesMut::len);
            if total + entry.frame.len() > max_bytes {
                break;
            }
            let buf = joined.get_or_insert_with(|| {
                let mut buf = BytesMut::with_capacity(max_bytes.min(total * 4).max(total));
                buf.extend_from_slice(&frames.chunk);
                buf
            });
            buf.extend_from_slice(&entry.frame);
            frames.count += 1;
            frames.replayed += usize::from(entry.key <= replay_through);
            frames.last_key = entry.key;
        }
        if let Some(buf) = joined {
            frames.chunk = buf.freeze();
        }
        Read::Frames(frames)
    }

    fn read(&self) -> RwLockReadGuard<'_, LogState> {
        crate::sync::read(&self.state)
    }

    fn write(&self) -> RwLockWriteGuard<'_, LogState> {
        crate::sync::write(&self.state)
    }
}

impl Drop for ChannelLog {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            let state = self.read();
            budget.removed(state.entries.len(), state.bytes);
        }
        // Lets the fan-out task see that the log is gone and end.
        if let Some(fanout) = &self.fanout {
            fanout.notify_one();
        }
    }
}

/// Wakes the cursors of one log after appends, off the appender's path.
async fn fan_out(log: Weak<ChannelLog>, signal: Arc<Notify>) {
    loop {
        signal.notified().await;
        match log.upgrade() {
            Some(log) => log.wake_cursors(),
            None => return,
        }
    }
}

enum Read {
    Nothing,
    Frames(Frames),
    Gap {
        /// The key the cursor continues after.
        resume_key: u128,
        breaks: u64,
        reset: Reset,
    },
}

struct Frames {
    chunk: Bytes,
    count: usize,
    replayed: usize,
    last_key: u128,
    /// When the first frame was appended, if it is live (not history at subscribe time).
    live_since: Option<Instant>,
}

impl std::fmt::Debug for ChannelLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (events, bytes) = self.len_and_bytes();
        f.debug_struct("ChannelLog")
            .field("head", &self.head().1)
            .field("events", &events)
            .field("bytes", &bytes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
