//! The two events a run stores besides its own: where it starts, and how it ended.
//!
//! | event | when | on the wire |
//! | --- | --- | --- |
//! | [`START_EVENT`] | first in the run's log, when the run is created; followers resume after it, so no follower receives it | `event: sse-start`, `data: {}` |
//! | [`END_EVENT`] | last, when the run ends; a follower's stream ends after it | `event: sse-end`, `data: {"reason": …, "message": …, "expires_at": …}` |
//!
//! Both are in the store, so every instance sharing it can tell that a run exists, whether it
//! ended, why, and until when it stays readable.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{
    wire::Event,
    wire::{EventId, StoredEvent},
};

/// The event that opens a run's log. Followers start after it; none receives it.
pub const START_EVENT: &str = "sse-start";

/// The event that ends a run: `data: {"reason": "done" | "cancelled" | "failed", "message":
/// "..." | null, "expires_at": <ms since the Unix epoch>}` (see [`RunEnd`]). A follower's stream
/// ends after it; a follower that reconnects with its id gets `204 No Content`, which closes a
/// native `EventSource` for good.
pub const END_EVENT: &str = "sse-end";

/// Longest [`RunEnd::message`], in bytes; a longer one is cut at a character boundary.
pub const MAX_END_MESSAGE_LEN: usize = 1_024;

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndReason {
    /// The producer finished.
    Done,
    /// Someone asked to stop it ([`Runs::cancel`](crate::run::Runs::cancel)).
    Cancelled,
    /// The producer failed, gave its handle up without finishing, or the run passed one of its
    /// bounds; the message says which.
    Failed,
}

impl EndReason {
    /// The reason as written in [`END_EVENT`]: `done`, `cancelled` or `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Cancelled => "cancelled",
            Self::Failed => "failed",
        }
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a run ended: the data of its [`END_EVENT`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Why it ended.
    pub reason: EndReason,
    /// What happened, for people (the failure, the bound that was passed); at most
    /// [`MAX_END_MESSAGE_LEN`] bytes.
    pub message: Option<String>,
    /// Until when the run stays readable, in milliseconds since the Unix epoch; after it, its
    /// routes answer `404`.
    pub expires_at: u64,
}

impl RunEnd {
    /// An end for `reason`, readable for `ttl` from now.
    pub(crate) fn new(reason: EndReason, message: Option<String>, ttl: Duration) -> Self {
        let expires = SystemTime::now() + ttl;
        Self {
            reason,
            message: message.map(|m| cut(m, MAX_END_MESSAGE_LEN)),
            expires_at: millis_since_epoch(expires),
        }
    }

    /// Whether the run is past its time to live.
    pub fn is_expired(&self) -> bool {
        millis_since_epoch(SystemTime::now()) >= self.expires_at
    }

    /// The event stored in the run's log.
    pub(crate) fn event(&self) -> Event {
        // Serializing a struct of strings and numbers can not fail.
        let data = serde_json::to_string(self).unwrap_or_default();
        Event::reserved(END_EVENT, data)
    }

    /// The end event's id and data, from `frames` that end with the end event's frame (as
    /// [`end_of_terminal_frame`] cuts a chunk).
    pub(crate) fn from_terminal_frame(frames: &[u8]) -> Option<(EventId, Self)> {
        let body = frames.strip_suffix(b"\n\n")?;
        let start = body
            .windows(2)
            .rposition(|pair| pair == b"\n\n")
            .map_or(0, |at| at + 2);
        let event = StoredEvent::decode(&frames[start..])?;
        Self::decode(&event).map(|end| (event.id, end))
    }

    /// The end that `event` records, if it is a run's end event.
    pub(crate) fn decode(event: &StoredEvent) -> Option<Self> {
        if event.event.as_deref() != Some(END_EVENT) {
            return None;
        }
        serde_json::from_str(&event.data).ok()
    }
}

/// The event that opens a run's log.
pub(crate) fn start_event() -> Event {
    Event::reserved(START_EVENT, "{}".to_owned())
}

/// Whether `event` is a run's start event.
pub(crate) fn is_start(event: &StoredEvent) -> bool {
    event.event.as_deref() == Some(START_EVENT)
}

/// Where the end event's frame in `chunk` ends (the index after its blank line), if `chunk`
/// holds one. A chunk is whole frames; only a hub's own signal can carry the line
/// `event: sse-end` (applications can not use the name, data lines start with `data:`).
pub(crate) fn end_of_terminal_frame(chunk: &[u8]) -> Option<usize> {
    const LINE: &[u8] = b"\nevent: sse-end\n";
    let at = chunk
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
        .find(|&i| chunk[i..].starts_with(LINE))?;
    // The frame ends at the first blank line after its event line.
    let rest = at + LINE.len() - 1;
    chunk[rest..]
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|end| rest + end + 2)
}

fn millis_since_epoch(at: SystemTime) -> u64 {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::frame_with_id;

    fn stored(event: &Event, id: &str) -> Option<StoredEvent> {
        StoredEvent::decode(&frame_with_id(id, &event.encode()))
    }

    #[test]
    fn the_end_event_round_trips_through_the_log() {
        let end = RunEnd::new(
            EndReason::Failed,
            Some("line\nbreak".into()),
            Duration::from_secs(60),
        );
        let event = stored(&end.event(), "e-9");
        assert_eq!(event.as_ref().and_then(RunEnd::decode), Some(end.clone()));
        assert_eq!(
            event.map(|e| e.id),
            Some(EventId::new("e-9")),
            "the end has an id to resume from"
        );
        assert!(!end.is_expired());
        assert!(RunEnd::new(EndReason::Done, None, Duration::ZERO).is_expired());
        let start = stored(&start_event(), "e-1");
        assert!(start.as_ref().is_some_and(is_start));
        assert_eq!(start.as_ref().and_then(RunEnd::decode), None);
    }

    #[test]
    fn messages_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_END_MESSAGE_LEN);
        let end = RunEnd::new(EndReason::Failed, Some(long), Duration::ZERO);
        let message = end.message.unwrap_or_default();
        assert!(message.len() <= MAX_END_MESSAGE_LEN && message.len() >= MAX_END_MESSAGE_LEN - 1);
    }

    #[test]
    fn the_terminal_frame_is_found_only_where_it_is() {
        let end = frame_with_id(
            "e-3",
            &RunEnd::new(EndReason::Done, None, Duration::ZERO)
                .event()
                .encode(),
        );
        let token = frame_with_id("e-2", &Event::text("event: sse-end").encode());
        let mut chunk = token.to_vec();
        assert_eq!(end_of_terminal_frame(&chunk), None, "data can not fake it");
        chunk.extend_from_slice(&end);
        assert_eq!(end_of_terminal_frame(&chunk), Some(chunk.len()));
        let (id, found) = RunEnd::from_terminal_frame(&chunk).unwrap_or_else(|| panic!("an end"));
        assert_eq!((id.as_str(), found.reason), ("e-3", EndReason::Done));
        let whole = chunk.len();
        chunk.extend_from_slice(b"id: e-4\ndata: stray\n\n");
        assert_eq!(end_of_terminal_frame(&chunk), Some(whole));
    }
}
