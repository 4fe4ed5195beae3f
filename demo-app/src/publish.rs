//! `POST /api/channels/{channel}/events`: publishing through the API, and who may.
//!
//! The body is JSON `{"event": "name"?, "data": ...}`. A JSON string `data` is sent as its text;
//! any other value as its exact JSON text, byte for byte (validated, never re-serialized: no
//! float loses a digit, no key moves). One addition: a `notification` event whose data is an
//! object without an `at` field gets `"at": "<the time it was published, RFC 3339 UTC>"` as its
//! first field (see [`crate::notification`]).
//!
//! | answer | when |
//! | --- | --- |
//! | `201 {"id": .., "duplicate": false}` | published |
//! | `200 {"id": .., "duplicate": true}` | an `Idempotency-Key` already used within the window: nothing stored, the first id |
//! | `400` | the body is not that JSON, or the event name is invalid |
//! | `401` | `--publish-token` is set and `Authorization: Bearer <token>` is missing or wrong; or a private `user.<name>` channel without `<name>`'s session (nor the token) |
//! | `403` | a private channel of another user than the session's |
//! | `403` | a browser's post from a page of another origin (see [`crate::origin`]); who may publish is [`PublishPolicy`] |
//! | `404` | the channel name is invalid |
//! | `413` | the body is over [`MAX_BODY_BYTES`], or the event over the channel's history bound |
//! | `415` | the `Content-Type` is not `application/json` |
//! | `503` + `Retry-After` | shutting down, too many channels, the store failed: nothing was stored |
//! | `504` + `Retry-After` | the store timed out: **the outcome is unknown** (`"outcome_unknown": true`), the event may be stored all the same; retry with the same `Idempotency-Key` |
//!
//! Every answer follows the whole request body (up to [`DRAIN_BYTES`]), so that an HTTP/2 client
//! reads it before the request's stream ends.

use std::time::Duration;

use poem::{
    handler,
    http::{header, StatusCode},
    web::{Data, Json, Path},
    Body, IntoResponse, Request, Response,
};
use poem_sse_ext::{hub::validate_channel, store::StoreError, Event, Hub, PublishError};
use serde::Deserialize;
use serde_json::{json, value::RawValue};
use tokio::io::AsyncReadExt;

use crate::{
    api::ApiError, notification, policy::PublishPolicy, session::Sessions, sources::stamped,
};

/// The largest publish body accepted: 64 KiB. Larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How much of a body the server reads before it answers, whatever the answer: up to 1 MiB
/// (a `Content-Length` above it is answered `413` at once, the rest of the body unread).
pub const DRAIN_BYTES: usize = 1024 * 1024;

/// The body of a publish request.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    /// The event name; `message` when absent.
    event: Option<String>,
    /// A JSON string is sent as its text; any other value as its JSON text, as it was written.
    data: Box<RawValue>,
}

/// `POST /api/channels/{channel}/events`.
///
/// # Errors
/// See the table in [this module](self).
#[handler]
pub async fn publish(
    req: &Request,
    Path(channel): Path<String>,
    body: Body,
    Data(hub): Data<&Hub>,
    Data(policy): Data<&PublishPolicy>,
    Data(sessions): Data<&Sessions>,
) -> Result<Response, ApiError> {
    // Every answer waits for the whole body: an HTTP/2 answer sent before it is followed by a
    // reset of the request's stream, which some clients (curl 7.88) report instead of the answer.
    let declared = req
        .header(header::CONTENT_LENGTH)
        .and_then(|len| len.parse::<usize>().ok());
    let read = match declared {
        Some(len) if len > DRAIN_BYTES => Err(too_large()),
        _ => read_body(body).await,
    };
    policy.check(req, &channel, sessions)?;
    validate_channel(&channel).map_err(|err| ApiError::new(StatusCode::NOT_FOUND, err))?;
    let content_type = req.header(header::CONTENT_TYPE);
    let is_json = content_type.is_some_and(|value| {
        let essence = value.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "send the event as JSON with `Content-Type: application/json` (got {})",
                content_type.map_or("none".to_owned(), |given| format!("`{given}`"))
            ),
        ));
    }
    let bytes = read?;
    let body: PublishBody = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("the body must be JSON `{{\"event\": \"name\"?, \"data\": ...}}`: {err}"),
        )
    })?;
    let event = event_of(body).map_err(|err| refused(err, hub))?;
    // With an `Idempotency-Key`, a retried publish is stored once: the retry gets the first id.
    let (id, duplicate) = match req.header("idempotency-key") {
        Some(key) => hub
            .publish_once(&channel, key, event)
            .await
            .map(|appended| (appended.id, appended.duplicate)),
        None => hub.publish(&channel, event).await.map(|id| (id, false)),
    }
    .map_err(|err| refused(err, hub))?;
    let status = if duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(json!({ "id": id, "duplicate": duplicate }))).into_response())
}

/// The `413` answer.
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the body is larger than the limit of {MAX_BODY_BYTES} bytes"),
    )
}

/// Reads a publish body: its bytes when it is at most [`MAX_BODY_BYTES`]; a larger one is read
/// on (and dropped) up to [`DRAIN_BYTES`], so that even its `413` follows the whole request.
async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut reader = body.into_async_read();
    let mut kept = Vec::new();
    let mut chunk = vec![0; 16 * 1024];
    let mut total = 0;
    loop {
        let n = reader.read(&mut chunk).await.map_err(|err| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("reading the body failed: {err}"),
            )
        })?;
        if n == 0 {
            break;
        }
        total += n;
        if total <= MAX_BODY_BYTES {
            kept.extend_from_slice(&chunk[..n]);
        } else if total > DRAIN_BYTES {
            break;
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(kept)
}

/// The event a publish body describes.
fn event_of(body: PublishBody) -> Result<Event, PublishError> {
    let raw = body.data.get();
    let data = if raw.starts_with('"') {
        // A valid JSON string (RawValue checked it): its text.
        serde_json::from_str::<String>(raw).unwrap_or_else(|_| raw.to_owned())
    } else {
        raw.to_owned()
    };
    // A notification's object carries the time it was published (see `crate::notification`);
    // a string is sent as its text, whatever it looks like.
    let data = match body.event.as_deref() {
        Some(notification::EVENT) if raw.starts_with('{') => {
            notification::stamp(&data, stamped::now())
        }
        _ => data,
    };
    let event = Event::text(data);
    Ok(match body.event {
        Some(name) => event.event(name)?,
        None => event,
    })
}

/// The answer to a publish the hub refused.
fn refused(err: PublishError, hub: &Hub) -> ApiError {
    let status = match &err {
        PublishError::Channel(_) => StatusCode::NOT_FOUND,
        PublishError::Event(_) | PublishError::HasId(_) | PublishError::InvalidIdempotencyKey => {
            StatusCode::BAD_REQUEST
        }
        PublishError::Store(StoreError::TooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
        // Another program's key where the channel's should be: retrying will not help.
        PublishError::Store(StoreError::WrongKeyType { .. }) => StatusCode::INTERNAL_SERVER_ERROR,
        // Not "not stored": the store may store it all the same. Retry with the same
        // `Idempotency-Key` to be sure it is stored once.
        err if err.outcome_unknown() => StatusCode::GATEWAY_TIMEOUT,
        PublishError::ShuttingDown | PublishError::TooManyChannels(_) | PublishError::Store(_) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry: Duration = hub.config().retry;
    ApiError::new(status, &err)
        .outcome_unknown(err.outcome_unknown())
        .retry_after(retry)
}

#[cfg(test)]
mod tests {
    use poem::{
        test::{TestClient, TestResponse},
        EndpointExt, Route,
    };

    use super::*;

    const LOCAL: &str = "127.0.0.1:8443";

    fn app(hub: &Hub, allowed: &[&str]) -> TestClient<impl poem::Endpoint> {
        let origins = allowed
            .iter()
            .map(|o| o.parse().unwrap_or_else(|e| panic!("{e}")));
        let listen = LOCAL.parse().unwrap_or_else(|e| panic!("{e}"));
        let policy = PublishPolicy::new(None, origins.collect(), listen);
        let route = Route::new()
            .at("/api/channels/:channel/events", poem::post(publish))
            .data(hub.clone())
            .data(policy.unwrap_or_else(|e| panic!("{e}")))
            .data(Sessions::new(Duration::from_secs(60), false).unwrap_or_else(|e| panic!("{e}")));
        TestClient::new(route)
    }

    async fn post(
        client: &TestClient<impl poem::Endpoint>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> TestResponse {
        let mut req = client
            .post("/api/channels/notes/events")
            .header("host", LOCAL)
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        req.send().await
    }

    async fn error_of(response: TestResponse) -> String {
        let body = response.0.into_body().into_string().await;
        let body: serde_json::Value = serde_json::from_str(&body.unwrap_or_default())
            .unwrap_or_else(|e| panic!("not JSON: {e}"));
        body["error"].as_str().unwrap_or_default().to_owned()
    }

    async fn stored(hub: &Hub) -> Vec<String> {
        let recent = hub
            .recent("notes", 10)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        recent.events.into_iter().map(|e| e.data).collect()
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[tokio::test]
    async fn data_passes_through_byte_for_byte() {
        let hub = Hub::new();
        let client = app(&hub, &[]);
        let exact = r#"{"z": 1, "a": 0.1000000000000000055511151231257827, "big": 18446744073709551616, "e": 1E+2, "s": "\u00e9"}"#;
        for body in [
            format!(r#"{{"event": "note", "data": {exact}}}"#),
            r#"{"data": "a JSON string: \"its text\", \u00e9"}"#.to_owned(),
            r#"{"data":[1.0,-0]}"#.to_owned(),
        ] {
            post(&client, &[JSON], &body)
                .await
                .assert_status(StatusCode::CREATED);
        }
        assert_eq!(
            stored(&hub).await,
            [exact, "a JSON string: \"its text\", é", "[1.0,-0]"]
        );
    }

    #[tokio::test]
    async fn only_json_is_accepted() {
        let hub = Hub::new();
        let client = app(&hub, &[]);
        let body = r#"{"data": "x"}"#;
        for headers in [&[("content-type", "text/plain")][..], &[]] {
            let response = post(&client, headers, body).await;
            response.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
            let message = error_of(response).await;
            assert!(
                message.contains("Content-Type: application/json"),
                "{message}"
            );
        }
        let charset = [("content-type", "Application/JSON; charset=utf-8")];
        post(&client, &charset, body)
            .await
            .assert_status(StatusCode::CREATED);
        assert_eq!(stored(&hub).await, ["x"]);
    }

    #[tokio::test]
    async fn a_notification_carries_the_time_it_was_published() {
        let hub = Hub::new();
        let client = app(&hub, &[]);
        let before = stamped::now();
        for body in [
            r#"{"event": "notification", "data": {"text": "deployed", "n": 1.50}}"#,
            r#"{"event": "notification", "data": "{\"text\": \"a string\"}"}"#,
            r#"{"event": "note", "data": {"text": "not a notification"}}"#,
        ] {
            post(&client, &[JSON], body)
                .await
                .assert_status(StatusCode::CREATED);
        }
        let after = stamped::now();
        let stored = stored(&hub).await;
        let (at, rest) = stored[0]
            .strip_prefix(r#"{"at":""#)
            .and_then(|s| s.split_once("\","))
            .unwrap_or_else(|| panic!("no time first: {}", stored[0]));
        assert_eq!(
            rest,
            r#"{"text": "deployed", "n": 1.50}"#.trim_start_matches('{')
        );
        let at = chrono::DateTime::parse_from_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
        // A string is its text; another event's data is as it was sent.
        assert_eq!(
            stored[1..],
            [
                r#"{"text": "a string"}"#,
                r#"{"text": "not a notification"}"#
            ]
        );
    }

    #[tokio::test]
    async fn browsers_publish_only_from_this_servers_pages_or_allowed_origins() {
        let hub = Hub::new();
        let client = app(&hub, &["https://dash.example"]);
        let body = r#"{"data": "x"}"#;
        let evil = [JSON, ("origin", "https://evil.example")];
        let response = post(&client, &evil, body).await;
        response.assert_status(StatusCode::FORBIDDEN);
        let message = error_of(response).await;
        assert!(
            message.contains("--allow-origin https://evil.example"),
            "{message}"
        );
        let cross_site = [JSON, ("sec-fetch-site", "cross-site")];
        post(&client, &cross_site, body)
            .await
            .assert_status(StatusCode::FORBIDDEN);
        assert!(stored(&hub).await.is_empty());
        for origin in ["https://127.0.0.1:8443", "https://dash.example"] {
            let headers = [JSON, ("origin", origin), ("sec-fetch-site", "same-site")];
            post(&client, &headers, body)
                .await
                .assert_status(StatusCode::CREATED);
        }
        post(&client, &[JSON], body)
            .await
            .assert_status(StatusCode::CREATED);
        assert_eq!(stored(&hub).await.len(), 3);
    }

    #[tokio::test]
    async fn refusals_say_when_to_retry_and_what_happened() {
        let hub = Hub::builder().history_bytes(200).build();
        let client = app(&hub, &[]);
        let big = format!(r#"{{"data": "{}"}}"#, "x".repeat(300));
        let response = post(&client, &[JSON], &big).await;
        response.assert_status(StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error_of(response).await.contains("history bound"));

        hub.shutdown();
        let response = post(&client, &[JSON], r#"{"data": 1}"#).await;
        response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        response.assert_header_exist(header::RETRY_AFTER);
        let body = response
            .0
            .into_body()
            .into_string()
            .await
            .unwrap_or_default();
        assert!(
            body.contains("shutting down") && !body.contains("outcome_unknown"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn a_retry_with_the_same_idempotency_key_is_stored_once() {
        let hub = Hub::new();
        let client = app(&hub, &[]);
        let key = ("idempotency-key", "order-42");
        let first = post(&client, &[JSON, key], r#"{"data": "paid"}"#).await;
        first.assert_status(StatusCode::CREATED);
        let first: serde_json::Value = first.0.into_body().into_json().await.unwrap_or_default();
        let retry = post(&client, &[JSON, key], r#"{"data": "paid"}"#).await;
        retry.assert_status(StatusCode::OK);
        let retry: serde_json::Value = retry.0.into_body().into_json().await.unwrap_or_default();
        assert_eq!(retry["id"], first["id"]);
        assert_eq!(retry["duplicate"], true);
        assert_eq!(stored(&hub).await, ["paid"]);
    }

    #[test]
    fn an_unknown_outcome_is_answered_as_unknown_not_as_not_stored() {
        let hub = Hub::new();
        let timeout = PublishError::Store(StoreError::Timeout {
            operation: "append",
            timeout: Duration::from_secs(2),
        });
        let answer = poem::error::ResponseError::as_response(&refused(timeout, &hub));
        assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(answer.headers().contains_key(header::RETRY_AFTER));
        let unavailable = PublishError::Store(StoreError::Connection("refused".into()));
        let answer = poem::error::ResponseError::as_response(&refused(unavailable, &hub));
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
