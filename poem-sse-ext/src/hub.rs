//! Channels, publishing, and the streams that read them.

use std::{
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use poem::{http::StatusCode, Request, Response};
use tokio_util::sync::CancellationToken;

use crate::{
    channels::ChannelMap,
    config::HubConfig,
    endpoint::SseEndpoint,
    event::retry_frame,
    metrics::{ChannelStats, HubMetrics},
    response::sse_response,
    shutdown::ShutdownTrigger,
    store::{EventId, MemoryStore, ReplayStore, Retention, StoreError, StoreHealth},
    stream::{HubSource, Shutdown, SseBody},
    Event, EventError,
};

/// Longest channel name, in bytes.
pub const MAX_CHANNEL_LEN: usize = 64;

/// A resume id that no store issues (ids never contain NUL): what an over-long `Last-Event-ID`
/// becomes, so that the store answers it with [`crate::store::ResetReason::Unknown`].
const UNKNOWN_RESUME_ID: &str = "\0";

/// Why a publish failed. Nothing already stored is affected by a failed publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The channel name is not `[A-Za-z0-9_.-]{1,64}`.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The event carries an id; a hub's store assigns ids itself.
    #[error("published events get their id from the store: remove the id `{0}`")]
    HasId(String),
    /// The event could not be built.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The hub is shutting down.
    #[error("the hub is shutting down")]
    ShuttingDown,
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An invalid channel name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid channel name: channel names are 1 to {MAX_CHANNEL_LEN} characters from A-Z a-z 0-9 _ . -")]
pub struct ChannelError;

/// Checks that `name` matches `[A-Za-z0-9_.-]{1,64}`.
///
/// # Errors
/// [`ChannelError`] otherwise.
pub fn validate_channel(name: &str) -> Result<(), ChannelError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_CHANNEL_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(ChannelError)
    }
}

/// The publish side and the subscribe side of a set of channels, over one [`ReplayStore`].
///
/// Cheap to clone (an `Arc`); clone it into handlers, publishers and the endpoint.
///
/// ```
/// use std::time::Duration;
/// use poem::{Route, get};
/// use poem_sse_ext::{Event, Hub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::builder().history(1_000).heartbeat(Duration::from_secs(15)).build();
/// let app = Route::new().at("/events/:channel", get(hub.endpoint()));
/// let id = hub.publish("prices", Event::json(&[1, 2, 3])?).await?;
/// assert_eq!(hub.head("prices").await?, id);
/// # let _ = app;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

struct HubInner {
    store: Arc<dyn ReplayStore>,
    config: HubConfig,
    channels: ChannelMap<ChannelStats>,
    /// Open streams over all channels. Incremented before the per-channel count and decremented
    /// after it, so it is never below the sum of the channels' counts.
    open: AtomicUsize,
    rejected: AtomicU64,
    shutdown: ShutdownTrigger,
}

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

    /// The settings of this hub.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Publishes `event` on `channel`: encodes it once, appends it to the store and wakes the
    /// channel's streams. Returns the id the store gave it. Costs the same whatever the number of
    /// listeners: nothing is copied per subscriber.
    ///
    /// # Errors
    /// An invalid channel name, an event that carries its own id, a hub that is shutting down,
    /// or a store failure (nothing is dropped silently).
    pub async fn publish(&self, channel: &str, event: Event) -> Result<EventId, PublishError> {
        validate_channel(channel)?;
        if let Some(id) = event.event_id() {
            return Err(PublishError::HasId(id.to_owned()));
        }
        if self.is_shutting_down() {
            return Err(PublishError::ShuttingDown);
        }
        let stats = self.inner.stats(channel)?;
        let id = self.inner.store.append(channel, &event).await?;
        ChannelStats::add(&stats.published, 1);
        Ok(id)
    }

    /// The id of the newest event on `channel`: render a page's state together with it and let
    /// the page's stream resume after it (`?lastEventId=<id>`), so that nothing published between
    /// render and connect is lost or shown twice.
    ///
    /// # Errors
    /// An invalid channel name, or a store failure.
    pub async fn head(&self, channel: &str) -> Result<EventId, PublishError> {
        validate_channel(channel)?;
        Ok(self.inner.store.head(channel).await?)
    }

    /// A poem endpoint serving the channel named by the `channel` path parameter: mount it with
    /// `Route::new().at("/events/:channel", hub.endpoint())`.
    pub fn endpoint(&self) -> SseEndpoint {
        SseEndpoint::new(self.clone())
    }

    /// Answers `req` with the stream of `channel`, for handlers that choose the channel
    /// themselves (after their own authorization, say). Never fails: errors are `4xx`/`503`
    /// responses with a message.
    pub async fn serve(&self, req: &Request, channel: &str) -> Response {
        match self.open_stream(req, channel).await {
            Ok(response) => response,
            Err(refusal) => self.refuse(refusal),
        }
    }

    /// A snapshot of the counters, per channel and in total.
    pub fn metrics(&self) -> HubMetrics {
        let channels = self
            .inner
            .channels
            .map_each(|name, stats| (name.to_owned(), stats.snapshot()));
        HubMetrics::from_channels(
            channels.into_iter(),
            self.inner.rejected.load(Ordering::Relaxed),
        )
    }

    /// Whether the store can serve right now.
    pub fn health(&self) -> StoreHealth {
        self.inner.store.health()
    }

    /// Ends every open stream now: each gets the configured shutdown event (if any) and a jittered
    /// `retry:` hint, then its response ends. New streams get `503`, publishes an error.
    ///
    /// Call it when shutdown begins, before the server waits for connections to close:
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use poem::{listener::TcpListener, Route, Server};
    /// use poem_sse_ext::Hub;
    ///
    /// # #[tokio::main]
    /// # async fn main() -> std::io::Result<()> {
    /// let hub = Hub::new();
    /// let app = Route::new().at("/events/:channel", hub.endpoint());
    /// let signal = {
    ///     let hub = hub.clone();
    ///     async move {
    ///         let _ = tokio::signal::ctrl_c().await;
    ///         hub.shutdown(); // streams end themselves, so the server exits at once
    ///     }
    /// };
    /// Server::new(TcpListener::bind("127.0.0.1:3000"))
    ///     .run_with_graceful_shutdown(app, signal, Some(Duration::from_secs(5)))
    ///     .await
    /// # }
    /// ```
    pub fn shutdown(&self) {
        self.inner.shutdown.fire();
    }

    /// Whether [`Hub::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutdown.is_fired()
    }

    /// A token cancelled when the hub shuts down (to stop publishers and other tasks with it).
    /// Cancelling it does not shut the hub down: call [`Hub::shutdown`].
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.child_token()
    }

    async fn open_stream(&self, req: &Request, channel: &str) -> Result<Response, Refusal> {
        validate_channel(channel).map_err(|err| Refusal::new(StatusCode::NOT_FOUND, err))?;
        if self.is_shutting_down() {
            return Err(Refusal::unavailable("the server is shutting down"));
        }
        let stats = self.inner.stats(channel).map_err(Refusal::unavailable)?;
        let stream = self.try_open(channel, stats)?;
        let resume = resume_point(req, self.inner.config.max_last_event_id_len);
        let sub = self
            .inner
            .store
            .subscribe(channel, resume.as_deref())
            .await
            .map_err(Refusal::unavailable)?;
        tracing::debug!(channel, resumed = resume.is_some(), reset = ?sub.reset.as_ref().map(|r| r.reason), "sse stream opened");

        let config = &self.inner.config;
        let source = HubSource::new(sub, config.max_chunk_bytes, stream);
        let farewell = {
            let hub = self.clone(); // an Arc: nothing per stream is copied for the farewell
            move || {
                let config = hub.config();
                Shutdown::farewell(config.shutdown_event.as_ref(), config.jittered_retry())
            }
        };
        let body = SseBody::new(Some(retry_frame(config.jittered_retry())), source)
            .heartbeat(config.heartbeat)
            .shutdown(Some(Shutdown::new(self.inner.shutdown.signal(), farewell)));
        Ok(sse_response(body, Some(req.version())))
    }

    /// Counts a new stream against the caps, or answers `503`.
    fn try_open(&self, channel: &str, stats: Arc<ChannelStats>) -> Result<OpenStream, Refusal> {
        let config = &self.inner.config;
        // Increment first, then check: two racing opens can not both take the last place.
        if self.inner.open.fetch_add(1, Ordering::AcqRel) >= config.max_streams {
            self.inner.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::unavailable("too many open streams"));
        }
        if stats.open.fetch_add(1, Ordering::AcqRel) >= config.max_streams_per_channel {
            stats.open.fetch_sub(1, Ordering::AcqRel);
            self.inner.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::unavailable(
                "too many open streams on this channel",
            ));
        }
        Ok(OpenStream {
            hub: Arc::clone(&self.inner),
            stats,
            channel: channel.into(),
        })
    }

    /// The answer to a refused stream; `503` comes with a jittered `Retry-After`.
    fn refuse(&self, refusal: Refusal) -> Response {
        let mut response = Response::builder()
            .status(refusal.status)
            .content_type("text/plain; charset=utf-8")
            .body(refusal.message);
        if refusal.status != StatusCode::SERVICE_UNAVAILABLE {
            return response;
        }
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
        let retry_after = self.inner.config.jittered_retry();
        let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        if let Ok(value) = seconds.max(1).to_string().parse() {
            response
                .headers_mut()
                .insert(poem::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl HubInner {
    /// The counters of `channel`, created on first use up to `max_channels`.
    fn stats(&self, channel: &str) -> Result<Arc<ChannelStats>, StoreError> {
        self.channels.get_or_create(channel, Arc::default)
    }
}

/// One open stream, counted in the metrics and the caps until it is dropped (which hyper does as
/// soon as it notices the client is gone).
pub(crate) struct OpenStream {
    hub: Arc<HubInner>,
    stats: Arc<ChannelStats>,
    channel: Box<str>,
}

impl OpenStream {
    pub(crate) fn stats(&self) -> &ChannelStats {
        &self.stats
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::AcqRel);
        self.hub.open.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!(channel = &*self.channel, "sse stream closed");
    }
}

/// Configures a [`Hub`].
#[derive(Default)]
pub struct HubBuilder {
    config: HubConfig,
    retention: Retention,
    store: Option<Arc<dyn ReplayStore>>,
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

    /// Most open streams in total (default 10,000); above it, `503` with `Retry-After`.
    pub fn max_streams(mut self, n: usize) -> Self {
        self.config.max_streams = n;
        self
    }

    /// Most open streams on one channel (default 10,000); above it, `503` with `Retry-After`.
    pub fn max_streams_per_channel(mut self, n: usize) -> Self {
        self.config.max_streams_per_channel = n;
        self
    }

    /// Most channels (default 10,000), for the hub's counters and the in-memory store.
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
    /// [`EventError`] if the event carries an id (the farewell is not part of any log).
    pub fn shutdown_event(mut self, event: Event) -> Result<Self, EventError> {
        if event.event_id().is_some() {
            return Err(EventError::InvalidId);
        }
        self.config.shutdown_event = Some(event);
        Ok(self)
    }

    /// Builds the hub.
    pub fn build(self) -> Hub {
        let store = self.store.unwrap_or_else(|| {
            Arc::new(MemoryStore::new(self.retention).max_channels(self.config.max_channels))
        });
        Hub {
            inner: Arc::new(HubInner {
                store,
                channels: ChannelMap::new(self.config.max_channels),
                config: self.config,
                open: AtomicUsize::new(0),
                rejected: AtomicU64::new(0),
                shutdown: ShutdownTrigger::new(),
            }),
        }
    }
}

/// The resume point: the `Last-Event-ID` header (what a reconnecting `EventSource` sends) wins
/// over the `lastEventId` query parameter (what a page sets on its first connect). Empty means
/// none; anything longer than `max_len` becomes an id no store issued.
fn resume_point(req: &Request, max_len: usize) -> Option<String> {
    let raw = req
        .headers()
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| {
            form_urlencoded::parse(req.uri().query()?.as_bytes())
                .find(|(key, _)| key == "lastEventId")
                .map(|(_, value)| value.into_owned())
        })?;
    match raw.len() {
        0 => None,
        len if len > max_len => Some(UNKNOWN_RESUME_ID.to_owned()),
        _ => Some(raw),
    }
}

/// Why a stream was not opened.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }

    fn unavailable(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        for ok in ["a", "prices", "A-b_c.9", &"x".repeat(64)] {
            assert_eq!(validate_channel(ok), Ok(()), "{ok:?}");
        }
        for bad in ["", "a/b", "a b", "ä", "a\n", &"x".repeat(65), "..%2f"] {
            assert_eq!(validate_channel(bad), Err(ChannelError), "{bad:?}");
        }
    }

    #[test]
    fn header_wins_over_query_and_long_ids_become_unknown() {
        let req = Request::builder()
            .uri_str("/events/a?lastEventId=q-1")
            .header("Last-Event-ID", "h-2")
            .finish();
        assert_eq!(resume_point(&req, 256).as_deref(), Some("h-2"));
        let req = Request::builder()
            .uri_str("/e?x=1&lastEventId=q%2D1")
            .finish();
        assert_eq!(resume_point(&req, 256).as_deref(), Some("q-1"));
        let req = Request::builder().uri_str("/e?lastEventId=").finish();
        assert_eq!(resume_point(&req, 256), None);
        let req = Request::builder()
            .header("Last-Event-ID", "9".repeat(300))
            .finish();
        assert_eq!(resume_point(&req, 256).as_deref(), Some(UNKNOWN_RESUME_ID));
    }

    #[tokio::test]
    async fn publish_rejects_bad_input_and_keeps_what_is_stored() {
        let hub = Hub::new();
        let first = hub.publish("a", Event::text("1")).await;
        assert!(first.is_ok());
        assert_eq!(
            hub.publish("a/b", Event::text("x")).await,
            Err(PublishError::Channel(ChannelError))
        );
        let with_id = Event::text("x").id("mine").unwrap_or_default();
        assert_eq!(
            hub.publish("a", with_id).await,
            Err(PublishError::HasId("mine".into()))
        );
        assert_eq!(hub.head("a").await.ok(), first.ok());
        assert_eq!(hub.metrics().total.published, 1);
    }
}
