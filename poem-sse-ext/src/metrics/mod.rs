//! Counters kept by a [`crate::Hub`], and the snapshot it hands out.
//!
//! Every counter is a relaxed atomic bumped once per chunk (not per event, not per subscriber);
//! a snapshot reads them without a lock, so it is consistent per counter, not across counters.

use std::{
    collections::BTreeMap,
    fmt,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use serde::Serialize;

use crate::wire::ResetReason;

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod prometheus;

/// Live counters of one channel.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    pub(crate) open: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) resets: AtomicU64,
    /// Of `resets`, per [`ResetReason`] in the order of [`RESET_REASONS`].
    resets_by_reason: [AtomicU64; RESET_REASONS.len()],
    pub(crate) bytes_sent: AtomicU64,
}

/// Every reset reason, in the order of [`ChannelStats::resets_by_reason`].
const RESET_REASONS: [ResetReason; 3] = [
    ResetReason::Evicted,
    ResetReason::Epoch,
    ResetReason::Unknown,
];

impl ChannelStats {
    pub(crate) fn snapshot(&self) -> ChannelMetrics {
        let [evicted, epoch, unknown] = &self.resets_by_reason;
        ChannelMetrics {
            open_streams: self.open.load(Relaxed),
            published: self.published.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            resets: self.resets.load(Relaxed),
            resets_by_reason: ResetCounts {
                evicted: evicted.load(Relaxed),
                epoch: epoch.load(Relaxed),
                unknown: unknown.load(Relaxed),
            },
            bytes_sent: self.bytes_sent.load(Relaxed),
        }
    }

    /// Adds a forgotten channel's counters (not its open streams: it has none).
    pub(crate) fn absorb(&self, other: &ChannelMetrics) {
        self.published.fetch_add(other.published, Relaxed);
        self.delivered.fetch_add(other.delivered, Relaxed);
        self.replayed.fetch_add(other.replayed, Relaxed);
        self.resets.fetch_add(other.resets, Relaxed);
        for (counter, reason) in self.resets_by_reason.iter().zip(RESET_REASONS) {
            counter.fetch_add(other.resets_by_reason.get(reason), Relaxed);
        }
        self.bytes_sent.fetch_add(other.bytes_sent, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
    }

    /// Counts a reset signal sent, under its reason.
    pub(crate) fn count_reset(&self, reason: ResetReason) {
        self.resets.fetch_add(1, Relaxed);
        let at = RESET_REASONS.iter().position(|r| *r == reason);
        if let Some(counter) = at.and_then(|at| self.resets_by_reason.get(at)) {
            counter.fetch_add(1, Relaxed);
        }
    }
}

/// Counters of one channel (or of all channels, in [`HubMetrics`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelMetrics {
    /// Streams open now.
    pub open_streams: usize,
    /// Events published.
    pub published: u64,
    /// Event frames handed to clients (replayed and live).
    pub delivered: u64,
    /// Of `delivered`, frames that were history when the stream subscribed.
    pub replayed: u64,
    /// Reset signals sent (a resume point that could not be honoured).
    pub resets: u64,
    /// Of `resets`, per reason.
    pub resets_by_reason: ResetCounts,
    /// Bytes of event frames handed to clients (heartbeats and retry hints not included).
    pub bytes_sent: u64,
}

impl ChannelMetrics {
    fn accumulate(&mut self, other: &Self) {
        self.open_streams += other.open_streams;
        self.published += other.published;
        self.delivered += other.delivered;
        self.replayed += other.replayed;
        self.resets += other.resets;
        self.resets_by_reason.evicted += other.resets_by_reason.evicted;
        self.resets_by_reason.epoch += other.resets_by_reason.epoch;
        self.resets_by_reason.unknown += other.resets_by_reason.unknown;
        self.bytes_sent += other.bytes_sent;
    }
}

/// Reset signals per [`ResetReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResetCounts {
    /// [`ResetReason::Evicted`]: the client missed events.
    pub evicted: u64,
    /// [`ResetReason::Epoch`]: the resume point is from before a restart.
    pub epoch: u64,
    /// [`ResetReason::Unknown`]: the resume point was never issued.
    pub unknown: u64,
}

impl ResetCounts {
    /// The count of `reason`.
    pub fn get(&self, reason: ResetReason) -> u64 {
        match reason {
            ResetReason::Evicted => self.evicted,
            ResetReason::Epoch => self.epoch,
            ResetReason::Unknown => self.unknown,
        }
    }

    /// Every reason with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (ResetReason, u64)> + '_ {
        RESET_REASONS
            .into_iter()
            .map(|reason| (reason, self.get(reason)))
    }
}

/// Why an open stream closed, as counted in [`HubMetrics::closed`] and logged when it closes.
/// (A stream that was never opened is refused instead: see [`crate::RefusalReason`].)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client went away (or stopped reading and the server gave up on it).
    ClientGone,
    /// [`Hub::shutdown`](crate::Hub::shutdown): the stream sent its farewell and ended.
    Shutdown,
    /// [`HubBuilder::max_stream_lifetime`](crate::HubBuilder::max_stream_lifetime) was reached;
    /// the client reconnects and resumes exactly.
    Lifetime,
    /// The stream's authorization expired or was revoked ([`crate::REAUTH_EVENT`]).
    Reauth,
    /// Its source ended (the store closed the channel).
    Ended,
}

impl CloseReason {
    /// Every reason, in a fixed order.
    pub const ALL: [Self; 5] = [
        Self::ClientGone,
        Self::Shutdown,
        Self::Lifetime,
        Self::Reauth,
        Self::Ended,
    ];

    /// The reason as written in the metrics and logs: `client_gone`, `shutdown`, `lifetime`,
    /// `reauth` or `ended`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::Shutdown => "shutdown",
            Self::Lifetime => "lifetime",
            Self::Reauth => "reauth",
            Self::Ended => "ended",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The upper bounds of the [`DeliveryLag`] buckets.
pub const LAG_BUCKETS: [Duration; 10] = [
    Duration::from_millis(1),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(10),
    Duration::from_secs(60),
];

/// Hub-wide counters of streams: opened, closed by reason, and how late they read.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    opened: AtomicU64,
    /// Per [`CloseReason`], in the order of [`CloseReason::ALL`].
    closed: [AtomicU64; CloseReason::ALL.len()],
    /// Per bucket of [`LAG_BUCKETS`] (not cumulative), then the count above the last bound.
    lag: [AtomicU64; LAG_BUCKETS.len() + 1],
    lag_sum_micros: AtomicU64,
}

impl StreamStats {
    pub(crate) fn opened(&self) {
        self.opened.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        if let Some(counter) = self.closed.get(reason.index()) {
            counter.fetch_add(1, Relaxed);
        }
    }

    /// Records how long the oldest live event of a chunk waited in the log before a stream read
    /// it: two relaxed additions, once per chunk.
    pub(crate) fn observe_lag(&self, lag: Duration) {
        let at = LAG_BUCKETS.partition_point(|bound| *bound < lag);
        if let Some(bucket) = self.lag.get(at) {
            bucket.fetch_add(1, Relaxed);
        }
        let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX);
        self.lag_sum_micros.fetch_add(micros, Relaxed);
    }

    fn snapshot(&self) -> (u64, BTreeMap<&'static str, u64>, DeliveryLag) {
        let closed = CloseReason::ALL
            .iter()
            .zip(&self.closed)
            .map(|(reason, n)| (reason.as_str(), n.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect();
        let mut within = Vec::with_capacity(LAG_BUCKETS.len());
        let mut count = 0;
        for bucket in &self.lag {
            count += bucket.load(Relaxed);
            within.push(count);
        }
        within.truncate(LAG_BUCKETS.len());
        let lag = DeliveryLag {
            within,
            count,
            sum_micros: self.lag_sum_micros.load(Relaxed),
        };
        (self.opened.load(Relaxed), closed, lag)
    }
}

/// How long live events waited in their channel's log before a stream read them: once per chunk
/// a stream reads, the age of its oldest live event (replayed history is not counted). A stream
/// whose client reads slowly shows here as soon as it reads again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryLag {
    /// For each bound of [`LAG_BUCKETS`], the observations at or below it (cumulative).
    pub within: Vec<u64>,
    /// All observations.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_micros: u64,
}

/// A snapshot of a hub's counters, from [`crate::Hub::metrics`].
///
/// Serializes as the total's fields at the top level plus the stream counters and `channels`:
/// `{"open_streams": 3, "published": 10, ..., "rejected": 0, "channels": {"prices": {...}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HubMetrics {
    /// Sum over all channels, including channels the hub has since forgotten.
    #[serde(flatten)]
    pub total: ChannelMetrics,
    /// Streams opened since the hub started (a stream of several channels counts once).
    pub opened: u64,
    /// Of `opened`, streams closed since, per [`CloseReason::as_str`]; reasons never seen are
    /// left out.
    pub closed: BTreeMap<&'static str, u64>,
    /// Streams refused (caps, rate limit, shutdown, store) since the hub started.
    pub rejected: u64,
    /// Of `rejected`, per reason ([`crate::RefusalReason::as_str`]); reasons never seen are left out.
    pub refused: BTreeMap<&'static str, u64>,
    /// How late streams read live events.
    pub delivery_lag: DeliveryLag,
    /// Per channel registered now, by name.
    pub channels: BTreeMap<String, ChannelMetrics>,
}

impl HubMetrics {
    pub(crate) fn from_channels(
        channels: impl Iterator<Item = (String, ChannelMetrics)>,
        retired: ChannelMetrics,
        refused: impl Iterator<Item = (&'static str, u64)>,
    ) -> Self {
        let refused: BTreeMap<_, _> = refused.collect();
        let mut metrics = Self {
            total: retired,
            rejected: refused.values().sum(),
            refused,
            ..Self::default()
        };
        for (name, channel) in channels {
            metrics.total.accumulate(&channel);
            metrics.channels.insert(name, channel);
        }
        metrics
    }

    /// Adds the hub-wide stream counters.
    pub(crate) fn with_streams(mut self, streams: &StreamStats) -> Self {
        (self.opened, self.closed, self.delivery_lag) = streams.snapshot();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_buckets_are_cumulative_and_bounds_inclusive() {
        let stats = StreamStats::default();
        stats.observe_lag(Duration::from_millis(1));
        stats.observe_lag(Duration::from_millis(7));
        stats.observe_lag(Duration::from_secs(120));
        let (_, _, lag) = stats.snapshot();
        assert_eq!(lag.within, [1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(lag.count, 3);
        assert_eq!(lag.sum_micros, 1_000 + 7_000 + 120_000_000);
    }

    #[test]
    fn resets_and_closes_are_counted_by_reason() {
        let channel = ChannelStats::default();
        channel.count_reset(ResetReason::Epoch);
        channel.count_reset(ResetReason::Epoch);
        channel.count_reset(ResetReason::Evicted);
        let snapshot = channel.snapshot();
        assert_eq!(snapshot.resets, 3);
        assert_eq!(
            snapshot.resets_by_reason,
            ResetCounts {
                evicted: 1,
                epoch: 2,
                unknown: 0
            }
        );
        let streams = StreamStats::default();
        streams.opened();
        streams.opened();
        streams.closed(CloseReason::Lifetime);
        let (opened, closed, _) = streams.snapshot();
        assert_eq!(opened, 2);
        assert_eq!(closed, BTreeMap::from([("lifetime", 1)]));
    }
}
