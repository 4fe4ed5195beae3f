//! The ids a store gives events, the reset signal, and events read back from their frames.

use std::{fmt, sync::Arc};

/// The id a store gave an event: an opaque string to clients, ordered inside its store.
///
/// ```
/// use poem_sse_ext::EventId;
///
/// let id = EventId::new("1a2b3c4d-42");
/// assert_eq!(id.as_str(), "1a2b3c4d-42");
/// assert_eq!(id.to_string(), "1a2b3c4d-42");
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Arc<str>);

impl EventId {
    /// Wraps an id made by a store.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self(id.into())
    }

    /// The id as sent in the `id:` field.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl serde::Serialize for EventId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Why a stream could not resume exactly where the client asked; sent as the reset signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetReason {
    /// Events after the resume point were evicted (by count, bytes or age) before the client read
    /// them: the client missed events and must refresh its state.
    Evicted,
    /// The resume point comes from another epoch of the store (the process restarted with the
    /// in-memory store, or the Redis stream was recreated).
    Epoch,
    /// The resume point is not an id this store issued (malformed, too long, or ahead of the log).
    Unknown,
}

impl ResetReason {
    /// The reason as written in the reset signal: `evicted`, `epoch` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Evicted => "evicted",
            Self::Epoch => "epoch",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ResetReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The explicit signal that replaces a silent gap.
///
/// On the wire it is an event of type [`RESET_EVENT`](super::RESET_EVENT) (`sse-reset`) whose `id` is `resume_from`
/// and whose data is `{"reason": "<reason>", "resume_from": "<id>"}`. The stream goes on live from
/// `resume_from`; the client should refresh its state (which the server renders together with the
/// id it corresponds to) and continue from there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reset {
    /// Why the resume point could not be honoured.
    pub reason: ResetReason,
    /// The id the stream continues after: the channel's head when the signal was made.
    pub resume_from: EventId,
}

/// An event read back from its wire frame (see [`crate::Hub::recent`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredEvent {
    /// The id the store gave it.
    pub id: EventId,
    /// The event name, if it has one (`message` otherwise).
    pub event: Option<String>,
    /// The data, its lines joined with LF as an `EventSource` joins them.
    pub data: String,
}

impl StoredEvent {
    /// Reads a frame this crate encoded: `id:`, `event:` and `data:` lines; comments and `retry:`
    /// are skipped. `None` for a frame without an id.
    pub(crate) fn decode(frame: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(frame).ok()?;
        let mut id = None;
        let mut event = None;
        let mut data: Option<String> = None;
        for line in text.split('\n').take_while(|line| !line.is_empty()) {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => id = Some(EventId::new(value)),
                "event" => event = Some(value.to_owned()),
                "data" => match &mut data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        Some(Self {
            id: id?,
            event,
            data: data.unwrap_or_default(),
        })
    }
}

/// What [`Hub::publish_once`](crate::Hub::publish_once) (and a store's
/// [`append_once`](crate::store::StoreChannel::append_once)) did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Published {
    /// The event's id: the new one, or the first one published under the key.
    pub id: EventId,
    /// Whether the key had been used: nothing was stored this time.
    pub duplicate: bool,
}

/// A channel's newest retained events and the head id they lead up to, from
/// [`Hub::recent`](crate::Hub::recent).
///
/// Render a page's state from `events` and let its stream resume after `head`: nothing published
/// in between is lost or shown twice, whichever instance rendered the page.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recent {
    /// The id a stream resumed from continues exactly after the last of `events` (the id meaning
    /// "the beginning" when there are none).
    pub head: EventId,
    /// Oldest first.
    pub events: Vec<StoredEvent>,
}
