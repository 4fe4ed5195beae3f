//! The JSON API: health, publishing ([`crate::publish`]), hub metrics, and the pages' state.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /healthz` | `200 ok`; `503` with the reason when the store is degraded or shutting down |
//! | `POST /api/channels/{channel}/events` | see [`crate::publish::publish`] |
//! | `GET /api/hub/metrics` | `200` with [`poem_sse_ext::metrics::HubMetrics`] and `streams` (a set counts once); of the private channels, the caller's own only |
//! | `GET /metrics` | the Prometheus scrape, without private channels' series ([`Scrape`]) |
//! | `GET /api/state/{page}` | `200 {"page": .., "channels": {name: {"id": .., "items": [..]}}}`; `404` unknown page, `503` (with `Retry-After`) when the store can not be read |
//!
//! Errors answer `{"error": "<what went wrong and what to do>"}`.

use std::time::Duration;

use poem::{
    error::ResponseError,
    handler,
    http::{header, StatusCode},
    web::{Data, Json, Path},
    Endpoint, IntoResponse, Request, Response,
};
use poem_sse_ext::{
    metrics::{prometheus::MetricsEndpoint, HubMetrics},
    store::StoreHealth,
    Hub,
};
use serde::Serialize;
use serde_json::json;

use crate::{
    session::{Sessions, USER_PREFIX},
    state::{page_named, PageState, StateError, RETRY_AFTER_SECS},
};

/// An error answer: its status and `{"error": message}` (with `"outcome_unknown": true` when an
/// event may have been published all the same); `Retry-After` on a `503`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    outcome_unknown: bool,
    retry_after: Option<Duration>,
}

impl ApiError {
    /// An answer with `status` and `message`.
    pub fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
            outcome_unknown: false,
            retry_after: None,
        }
    }

    /// Marks an answer to a publish whose event may have been stored all the same.
    #[must_use]
    pub fn outcome_unknown(mut self, unknown: bool) -> Self {
        self.outcome_unknown = unknown;
        self
    }

    /// Sets the `Retry-After` of a `503` or `504` (rounded up to whole seconds; 2 s when not set).
    #[must_use]
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut body = json!({ "error": self.message });
        if self.outcome_unknown {
            body["outcome_unknown"] = true.into();
        }
        let mut response = Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(body.to_string());
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
        ) {
            let seconds = self.retry_after.map_or(RETRY_AFTER_SECS, |delay| {
                delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
            });
            headers.insert(header::RETRY_AFTER, seconds.max(1).into());
        }
        response
    }
}

impl From<StateError> for ApiError {
    fn from(err: StateError) -> Self {
        Self::new(err.status(), err)
    }
}

/// `GET /healthz`.
#[handler]
pub fn healthz(Data(hub): Data<&Hub>) -> Response {
    if hub.is_shutting_down() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    }
    match hub.health() {
        StoreHealth::Ok => "ok".into_response(),
        StoreHealth::Degraded(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("store degraded: {reason}"),
        )
            .into_response(),
    }
}

/// The answer of `GET /api/hub/metrics`.
#[derive(Debug, Serialize)]
pub struct MetricsAnswer {
    /// The hub's metrics (`open_streams` at the top level counts a stream once per channel it
    /// reads: a set of 11 channels counts 11).
    #[serde(flatten)]
    pub metrics: HubMetrics,
    /// Streams open now, a set of channels counting once ([`Hub::open_streams`]).
    pub streams: usize,
}

/// `GET /api/hub/metrics`: the hub's [`HubMetrics`], and `streams`: how many streams are open
/// (a set of channels counts once). Of the private `user.<name>` channels, `channels` holds the
/// caller's own only (see [`Sessions::may_list`]); the totals count them all.
#[handler]
pub fn hub_metrics(
    req: &Request,
    Data(hub): Data<&Hub>,
    Data(sessions): Data<&Sessions>,
) -> Json<MetricsAnswer> {
    let mut metrics = hub.metrics();
    metrics
        .channels
        .retain(|name, _| sessions.may_list(req, name));
    Json(MetricsAnswer {
        streams: hub.open_streams(),
        metrics,
    })
}

/// `GET /metrics`: the crate's Prometheus scrape of the hub, without the per-channel series of
/// private `user.<name>` channels (their names say who signed in).
pub struct Scrape(pub MetricsEndpoint);

impl Endpoint for Scrape {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let scrape = self.0.call(req).await?;
        let (parts, body) = scrape.into_parts();
        let text = body.into_string().await?;
        let private = format!("channel=\"{USER_PREFIX}");
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| !line.contains(&private))
            .collect();
        Ok(Response::from_parts(parts, kept.into()))
    }
}

/// `GET /api/state/{page}`: what the page renders, with the id each channel's state is at.
///
/// # Errors
/// `404` for an unknown page, `503` when the store fails.
#[handler]
pub async fn page_state(
    Path(page): Path<String>,
    Data(hub): Data<&Hub>,
) -> Result<Json<PageState>, ApiError> {
    let page = page_named(&page)?;
    Ok(Json(PageState::read(hub, page).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_503_says_when_to_retry() {
        let busy = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy");
        let retry = |e: &ApiError| e.as_response().headers().get(header::RETRY_AFTER).cloned();
        assert_eq!(retry(&busy), Some(RETRY_AFTER_SECS.into()));
        let later = busy.retry_after(Duration::from_millis(3_200));
        assert_eq!(retry(&later), Some(4u64.into()));
        assert_eq!(retry(&ApiError::new(StatusCode::NOT_FOUND, "no")), None);
    }
}
