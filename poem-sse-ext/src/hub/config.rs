//! Settings shared by every stream of a [`crate::Hub`].

use std::time::Duration;

use rand::Rng;

use crate::wire::Event;

/// How a hub's streams behave, as [`Hub::config`](crate::Hub::config) reports it. Set through
/// [`HubBuilder`](crate::HubBuilder); see each setter there for what a field means on the wire.
/// New settings may be added: the struct can not be built outside the crate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// Idle interval after which a heartbeat comment is sent; `None` disables heartbeats.
    pub heartbeat: Option<Duration>,
    /// Base of the `retry:` hint sent first on every stream.
    pub retry: Duration,
    /// Random spread added to [`HubConfig::retry`], so that clients do not reconnect in lockstep.
    pub retry_jitter: Duration,
    /// Most open streams in total; above it a new stream is refused.
    pub max_streams: usize,
    /// Most open streams on one channel; above it a new stream is refused.
    pub max_streams_per_channel: usize,
    /// Most channels the hub tracks; a stream or publish on a new channel above it is refused.
    pub max_channels: usize,
    /// Most bytes of ready frames joined into one chunk for hyper.
    pub max_chunk_bytes: usize,
    /// Longest `Last-Event-ID` considered; a longer one is treated as unknown.
    pub max_last_event_id_len: usize,
    /// An event sent to every open stream when the hub shuts down, before the streams end.
    pub shutdown_event: Option<Event>,
    /// How long an idempotency key of [`crate::Hub::publish_once`] is remembered.
    pub idempotency_window: Duration,
    /// Base of the retry hint of a refused stream (longer than [`HubConfig::retry`]).
    pub refusal_retry: Duration,
    /// Random spread added to `refusal_retry`.
    pub refusal_retry_jitter: Duration,
    /// Most open streams from one client address; `None` is unlimited.
    pub max_streams_per_client: Option<usize>,
    /// Most open streams of one principal (from the authorization's grant); `None` is unlimited.
    pub max_streams_per_principal: Option<usize>,
    /// The connect-rate limit per client address; `None` is unlimited.
    pub connect_rate: Option<crate::hub::ConnectRate>,
    /// How long a stream lives before it ends with a retry hint (the client resumes exactly);
    /// `None` is forever.
    pub max_stream_lifetime: Option<Duration>,
    /// The spread of [`HubConfig::max_stream_lifetime`], as a fraction (0.1 = ±10 %).
    pub max_stream_lifetime_jitter: f64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            heartbeat: Some(Duration::from_secs(15)),
            retry: Duration::from_secs(3),
            retry_jitter: Duration::from_secs(2),
            max_streams: 10_000,
            max_streams_per_channel: 10_000,
            max_channels: 10_000,
            max_chunk_bytes: crate::store::DEFAULT_MAX_CHUNK_BYTES,
            max_last_event_id_len: 256,
            shutdown_event: None,
            idempotency_window: Duration::from_secs(3_600),
            refusal_retry: Duration::from_secs(10),
            refusal_retry_jitter: Duration::from_secs(20),
            max_streams_per_client: None,
            max_streams_per_principal: None,
            connect_rate: None,
            max_stream_lifetime: None,
            max_stream_lifetime_jitter: 0.1,
        }
    }
}

impl HubConfig {
    /// A retry delay drawn uniformly from `[retry, retry + retry_jitter]`.
    pub(crate) fn jittered_retry(&self) -> Duration {
        jittered(self.retry, self.retry_jitter)
    }

    /// The retry hint of a refused stream: drawn from `[refusal_retry, refusal_retry +
    /// refusal_retry_jitter]`, doubled for each earlier refusal of the same client in a row
    /// (`streak`), at most 10 minutes.
    pub(crate) fn refusal_retry(&self, streak: u32) -> Duration {
        let base = jittered(self.refusal_retry, self.refusal_retry_jitter);
        let factor = 1u32 << streak.saturating_sub(1).min(8);
        (base * factor).min(Duration::from_secs(600))
    }

    /// When a stream opened now reaches its lifetime, with the configured jitter.
    pub(crate) fn lifetime_deadline(&self) -> Option<tokio::time::Instant> {
        let lifetime = self.max_stream_lifetime?;
        let spread = self.max_stream_lifetime_jitter.clamp(0.0, 1.0);
        let factor = 1.0 + spread * (2.0 * rand::random::<f64>() - 1.0);
        Some(tokio::time::Instant::now() + lifetime.mul_f64(factor))
    }
}

/// `base` plus a uniform random part of `spread`, at millisecond resolution.
pub(crate) fn jittered(base: Duration, spread: Duration) -> Duration {
    let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
    base + Duration::from_millis(rand::rng().random_range(0..=spread_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range_and_spreads() {
        let base = Duration::from_secs(3);
        let spread = Duration::from_secs(2);
        let draws: Vec<Duration> = (0..2_000).map(|_| jittered(base, spread)).collect();
        assert!(draws.iter().all(|d| *d >= base && *d <= base + spread));
        let low = draws.iter().filter(|d| **d < base + spread / 2).count();
        // Uniform: about half below the middle; lockstep (no jitter) would give 0 or 2,000.
        assert!(
            (800..1_200).contains(&low),
            "{low} of 2000 below the middle"
        );
        assert_eq!(jittered(base, Duration::ZERO), base);
    }
}
