//! Counters kept by a [`crate::Hub`], and the snapshot it hands out.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
};

use serde::Serialize;

/// Live counters of one channel. Each is updated with one relaxed atomic operation per chunk;
/// a snapshot is consistent per counter, not across counters.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    pub(crate) open: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) resets: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
}

impl ChannelStats {
    pub(crate) fn snapshot(&self) -> ChannelMetrics {
        ChannelMetrics {
            open_streams: self.open.load(Relaxed),
            published: self.published.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            replayed: self.replayed.load(Relaxed),
            resets: self.resets.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
        }
    }

    /// Adds a forgotten channel's counters (not its open streams: it has none).
    pub(crate) fn absorb(&self, other: &ChannelMetrics) {
        self.published.fetch_add(other.published, Relaxed);
        self.delivered.fetch_add(other.delivered, Relaxed);
        self.replayed.fetch_add(other.replayed, Relaxed);
        self.resets.fetch_add(other.resets, Relaxed);
        self.bytes_sent.fetch_add(other.bytes_sent, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Relaxed);
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
        self.bytes_sent += other.bytes_sent;
    }
}

/// A snapshot of a hub's counters, from [`crate::Hub::metrics`].
///
/// Serializes as the total's fields at the top level plus `channels` and `rejected`:
/// `{"open_streams": 3, "published": 10, ..., "rejected": 0, "channels": {"prices": {...}}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HubMetrics {
    /// Sum over all channels, including channels the hub has since forgotten.
    #[serde(flatten)]
    pub total: ChannelMetrics,
    /// Streams refused (caps, rate limit, shutdown, store) since the hub started.
    pub rejected: u64,
    /// Of `rejected`, per reason ([`crate::RefusalReason::as_str`]); reasons never seen are left out.
    pub refused: BTreeMap<&'static str, u64>,
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
}
