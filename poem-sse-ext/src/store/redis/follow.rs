//! A channel as this instance follows it: the [`ChannelLog`] its streams read, filled once from
//! the stream's history (`backfill.rs`), then fed by the reader (`reader.rs`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use ::redis::RedisError;
use futures_util::future::Shared;
use tokio::time::Instant;

use super::{
    catchup::CatchUps,
    error::wrong_type,
    gap::continue_after,
    lock,
    reply::{Entries, StreamId, StreamInfo},
};
use crate::{
    store::{BoxFuture, ChannelLog, EventId, ResetReason, StoreError},
    wire::frame_with_id,
};

/// A backfill in progress, awaited by every subscribe that needs it: one read of Redis per
/// channel however many streams open at once.
pub(super) type Fill = Shared<BoxFuture<'static, Result<Arc<Follow>, StoreError>>>;

/// One channel's state in this process, shared by its handles.
pub(super) struct ChannelInner {
    pub(super) name: Box<str>,
    pub(super) key: String,
    /// The reader group that follows it.
    pub(super) group: usize,
    phase: Mutex<Phase>,
}

enum Phase {
    /// Not followed: nothing of the channel is held here.
    Idle,
    /// The history is being read.
    Filling(Fill),
    /// Followed by the reader.
    Live(Arc<Follow>),
}

/// What [`ChannelInner::follow_or_fill`] found.
pub(super) enum Current {
    Live(Arc<Follow>),
    Filling(Fill),
}

impl ChannelInner {
    pub(super) fn new(name: &str, key: String, group: usize) -> Self {
        Self {
            name: name.into(),
            key,
            group,
            phase: Mutex::new(Phase::Idle),
        }
    }

    /// The followed channel, or the backfill to wait for; `start` begins one if none runs.
    pub(super) fn follow_or_fill(&self, start: impl FnOnce() -> Fill) -> Current {
        let mut phase = lock(&self.phase);
        match &*phase {
            Phase::Live(follow) => Current::Live(Arc::clone(follow)),
            Phase::Filling(fill) => Current::Filling(fill.clone()),
            Phase::Idle => {
                let fill = start();
                *phase = Phase::Filling(fill.clone());
                Current::Filling(fill)
            }
        }
    }

    /// The followed channel, if it is followed.
    pub(super) fn live(&self) -> Option<Arc<Follow>> {
        match &*lock(&self.phase) {
            Phase::Live(follow) => Some(Arc::clone(follow)),
            _ => None,
        }
    }

    /// Ends a backfill: the channel is followed from now on.
    pub(super) fn set_live(&self, follow: Arc<Follow>) {
        *lock(&self.phase) = Phase::Live(follow);
    }

    /// Ends a backfill that failed: the next subscribe tries again.
    pub(super) fn set_idle_if_filling(&self) {
        let mut phase = lock(&self.phase);
        if matches!(*phase, Phase::Filling(_)) {
            *phase = Phase::Idle;
        }
    }

    /// The followed channel, unless nothing used it for `grace`: it is then unfollowed (its log
    /// dropped; the next subscribe reads the history again) and `None` is returned.
    pub(super) fn keep_following(&self, now: Instant, grace: Duration) -> Option<Arc<Follow>> {
        let mut phase = lock(&self.phase);
        let Phase::Live(follow) = &*phase else {
            return None;
        };
        // Only the phase holds the follow (a subscribe clones it under this lock, before it makes
        // its cursor), and only the follow holds the log (every cursor holds it): nothing reads
        // the channel and nothing is about to.
        let unused = Arc::strong_count(follow) == 1 && Arc::strong_count(&follow.log) == 1;
        {
            let mut state = lock(&follow.state);
            if !unused {
                state.idle_since = None;
                return Some(Arc::clone(follow));
            }
            let since = *state.idle_since.get_or_insert(now);
            if now.saturating_duration_since(since) < grace {
                return Some(Arc::clone(follow));
            }
        }
        *phase = Phase::Idle;
        None
    }

    /// Whether this process holds no event of the channel.
    pub(super) fn holds_nothing(&self) -> bool {
        self.live()
            .is_none_or(|follow| follow.log.len_and_bytes().0 == 0)
    }
}

/// A followed channel: its log, and where the reader is in its stream.
pub(super) struct Follow {
    pub(super) name: Box<str>,
    pub(super) key: String,
    pub(super) log: Arc<ChannelLog>,
    /// The catch-ups of reads that must see what Redis holds now (`catchup.rs`).
    pub(super) catch_ups: CatchUps,
    state: Mutex<ReadState>,
}

/// Where the reader is on one stream.
struct ReadState {
    /// The last stream id read (or where the backfill stopped).
    position: StreamId,
    /// The stream's `entries-added` count at `position`: the number of entries up to it.
    added: u64,
    /// How many times the position was set back by a gap or a refill: a catch-up read before
    /// one is not applied after it.
    generation: u64,
    idle_since: Option<Instant>,
    /// Why the reader does not read the key (it holds another type than a stream), while so.
    bad: Option<StoreError>,
}

impl Follow {
    pub(super) fn new(
        inner: &ChannelInner,
        log: Arc<ChannelLog>,
        position: StreamId,
        added: u64,
    ) -> Self {
        Self {
            name: inner.name.clone(),
            key: inner.key.clone(),
            log,
            catch_ups: CatchUps::default(),
            state: Mutex::new(ReadState {
                position,
                added,
                generation: 0,
                idle_since: None,
                bad: None,
            }),
        }
    }

    /// The last stream id the reader read, and its entry number.
    pub(super) fn position(&self) -> (StreamId, u64) {
        let state = lock(&self.state);
        (state.position, state.added)
    }

    /// Why the channel can not be served, while its key holds another type than a stream.
    pub(super) fn bad(&self) -> Option<StoreError> {
        lock(&self.state).bad.clone()
    }

    pub(super) fn is_bad(&self) -> bool {
        lock(&self.state).bad.is_some()
    }

    /// Sets the channel aside after `err` about its key; `true` if it was read until now.
    pub(super) fn set_bad(&self, err: &RedisError) -> bool {
        let mut state = lock(&self.state);
        let newly = state.bad.is_none();
        if newly {
            tracing::warn!(
                channel = &*self.name,
                stream = self.key,
                %err,
                "redis store: the channel's key can not be read as a stream; the channel is \
                 unavailable until it is (other channels are not affected)"
            );
        }
        state.bad = Some(wrong_type(&self.key, err));
        newly
    }

    /// Reads the channel again if it was set aside.
    pub(super) fn set_good(&self) {
        if lock(&self.state).bad.take().is_some() {
            tracing::info!(
                channel = &*self.name,
                stream = self.key,
                "redis store: the channel's key is a stream again (or gone); reading it again"
            );
        }
    }

    /// Where a catch-up reads from: the position, and its generation.
    pub(super) fn catch_up_point(&self) -> (StreamId, u64) {
        let state = lock(&self.state);
        (state.position, state.generation)
    }

    /// Appends what a catch-up read from [`catch_up_point`](Self::catch_up_point) (the entries
    /// after it, without a hole) to the log, unless a gap or a refill set the position back since.
    /// The entries the reader (or another catch-up) already appended are skipped.
    pub(super) fn catch_up(&self, generation: u64, entries: Entries) {
        let mut state = lock(&self.state);
        if state.generation == generation {
            self.apply_locked(&mut state, entries);
        }
    }

    /// Appends what the reader read (entries after its position) to the log.
    pub(super) fn apply(&self, entries: Entries) {
        self.apply_locked(&mut lock(&self.state), entries);
    }

    /// Appends the entries after the position to the log, in order, each once.
    fn apply_locked(&self, state: &mut ReadState, entries: Entries) {
        for (id, body) in entries {
            if id <= state.position {
                continue;
            }
            state.position = id;
            state.added = state.added.saturating_add(1);
            let Some(body) = body else { continue };
            let text = id.to_string();
            let frame = frame_with_id(&text, &body);
            let appended =
                self.log
                    .append_entry_aged(id.key(), EventId::new(text), frame, id.age());
            if let Err(err) = appended {
                // Only an entry larger than this instance's byte bound (written by an instance
                // with another retention) can fail; skipping it is what that bound means.
                tracing::warn!(stream = self.key, %id, %err, "redis store: entry skipped");
            }
        }
    }

    /// Redis lost entries this process read (a failover promoted a replica that lacked them):
    /// `common` is the newest entry both have (numbered `added` in the stream), and `after` is
    /// every entry the stream holds after it. The log breaks at `common` (its cursors get an
    /// `epoch` reset that continues from there), then holds `after`: what Redis has.
    pub(super) fn refill(&self, common: StreamId, added: u64, after: Entries) {
        {
            let mut state = lock(&self.state);
            state.position = common;
            state.added = added;
            state.generation += 1;
            self.log
                .break_at(ResetReason::Epoch, common.key(), common.event_id());
        }
        self.apply(after);
    }

    /// The reader found a gap for `reason` (the stream as it is now is `info`): the log's
    /// cursors get a reset, and the reader continues where nothing more is lost.
    pub(super) fn break_at(&self, reason: ResetReason, info: Option<&StreamInfo>) {
        let (resume, added) = continue_after(reason, info);
        let mut state = lock(&self.state);
        state.position = resume;
        state.added = added;
        state.generation += 1;
        self.log.break_at(reason, resume.key(), resume.event_id());
    }
}
