//! OpenAPI 3.2 descriptions of event streams (feature `openapi`).
//!
//! OpenAPI 3.2 describes a stream item by item: a `text/event-stream` response carries an
//! [`itemSchema`][media-type] that each event (an object of `event`, `data`, `id` and `retry`)
//! matches. [`EventStreamDoc`] writes that schema from the application's events (one `oneOf`
//! entry per event name, typed with [`schemars`] or given as JSON Schema) plus the events the hub
//! sends itself ([`sse-reset`](crate::wire::RESET_EVENT), [`sse-busy`](crate::wire::BUSY_EVENT),
//! [`sse-reauth`](crate::wire::REAUTH_EVENT), and [`sse-end`](crate::run::END_EVENT), which only a
//! run's stream carries), and the operation around it: the channel path
//! parameter, the `Last-Event-ID` header and the `lastEventId` query parameter.
//!
//! ```
//! use poem_sse_ext::openapi::EventStreamDoc;
//! use schemars::JsonSchema;
//! use serde::Serialize;
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Tick {
//!     symbol: String,
//!     price: f64,
//! }
//!
//! # fn main() -> Result<(), poem_sse_ext::EventError> {
//! let prices = EventStreamDoc::new().event::<Tick>("tick")?.text_event("note")?;
//! let document = serde_json::json!({
//!     "openapi": "3.2.0",
//!     "info": {"title": "Prices", "version": "1.0.0"},
//!     "paths": {"/events/{channel}": {"get": prices.operation("Live prices of one channel")}},
//! });
//! let item = &document["paths"]["/events/{channel}"]["get"]["responses"]["200"]["content"]
//!     ["text/event-stream"]["itemSchema"];
//! let names: Vec<&str> = item["oneOf"]
//!     .as_array()
//!     .into_iter()
//!     .flatten()
//!     .filter_map(|entry| entry["properties"]["event"]["const"].as_str())
//!     .collect();
//! assert_eq!(names, ["tick", "note", "sse-reset", "sse-busy", "sse-reauth", "sse-end"]);
//! # Ok(())
//! # }
//! ```
//!
//! A JSON event's `data` is described as a string whose content is JSON
//! (`contentMediaType: application/json`) matching the type's schema (`contentSchema`), as the
//! OpenAPI 3.2 specification's own server-sent events example does. Subschemas are inlined, so
//! the description is self-contained wherever it is put in a document (a recursive type keeps a
//! `$ref` to `#/$defs/...`: describe such data with [`EventStreamDoc::event_schema`]).
//!
//! [media-type]: https://spec.openapis.org/oas/v3.2.0.html#media-type-object

use serde_json::{json, Map, Value};

use crate::{
    hub::admission::RefusalReason,
    hub::registry::MAX_CHANNEL_LEN,
    run::{EndReason, END_EVENT},
    wire::{validate_event_name, EventError},
    wire::{ResetReason, BUSY_EVENT, REAUTH_EVENT, RESET_EVENT},
};

/// What a stream's events look like, for an OpenAPI 3.2 document. See [`crate::openapi`].
#[cfg_attr(docsrs, doc(cfg(feature = "openapi")))]
#[derive(Debug, Clone)]
#[must_use]
pub struct EventStreamDoc {
    /// `(name, data)`; the name `None` is the unnamed (`message`) event.
    events: Vec<(Option<String>, Value)>,
    other_events: bool,
    channel_param: String,
    status_refusals: bool,
}

impl Default for EventStreamDoc {
    fn default() -> Self {
        Self::new()
    }
}

impl EventStreamDoc {
    /// A stream with the hub's own events only; add the application's.
    pub fn new() -> Self {
        Self {
            events: Vec::new(),
            other_events: false,
            channel_param: "channel".to_owned(),
            status_refusals: false,
        }
    }

    /// Events named `name` whose data is `T` as JSON ([`crate::Event::json`]).
    ///
    /// # Errors
    /// An invalid or reserved name, as [`crate::Event::event`] refuses it.
    pub fn event<T: schemars::JsonSchema>(self, name: &str) -> Result<Self, EventError> {
        self.event_schema(name, schema_of::<T>())
    }

    /// Events named `name` whose data is JSON matching `schema` (a JSON Schema, draft 2020-12).
    ///
    /// # Errors
    /// An invalid or reserved name, as [`crate::Event::event`] refuses it.
    pub fn event_schema(mut self, name: &str, schema: Value) -> Result<Self, EventError> {
        validate_event_name(name)?;
        self.events.push((Some(name.to_owned()), json_data(schema)));
        Ok(self)
    }

    /// Events named `name` whose data is text ([`crate::Event::text`]).
    ///
    /// # Errors
    /// An invalid or reserved name, as [`crate::Event::event`] refuses it.
    pub fn text_event(mut self, name: &str) -> Result<Self, EventError> {
        validate_event_name(name)?;
        self.events.push((Some(name.to_owned()), text_data()));
        Ok(self)
    }

    /// Unnamed events (dispatched as `message`) whose data is `T` as JSON.
    pub fn message<T: schemars::JsonSchema>(self) -> Self {
        self.message_schema(schema_of::<T>())
    }

    /// Unnamed events (dispatched as `message`) whose data is JSON matching `schema`.
    pub fn message_schema(mut self, schema: Value) -> Self {
        self.events.push((None, json_data(schema)));
        self
    }

    /// Unnamed events (dispatched as `message`) whose data is text.
    pub fn text_message(mut self) -> Self {
        self.events.push((None, text_data()));
        self
    }

    /// Events of any other name may come too (a channel that relays what clients publish, say),
    /// with text data: the schema then accepts every name not listed.
    pub fn other_events(mut self) -> Self {
        self.other_events = true;
        self
    }

    /// The path parameter that names the channel (default `channel`), as set with
    /// [`SseEndpoint::channel_param`](crate::http::StreamOptions::param).
    pub fn channel_param(mut self, name: &str) -> Self {
        name.clone_into(&mut self.channel_param);
        self
    }

    /// Temporary refusals are answered `503` with `Retry-After`, as
    /// [`SseEndpoint::refuse_with_status`](crate::http::StreamOptions::refuse_with_status) does, not
    /// with an [`sse-busy`](crate::wire::BUSY_EVENT) stream.
    pub fn status_refusals(mut self) -> Self {
        self.status_refusals = true;
        self
    }

    /// The `itemSchema` of the `text/event-stream` media type: an event object (`event`, `data`,
    /// `id`, `retry`) matching exactly one entry of `oneOf`, one per event name.
    pub fn item_schema(&self) -> Value {
        let mut entries: Vec<Value> = self
            .events
            .iter()
            .map(|(name, data)| match name {
                Some(name) => named(name, data.clone()),
                None => unnamed(data.clone()),
            })
            .collect();
        entries.extend(reserved_events().map(|(name, data)| named(name, json_data(data))));
        if self.other_events {
            let mut known: Vec<Value> = vec![json!("message")];
            known.extend(
                self.events
                    .iter()
                    .filter_map(|(name, _)| name.clone().map(Value::from)),
            );
            known.extend(reserved_events().map(|(name, _)| json!(name)));
            entries.push(json!({
                "required": ["event"],
                "properties": {
                    "event": {"type": "string", "not": {"enum": known}},
                    "data": text_data(),
                },
            }));
        }
        json!({
            "type": "object",
            "required": ["data"],
            "properties": {
                "event": {"type": "string", "description": "The event type; `message` when absent."},
                "data": {"type": "string"},
                "id": {"type": "string", "description": "Where a reconnect resumes: send it back as `Last-Event-ID`."},
                "retry": {"type": "integer", "minimum": 0, "description": "The reconnection delay, in milliseconds."},
            },
            "oneOf": entries,
        })
    }

    /// The `text/event-stream` media type object: `{"itemSchema": ...}`.
    pub fn media_type(&self) -> Value {
        json!({ "itemSchema": self.item_schema() })
    }

    /// The resume parameters: the `Last-Event-ID` header (what a reconnecting `EventSource`
    /// sends) and the `lastEventId` query parameter (what a page sets on its first connect).
    pub fn resume_parameters() -> Value {
        json!([
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": false,
                "description": "The id of the last event the client has: the stream resumes exactly after it (or starts with `sse-reset` when it can not). Wins over `lastEventId`.",
                "schema": {"type": "string"},
            },
            {
                "name": "lastEventId",
                "in": "query",
                "required": false,
                "description": "As `Last-Event-ID`, for a first connect that can not set headers (a page passes the id its state was rendered at).",
                "schema": {"type": "string"},
            },
        ])
    }

    /// A complete `get` operation for a stream mounted at a path with the channel parameter
    /// (`/events/{channel}`): the parameters, the stream as `200`, and `404` for an invalid or
    /// unknown channel (and `503` with [`EventStreamDoc::status_refusals`]).
    pub fn operation(&self, summary: &str) -> Value {
        let mut parameters = vec![json!({
            "name": self.channel_param,
            "in": "path",
            "required": true,
            "description": "The channel.",
            "schema": {
                "type": "string",
                "pattern": format!("^[A-Za-z0-9_.-]{{1,{MAX_CHANNEL_LEN}}}$"),
                "not": {"enum": [".", ".."]},
            },
        })];
        if let Value::Array(resume) = Self::resume_parameters() {
            parameters.extend(resume);
        }
        let mut responses = Map::new();
        let stream = if self.status_refusals {
            "The stream: replay after the resume point, then live events."
        } else {
            "The stream: replay after the resume point, then live events. A temporary refusal \
             (a cap, the rate limit, shutdown) is also a `200` stream: a `retry:` hint and an \
             `sse-busy` event, then the end."
        };
        responses.insert(
            "200".into(),
            json!({
                "description": stream,
                "content": {"text/event-stream": self.media_type()},
            }),
        );
        responses.insert(
            "404".into(),
            plain_text("An invalid or unknown channel name."),
        );
        if self.status_refusals {
            responses.insert(
                "503".into(),
                json!({
                    "description": "A temporary refusal (a cap, the rate limit, shutdown); says why.",
                    "headers": {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }),
            );
        }
        json!({
            "summary": summary,
            "parameters": parameters,
            "responses": responses,
        })
    }
}

/// The hub's own events and the JSON Schema of their data: every reserved event a follower can
/// receive (`sse-start` opens a run's log, but followers resume after it).
fn reserved_events() -> impl Iterator<Item = (&'static str, Value)> {
    let resets = [
        ResetReason::Evicted,
        ResetReason::Epoch,
        ResetReason::Unknown,
    ]
    .map(ResetReason::as_str);
    let refusals = [
        RefusalReason::MaxStreams,
        RefusalReason::MaxStreamsPerChannel,
        RefusalReason::MaxStreamsPerClient,
        RefusalReason::MaxStreamsPerPrincipal,
        RefusalReason::RateLimited,
        RefusalReason::MaxChannels,
        RefusalReason::ShuttingDown,
        RefusalReason::Store,
    ]
    .map(RefusalReason::as_str);
    let ends = [EndReason::Done, EndReason::Cancelled, EndReason::Failed].map(EndReason::as_str);
    [
        (
            RESET_EVENT,
            json!({
                "description": "The resume point could not be honoured: refresh the state and continue after `resume_from` (also the event's id).",
                "type": "object",
                "required": ["reason", "resume_from"],
                "properties": {
                    "reason": {"enum": resets},
                    "resume_from": {"type": "string"},
                    "channel": {"type": "string", "description": "On a stream of several channels, the one that reset."},
                },
                "additionalProperties": false,
            }),
        ),
        (
            BUSY_EVENT,
            json!({
                "description": "The stream was refused for now; the client reconnects by itself after `retry_ms`.",
                "type": "object",
                "required": ["reason", "retry_ms"],
                "properties": {
                    "reason": {"enum": refusals},
                    "retry_ms": {"type": "integer", "minimum": 0},
                },
                "additionalProperties": false,
            }),
        ),
        (
            REAUTH_EVENT,
            json!({
                "description": "The authorization expired or was revoked: renew the credentials; the reconnect resumes after `resume_from`.",
                "type": "object",
                "required": ["resume_from"],
                "properties": {"resume_from": {"type": ["string", "null"]}},
                "additionalProperties": false,
            }),
        ),
        (
            END_EVENT,
            json!({
                "description": "Only on a run's stream (`run::Runs`): the run ended and the stream ends after this event; a reconnect with its id gets `204 No Content`.",
                "type": "object",
                "required": ["reason", "expires_at"],
                "properties": {
                    "reason": {"enum": ends},
                    "message": {"type": ["string", "null"]},
                    "expires_at": {"type": "integer", "minimum": 0, "description": "Until when the run stays readable, in milliseconds since the Unix epoch."},
                },
                "additionalProperties": false,
            }),
        ),
    ]
    .into_iter()
}

fn named(name: &str, data: Value) -> Value {
    json!({
        "required": ["event"],
        "properties": {"event": {"const": name}, "data": data},
    })
}

/// The unnamed event: no `event` field (or `message`, which is what a client dispatches).
fn unnamed(data: Value) -> Value {
    json!({
        "properties": {"event": {"const": "message"}, "data": data},
    })
}

fn json_data(schema: Value) -> Value {
    json!({
        "type": "string",
        "contentMediaType": "application/json",
        "contentSchema": schema,
    })
}

fn text_data() -> Value {
    json!({ "type": "string" })
}

fn plain_text(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"text/plain": {"schema": {"type": "string"}}},
    })
}

/// `T`'s JSON Schema (draft 2020-12), subschemas inlined, without `$schema`.
fn schema_of<T: schemars::JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Value::Object(object) = &mut schema {
        object.remove("$schema");
    }
    schema
}

#[cfg(test)]
mod tests;
