//! The default replay store: per-channel logs in this process's memory.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::Duration,
};

use super::{
    budget::HistoryBudget, idempotency::IdempotencyKeys, BoxFuture, ChannelLog, EventId, Published,
    Recent, ReplayStore, Reset, ResetReason, Retention, StoreChannel, StoreError, Subscription,
};
use crate::{wire::frame_with_id, wire::Event};

/// The default bound on the history of all channels together: 256 MiB.
pub const DEFAULT_HISTORY_BUDGET: usize = 256 << 20;

/// Longest `Last-Event-ID` the store parses; a longer one is treated as unknown.
const MAX_RESUME_ID_LEN: usize = 64;

/// Keeps each channel's history in memory, bounded by a [`Retention`].
///
/// Ids are `<epoch>-<seq>`: `epoch` is chosen at random when the store is created, so ids from
/// before a restart are recognised (and answered with [`ResetReason::Epoch`]); `seq` orders the
/// channel's events, and the head id of a channel without events means "before the first event".
///
/// The store keeps no registry: each channel's log lives as long as the hub keeps the channel
/// registered. A channel the hub forgot and registers again continues above every sequence number
/// issued before, and a client resuming from the old numbers gets [`ResetReason::Evicted`], never
/// another channel incarnation's events as if they were the ones it missed.
#[derive(Debug)]
pub struct MemoryStore {
    epoch: Arc<str>,
    retention: Retention,
    /// The bound on the bytes of all channels together.
    budget: Arc<HistoryBudget>,
    /// The highest sequence number issued by a channel that has since been dropped: a channel
    /// registered again starts above it.
    high_water: Arc<AtomicU64>,
}

impl MemoryStore {
    /// A store with a fresh random epoch.
    pub fn new(retention: Retention) -> Self {
        Self::with_epoch(retention, format!("{:08x}", rand::random::<u32>()))
    }

    /// A store with the given epoch (tests, or an epoch persisted by the application).
    /// Only ASCII letters and digits are kept; an epoch with none becomes `0`.
    pub fn with_epoch(retention: Retention, epoch: impl Into<String>) -> Self {
        let mut epoch: String = epoch
            .into()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        if epoch.is_empty() {
            epoch.push('0');
        }
        Self {
            epoch: epoch.into(),
            retention,
            budget: Arc::new(HistoryBudget::new(DEFAULT_HISTORY_BUDGET)),
            high_water: Arc::default(),
        }
    }

    /// Bounds the bytes of history of all channels together (default 256 MiB): when an append
    /// would pass it, the oldest events of any channel are evicted first, and readers that lose
    /// their range get `sse-reset` (`evicted`). With it, the store's memory is at most this
    /// budget plus a small fixed cost per channel and per stream, whatever the number of channels.
    #[must_use]
    pub fn history_budget(mut self, bytes: usize) -> Self {
        self.budget = Arc::new(HistoryBudget::new(bytes));
        self
    }

    /// Bytes of history retained now, over all channels.
    pub fn history_bytes(&self) -> usize {
        self.budget.used()
    }

    /// The epoch written in front of every id.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The history bounds of every channel.
    pub fn retention(&self) -> Retention {
        self.retention
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new(Retention::default())
    }
}

impl ReplayStore for MemoryStore {
    fn channel(self: Arc<Self>, _name: &str) -> Arc<dyn StoreChannel> {
        let base = self.high_water.load(Ordering::Acquire);
        let ids = Ids {
            epoch: Arc::clone(&self.epoch),
        };
        let log = ChannelLog::after_gap_within(
            self.retention,
            u128::from(base),
            ids.id(base.into()),
            Some(Arc::clone(&self.budget)),
        );
        Arc::new(MemoryChannel {
            log,
            ids,
            high_water: Arc::clone(&self.high_water),
            keys: Mutex::default(),
        })
    }
}

/// One channel of a [`MemoryStore`]: its log is its whole history.
struct MemoryChannel {
    log: Arc<ChannelLog>,
    ids: Ids,
    high_water: Arc<AtomicU64>,
    /// Held across the check and the append of [`StoreChannel::append_once`], so that two
    /// publishes with the same key can not both append.
    keys: Mutex<(IdempotencyKeys, Duration)>,
}

impl MemoryChannel {
    fn append_now(&self, event: &Event) -> Result<EventId, StoreError> {
        // Encode once, outside the lock; only the id line is added under it.
        let body = event.encode_with_id(None);
        self.log.append_next(|seq| {
            let id = self.ids.id(seq);
            let frame = frame_with_id(id.as_str(), &body);
            (id, frame)
        })
    }

    fn keys(&self) -> MutexGuard<'_, (IdempotencyKeys, Duration)> {
        crate::sync::lock(&self.keys)
    }
}

impl Drop for MemoryChannel {
    fn drop(&mut self) {
        let head = u64::try_from(self.log.head().0).unwrap_or(u64::MAX);
        self.high_water.fetch_max(head, Ordering::AcqRel);
    }
}

impl StoreChannel for MemoryChannel {
    fn append<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, Result<EventId, StoreError>> {
        Box::pin(std::future::ready(self.append_now(event)))
    }

    fn append_once<'a>(
        &'a self,
        key: &'a str,
        window: Duration,
        event: &'a Event,
    ) -> BoxFuture<'a, Result<Published, StoreError>> {
        let mut keys = self.keys();
        let (seen, kept_for) = &mut *keys;
        *kept_for = (*kept_for).max(window);
        let appended = match seen.get(key, window) {
            Some(id) => Ok(Published {
                id,
                duplicate: true,
            }),
            None => self.append_now(event).map(|id| {
                seen.insert(key, id.clone());
                Published {
                    id,
                    duplicate: false,
                }
            }),
        };
        Box::pin(std::future::ready(appended))
    }

    fn subscribe<'a>(
        &'a self,
        last_event_id: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Subscription, StoreError>> {
        let log = &self.log;
        log.evict_expired();
        // The log holds history and live frames alike, so subscribing and reading history are
        // one step: the cursor reads everything after its position, whenever it was appended.
        let (cursor, reset) = match last_event_id.map(|id| self.ids.parse(id)) {
            None => log.cursor_after(None),
            Some(Ok(seq)) => log.cursor_after(Some(seq)),
            Some(Err(reason)) => {
                let (cursor, _) = log.cursor_after(None);
                let reset = Reset {
                    reason,
                    resume_from: log.head().1,
                };
                (cursor, Some(reset))
            }
        };
        Box::pin(std::future::ready(Ok(Subscription { reset, cursor })))
    }

    fn head(&self) -> BoxFuture<'_, Result<EventId, StoreError>> {
        Box::pin(std::future::ready(Ok(self.log.head().1)))
    }

    fn recent(&self, max: usize) -> BoxFuture<'_, Result<Recent, StoreError>> {
        self.log.evict_expired();
        Box::pin(std::future::ready(Ok(self.log.recent(max))))
    }

    fn is_empty(&self) -> bool {
        self.log.evict_expired();
        let (keys, window) = &mut *self.keys();
        self.log.len_and_bytes().0 == 0 && keys.is_empty(*window)
    }
}

/// How a [`MemoryStore`] writes and reads its ids.
struct Ids {
    epoch: Arc<str>,
}

impl Ids {
    fn id(&self, seq: u128) -> EventId {
        EventId::new(format!("{}-{seq}", self.epoch))
    }

    /// The sequence number in `id`, or why it can not be resumed from.
    fn parse(&self, id: &str) -> Result<u128, ResetReason> {
        if id.len() > MAX_RESUME_ID_LEN {
            return Err(ResetReason::Unknown);
        }
        let (epoch, seq) = id.split_once('-').ok_or(ResetReason::Unknown)?;
        let seq: u64 = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(ResetReason::Unknown)?;
        if epoch == &*self.epoch {
            Ok(u128::from(seq))
        } else if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Err(ResetReason::Epoch)
        } else {
            Err(ResetReason::Unknown)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Arc<MemoryStore> {
        Arc::new(MemoryStore::with_epoch(Retention::default(), "abc"))
    }

    #[test]
    fn parses_only_its_own_ids() {
        let ids = Ids {
            epoch: "abc".into(),
        };
        assert_eq!(ids.parse("abc-0"), Ok(0));
        assert_eq!(ids.parse("abc-42"), Ok(42));
        assert_eq!(ids.parse("def-42"), Err(ResetReason::Epoch));
        for garbage in [
            "",
            "42",
            "-1",
            "abc--1",
            "abc-+1",
            "abc-1.5",
            "abc-99999999999999999999999",
            "abc-",
            "-",
            "ab c-1",
            "ä-1",
        ] {
            assert_eq!(ids.parse(garbage), Err(ResetReason::Unknown), "{garbage:?}");
        }
        assert_eq!(ids.parse(&"a".repeat(4096)), Err(ResetReason::Unknown));
    }

    #[tokio::test]
    async fn ids_count_per_channel_and_head_follows() {
        let store = store();
        let (a, b) = (Arc::clone(&store).channel("a"), store.channel("b"));
        assert_eq!(a.head().await, Ok(EventId::new("abc-0")));
        assert_eq!(a.append(&Event::text("x")).await, Ok(EventId::new("abc-1")));
        assert_eq!(b.append(&Event::text("x")).await, Ok(EventId::new("abc-1")));
        assert_eq!(a.append(&Event::text("y")).await, Ok(EventId::new("abc-2")));
        assert_eq!(a.head().await, Ok(EventId::new("abc-2")));
    }

    #[tokio::test]
    async fn the_history_budget_bounds_all_channels_together_oldest_first() {
        let store =
            Arc::new(MemoryStore::with_epoch(Retention::default(), "abc").history_budget(1_000));
        let channels: Vec<_> = (0..20)
            .map(|n| Arc::clone(&store).channel(&format!("c{n}")))
            .collect();
        let oldest = channels[0].append(&Event::text("x".repeat(80))).await;
        let oldest = oldest.unwrap_or_else(|err| panic!("{err}"));
        for channel in &channels {
            for _ in 0..5 {
                let _ = channel.append(&Event::text("x".repeat(80))).await;
            }
        }
        assert!(
            store.history_bytes() <= 1_000,
            "{} bytes",
            store.history_bytes()
        );
        assert!(store.history_bytes() > 800, "evicts only what it must");
        // The oldest events went first: a reader of the first channel lost its range.
        let sub = channels[0].subscribe(Some(oldest.as_str())).await;
        assert_eq!(
            sub.map(|sub| sub.reset.map(|reset| reset.reason)),
            Ok(Some(ResetReason::Evicted))
        );
        // The newest channel kept its events.
        let recent = channels[19].recent(10).await.map(|r| r.events.len());
        assert_eq!(recent, Ok(5));
    }

    #[tokio::test]
    async fn many_appends_past_per_channel_bounds_keep_the_budget_records_bounded() {
        // Records of entries a channel evicted on its own are compacted away, without ever
        // taking a log's lock while the budget's is held (or the other way round).
        let store = Arc::new(MemoryStore::new(Retention::default().max_events(20)));
        let channel = Arc::clone(&store).channel("fast");
        for n in 0..5_000 {
            let appended = channel.append(&Event::text(n.to_string())).await;
            assert!(appended.is_ok(), "append {n}");
        }
        assert!(store.budget.order().len() <= 2 * 20 + 1_025);
        assert_eq!(channel.recent(100).await.map(|r| r.events.len()), Ok(20));
    }

    #[tokio::test]
    async fn a_channel_registered_again_never_passes_its_new_events_off_as_old_ones() {
        let store = store();
        let first = Arc::clone(&store).channel("a");
        for n in 0..5 {
            let _ = first.append(&Event::text(n.to_string())).await;
        }
        drop(first);
        let again = store.channel("a");
        let _ = again.append(&Event::text("new")).await;
        // A client that saw abc-3 of the first incarnation missed abc-4: it gets a reset, not
        // the new incarnation's events.
        let sub = again.subscribe(Some("abc-3")).await;
        assert_eq!(
            sub.map(|sub| sub.reset.map(|reset| reset.reason)),
            Ok(Some(ResetReason::Evicted))
        );
        assert_eq!(again.head().await, Ok(EventId::new("abc-6")));
    }
}
