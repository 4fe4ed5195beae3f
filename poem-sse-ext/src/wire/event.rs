//! One server-sent event and its exact wire encoding.
//!
//! ```
//! use poem_sse_ext::Event;
//!
//! # fn main() -> Result<(), poem_sse_ext::EventError> {
//! let event = Event::text("line one\nline two").event("tick")?;
//! assert_eq!(&event.encode()[..], b"event: tick\ndata: line one\ndata: line two\n\n");
//! # Ok(())
//! # }
//! ```
//!
//! The encoding follows the WHATWG HTML standard, [§9.2.6 "Interpreting an event stream"][spec]:
//!
//! - data containing CR, LF or CRLF becomes one `data:` line per line, so a conforming
//!   `EventSource` joins them back with LF; a leading space in the data is kept;
//! - `event` and `id` values can not carry CR or LF, and an `id` can not carry NUL: such values are
//!   rejected with an [`EventError`] when the event is built, never written;
//! - `Event::text("")` is dispatched by browsers as a message with empty data, while an event with
//!   no data at all (only a comment, an id or a retry) is not dispatched.
//!
//! [spec]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

use std::{fmt, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::wire::{lines, put_field, RESERVED_PREFIX};

/// Longest event name accepted, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 256;

/// Longest event id accepted, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why an [`Event`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event name contains CR or LF, which would end the `event:` line early.
    #[error("event name must not contain CR or LF")]
    NameHasLineBreak,
    /// The event name is empty; leave it unset for the default type `message`.
    #[error("event name must not be empty (leave it unset for the default `message` type)")]
    EmptyName,
    /// The event name is longer than [`MAX_EVENT_NAME_LEN`] bytes.
    #[error("event name is {0} bytes long, the limit is {MAX_EVENT_NAME_LEN}")]
    NameTooLong(usize),
    /// The event name is reserved for the hub's own signals (the prefix `sse-`).
    #[error("event name `{0}` is reserved: names starting with `sse-` are the hub's own signals")]
    ReservedName(String),
    /// The event name is one that `EventSource` uses for its own events (`error`, `open`): a
    /// browser would dispatch it to the page's connection-error or open listeners.
    #[error("event name `{0}` collides with EventSource's own `{0}` event, which pages treat as a connection state change: choose another name")]
    ClashesWithEventSource(String),
    /// The id contains CR, LF or NUL; browsers would split the line or ignore the id.
    #[error("event id must not contain CR, LF or NUL")]
    InvalidId,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("event id is {0} bytes long, the limit is {MAX_ID_LEN}")]
    IdTooLong(usize),
    /// The shutdown event carries an id; it is sent outside any channel's log, and a client that
    /// resumed from it would skip events.
    #[error("the shutdown event can not carry an id: remove the id `{0}`")]
    FarewellWithId(String),
    /// The value given to [`Event::json`] could not be serialized.
    #[error("event data could not be serialized as JSON: {0}")]
    Json(String),
}

/// One server-sent event: optional data, event name, id, retry hint and comment.
///
/// Build it with [`Event::text`], [`Event::json`] or [`Event::comment`], add fields with the
/// builder methods, then either publish it through a [`crate::Hub`] (which gives it an id) or yield
/// it from your own stream through [`crate::http::SseResponse`].
#[derive(Clone, Default, PartialEq, Eq)]
#[must_use = "an event does nothing until it is published or streamed"]
pub struct Event {
    data: Option<String>,
    name: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
}

impl Event {
    /// An event whose `data` is `data`, sent as it is.
    ///
    /// Any string is accepted: line breaks (CR, LF, CRLF) are written as several `data:` lines and
    /// reach the browser's `event.data` as LF (as the standard has every `EventSource` do); all
    /// other characters arrive exactly. An empty string is dispatched as an empty message.
    pub fn text(data: impl Into<String>) -> Self {
        Self {
            data: Some(data.into()),
            ..Self::default()
        }
    }

    /// An event whose `data` is `value` serialized as JSON.
    ///
    /// # Errors
    /// [`EventError::Json`] when `value` can not be serialized (a map with non-string keys, say).
    pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<Self, EventError> {
        serde_json::to_string(value)
            .map(Self::text)
            .map_err(|err| EventError::Json(err.to_string()))
    }

    /// An event with only a comment (`:` lines), which browsers do not dispatch.
    ///
    /// Line breaks in `text` become several comment lines, so a comment can never inject a field.
    pub fn comment(text: impl Into<String>) -> Self {
        Self {
            comment: Some(text.into()),
            ..Self::default()
        }
    }

    /// An event named `name`, one of the hub's reserved names (`sse-...`), which
    /// [`Event::event`] refuses: for the signals the crate stores in a log itself (a run's
    /// start and end).
    pub(crate) fn reserved(name: &'static str, data: String) -> Self {
        debug_assert!(name.starts_with(RESERVED_PREFIX), "{name} is not reserved");
        Self {
            data: Some(data),
            name: Some(name.to_owned()),
            ..Self::default()
        }
    }

    /// Sets the event name (the `event:` field); `EventSource` dispatches it to listeners of
    /// that type instead of `message`.
    ///
    /// # Errors
    /// The name must be non-empty, at most [`MAX_EVENT_NAME_LEN`] bytes, contain no CR or LF, and
    /// neither start with `sse-` (the hub's own signals, such as
    /// [`RESET_EVENT`](crate::wire::RESET_EVENT)) nor be `error` or `open` (which `EventSource`
    /// dispatches to a page's connection listeners).
    pub fn event(mut self, name: impl Into<String>) -> Result<Self, EventError> {
        let name = name.into();
        validate_event_name(&name)?;
        self.name = Some(name);
        Ok(self)
    }

    /// Sets the event id (the `id:` field), which the browser sends back as `Last-Event-ID`.
    ///
    /// Only for events you stream yourself with [`crate::http::SseResponse`]: a [`crate::Hub`] assigns
    /// ids itself and refuses events that carry one.
    ///
    /// # Errors
    /// [`EventError::InvalidId`] for CR, LF or NUL, [`EventError::IdTooLong`] past
    /// [`MAX_ID_LEN`] bytes.
    pub fn id(mut self, id: impl Into<String>) -> Result<Self, EventError> {
        let id = id.into();
        validate_id(&id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the reconnection delay hint (the `retry:` field, in whole milliseconds).
    pub fn retry(mut self, delay: Duration) -> Self {
        self.retry = Some(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets the event's comment (`:` lines, ignored by browsers), replacing any comment it had.
    pub fn with_comment(mut self, text: impl Into<String>) -> Self {
        self.comment = Some(text.into());
        self
    }

    /// The data of the event, if any.
    pub fn data(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The event name, if any.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The event id, if any.
    pub fn event_id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Encodes the event into its wire frame, ending with the blank line that dispatches it.
    pub fn encode(&self) -> Bytes {
        self.encode_with_id(self.id.as_deref())
    }

    /// Encodes the event with `id` in place of its own id. `id` must already be valid (ids made by
    /// a store are).
    pub(crate) fn encode_with_id(&self, id: Option<&str>) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len_hint(id));
        if let Some(id) = id {
            put_field(&mut buf, "id", id);
        }
        if let Some(comment) = &self.comment {
            for line in lines(comment) {
                put_field(&mut buf, "", line);
            }
        }
        if let Some(name) = &self.name {
            put_field(&mut buf, "event", name);
        }
        if let Some(retry) = self.retry {
            put_field(&mut buf, "retry", &retry.to_string());
        }
        if let Some(data) = &self.data {
            for line in lines(data) {
                put_field(&mut buf, "data", line);
            }
        }
        buf.put_u8(b'\n');
        buf.freeze()
    }

    fn encoded_len_hint(&self, id: Option<&str>) -> usize {
        let field = |v: Option<&str>| v.map_or(0, |v| v.len() + 8);
        field(self.data.as_deref())
            + field(self.name.as_deref())
            + field(id)
            + field(self.comment.as_deref())
            + self.retry.map_or(0, |_| 28)
            + 1
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event", &self.name)
            .field("id", &self.id)
            .field("retry", &self.retry)
            .field("data", &self.data)
            .finish_non_exhaustive()
    }
}

/// Checks an event name without building an event (for validating input early).
///
/// # Errors
/// See [`Event::event`].
pub fn validate_event_name(name: &str) -> Result<(), EventError> {
    if name.is_empty() {
        Err(EventError::EmptyName)
    } else if name.len() > MAX_EVENT_NAME_LEN {
        Err(EventError::NameTooLong(name.len()))
    } else if name.contains(['\r', '\n']) {
        Err(EventError::NameHasLineBreak)
    } else if name.starts_with(RESERVED_PREFIX) {
        Err(EventError::ReservedName(name.to_owned()))
    } else if matches!(name, "error" | "open") {
        Err(EventError::ClashesWithEventSource(name.to_owned()))
    } else {
        Ok(())
    }
}

fn validate_id(id: &str) -> Result<(), EventError> {
    if id.len() > MAX_ID_LEN {
        Err(EventError::IdTooLong(id.len()))
    } else if id.contains(['\r', '\n', '\0']) {
        Err(EventError::InvalidId)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: &Event) -> String {
        String::from_utf8(event.encode().to_vec()).unwrap_or_default()
    }

    #[test]
    fn line_breaks_split_into_data_lines() {
        let event = Event::text("a\r\nb\rc\nd");
        assert_eq!(wire(&event), "data: a\ndata: b\ndata: c\ndata: d\n\n");
    }

    #[test]
    fn trailing_newline_and_empty_data_survive() {
        assert_eq!(wire(&Event::text("a\n")), "data: a\ndata:\n\n");
        assert_eq!(wire(&Event::text("")), "data:\n\n");
    }

    #[test]
    fn leading_space_is_kept() {
        assert_eq!(wire(&Event::text(" x")), "data:  x\n\n");
    }

    #[test]
    fn names_and_ids_with_line_breaks_are_rejected() {
        assert_eq!(
            Event::text("x").event("a\nb"),
            Err(EventError::NameHasLineBreak)
        );
        assert_eq!(
            Event::text("x").event("a\rdata: forged"),
            Err(EventError::NameHasLineBreak)
        );
        assert_eq!(Event::text("x").id("1\n2"), Err(EventError::InvalidId));
        assert_eq!(Event::text("x").id("1\x002"), Err(EventError::InvalidId));
        assert_eq!(Event::text("x").event(""), Err(EventError::EmptyName));
        assert_eq!(
            Event::text("x").event(crate::wire::RESET_EVENT),
            Err(EventError::ReservedName(crate::wire::RESET_EVENT.into()))
        );
        assert_eq!(
            Event::text("x").event("sse-busy"),
            Err(EventError::ReservedName("sse-busy".into()))
        );
        for clash in ["error", "open"] {
            assert_eq!(
                Event::text("x").event(clash),
                Err(EventError::ClashesWithEventSource(clash.into()))
            );
        }
        assert!(Event::text("x").event("errors").is_ok());
        assert!(Event::text("x").event("message").is_ok());
        assert_eq!(
            Event::text("x").event("n".repeat(MAX_EVENT_NAME_LEN + 1)),
            Err(EventError::NameTooLong(MAX_EVENT_NAME_LEN + 1))
        );
    }

    #[test]
    fn comments_can_not_inject_fields() {
        let event = Event::comment("hi\ndata: forged");
        assert_eq!(wire(&event), ": hi\n: data: forged\n\n");
    }

    #[test]
    fn all_fields_in_order() {
        let event = Event::json(&serde_json::json!({"a": 1}))
            .and_then(|e| e.event("tick"))
            .and_then(|e| e.id("7"))
            .map(|e| e.retry(Duration::from_millis(1500)));
        assert_eq!(
            event.map(|e| wire(&e)),
            Ok("id: 7\nevent: tick\nretry: 1500\ndata: {\"a\":1}\n\n".to_owned())
        );
    }

    #[test]
    fn stored_frames_decode_to_what_an_event_source_dispatches() {
        let event = Event::text(" two\r\nlines")
            .with_comment("note")
            .event("tick")
            .unwrap_or_else(|err| panic!("{err}"));
        let frame = crate::wire::frame_with_id("e-3", &event.encode());
        assert_eq!(
            crate::wire::StoredEvent::decode(&frame),
            Some(crate::wire::StoredEvent {
                id: crate::wire::EventId::new("e-3"),
                event: Some("tick".into()),
                data: " two\nlines".into(),
            })
        );
        assert_eq!(crate::wire::StoredEvent::decode(b"data: no id\n\n"), None);
    }
}
