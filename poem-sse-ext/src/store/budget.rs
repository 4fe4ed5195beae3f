//! One bound on the bytes of history a whole store keeps, over all its channels.
//!
//! Per-channel bounds alone let history grow with the number of channels (4 MiB × 10,000
//! channels is 39 GiB). A [`HistoryBudget`] caps the sum: when an append takes the store over it,
//! the oldest events of any channel are evicted first, as if by age, and a reader that loses its
//! range gets `sse-reset` with reason `evicted`, as for any eviction.

use std::{
    collections::VecDeque,
    fmt,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex, MutexGuard, Weak,
    },
};

use super::ChannelLog;

/// The store-wide byte bound on retained history, shared by the logs of a store.
pub(crate) struct HistoryBudget {
    limit: usize,
    /// Bytes of frames retained by every log attached to this budget.
    used: AtomicUsize,
    /// Entries retained by those logs (to know when `order` is mostly stale).
    entries: AtomicUsize,
    /// Every append, oldest first: the log and the key it appended. A record whose entry the log
    /// already evicted on its own is stale; it is skipped when reached and dropped by compaction.
    order: Mutex<VecDeque<(Weak<ChannelLog>, u128)>>,
}

impl HistoryBudget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            used: AtomicUsize::new(0),
            entries: AtomicUsize::new(0),
            order: Mutex::default(),
        }
    }

    /// Bytes retained now, over all channels.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// Called by a log under its write lock when it appended `bytes` at `key`. Lock order: a
    /// log's lock, then this budget's; never the other way round, so nothing here may take a
    /// log's lock.
    pub(crate) fn added(&self, log: Weak<ChannelLog>, key: u128, bytes: usize) {
        self.used.fetch_add(bytes, Ordering::AcqRel);
        self.entries.fetch_add(1, Ordering::AcqRel);
        self.order().push_back((log, key));
    }

    /// Called by a log when it dropped `entries` entries of `bytes` in all.
    pub(crate) fn removed(&self, entries: usize, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        self.entries.fetch_sub(entries, Ordering::AcqRel);
    }

    /// Evicts the oldest entries of any channel until the store is within its bound. Called
    /// after an append, with no log lock held.
    pub(crate) fn enforce(&self) {
        let live = self.entries.load(Ordering::Acquire);
        if self.order().len() > 2 * live + 1_024 {
            self.compact();
        }
        while self.used() > self.limit {
            let Some((log, key)) = self.order().pop_front() else {
                return;
            };
            if let Some(log) = log.upgrade() {
                log.evict_through(key);
            }
        }
    }

    /// Drops the records of entries their logs already evicted. The records are taken out of the
    /// lock and checked without it (checking takes each log's lock), then put back in front of
    /// those appended meanwhile, which are all newer.
    fn compact(&self) {
        let old = std::mem::take(&mut *self.order());
        let kept: VecDeque<_> = old
            .into_iter()
            .filter(|(log, key)| log.upgrade().is_some_and(|log| log.holds(*key)))
            .collect();
        let mut order = self.order();
        let newer = std::mem::replace(&mut *order, kept);
        order.extend(newer);
    }

    pub(crate) fn order(&self) -> MutexGuard<'_, VecDeque<(Weak<ChannelLog>, u128)>> {
        crate::sync::lock(&self.order)
    }
}

impl fmt::Debug for HistoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HistoryBudget")
            .field("limit", &self.limit)
            .field("used", &self.used())
            .finish_non_exhaustive()
    }
}
