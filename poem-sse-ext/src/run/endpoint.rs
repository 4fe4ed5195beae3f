//! Runs over HTTP: [`RunEndpoint`] serves a run's followers, [`RunCancelEndpoint`] stops a run.

use std::{net::IpAddr, sync::Arc};

use poem::{http::StatusCode, web::Json, Endpoint, IntoResponse, Request, Response, Result};

use super::{error::RunError, follow::Follow, id::RunId, Runs};
use crate::{
    http::authorize::{Authorizer, Check},
    http::endpoint::SseEndpoint,
};

impl Runs {
    /// A poem endpoint serving the followers of the run named by the `id` path parameter:
    /// mount it with `Route::new().at("/runs/:id/events", runs.endpoint())`.
    pub fn endpoint(&self) -> RunEndpoint {
        RunEndpoint {
            runs: self.clone(),
            sse: self.hub().endpoint(),
            param: Arc::from("id"),
            authorizer: None,
        }
    }

    /// A poem endpoint that cancels the run named by the `id` path parameter: mount it with
    /// `Route::new().at("/api/runs/:id/cancel", post(runs.cancel_endpoint()))`.
    pub fn cancel_endpoint(&self) -> RunCancelEndpoint {
        RunCancelEndpoint {
            runs: self.clone(),
            param: Arc::from("id"),
            authorizer: None,
        }
    }
}

/// Serves a run's followers as an SSE stream: resumable like any channel's stream (from
/// `Last-Event-ID`, or the `lastEventId` query parameter of a server-rendered page), from the
/// run's start when there is no resume point, and ending after the run's end event.
///
/// | request | answer |
/// | --- | --- |
/// | unknown id, or a run past its time to live | `404` with a message |
/// | resume point is the run's end event | `204 No Content` (a native `EventSource` stays closed) |
/// | otherwise | `200 text/event-stream`: the events after the resume point, the end event when the run ends, then the response ends |
/// | any method but `GET` | `405` with `Allow: GET` (mount it as it is, not inside poem's `get()`) |
///
/// Authorization is the channels' hook, [`Authorizer`], given the run's channel name
/// (`run.<id>`; [`RunId::from_channel`] reads the id back). Made by [`Runs::endpoint`].
#[derive(Clone)]
pub struct RunEndpoint {
    runs: Runs,
    sse: SseEndpoint,
    param: Arc<str>,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl RunEndpoint {
    /// Reads the run id from the path parameter `name` instead of `id`.
    #[must_use]
    pub fn id_param(mut self, name: &str) -> Self {
        self.param = Arc::from(name);
        self
    }

    /// Checks every request before anything is sent: `check(req, channel)` (the channel is
    /// `run.<id>`) returns `Err` to refuse, and its error becomes the response.
    #[must_use]
    pub fn authorize(
        self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize_with(Check(check))
    }

    /// Authorizes every request with `authorizer`, as
    /// [`SseEndpoint::authorize_with`](crate::SseEndpoint::authorize_with) does for channels:
    /// its grant's principal counts against the per-principal cap, and its expiry ends the stream.
    #[must_use]
    pub fn authorize_with(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }

    /// See [`SseEndpoint::trusted_proxies`](crate::SseEndpoint::trusted_proxies).
    #[must_use]
    pub fn trusted_proxies(mut self, proxies: impl IntoIterator<Item = IpAddr>) -> Self {
        self.sse = self.sse.trusted_proxies(proxies);
        self
    }

    /// See [`SseEndpoint::refuse_with_status`](crate::SseEndpoint::refuse_with_status).
    #[must_use]
    pub fn refuse_with_status(mut self) -> Self {
        self.sse = self.sse.refuse_with_status();
        self
    }
}

impl Endpoint for RunEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        crate::http::endpoint::get_only(&req)?;
        let raw = req.raw_path_param(&self.param).unwrap_or_default();
        let id = RunId::parse(raw).ok_or_else(|| RunError::not_found(raw))?;
        let grant = match &self.authorizer {
            Some(authorizer) => Some(authorizer.authorize(&req, &id.channel()).await?),
            None => None,
        };
        let (resume, opener) = self.sse.opener(&req, grant);
        match self
            .runs
            .follow_as(id.as_str(), resume.as_deref(), &opener)
            .await
        {
            Ok(Follow::Stream(follower)) => Ok(self.sse.respond(follower, &req)),
            Ok(Follow::Ended(end)) => {
                tracing::debug!(run = %id, reason = %end.reason, "run follower has the end: 204");
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Err(RunError::Subscribe(error)) => Err(self.sse.refusal(error).into()),
            Err(error) => Err(error.into()),
        }
    }
}

impl std::fmt::Debug for RunEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunEndpoint")
            .field("param", &self.param)
            .field("authorizer", &self.authorizer.is_some())
            .field("sse", &self.sse)
            .finish_non_exhaustive()
    }
}

/// Cancels a run: `202 Accepted` with `{"id": "...", "reason": "..."}` (`cancelled`, or how the
/// run had ended before), `404` with a message for an unknown or expired run. The producer is
/// told to stop at once, and the run's followers receive its end. Made by
/// [`Runs::cancel_endpoint`].
#[derive(Clone)]
pub struct RunCancelEndpoint {
    runs: Runs,
    param: Arc<str>,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl RunCancelEndpoint {
    /// Reads the run id from the path parameter `name` instead of `id`.
    #[must_use]
    pub fn id_param(mut self, name: &str) -> Self {
        self.param = Arc::from(name);
        self
    }

    /// Checks every request first: `check(req, channel)` (the channel is `run.<id>`) returns
    /// `Err` to refuse, and its error becomes the response.
    #[must_use]
    pub fn authorize(
        self,
        check: impl Fn(&Request, &str) -> Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.authorize_with(Check(check))
    }

    /// Checks every request first with `authorizer` (who may cancel may differ from who may
    /// follow: give each endpoint its own).
    #[must_use]
    pub fn authorize_with(mut self, authorizer: impl Authorizer) -> Self {
        self.authorizer = Some(Arc::new(authorizer));
        self
    }
}

impl Endpoint for RunCancelEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let raw = req.raw_path_param(&self.param).unwrap_or_default();
        let id = RunId::parse(raw).ok_or_else(|| RunError::not_found(raw))?;
        if let Some(authorizer) = &self.authorizer {
            authorizer.authorize(&req, &id.channel()).await?;
        }
        let reason = self.runs.cancel(id.as_str()).await?;
        let body = serde_json::json!({ "id": id, "reason": reason });
        Ok((StatusCode::ACCEPTED, Json(body)).into_response())
    }
}

impl std::fmt::Debug for RunCancelEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunCancelEndpoint")
            .field("param", &self.param)
            .field("authorizer", &self.authorizer.is_some())
            .finish_non_exhaustive()
    }
}
