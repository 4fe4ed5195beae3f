//! What a hub counts, as a snapshot ([`HubMetrics`], from [`Hub::metrics`]) and, with the
//! `prometheus` feature, as a Prometheus scrape ([`prometheus`]).
//!
//! The hub keeps relaxed atomics, bumped once per chunk (not per event, not per subscriber); a
//! snapshot reads them without a lock, so it is consistent per counter, not across counters.
//! Every reason is a type, and every count per reason a struct with a field per reason
//! ([`ResetCounts`], [`CloseCounts`], [`RefusalCounts`]), so a typo is a compile error.
//!
//! ```
//! use poem_sse_ext::{Event, Hub};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//! hub.publish("prices", Event::text("1.08")).await?;
//! let metrics = hub.metrics();
//! assert_eq!(metrics.total.published, 1);
//! assert_eq!(metrics.channels["prices"].published, 1);
//! assert_eq!(metrics.refused, 0);
//! # Ok(())
//! # }
//! ```

use std::{collections::BTreeMap, sync::atomic::Ordering::Relaxed};

use serde::Serialize;

pub use crate::hub::stats::{CloseReason, LAG_BUCKETS};
use crate::{
    hub::{
        admission::RefusalReason,
        stats::{ChannelStats, StreamStats, RESET_REASONS},
        Hub,
    },
    wire::ResetReason,
};

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod prometheus;

impl Hub {
    /// A snapshot of the counters, per channel and in total.
    pub fn metrics(&self) -> HubMetrics {
        let registry = self.registry();
        let mut metrics = HubMetrics {
            total: ChannelMetrics::read(registry.retired()),
            ..HubMetrics::default()
        };
        registry.for_each_channel(|name, stats| {
            let channel = ChannelMetrics::read(stats);
            metrics.total.accumulate(&channel);
            metrics.channels.insert(name.to_owned(), channel);
        });
        metrics.read_streams(&registry.streams);
        metrics
    }
}

/// Counters of one channel (or of all channels, in [`HubMetrics::total`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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
    fn read(stats: &ChannelStats) -> Self {
        let [evicted, epoch, unknown] = &stats.resets_by_reason;
        Self {
            open_streams: stats.open.load(Relaxed),
            published: stats.published.load(Relaxed),
            delivered: stats.delivered.load(Relaxed),
            replayed: stats.replayed.load(Relaxed),
            resets: stats.resets.load(Relaxed),
            resets_by_reason: ResetCounts {
                evicted: evicted.load(Relaxed),
                epoch: epoch.load(Relaxed),
                unknown: unknown.load(Relaxed),
            },
            bytes_sent: stats.bytes_sent.load(Relaxed),
        }
    }

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
#[non_exhaustive]
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

/// Closed streams per [`CloseReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CloseCounts {
    /// [`CloseReason::ClientGone`].
    pub client_gone: u64,
    /// [`CloseReason::Shutdown`].
    pub shutdown: u64,
    /// [`CloseReason::Lifetime`].
    pub lifetime: u64,
    /// [`CloseReason::Reauth`].
    pub reauth: u64,
    /// [`CloseReason::Ended`].
    pub ended: u64,
}

impl CloseCounts {
    /// The count of `reason`.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::ClientGone => self.client_gone,
            CloseReason::Shutdown => self.shutdown,
            CloseReason::Lifetime => self.lifetime,
            CloseReason::Reauth => self.reauth,
            CloseReason::Ended => self.ended,
        }
    }

    /// Every reason with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (CloseReason, u64)> + '_ {
        CloseReason::ALL
            .into_iter()
            .map(|reason| (reason, self.get(reason)))
    }

    fn slot(&mut self, reason: CloseReason) -> &mut u64 {
        match reason {
            CloseReason::ClientGone => &mut self.client_gone,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::Lifetime => &mut self.lifetime,
            CloseReason::Reauth => &mut self.reauth,
            CloseReason::Ended => &mut self.ended,
        }
    }
}

/// Refused streams per [`RefusalReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RefusalCounts {
    /// [`RefusalReason::MaxStreams`].
    pub max_streams: u64,
    /// [`RefusalReason::MaxStreamsPerChannel`].
    pub max_streams_per_channel: u64,
    /// [`RefusalReason::MaxStreamsPerClient`].
    pub max_streams_per_client: u64,
    /// [`RefusalReason::MaxStreamsPerPrincipal`].
    pub max_streams_per_principal: u64,
    /// [`RefusalReason::RateLimited`].
    pub rate_limited: u64,
    /// [`RefusalReason::MaxChannels`].
    pub max_channels: u64,
    /// [`RefusalReason::ShuttingDown`].
    pub shutting_down: u64,
    /// [`RefusalReason::Store`].
    pub store: u64,
}

impl RefusalCounts {
    /// The count of `reason`.
    pub fn get(&self, reason: RefusalReason) -> u64 {
        let mut copy = *self;
        *copy.slot(reason)
    }

    /// Every reason with its count, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (RefusalReason, u64)> + '_ {
        RefusalReason::ALL
            .into_iter()
            .map(|reason| (reason, self.get(reason)))
    }

    fn slot(&mut self, reason: RefusalReason) -> &mut u64 {
        match reason {
            RefusalReason::MaxStreams => &mut self.max_streams,
            RefusalReason::MaxStreamsPerChannel => &mut self.max_streams_per_channel,
            RefusalReason::MaxStreamsPerClient => &mut self.max_streams_per_client,
            RefusalReason::MaxStreamsPerPrincipal => &mut self.max_streams_per_principal,
            RefusalReason::RateLimited => &mut self.rate_limited,
            RefusalReason::MaxChannels => &mut self.max_channels,
            RefusalReason::ShuttingDown => &mut self.shutting_down,
            RefusalReason::Store => &mut self.store,
        }
    }
}

/// How long live events waited in their channel's log before a stream read them: once per chunk
/// a stream reads, the age of its oldest live event (replayed history is not counted). A stream
/// whose client reads slowly shows here as soon as it reads again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeliveryLag {
    /// For each bound of [`LAG_BUCKETS`], the observations at or below it (cumulative).
    pub within: Vec<u64>,
    /// All observations.
    pub count: u64,
    /// Their sum, in microseconds.
    pub sum_micros: u64,
}

/// A snapshot of a hub's counters, from [`Hub::metrics`].
///
/// Serializes as the total's fields at the top level, then the stream counters and `channels`:
/// `{"open_streams": 3, "published": 10, ..., "refused": 0, "refused_by_reason": {...},
/// "channels": {"prices": {...}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HubMetrics {
    /// Sum over all channels, including channels the hub has since forgotten.
    #[serde(flatten)]
    pub total: ChannelMetrics,
    /// Streams opened since the hub started (a stream of several channels counts once).
    pub opened: u64,
    /// Of `opened`, streams closed since.
    pub closed: u64,
    /// Of `closed`, per reason.
    pub closed_by_reason: CloseCounts,
    /// Streams refused (caps, rate limit, shutdown, store) since the hub started.
    pub refused: u64,
    /// Of `refused`, per reason.
    pub refused_by_reason: RefusalCounts,
    /// How late streams read live events.
    pub delivery_lag: DeliveryLag,
    /// Per channel registered now, by name.
    pub channels: BTreeMap<String, ChannelMetrics>,
}

impl HubMetrics {
    /// Adds the hub-wide stream counters.
    fn read_streams(&mut self, streams: &StreamStats) {
        self.opened = streams.opened.load(Relaxed);
        for (reason, n) in CloseReason::ALL.into_iter().zip(&streams.closed) {
            *self.closed_by_reason.slot(reason) = n.load(Relaxed);
        }
        self.closed = self.closed_by_reason.iter().map(|(_, n)| n).sum();
        for (reason, n) in RefusalReason::ALL.into_iter().zip(&streams.refused) {
            *self.refused_by_reason.slot(reason) = n.load(Relaxed);
        }
        self.refused = self.refused_by_reason.iter().map(|(_, n)| n).sum();
        let mut within = Vec::with_capacity(LAG_BUCKETS.len());
        let mut count = 0;
        for bucket in &streams.lag {
            count += bucket.load(Relaxed);
            within.push(count);
        }
        within.truncate(LAG_BUCKETS.len());
        self.delivery_lag = DeliveryLag {
            within,
            count,
            sum_micros: streams.lag_sum_micros.load(Relaxed),
        };
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lag_buckets_are_cumulative_and_bounds_inclusive() {
        let stats = StreamStats::default();
        stats.observe_lag(Duration::from_millis(1));
        stats.observe_lag(Duration::from_millis(7));
        stats.observe_lag(Duration::from_secs(120));
        let mut metrics = HubMetrics::default();
        metrics.read_streams(&stats);
        assert_eq!(metrics.delivery_lag.within, [1, 1, 2, 2, 2, 2, 2, 2, 2, 2]);
        assert_eq!(metrics.delivery_lag.count, 3);
        assert_eq!(metrics.delivery_lag.sum_micros, 1_000 + 7_000 + 120_000_000);
    }

    #[test]
    fn resets_closes_and_refusals_are_counted_by_reason() {
        let channel = ChannelStats::default();
        channel.count_reset(ResetReason::Epoch);
        channel.count_reset(ResetReason::Epoch);
        channel.count_reset(ResetReason::Evicted);
        let snapshot = ChannelMetrics::read(&channel);
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
        streams.refused(RefusalReason::RateLimited);
        streams.refused(RefusalReason::RateLimited);
        let mut metrics = HubMetrics::default();
        metrics.read_streams(&streams);
        assert_eq!(metrics.opened, 2);
        assert_eq!(metrics.closed, 1);
        assert_eq!(metrics.closed_by_reason.lifetime, 1);
        assert_eq!(metrics.refused, 2);
        assert_eq!(metrics.refused_by_reason.get(RefusalReason::RateLimited), 2);
        assert_eq!(metrics.refused_by_reason.max_streams, 0);
    }
}
