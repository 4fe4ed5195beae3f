//! `GET /openapi.json`: the demo's API and its streams, as an OpenAPI 3.2 document.
//!
//! The stream's events come from the types the demo publishes ([`Sample`], [`HubSample`],
//! [`TopChannels`], each described by its `schemars` derive) through [`EventStreamDoc`], which
//! adds the hub's own events and the resume parameters. CI validates the document with `openapi-spec-validator` and runs Schemathesis
//! against the live demo, which checks every streamed event against `itemSchema`
//! (demo-app/tests/ecosystem.rs).

use std::sync::OnceLock;

use poem::{handler, web::Json};
use poem_sse_ext::{hub::MAX_CHANNEL_LEN, openapi::EventStreamDoc, EventError};
use serde_json::{json, Value};

use crate::{
    publish::MAX_BODY_BYTES,
    sources::{
        hub::{self, HubSample, TopChannels},
        stamped::Stamped,
        system::Sample,
    },
};

/// `GET /openapi.json`.
#[handler]
pub fn openapi_json() -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(document).clone())
}

/// The document.
pub fn document() -> Value {
    let events = match stream() {
        Ok(events) => events.operation("The live events of one channel"),
        // The names below are constants that the tests check; an error here is a bug.
        Err(err) => json!({"summary": format!("unavailable: {err}"), "responses": {}}),
    };
    let channel = json!({
        "name": "channel",
        "in": "path",
        "required": true,
        "schema": {
            "type": "string",
            "pattern": format!("^[A-Za-z0-9_.-]{{1,{MAX_CHANNEL_LEN}}}$"),
            "not": {"enum": [".", ".."]},
        },
    });
    json!({
        "openapi": "3.2.0",
        "info": {
            "title": "poem-sse-ext demo",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Live dashboards over Server-Sent Events: publish to a channel, follow it as a stream.",
        },
        "paths": {
            "/events/{channel}": {"get": events},
            "/api/channels/{channel}/events": {"post": publish(&channel)},
            "/api/hub/metrics": {"get": {
                "summary": "The hub's counters, per channel and in total (of the private `user.<name>` channels, the caller's own only)",
                "responses": {"200": {
                    "description": "The counters.",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["open_streams", "published", "delivered", "opened", "rejected", "channels"],
                        "properties": {"channels": {"type": "object"}},
                    }}},
                }},
            }},
            "/api/state/{page}": {"get": {
                "summary": "What a page renders, with the id each channel's state is at",
                "parameters": [{"name": "page", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "The page's state.", "content": {"application/json": {"schema": {
                        "type": "object",
                        "required": ["page", "channels"],
                        "properties": {"page": {"type": "string"}, "channels": {"type": "object"}},
                    }}}},
                    "404": error("No such page."),
                    "503": retry_later("The store can not be read."),
                },
            }},
            "/healthz": {"get": {
                "summary": "Readiness",
                "responses": {
                    "200": text("Ready."),
                    "503": text("Shutting down, or the store is degraded (says why)."),
                },
            }},
            "/metrics": {"get": {
                "summary": "Prometheus scrape",
                "responses": {"200": {
                    "description": "The hub's metrics.",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                }},
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.2.", "content": {"application/json": {"schema": {"type": "object"}}}}},
            }},
        },
    })
}

/// The events of `/events/{channel}`: `sample` on the dashboard's channels, `metrics` and
/// `channels` on the hub's, and whatever the publish API sends.
fn stream() -> Result<EventStreamDoc, EventError> {
    Ok(EventStreamDoc::new()
        .event::<Stamped<Sample>>("sample")?
        .event::<Stamped<HubSample>>(hub::EVENT)?
        .event::<TopChannels>(hub::TOP_EVENT)?
        .text_message()
        .other_events())
}

fn publish(channel: &Value) -> Value {
    let published = |description: &str, duplicate: bool| {
        json!({"description": description, "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["id", "duplicate"],
            "properties": {
                "id": {"type": "string", "description": "Resume after it with `Last-Event-ID`."},
                "duplicate": {"const": duplicate},
            },
        }}}})
    };
    json!({
        "summary": "Publish an event on a channel",
        "parameters": [channel, {
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Publish at most once: a retry with the same key within the hub's idempotency window stores nothing and is answered `200` with the first id.",
            "schema": {"type": "string", "pattern": "^[!-~]{1,256}$"},
        }],
        "requestBody": {
            "required": true,
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": ["data"],
                "additionalProperties": false,
                "properties": {
                    "event": {"type": "string", "description": "The event name; `message` when absent. Not empty, no line breaks, not `error` or `open`, not starting with `sse-`."},
                    "data": {"description": "A string is sent as its text; any other value as its JSON text, byte for byte. A `notification` event's object without an `at` field gets `\"at\": \"<publish time, RFC 3339 UTC>\"` as its first field."},
                },
            }}},
        },
        "responses": {
            "201": published("Published.", false),
            "200": published("The `Idempotency-Key` was used within the window: nothing was stored; the id is the first publish's.", true),
            "400": error("Invalid JSON, an invalid event name, or an invalid `Idempotency-Key`."),
            "401": error("`--publish-token` is set and the bearer token is missing or wrong; or a private `user.<name>` channel without `<name>`'s session cookie (nor the token)."),
            "403": error("A browser's post from a page of another origin, or another user's private channel."),
            "404": error("An invalid channel name."),
            "413": error(&format!("The body is larger than {MAX_BODY_BYTES} bytes, or the event than the channel's history bound.")),
            "415": error("The `Content-Type` is not `application/json`."),
            "500": error("The store holds something else under the channel's key."),
            "503": retry_later("Shutting down, too many channels, or the store failed: nothing was stored."),
            "504": retry_later("The store timed out: the outcome is unknown (`outcome_unknown`), and the event may be stored all the same; retry with the same `Idempotency-Key`."),
        },
    })
}

fn error(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "string"}, "outcome_unknown": {"type": "boolean"}},
        }}},
    })
}

/// [`error`] with `Retry-After`.
fn retry_later(description: &str) -> Value {
    let mut answer = error(description);
    answer["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
    }});
    answer
}

fn text(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every answer the publish handler gives (see `crate::publish`) is in the document, with
    /// the header that makes a retry safe.
    #[test]
    fn publishing_is_described_with_every_answer() {
        let doc = document();
        let op = &doc["paths"]["/api/channels/{channel}/events"]["post"];
        let mut statuses: Vec<&str> = op["responses"]
            .as_object()
            .map(|responses| responses.keys().map(String::as_str).collect())
            .unwrap_or_default();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            ["200", "201", "400", "401", "403", "404", "413", "415", "500", "503", "504"]
        );
        assert!(op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"));
        let duplicate = &op["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(duplicate["properties"]["duplicate"]["const"], true);
        assert!(
            op["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]
                ["description"]
                .as_str()
                .is_some_and(|text| text.contains("`at`"))
        );
    }

    #[test]
    fn the_stream_is_described_with_every_event() {
        assert!(stream().is_ok());
        let doc = document();
        let item = &doc["paths"]["/events/{channel}"]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]["itemSchema"];
        let named: Vec<&str> = item["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["properties"]["event"]["const"].as_str())
            .collect();
        assert_eq!(
            named,
            [
                "sample",
                "metrics",
                "channels",
                "message",
                "sse-reset",
                "sse-busy",
                "sse-reauth",
                "sse-end"
            ]
        );
    }
}
