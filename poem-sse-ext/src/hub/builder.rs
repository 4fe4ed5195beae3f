//! [`HubBuilder`]: a hub's store, history bounds, stream behaviour and caps.

use std::{fmt, sync::Arc, time::Duration};

use crate::{
    hub::config::HubConfig,
    hub::registry::ChannelFilter,
    hub::Hub,
    store::{MemoryStore, ReplayStore, Retention, DEFAULT_HISTORY_BUDGET},
    wire::{Event, EventError},
};

impl Hub {
    /// A builder with the defaults: in-memory store keeping 1,000 events per channel, heartbeat
    /// every 15 s, retry 3 s plus up to 2 s of jitter, at most 10,000 streams.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// A hub with the default settings.
    pub fn new() -> Self {
        Self::builder().build()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures a [`Hub`].
#[derive(Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct HubBuilder {
    config: HubConfig,
    retention: Retention,
    store: Option<Arc<dyn ReplayStore>>,
    filter: Option<Arc<ChannelFilter>>,
    history_budget: Option<usize>,
}

impl HubBuilder {
    /// Keeps at most `events` events per channel for replay (default 1,000). Applies to the
    /// default in-memory store; a store given with [`HubBuilder::store`] has its own bounds.
    pub fn history(mut self, events: usize) -> Self {
        self.retention = self.retention.max_events(events);
        self
    }

    /// Keeps at most `bytes` of encoded frames per channel (default 4 MiB); see
    /// [`HubBuilder::history`].
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.retention = self.retention.max_bytes(bytes);
        self
    }

    /// Keeps events at most `age` for replay (default 1 hour); see [`HubBuilder::history`].
    pub fn history_age(mut self, age: Duration) -> Self {
        self.retention = self.retention.max_age(age);
        self
    }

    /// Bounds the bytes of history of all channels together (default 256 MiB; in-memory store):
    /// the oldest events of any channel are evicted first when an append would pass it. A hub's
    /// memory is then at most this budget, plus about 1 KiB per channel with streams or events,
    /// plus about 0.4 KiB per open stream (a set of channels: 0.35 KiB per channel) and what the
    /// HTTP server keeps per connection.
    pub fn history_budget(mut self, bytes: usize) -> Self {
        self.history_budget = Some(bytes);
        self
    }

    /// The history bounds set so far with [`HubBuilder::history`], [`HubBuilder::history_bytes`]
    /// and [`HubBuilder::history_age`]: give them to a store of your own so that it keeps the
    /// same bounds as the in-memory store would.
    pub fn history_retention(&self) -> Retention {
        self.retention
    }

    /// Uses `store` instead of the in-memory store.
    pub fn store(mut self, store: impl ReplayStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Sends a heartbeat comment (`:` line) after each `interval` without a frame (default 15 s).
    /// Keeps proxies from closing idle streams and bounds how long a vanished HTTP/1.1 client
    /// stays counted.
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.config.heartbeat = Some(interval);
        self
    }

    /// Sends no heartbeats.
    pub fn no_heartbeat(mut self) -> Self {
        self.config.heartbeat = None;
        self
    }

    /// The base of the `retry:` hint sent first on each stream (default 3 s). Also the base of
    /// `Retry-After` on `503`.
    pub fn retry(mut self, base: Duration) -> Self {
        self.config.retry = base;
        self
    }

    /// The random spread added to the retry hint (default 2 s), so that clients cut off together
    /// do not come back together.
    pub fn retry_jitter(mut self, spread: Duration) -> Self {
        self.config.retry_jitter = spread;
        self
    }

    /// Most open streams in total (default 10,000); above it a stream is refused.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.config.max_streams = n;
        self
    }

    /// Most open streams on one channel (default 10,000); above it a stream is refused.
    pub fn max_streams_per_channel(mut self, n: usize) -> Self {
        self.config.max_streams_per_channel = n;
        self
    }

    /// Most open streams from one client address (default unlimited). The endpoint takes the
    /// address from the connection, or from `X-Forwarded-For` when the connection comes from a
    /// proxy it trusts ([`SseEndpoint::trusted_proxies`](crate::http::StreamOptions::trusted_proxies)).
    pub fn max_streams_per_client(mut self, n: usize) -> Self {
        self.config.max_streams_per_client = Some(n);
        self
    }

    /// Most open streams of one principal, as the authorization's [`Grant`](crate::hub::Grant) names
    /// it (default unlimited).
    pub fn max_streams_per_principal(mut self, n: usize) -> Self {
        self.config.max_streams_per_principal = Some(n);
        self
    }

    /// Limits how fast one client address may open streams: `burst` at once, then `per_second`
    /// (a token bucket; default unlimited). A client reconnecting in a tight loop is refused
    /// with a retry hint that doubles with each refusal in a row; other clients are not slowed.
    pub fn connect_rate(mut self, burst: u32, per_second: f64) -> Self {
        self.config.connect_rate = Some(crate::hub::admission::ConnectRate { burst, per_second });
        self
    }

    /// Ends each stream after `lifetime`, spread by ±10 % (see
    /// [`HubBuilder::max_stream_lifetime_jitter`]), with the stream's position as the client's
    /// last id (an `id:` without data, so even a stream that delivered nothing yet resumes where it
    /// was) and a retry hint: the client reconnects and resumes exactly. Lets load balancers rebalance and forces periodic re-authorization.
    /// Off by default.
    pub fn max_stream_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.max_stream_lifetime = Some(lifetime);
        self
    }

    /// The spread of the stream lifetime as a fraction of it (default 0.1: ±10 %).
    pub fn max_stream_lifetime_jitter(mut self, fraction: f64) -> Self {
        self.config.max_stream_lifetime_jitter = fraction;
        self
    }

    /// The retry hint of a refused stream: `base` plus up to `spread` (defaults 10 s and 20 s,
    /// longer than the normal hint, so that refused clients come back spread out). Also the
    /// `Retry-After` of a `503` refusal.
    pub fn refusal_retry(mut self, base: Duration, spread: Duration) -> Self {
        self.config.refusal_retry = base;
        self.config.refusal_retry_jitter = spread;
        self
    }

    /// Most channels the hub registers (default 10,000); a publish, read or stream on one more
    /// is refused with [`TooManyChannels`](crate::hub::TooManyChannels).
    pub fn max_channels(mut self, n: usize) -> Self {
        self.config.max_channels = n;
        self
    }

    /// Most bytes of ready frames handed to hyper as one chunk (default 64 KiB). A frame is never
    /// held back waiting for others; this only caps how many already-ready frames are joined.
    pub fn max_chunk_bytes(mut self, n: usize) -> Self {
        self.config.max_chunk_bytes = n.max(1);
        self
    }

    /// Longest `Last-Event-ID` considered (default 256 bytes); a longer one is treated as unknown.
    pub fn max_last_event_id_len(mut self, n: usize) -> Self {
        self.config.max_last_event_id_len = n;
        self
    }

    /// An event sent to every open stream when the hub shuts down.
    ///
    /// # Errors
    /// [`EventError::FarewellWithId`] if the event carries an id (the farewell is not part of
    /// any channel's log, so a client must not resume from it).
    pub fn shutdown_event(mut self, event: Event) -> Result<Self, EventError> {
        if let Some(id) = event.event_id() {
            return Err(EventError::FarewellWithId(id.to_owned()));
        }
        self.config.shutdown_event = Some(event);
        Ok(self)
    }

    /// How long [`Hub::publish_once`] remembers an idempotency key (default 1 hour; at most
    /// 10,000 keys per channel are kept, the oldest forgotten first).
    pub fn idempotency_window(mut self, window: Duration) -> Self {
        self.config.idempotency_window = window;
        self
    }

    /// Says which channels exist: a name for which `exists` returns `false` is refused before
    /// anything is allocated for it (publish, read and subscribe get
    /// [`ChannelError`](crate::hub::ChannelError), the endpoint answers `404`). Without a filter every
    /// valid name exists, and a channel costs memory only while it has streams or retained events.
    ///
    /// ```
    /// use poem_sse_ext::{Event, Hub, PublishError};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hub = Hub::builder()
    ///     .channel_filter(|name| matches!(name, "news" | "prices") || name.starts_with("user."))
    ///     .build();
    /// assert!(hub.publish("news", Event::text("hi")).await.is_ok());
    /// assert!(matches!(
    ///     hub.publish("made-up", Event::text("x")).await,
    ///     Err(PublishError::Channel(_))
    /// ));
    /// # }
    /// ```
    pub fn channel_filter(mut self, exists: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(exists));
        self
    }

    /// Builds the hub.
    pub fn build(self) -> Hub {
        let store = self.store.unwrap_or_else(|| {
            let budget = self.history_budget.unwrap_or(DEFAULT_HISTORY_BUDGET);
            Arc::new(MemoryStore::new(self.retention).history_budget(budget))
        });
        Hub::from_parts(store, self.config, self.filter)
    }
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubBuilder")
            .field("config", &self.config)
            .field("retention", &self.retention)
            .field("custom_store", &self.store.is_some())
            .field("channel_filter", &self.filter.is_some())
            .finish()
    }
}
