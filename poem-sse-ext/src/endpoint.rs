//! [`SseEndpoint`]: a hub's streams over HTTP. Everything HTTP about a stream lives here: the
//! resume point from the request, authorization, the response headers, and refusals as answers.

use std::{sync::Arc, time::Duration};

use poem::{
    error::ResponseError,
    http::{header, StatusCode},
    Endpoint, Request, Response, Result,
};

use crate::{
    body::{Shutdown, SseBody},
    error::SubscribeError,
    hub::Hub,
    response::sse_response,
    subscriber::Subscriber,
    wire::retry_frame,
};

impl Hub {
    /// A poem endpoint serving the channel named by the `channel` path parameter: mount it with
    /// `Route::new().at("/events/:channel", hub.endpoint())`.
    pub fn endpoint(&self) -> SseEndpoint {
        SseEndpoint::new(self.clone())
    }
}

type Authorize = dyn Fn(&Request, &str) -> Result<()> + Send + Sync;

/// Serves the stream of the channel named by a path parameter. Made by [`Hub::endpoint`].
///
/// On connect it takes the resume point from `Last-Event-ID` (or the `lastEventId` query
/// parameter), sends a jittered `retry:` hint, the reset signal when the resume point can not be
/// honoured, every retained event after it, then live events with heartbeats in between.
///
/// ```
/// use poem::{Route, EndpointExt, middleware::Tracing};
/// use poem_sse_ext::Hub;
///
/// let hub = Hub::new();
/// let app = Route::new()
///     .at(
///         "/events/:channel",
///         hub.endpoint().authorize(|req, channel| {
///             // Only let a client read the channels it may see.
///             if channel.starts_with("public.") || req.header("authorization").is_some() {
///                 Ok(())
///             } else {
///                 Err(poem::Error::from_status(poem::http::StatusCode::FORBIDDEN))
///             }
///         }),
///     )
///     .with(Tracing);
/// ```
#[derive(Clone)]
pub struct SseEndpoint {
    hub: Hub,
    param: Arc<str>,
    authorize: Option<Arc<Authorize>>,
}

impl SseEndpoint {
    fn new(hub: Hub) -> Self {
        Self {
            hub,
            param: Arc::from("channel"),
            authorize: None,
        }
    }

    /// Reads the channel from the path parameter `name` instead of `channel`.
    #[must_use]
    pub fn channel_param(mut self, name: &str) -> Self {
        self.param = Arc::from(name);
        self
    }

    /// Checks every request before anything is replayed: `check(req, channel)` returns `Err` to
    /// refuse (its error becomes the response). Replay respects it: a refused client receives
    /// nothing from the channel, history included.
    #[must_use]
    pub fn authorize(
        mut self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Arc::new(check));
        self
    }

    /// Answers `req` with the stream of `channel`, for handlers that choose the channel
    /// themselves (after their own authorization, say). The authorization set with
    /// [`SseEndpoint::authorize`] is not run here.
    ///
    /// # Errors
    /// [`RefusedStream`]: `404` for an invalid channel name, `503` with `Retry-After` for a
    /// temporary refusal (a cap, shutdown, the store); each with a message.
    pub async fn serve(&self, req: &Request, channel: &str) -> Result<Response, RefusedStream> {
        let resume = resume_point(req);
        match self.hub.subscribe(channel, resume.as_deref()).await {
            Ok(subscriber) => Ok(self.respond(subscriber, req)),
            Err(error) => Err(RefusedStream {
                error,
                retry_after: self.hub.config().jittered_retry(),
            }),
        }
    }

    /// The response of an open stream: the retry hint, the subscriber's frames with heartbeats,
    /// and the farewell when the hub shuts down.
    fn respond(&self, subscriber: Subscriber, req: &Request) -> Response {
        let config = self.hub.config();
        let farewell = {
            let hub = self.hub.clone(); // an Arc: nothing per stream is copied for the farewell
            move || {
                let config = hub.config();
                Shutdown::farewell(config.shutdown_event.as_ref(), config.jittered_retry())
            }
        };
        let body = SseBody::new(Some(retry_frame(config.jittered_retry())), subscriber)
            .heartbeat(config.heartbeat)
            .shutdown(Some(Shutdown::new(self.hub.shutdown_signal(), farewell)));
        sse_response(body, Some(req.version()))
    }
}

impl std::fmt::Debug for SseEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SseEndpoint")
            .field("param", &self.param)
            .field("authorize", &self.authorize.is_some())
            .finish_non_exhaustive()
    }
}

impl Endpoint for SseEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        // Missing when mounted at a path without the parameter: an empty name answers 404.
        let channel = req.raw_path_param(&self.param).unwrap_or_default();
        if let Some(check) = &self.authorize {
            check(&req, channel)?;
        }
        Ok(self.serve(&req, channel).await?)
    }
}

/// A stream that was not opened, as an HTTP answer: `404` for an invalid channel name, `503`
/// with a jittered `Retry-After` otherwise; the body says why in plain text.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct RefusedStream {
    error: SubscribeError,
    retry_after: Duration,
}

impl RefusedStream {
    /// Why the stream was refused.
    pub fn error(&self) -> &SubscribeError {
        &self.error
    }
}

impl ResponseError for RefusedStream {
    fn status(&self) -> StatusCode {
        if self.error.is_temporary() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::NOT_FOUND
        }
    }

    fn as_response(&self) -> Response {
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

/// The resume point: the `Last-Event-ID` header (what a reconnecting `EventSource` sends) wins
/// over the `lastEventId` query parameter (what a page sets on its first connect).
fn resume_point(req: &Request) -> Option<String> {
    req.headers()
        .get("last-event-id")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
        .or_else(|| {
            form_urlencoded::parse(req.uri().query()?.as_bytes())
                .find(|(key, _)| key == "lastEventId")
                .map(|(_, value)| value.into_owned())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_wins_over_query() {
        let req = Request::builder()
            .uri_str("/events/a?lastEventId=q-1")
            .header("Last-Event-ID", "h-2")
            .finish();
        assert_eq!(resume_point(&req).as_deref(), Some("h-2"));
        let req = Request::builder()
            .uri_str("/e?x=1&lastEventId=q%2D1")
            .finish();
        assert_eq!(resume_point(&req).as_deref(), Some("q-1"));
        let req = Request::builder().uri_str("/e").finish();
        assert_eq!(resume_point(&req), None);
    }

    #[tokio::test]
    async fn refusals_are_404_or_503_with_retry_after_and_a_message() {
        let hub = Hub::builder().max_streams(0).build();
        let endpoint = hub.endpoint();
        let req = Request::builder().finish();
        let bad = endpoint.serve(&req, "a/b").await.err();
        assert_eq!(
            bad.as_ref().map(ResponseError::status),
            Some(StatusCode::NOT_FOUND)
        );
        let full = endpoint.serve(&req, "a").await.err();
        let response = full.as_ref().map(ResponseError::as_response);
        assert_eq!(
            response.as_ref().map(Response::status),
            Some(StatusCode::SERVICE_UNAVAILABLE)
        );
        assert!(response
            .as_ref()
            .and_then(|r| r.headers().get(header::RETRY_AFTER))
            .is_some());
        assert!(full.is_some_and(|f| f.to_string().contains("too many open streams")));
    }
}
