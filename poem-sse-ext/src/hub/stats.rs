//! The hub's live counters: relaxed atomics bumped once per chunk (not per event, not per
//! subscriber). [`crate::metrics`] reads them into a snapshot.

use std::{
    fmt,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed},
    time::Duration,
};

use super::admission::RefusalReason;
use crate::wire::ResetReason;

/// Every reset reason, in the order of [`ChannelStats::resets_by_reason`].
pub(crate) const RESET_REASONS: [ResetReason; 3] = [
    ResetReason::Evicted,
    ResetReason::Epoch,
    ResetReason::Unknown,
];

/// Live counters of one channel.
#[derive(Debug, Default)]
pub(crate) struct ChannelStats {
    pub(crate) open: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) replayed: AtomicU64,
    pub(crate) resets: AtomicU64,
    /// Of `resets`, per [`ResetReason`] in the order of [`RESET_REASONS`].
    pub(crate) resets_by_reason: [AtomicU64; RESET_REASONS.len()],
    pub(crate) bytes_sent: AtomicU64,
}

impl ChannelStats {
    /// Adds a forgotten channel's counters (not its open streams: it has none).
    pub(crate) fn absorb(&self, other: &Self) {
        let add = |to: &AtomicU64, from: &AtomicU64| {
            to.fetch_add(from.load(Relaxed), Relaxed);
        };
        add(&self.published, &other.published);
        add(&self.delivered, &other.delivered);
        add(&self.replayed, &other.replayed);
        add(&self.resets, &other.resets);
        for (to, from) in self.resets_by_reason.iter().zip(&other.resets_by_reason) {
            add(to, from);
        }
        add(&self.bytes_sent, &other.bytes_sent);
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

/// Why an open stream closed, as counted in the metrics and logged when it closes. (A stream that
/// was never opened is refused instead: see [`RefusalReason`](crate::hub::RefusalReason).)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum CloseReason {
    /// The client went away (or stopped reading and the server gave up on it).
    ClientGone,
    /// [`Hub::shutdown`](crate::Hub::shutdown): the stream sent its farewell and ended.
    Shutdown,
    /// [`HubBuilder::max_stream_lifetime`](crate::HubBuilder::max_stream_lifetime) was reached;
    /// the client reconnects and resumes exactly.
    Lifetime,
    /// The stream's authorization expired or was revoked
    /// ([`REAUTH_EVENT`](crate::wire::REAUTH_EVENT)).
    Reauth,
    /// Its source ended (the store closed the channel, or a run ended).
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
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The upper bounds of the delivery-lag buckets.
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

/// Hub-wide counters of streams: opened, closed and refused by reason, and how late they read.
#[derive(Debug, Default)]
pub(crate) struct StreamStats {
    pub(crate) opened: AtomicU64,
    /// Per [`CloseReason`], in the order of [`CloseReason::ALL`].
    pub(crate) closed: [AtomicU64; CloseReason::ALL.len()],
    /// Per [`RefusalReason`], in the order of [`RefusalReason::ALL`].
    pub(crate) refused: [AtomicU64; RefusalReason::ALL.len()],
    /// Per bucket of [`LAG_BUCKETS`] (not cumulative), then the count above the last bound.
    pub(crate) lag: [AtomicU64; LAG_BUCKETS.len() + 1],
    pub(crate) lag_sum_micros: AtomicU64,
}

impl StreamStats {
    pub(crate) fn opened(&self) {
        self.opened.fetch_add(1, Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        let at = CloseReason::ALL.iter().position(|r| *r == reason);
        if let Some(counter) = at.and_then(|at| self.closed.get(at)) {
            counter.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn refused(&self, reason: RefusalReason) {
        let at = RefusalReason::ALL.iter().position(|r| *r == reason);
        if let Some(counter) = at.and_then(|at| self.refused.get(at)) {
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
}
