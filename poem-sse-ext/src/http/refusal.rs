//! [`RefusedStream`]: a stream the hub did not open, as the HTTP answer a client survives.
//!
//! A native `EventSource` treats any status but `200` as final: it closes and never reconnects
//! (WHATWG "fail the connection"). So by default a temporary refusal is a `200
//! text/event-stream` that sends a long jittered `retry:` hint and an
//! [`sse-busy`](crate::wire::BUSY_EVENT) event naming the reason, then ends: the browser comes back by
//! itself, later. [`SseEndpoint::refuse_with_status`](crate::http::StreamOptions::refuse_with_status)
//! answers `503` with `Retry-After` instead, for fetch-based clients that read statuses.

use std::time::Duration;

use poem::{
    error::ResponseError,
    http::{header, StatusCode},
    Body, Response,
};

use crate::{hub::error::SubscribeError, wire::busy_frame};

/// A stream that was not opened, as an HTTP answer: `404` with a message for an invalid or
/// unknown channel, `400` for an invalid set of channels; for a temporary refusal (a cap, the rate limit, shutdown, the store) a soft
/// refusal, or `503` with a jittered `Retry-After`; each says why.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RefusedStream {
    error: SubscribeError,
    retry_after: Duration,
    soft: bool,
}

impl RefusedStream {
    pub(crate) fn new(error: SubscribeError, retry_after: Duration, soft: bool) -> Self {
        Self {
            error,
            retry_after,
            soft,
        }
    }

    /// Why the stream was refused.
    pub fn error(&self) -> &SubscribeError {
        &self.error
    }

    /// How long the client is told to wait.
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }

    fn soft_reason(&self) -> Option<&'static str> {
        self.error
            .reason()
            .filter(|_| self.soft)
            .map(|r| r.as_str())
    }
}

impl ResponseError for RefusedStream {
    fn status(&self) -> StatusCode {
        if self.soft_reason().is_some() {
            StatusCode::OK
        } else if self.error.is_temporary() {
            StatusCode::SERVICE_UNAVAILABLE
        } else if matches!(self.error, SubscribeError::InvalidSet(_)) {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::NOT_FOUND
        }
    }

    fn as_response(&self) -> Response {
        if let Some(reason) = self.soft_reason() {
            return Response::builder()
                .content_type("text/event-stream")
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from_bytes(busy_frame(reason, self.retry_after)));
        }
        let mut response = Response::builder()
            .status(self.status())
            .content_type("text/plain; charset=utf-8")
            .body(self.error.to_string());
        if self.error.is_temporary() {
            let retry = self.retry_after;
            let seconds = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}
