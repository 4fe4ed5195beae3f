//! Runs over HTTP: [`RunEndpoint`] serves a run's followers, [`RunCancelEndpoint`] stops a run.

use poem::{
    http::Method, http::StatusCode, web::Json, Endpoint, IntoResponse, Request, Response, Result,
};

use super::{error::RunError, follow::Follow, id::RunId, Runs};
use crate::http::{
    endpoint::{get_only, only, resume_point, unmounted_param, Streams},
    options::StreamOptions,
};

impl Runs {
    /// A poem endpoint serving the followers of the run named by the `id` path parameter:
    /// mount it as it is, `Route::new().at("/runs/:id/events", runs.endpoint())`.
    pub fn endpoint(&self) -> RunEndpoint {
        RunEndpoint {
            runs: self.clone(),
            streams: Streams::new(self.hub().clone()),
            options: StreamOptions::new(),
        }
    }

    /// A poem endpoint that cancels the run named by the `id` path parameter: mount it as it
    /// is, `Route::new().at("/api/runs/:id/cancel", runs.cancel_endpoint())` (it answers `POST`
    /// only).
    pub fn cancel_endpoint(&self) -> RunCancelEndpoint {
        RunCancelEndpoint {
            runs: self.clone(),
            options: StreamOptions::new(),
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
/// | any method but `GET` | `405` with `Allow: GET` |
///
/// Its [`StreamOptions`] are a channel's: the authorizer is given the run's channel name
/// (`run.<id>`; [`RunId::from_channel`] reads the id back), the path parameter defaults to `id`.
/// Made by [`Runs::endpoint`].
#[derive(Clone, Debug)]
pub struct RunEndpoint {
    runs: Runs,
    streams: Streams,
    options: StreamOptions,
}

impl RunEndpoint {
    /// Reads the request and answers refusals as `options` says.
    #[must_use]
    pub fn options(mut self, options: StreamOptions) -> Self {
        self.options = options;
        self
    }
}

impl Endpoint for RunEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        get_only(&req)?;
        let id = run_id(&req, &self.options)?;
        let grant = self.options.grant(&req, &id.channel()).await?;
        let opener = self.options.opener(&req, grant);
        let resume = resume_point(&req);
        match self
            .runs
            .follow_as(id.as_str(), resume.as_deref(), &opener)
            .await
        {
            Ok(Follow::Stream(follower)) => Ok(self.streams.respond(follower, &req)),
            Ok(Follow::Ended(end)) => {
                tracing::debug!(run = %id, reason = %end.reason, "run follower has the end: 204");
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            Err(RunError::Subscribe(error)) => {
                Err(self.streams.refusal(error, &self.options).into())
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// Cancels a run: `202 Accepted` with `{"id": "...", "reason": "..."}` (`cancelled`, or how the
/// run had ended before), `404` with a message for an unknown or expired run. The producer is
/// told to stop at once, and the run's followers receive its end. Made by
/// [`Runs::cancel_endpoint`].
///
/// It answers `POST` only (`405` with `Allow: POST` otherwise). Its [`StreamOptions`]' authorizer
/// is given `run.<id>` (who may cancel may differ from who may follow: give each endpoint its
/// own options).
#[derive(Clone, Debug)]
pub struct RunCancelEndpoint {
    runs: Runs,
    options: StreamOptions,
}

impl RunCancelEndpoint {
    /// Reads the request as `options` says (the path parameter, the authorizer).
    #[must_use]
    pub fn options(mut self, options: StreamOptions) -> Self {
        self.options = options;
        self
    }
}

impl Endpoint for RunCancelEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        only(&req, Method::POST, "a run is cancelled with POST")?;
        let id = run_id(&req, &self.options)?;
        self.options.grant(&req, &id.channel()).await?;
        let reason = self.runs.cancel(id.as_str()).await?;
        let body = serde_json::json!({ "id": id, "reason": reason });
        Ok((StatusCode::ACCEPTED, Json(body)).into_response())
    }
}

/// The run named by the request's path parameter (`id`, or the options' own).
fn run_id(req: &Request, options: &StreamOptions) -> Result<RunId> {
    let param = options.param_or("id");
    let Some(raw) = req.raw_path_param(param) else {
        return Err(unmounted_param(param));
    };
    Ok(RunId::parse(raw).ok_or_else(|| RunError::not_found(raw))?)
}
