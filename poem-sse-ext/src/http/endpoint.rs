//! [`SseEndpoint`]: one channel's stream over HTTP, and what every stream endpoint shares (the
//! resume point from the request, the response, and a refusal as the answer a client survives).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;
use poem::{
    http::{header, Method, StatusCode},
    Endpoint, Request, Response, Result,
};

use super::{
    body::{FinalFrame, Shutdown, SseBody},
    options::StreamOptions,
    refusal::RefusedStream,
    response::sse_response,
};
use crate::{
    hub::{admission::Grant, error::SubscribeError, subscriber::Subscriber, Hub},
    wire::RetryFrames,
};

impl Hub {
    /// A poem endpoint serving the channel named by the `channel` path parameter: mount it as it
    /// is, `Route::new().at("/events/:channel", hub.endpoint())`.
    pub fn endpoint(&self) -> SseEndpoint {
        SseEndpoint {
            streams: Streams::new(self.clone()),
            options: StreamOptions::new(),
        }
    }
}

/// Serves the stream of the channel named by a path parameter (`channel`, or
/// [`StreamOptions::param`]). Made by [`Hub::endpoint`].
///
/// On connect it takes the resume point from `Last-Event-ID` (or the `lastEventId` query
/// parameter), sends a jittered `retry:` hint, the reset signal when the resume point can not be
/// honoured, every retained event after it, then live events with heartbeats in between.
///
/// | request | answer |
/// | --- | --- |
/// | `GET`, the channel may be opened | `200 text/event-stream`: the stream |
/// | invalid or unknown channel name | `404` with a message |
/// | a cap, the connect rate, shutdown, the store | a soft refusal: `200` with a long `retry:` and [`sse-busy`](crate::wire::BUSY_EVENT), then the end (or `503` + `Retry-After` with [`StreamOptions::refuse_with_status`]) |
/// | refused by the authorizer | its error (`401`, `403`, ...) |
/// | any method but `GET` | `405` with `Allow: GET` |
/// | mounted at a path without the parameter | `500`, naming the parameter (a mistake in the route table) |
///
/// Mount it as it is, not inside poem's `get()` (it answers `GET` only by itself, and `get()`
/// would box it and every stream's request future once more):
///
/// ```
/// use poem::{http::StatusCode, middleware::Tracing, EndpointExt, Error, Route};
/// use poem_sse_ext::{http::StreamOptions, Hub};
///
/// let hub = Hub::new();
/// let app = Route::new()
///     .at(
///         "/events/:channel",
///         hub.endpoint().options(StreamOptions::new().authorize(|req, channel| {
///             // Only let a client read the channels it may see.
///             if channel.starts_with("public.") || req.header("authorization").is_some() {
///                 Ok(())
///             } else {
///                 Err(Error::from_status(StatusCode::FORBIDDEN))
///             }
///         })),
///     )
///     .with(Tracing);
/// ```
#[derive(Clone, Debug)]
pub struct SseEndpoint {
    streams: Streams,
    options: StreamOptions,
}

impl SseEndpoint {
    /// Reads the request and answers refusals as `options` says (authorization, the path
    /// parameter, trusted proxies, soft or status refusals).
    #[must_use]
    pub fn options(mut self, options: StreamOptions) -> Self {
        self.options = options;
        self
    }

    /// Answers `req` with the stream of `channel` under `grant`, for handlers that choose the
    /// channel and authorize themselves. The authorizer of the options is not run here.
    ///
    /// # Errors
    /// [`RefusedStream`]: `404` for an invalid or unknown channel name; a soft refusal (or `503`)
    /// for a temporary one (a cap, the rate limit, shutdown, the store); each says why.
    pub async fn serve(
        &self,
        req: &Request,
        channel: &str,
        grant: Option<Grant>,
    ) -> Result<Response, RefusedStream> {
        let opener = self.options.opener(req, grant);
        let resume = resume_point(req);
        let subscribed = self
            .streams
            .hub
            .subscribe_as(channel, resume.as_deref(), &opener)
            .await;
        self.streams.answer(subscribed, req, &self.options)
    }

    /// Answers `req` for `channel` as a mounted endpoint does: `GET` only, authorized by the
    /// options' authorizer.
    pub(crate) async fn open(&self, req: &Request, channel: &str) -> Result<Response> {
        get_only(req)?;
        let grant = self.options.grant(req, channel).await?;
        Ok(self.serve(req, channel, grant).await?)
    }
}

impl Endpoint for SseEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let param = self.options.param_or("channel");
        let Some(channel) = req.raw_path_param(param) else {
            get_only(&req)?;
            return Err(unmounted_param(param));
        };
        self.open(&req, channel).await
    }
}

/// What every stream endpoint of a hub shares: the hub, and the frame its streams send last when
/// the hub shuts down, made once for all of them.
#[derive(Clone)]
pub(crate) struct Streams {
    pub(crate) hub: Hub,
    farewell: FinalFrame,
    /// The opening retry hints, encoded once for all the streams.
    retry: Arc<RetryFrames>,
}

impl Streams {
    pub(crate) fn new(hub: Hub) -> Self {
        let farewell: FinalFrame = {
            let hub = hub.clone();
            Arc::new(move || {
                let config = hub.config();
                Shutdown::farewell(config.shutdown_event.as_ref(), config.jittered_retry())
            })
        };
        let config = hub.config();
        let retry = Arc::new(RetryFrames::new(config.retry, config.retry_jitter));
        Self {
            hub,
            farewell,
            retry,
        }
    }

    /// The stream of a subscription as an answer, or its refusal.
    pub(crate) fn answer(
        &self,
        subscribed: Result<Subscriber, SubscribeError>,
        req: &Request,
        options: &StreamOptions,
    ) -> Result<Response, RefusedStream> {
        let subscriber = subscribed.map_err(|error| self.refusal(error, options))?;
        subscriber
            .span()
            .record("protocol", tracing::field::debug(req.version()));
        Ok(self.respond(subscriber, req))
    }

    /// A refused subscription as `options` answer it: soft, or a status, with the hub's jittered
    /// retry hint for the refused client's streak.
    pub(crate) fn refusal(&self, error: SubscribeError, options: &StreamOptions) -> RefusedStream {
        let retry_after = self.hub.config().refusal_retry(error.streak());
        RefusedStream::new(error, retry_after, options.soft_refusals())
    }

    /// The response of an open stream: the retry hint, the frames of `source` with heartbeats,
    /// and the farewell when the hub shuts down. Any stream of ready frames read from this hub
    /// (a [`Subscriber`], or a run's follower) is answered the same way.
    pub(crate) fn respond(
        &self,
        source: impl Stream<Item = Bytes> + Unpin + Send + 'static,
        req: &Request,
    ) -> Response {
        let config = self.hub.config();
        let farewell = Arc::clone(&self.farewell);
        let body = SseBody::new(Some(self.retry.pick()), source)
            .heartbeat(config.heartbeat)
            .shutdown(Some(Shutdown::new(self.hub.shutdown_signal(), farewell)));
        sse_response(body, Some(req.version()))
    }
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams").finish_non_exhaustive()
    }
}

/// `Ok` for a `GET`; for any other method the `405` an event stream answers, with `Allow: GET`
/// and a message.
pub(crate) fn get_only(req: &Request) -> Result<()> {
    only(req, Method::GET, "an event stream answers GET")
}

/// `Ok` for `method`; otherwise `405` with `Allow` and a message saying `why`.
pub(crate) fn only(req: &Request, method: Method, why: &str) -> Result<()> {
    if req.method() == method {
        return Ok(());
    }
    let message = format!("{} is not allowed here: {why}", req.method());
    Err(poem::Error::from_response(
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, method.as_str())
            .content_type("text/plain; charset=utf-8")
            .body(message),
    ))
}

/// The answer of an endpoint mounted at a path without its parameter: a mistake in the app's
/// route table, said as such rather than answered as something else.
pub(crate) fn unmounted_param(param: &str) -> poem::Error {
    tracing::error!(param, "endpoint mounted at a path without its parameter");
    poem::Error::from_string(
        format!(
            "this endpoint reads the path parameter `{param}`, which its route does not have: \
             mount it at a path like `/events/:{param}`, or set `StreamOptions::param`"
        ),
        StatusCode::INTERNAL_SERVER_ERROR,
    )
}

/// The resume point: the `Last-Event-ID` header (what a reconnecting `EventSource` sends) wins
/// over the `lastEventId` query parameter (what a page sets on its first connect).
pub(crate) fn resume_point(req: &Request) -> Option<String> {
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
    use poem::{error::ResponseError, test::TestClient, Route};

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
    async fn status_refusals_are_404_or_503_with_retry_after_and_a_message() {
        let hub = Hub::builder().max_streams(0).build();
        let endpoint = hub
            .endpoint()
            .options(StreamOptions::new().refuse_with_status());
        let req = Request::builder().finish();
        let bad = endpoint.serve(&req, "a/b", None).await.err();
        assert_eq!(
            bad.as_ref().map(ResponseError::status),
            Some(StatusCode::NOT_FOUND)
        );
        let full = endpoint.serve(&req, "a", None).await.err();
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

    #[tokio::test]
    async fn only_get_opens_a_stream_and_other_methods_get_405_with_allow() {
        let hub = Hub::new();
        let client = TestClient::new(Route::new().at("/events/:channel", hub.endpoint()));
        for request in [
            client.post("/events/a"),
            client.head("/events/a"),
            client.put("/events/a"),
            client.delete("/events/a"),
        ] {
            let response = request.send().await;
            response.assert_status(StatusCode::METHOD_NOT_ALLOWED);
            response.assert_header(header::ALLOW, "GET");
        }
        let response = client.post("/events/a").send().await;
        response
            .assert_text("POST is not allowed here: an event stream answers GET")
            .await;
        assert_eq!(hub.metrics().opened, 0, "no stream was opened");
        let stream = client.get("/events/a").send().await;
        stream.assert_status_is_ok();
        stream.assert_content_type("text/event-stream");
    }
}
