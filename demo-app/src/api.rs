//! The JSON API: health, publishing, hub metrics, and the pages' state.
//!
//! | route | answers |
//! | --- | --- |
//! | `GET /healthz` | `200 ok`; `503` with the reason when the store is degraded or shutting down |
//! | `POST /api/channels/{channel}/events` | `201 {"id": ..}`; `401` without the bearer token (when one is set), `404` invalid channel, `413` body over [`MAX_BODY_BYTES`], `400` invalid JSON or event name |
//! | `GET /api/hub/metrics` | `200` with [`poem_sse_ext::HubMetrics`] |
//! | `GET /api/state/{page}` | `200 {"page": .., "channels": {name: {"id": .., "items": [..]}}}`; `404` unknown page |

use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Json, Path},
    Body, IntoResponse, Request, Response,
};
use poem_sse_ext::{store::StoreHealth, validate_channel, Event, Hub, HubMetrics, PublishError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::state::{PageState, StateError};

/// The largest publish body accepted: 64 KiB. Larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The bearer token `POST /api/channels/{channel}/events` requires, if any.
#[derive(Debug, Clone, Default)]
pub struct PublishToken(pub Option<String>);

/// An error answer: its status and `{"error": message}`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            message: message.to_string(),
        }
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = Response::builder()
            .status(self.status)
            .content_type("application/json")
            .body(json!({ "error": self.message }).to_string());
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<StateError> for ApiError {
    fn from(err: StateError) -> Self {
        Self::new(poem::error::ResponseError::status(&err), err)
    }
}

impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> Self {
        let status = match err {
            PublishError::Channel(_) => StatusCode::NOT_FOUND,
            PublishError::Event(_) | PublishError::HasId(_) => StatusCode::BAD_REQUEST,
            PublishError::ShuttingDown
            | PublishError::Store(_)
            | PublishError::TooManyChannels(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, err)
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

/// The body of a publish request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// The event name; `message` when absent.
    event: Option<String>,
    /// A string is sent as it is; any other value serialized as JSON.
    data: Value,
}

/// `POST /api/channels/{channel}/events`.
#[handler]
pub async fn publish(
    req: &Request,
    Path(channel): Path<String>,
    body: Body,
    Data(hub): Data<&Hub>,
    Data(token): Data<&PublishToken>,
) -> Result<Response, ApiError> {
    if let Some(expected) = &token.0 {
        let given = req
            .header(header::AUTHORIZATION)
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes())) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token: send `Authorization: Bearer <token>`",
            ));
        }
    }
    validate_channel(&channel).map_err(|err| ApiError::new(StatusCode::NOT_FOUND, err))?;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|len| len.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes = body
        .into_bytes_limit(MAX_BODY_BYTES)
        .await
        .map_err(|err| match err {
            poem::error::ReadBodyError::PayloadTooLarge => too_large(),
            other => ApiError::new(StatusCode::BAD_REQUEST, other),
        })?;
    let body: PublishBody = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON `{{\"event\": \"name\"?, \"data\": ...}}`: {err}"),
        )
    })?;
    let mut event = match body.data {
        Value::String(text) => Event::text(text),
        other => Event::json(&other).map_err(PublishError::from)?,
    };
    if let Some(name) = body.event {
        event = event.event(name).map_err(PublishError::from)?;
    }
    let id = hub.publish(&channel, event).await?;
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

/// `GET /api/hub/metrics`: the hub's [`HubMetrics`].
#[handler]
pub fn hub_metrics(Data(hub): Data<&Hub>) -> Json<HubMetrics> {
    Json(hub.metrics())
}

/// `GET /api/state/{page}`: what the page renders, with the id each channel's state is at.
#[handler]
///
/// # Errors
/// `404` for an unknown page, `503` when the store fails.
pub async fn page_state(
    Path(page): Path<String>,
    Data(hub): Data<&Hub>,
) -> Result<Json<PageState>, ApiError> {
    let page = StateError::page(&page)?;
    Ok(Json(PageState::read(hub, page).await?))
}

/// Compares without stopping at the first difference, so timing tells nothing about the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
    }
}
