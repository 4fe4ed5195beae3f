//! [`SseEndpoint`]: a hub's streams as a poem endpoint.

use std::sync::Arc;

use poem::{Endpoint, Request, Response, Result};

use crate::Hub;

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
    pub(crate) fn new(hub: Hub) -> Self {
        Self {
            hub,
            param: Arc::from("channel"),
            authorize: None,
        }
    }

    /// Reads the channel from the path parameter `name` instead of `channel`.
    pub fn channel_param(mut self, name: &str) -> Self {
        self.param = Arc::from(name);
        self
    }

    /// Checks every request before anything is replayed: `check(req, channel)` returns `Err` to
    /// refuse (its error becomes the response). Replay respects it: a refused client receives
    /// nothing from the channel, history included.
    pub fn authorize(
        mut self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize = Some(Arc::new(check));
        self
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
        Ok(self.hub.serve(&req, channel).await)
    }
}
