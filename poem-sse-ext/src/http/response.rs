//! [`SseResponse`]: an SSE response for a stream of events you produce yourself.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use poem::{
    http::{header, HeaderName, HeaderValue, Version},
    Body, IntoResponse, Response,
};
use tokio_util::sync::CancellationToken;

use crate::{
    http::body::{Shutdown, SseBody},
    hub::config::jittered,
    sync::shutdown::ShutdownSignal,
    wire::retry_frame,
    wire::Event,
};

/// An SSE response for your own `Stream` of [`Event`]s: poem's `SSE`, fixed.
///
/// Compared with `poem::web::sse::SSE` it restarts the heartbeat timer on every event instead of
/// sending heartbeats on a fixed clock, rejects ids and names that would break the framing (at
/// [`Event`] construction), sends a jittered `retry:` hint first, sets the headers proxies need,
/// and can end itself when your shutdown token fires. It has no replay: for that, publish through
/// a [`crate::Hub`].
///
/// ```
/// use futures_util::stream;
/// use poem::{handler, web::Path, Request};
/// use poem_sse_ext::{Event, http::SseResponse};
///
/// #[handler]
/// fn countdown(req: &Request, Path(from): Path<u32>) -> SseResponse<impl futures_util::Stream<Item = Event> + Send> {
///     let events = stream::iter((0..=from).rev().map(|n| Event::text(n.to_string())));
///     SseResponse::new(events).http_version(req.version())
/// }
/// ```
pub struct SseResponse<S> {
    events: S,
    heartbeat: Option<Duration>,
    retry: Option<(Duration, Duration)>,
    version: Option<Version>,
    shutdown: Option<CancellationToken>,
}

impl<S> std::fmt::Debug for SseResponse<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseResponse")
            .field("heartbeat", &self.heartbeat)
            .field("retry", &self.retry)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl<S> SseResponse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    /// A response streaming `events`, with a heartbeat every 15 s of silence and no retry hint.
    pub fn new(events: S) -> Self {
        Self {
            events,
            heartbeat: Some(Duration::from_secs(15)),
            retry: None,
            version: None,
            shutdown: None,
        }
    }

    /// Sends a heartbeat comment after each `interval` without an event.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = Some(interval);
        self
    }

    /// Sends no heartbeats.
    #[must_use]
    pub fn no_heartbeat(mut self) -> Self {
        self.heartbeat = None;
        self
    }

    /// Sends `retry: <base + random part of jitter>` first, so that clients spread their
    /// reconnects.
    #[must_use]
    pub fn retry(mut self, base: Duration, jitter: Duration) -> Self {
        self.retry = Some((base, jitter));
        self
    }

    /// The request's HTTP version: `Connection: keep-alive` is sent on HTTP/1.x only (it is a
    /// connection-specific header that HTTP/2 forbids). Without it, no `Connection` header is
    /// sent (HTTP/1.1 connections are persistent by default).
    #[must_use]
    pub fn http_version(mut self, version: Version) -> Self {
        self.version = Some(version);
        self
    }

    /// Ends the stream when `token` is cancelled, after a final `retry:` hint, so that graceful
    /// shutdown does not wait for the client to leave.
    #[must_use]
    pub fn shutdown(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }
}

impl<S> IntoResponse for SseResponse<S>
where
    S: Stream<Item = Event> + Send + 'static,
{
    fn into_response(self) -> Response {
        let preamble = self
            .retry
            .map(|(base, jitter)| retry_frame(jittered(base, jitter)));
        let (base, jitter) = self
            .retry
            .unwrap_or((Duration::from_secs(3), Duration::ZERO));
        let frames = Box::pin(self.events.map(|event| event.encode()));
        let shutdown = self.shutdown.map(|token| {
            Shutdown::new(
                ShutdownSignal::from_token(token),
                std::sync::Arc::new(move || retry_frame(jittered(base, jitter))),
            )
        });
        let body = SseBody::new(preamble, frames)
            .heartbeat(self.heartbeat)
            .shutdown(shutdown);
        sse_response(body, self.version)
    }
}

/// Wraps an SSE body in a response with the headers every SSE response needs.
pub(crate) fn sse_response<S>(body: SseBody<S>, version: Option<Version>) -> Response
where
    S: Stream<Item = bytes::Bytes> + Unpin + Send + 'static,
{
    // Constants, made at compile time: a header given as `&str` is parsed and copied into a new
    // allocation on every stream.
    const EVENT_STREAM: HeaderValue = HeaderValue::from_static("text/event-stream");
    const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
    // nginx and compatible proxies: do not buffer this response.
    const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
    const NO: HeaderValue = HeaderValue::from_static("no");
    let mut response = Response::builder().body(Body::from_bytes_stream(body));
    let headers = response.headers_mut();
    // Room for ours, what middleware commonly adds (security headers, CORS) and hyper's `date`,
    // allocated once: a map grown header by header is reallocated and rehashed on the way.
    headers.reserve(12);
    headers.insert(header::CONTENT_TYPE, EVENT_STREAM);
    headers.insert(header::CACHE_CONTROL, NO_CACHE);
    headers.insert(X_ACCEL_BUFFERING, NO);
    if matches!(
        version,
        Some(Version::HTTP_09 | Version::HTTP_10 | Version::HTTP_11)
    ) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
    response
}
