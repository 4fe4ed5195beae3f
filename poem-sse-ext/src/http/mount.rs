//! [`SseMount`]: a channel's stream served in front of an app's routes, without poem's `Route`.
//!
//! Mounted in a `Route`, every stream's set-up pays for the routing an event stream does not
//! need: the matched path parameters copied into owned strings, the matched pattern stored in the
//! request's and the response's extensions, and the endpoint's request future boxed. A mount
//! answers `GET <prefix><channel>` itself, before the routes see the request, and hands every
//! other request to them unchanged.
//!
//! | request | answer |
//! | --- | --- |
//! | `<prefix><channel>`, one path segment | as [`SseEndpoint`] answers it (`405` for other methods) |
//! | anything else (`<prefix>`, `<prefix>a/b`, other paths) | the wrapped endpoint's |

use std::borrow::Cow;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use super::endpoint::SseEndpoint;

impl SseEndpoint {
    /// A middleware serving the channel named by the path segment after `prefix`
    /// (`/events/prices` for `"/events/"`) with this endpoint, in front of the endpoint it
    /// wraps: the same streams as `Route::new().at("/events/:channel", endpoint)`, with less
    /// work per stream.
    ///
    /// Wrap the routes before any middleware that event streams need too (security headers,
    /// CORS), so that they see the streams' responses:
    ///
    /// ```
    /// use poem::{get, handler, middleware::SetHeader, EndpointExt, Route};
    /// use poem_sse_ext::Hub;
    ///
    /// #[handler]
    /// fn index() -> &'static str {
    ///     "hello"
    /// }
    ///
    /// let hub = Hub::new();
    /// let app = Route::new()
    ///     .at("/", get(index))
    ///     .with(hub.endpoint().mount("/events/"))
    ///     .with(SetHeader::new().overriding("x-content-type-options", "nosniff"));
    /// ```
    ///
    /// [`StreamOptions::param`](crate::http::StreamOptions::param) does not apply: the channel
    /// is the segment after `prefix`, percent-decoded.
    pub fn mount(self, prefix: &str) -> SseMount {
        SseMount {
            endpoint: self,
            prefix: prefix.into(),
        }
    }
}

/// Serves `GET <prefix><channel>` with an [`SseEndpoint`] in front of the endpoint it wraps.
/// Made by [`SseEndpoint::mount`].
#[derive(Clone, Debug)]
pub struct SseMount {
    endpoint: SseEndpoint,
    prefix: Box<str>,
}

impl<E: Endpoint> Middleware<E> for SseMount {
    type Output = SseMountEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        SseMountEndpoint {
            mount: self.clone(),
            inner,
        }
    }
}

/// The endpoint of an [`SseMount`]: its streams, then `E` for every other request.
#[derive(Debug)]
pub struct SseMountEndpoint<E> {
    mount: SseMount,
    inner: E,
}

impl<E: Endpoint> Endpoint for SseMountEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let Some(channel) = channel_of(req.uri().path(), &self.mount.prefix) else {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        };
        self.mount.endpoint.open(&req, &channel).await
    }
}

/// The channel of `path` under `prefix`: the one non-empty segment after it, percent-decoded.
fn channel_of<'a>(path: &'a str, prefix: &str) -> Option<Cow<'a, str>> {
    let segment = path.strip_prefix(prefix)?;
    if segment.is_empty() || segment.contains('/') {
        return None;
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .ok()
}

#[cfg(test)]
mod tests {
    use poem::{handler, http::StatusCode, test::TestClient, EndpointExt, Route};

    use super::*;
    use crate::Hub;

    #[test]
    fn the_channel_is_the_one_segment_after_the_prefix() {
        assert_eq!(
            channel_of("/events/a.b", "/events/").as_deref(),
            Some("a.b")
        );
        assert_eq!(channel_of("/events/%41", "/events/").as_deref(), Some("A"));
        assert_eq!(channel_of("/events/", "/events/"), None);
        assert_eq!(channel_of("/events/a/b", "/events/"), None);
        assert_eq!(channel_of("/eventsa", "/events/"), None);
        assert_eq!(channel_of("/events/%ff", "/events/"), None);
    }

    #[handler]
    fn page() -> &'static str {
        "page"
    }

    #[tokio::test]
    async fn streams_are_answered_in_front_of_the_routes_which_get_the_rest() {
        let hub = Hub::new();
        let app = Route::new()
            .at("/", page)
            .at("/events/:a/:b", page)
            .with(hub.endpoint().mount("/events/"));
        let client = TestClient::new(app);

        let stream = client.get("/events/prices").send().await;
        stream.assert_status_is_ok();
        stream.assert_content_type("text/event-stream");
        assert_eq!(hub.metrics().opened, 1);

        client.get("/").send().await.assert_text("page").await;
        client
            .get("/events/a/b")
            .send()
            .await
            .assert_text("page")
            .await;
        let post = client.post("/events/prices").send().await;
        post.assert_status(StatusCode::METHOD_NOT_ALLOWED);
        post.assert_header("allow", "GET");
        let invalid = client.get("/events/a%20b").send().await;
        invalid.assert_status(StatusCode::NOT_FOUND);
        assert_eq!(hub.metrics().opened, 1, "one stream was opened");
    }
}
