//! [`SseEndpoint`]: a hub's streams over HTTP. Everything HTTP about a stream lives here: the
//! resume point from the request, authorization, the response headers, and refusals as answers.

use std::{net::IpAddr, sync::Arc};

use bytes::Bytes;
use futures_util::Stream;
use poem::{
    http::{header, Method, StatusCode},
    Endpoint, Request, Response, Result,
};

use crate::{
    http::authorize::{Authorizer, Check},
    http::body::{FinalFrame, Shutdown, SseBody},
    http::refusal::RefusedStream,
    http::response::sse_response,
    hub::admission::{Grant, Opener},
    hub::error::SubscribeError,
    hub::subscriber::Subscriber,
    hub::Hub,
    wire::retry_frame,
};

impl Hub {
    /// A poem endpoint serving the channel named by the `channel` path parameter: mount it with
    /// `Route::new().at("/events/:channel", hub.endpoint())`.
    pub fn endpoint(&self) -> SseEndpoint {
        SseEndpoint::new(self.clone())
    }
}

/// Serves the stream of the channel named by a path parameter. Made by [`Hub::endpoint`].
///
/// On connect it takes the resume point from `Last-Event-ID` (or the `lastEventId` query
/// parameter), sends a jittered `retry:` hint, the reset signal when the resume point can not be
/// honoured, every retained event after it, then live events with heartbeats in between.
///
/// It answers `GET` and nothing else: any other method gets `405 Method Not Allowed` with
/// `Allow: GET`, before authorization or the hub are asked. Mount it as it is, not inside poem's
/// `get()`, which would box it, and every stream's request future, once more.
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
    /// The last frame of each stream when the hub shuts down, made once for all of them.
    farewell: FinalFrame,
    param: Arc<str>,
    authorizer: Option<Arc<dyn Authorizer>>,
    trusted_proxies: Arc<[IpAddr]>,
    soft_refusals: bool,
}

impl SseEndpoint {
    fn new(hub: Hub) -> Self {
        let farewell: FinalFrame = {
            let hub = hub.clone();
            Arc::new(move || {
                let config = hub.config();
                Shutdown::farewell(config.shutdown_event.as_ref(), config.jittered_retry())
            })
        };
        Self {
            hub,
            farewell,
            param: Arc::from("channel"),
            authorizer: None,
            trusted_proxies: Arc::new([]),
            soft_refusals: true,
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
        self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize_with(Check(check))
    }

    /// Authorizes every request with `authorizer` (async, and it returns a [`Grant`]: the
    /// principal the per-principal cap and [`Hub::revoke`] go by, and an expiry that ends the
    /// stream mid-way). Runs before anything is replayed, on every connect and reconnect.
    #[must_use]
    pub fn authorize_with(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// Proxies whose `X-Forwarded-For` names the client: for a connection from one of them, the
    /// client address (for [`HubBuilder::max_streams_per_client`](crate::HubBuilder::max_streams_per_client)
    /// and the connect rate) is the rightmost forwarded address that is not a trusted proxy. From
    /// anyone else the header is ignored, so a client can not pose as another.
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.trusted_proxies = proxies.into_iter().collect();
        self
    }

    /// Answers a temporary refusal with `503` and `Retry-After` instead of the default soft
    /// refusal (a `200` stream with a retry hint and an `sse-busy` event). Only for clients that
    /// read statuses: a native `EventSource` never reconnects after a `503`.
    #[must_use]
    pub fn refuse_with_status(mut self) -> Self {
        self.soft_refusals = false;
        self
    }

    /// Answers `req` with the stream of `channel` under `grant`, for handlers that choose the
    /// channel and authorize themselves. The authorizer set on this endpoint is not run here.
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
        let (resume, opener) = self.opener(req, grant);
        let subscribed = self
            .hub
            .subscribe_as(channel, resume.as_deref(), &opener)
            .await;
        self.answer(subscribed, req)
    }

    /// Answers `req` with the stream of the set `channels` under `grant` (see
    /// [`Hub::subscribe_set`]); the authorizer set on this endpoint is not run here.
    ///
    /// # Errors
    /// As [`SseEndpoint::serve`], and `400` for an empty set or more than
    /// [`MAX_SET_CHANNELS`](crate::MAX_SET_CHANNELS) channels.
    pub async fn serve_set(
        &self,
        req: &Request,
        channels: &[&str],
        grant: Option<Grant>,
    ) -> Result<Response, RefusedStream> {
        let (resume, opener) = self.opener(req, grant);
        let subscribed = self
            .hub
            .subscribe_set(channels, resume.as_deref(), &opener)
            .await;
        self.answer(subscribed, req)
    }

    /// The stream of a subscription as this endpoint answers it, or its refusal.
    fn answer(
        &self,
        subscribed: Result<Subscriber, SubscribeError>,
        req: &Request,
    ) -> Result<Response, RefusedStream> {
        let subscriber = subscribed.map_err(|error| self.refusal(error))?;
        subscriber
            .span()
            .record("protocol", tracing::field::debug(req.version()));
        Ok(self.respond(subscriber, req))
    }

    /// Where a stream opened by `req` resumes (see [`resume_point`]), and who opens it.
    pub(crate) fn opener(&self, req: &Request, grant: Option<Grant>) -> (Option<String>, Opener) {
        let opener = Opener {
            client: self.client_address(req),
            grant,
        };
        (resume_point(req), opener)
    }

    /// A refused subscription as this endpoint answers it: soft, or a status, with the hub's
    /// jittered retry hint for the refused client's streak.
    pub(crate) fn refusal(&self, error: SubscribeError) -> RefusedStream {
        let retry_after = self.hub.config().refusal_retry(error.streak());
        RefusedStream::new(error, retry_after, self.soft_refusals)
    }

    async fn grant(&self, req: &Request, channel: &str) -> Result<Option<Grant>> {
        match &self.authorizer {
            Some(authorizer) => Ok(Some(authorizer.authorize(req, channel).await?)),
            None => Ok(None),
        }
    }

    /// The peer's address, or the client a trusted proxy forwarded for.
    pub(crate) fn client_address(&self, req: &Request) -> Option<IpAddr> {
        let peer = req.remote_addr().as_socket_addr()?.ip();
        if !self.trusted_proxies.contains(&peer) {
            return Some(peer);
        }
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect::<Vec<_>>();
        Some(
            forwarded
                .into_iter()
                .rev()
                .find(|hop| !self.trusted_proxies.contains(hop))
                .unwrap_or(peer),
        )
    }

    /// The response of an open stream: the retry hint, the subscriber's frames with heartbeats,
    /// and the farewell when the hub shuts down. Any stream of ready frames read from this
    /// endpoint's hub (a [`Subscriber`](crate::Subscriber), or a run's follower) is answered the
    /// same way.
    pub(crate) fn respond(
        &self,
        subscriber: impl Stream<Item = Bytes> + Unpin + Send + 'static,
        req: &Request,
    ) -> Response {
        let config = self.hub.config();
        let farewell = Arc::clone(&self.farewell);
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
            .field("authorizer", &self.authorizer.is_some())
            .field("trusted_proxies", &self.trusted_proxies)
            .field("soft_refusals", &self.soft_refusals)
            .finish_non_exhaustive()
    }
}

impl Endpoint for SseEndpoint {
    type Output = Response;

    /// Mounted at a path with the channel parameter (`/events/:channel`), serves that channel;
    /// at a path without it (`/events`), serves the set named by the `channels` query parameter
    /// (`?channels=cpu,mem,load`; see [`Hub::subscribe_set`]).
    async fn call(&self, req: Request) -> Result<Response> {
        get_only(&req)?;
        if let Some(channel) = req.raw_path_param(&self.param) {
            let grant = self.grant(&req, channel).await?;
            return Ok(self.serve(&req, channel, grant).await?);
        }
        let channels = set_of(&req);
        let channels: Vec<&str> = channels.iter().map(String::as_str).collect();
        let mut grant: Option<Grant> = None;
        for channel in &channels {
            let granted = self.grant(&req, channel).await.map_err(|err| {
                // A set with one forbidden channel is refused, naming it.
                let status = err.status();
                poem::Error::from_string(format!("channel `{channel}`: {err}"), status)
            })?;
            if let Some(granted) = granted {
                grant = Grant::narrowest(grant, granted);
            }
        }
        Ok(self.serve_set(&req, &channels, grant).await?)
    }
}

/// `Ok` for a `GET`; for any other method the `405` an event stream answers, with `Allow: GET`
/// and a message.
pub(crate) fn get_only(req: &Request) -> Result<()> {
    if req.method() == Method::GET {
        return Ok(());
    }
    let message = format!(
        "{} is not allowed here: an event stream answers GET",
        req.method()
    );
    Err(poem::Error::from_response(
        Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET")
            .content_type("text/plain; charset=utf-8")
            .body(message),
    ))
}

/// The channels named by the `channels` query parameter (comma-separated, repeatable).
fn set_of(req: &Request) -> Vec<String> {
    form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
        .filter(|(key, _)| key == "channels")
        .flat_map(|(_, value)| {
            value
                .split(',')
                .filter(|name| !name.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .take(crate::wire::set_cursor::MAX_SET_CHANNELS + 1)
        .collect()
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
        let endpoint = hub.endpoint().refuse_with_status();
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
