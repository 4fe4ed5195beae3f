//! The wire below [`Event`](crate::Event): event ids, the reset signal, and the frames a stream
//! sends besides application events.
//!
//! Every frame follows the WHATWG HTML standard, [§9.2.6 "Interpreting an event stream"][spec].
//! A hub sends, besides the events published on it:
//!
//! | frame | when | on the wire |
//! | --- | --- | --- |
//! | retry hint | first on every stream | `retry: <ms>` |
//! | end | last before a stream ends on purpose (lifetime, reauth): no event, but the client's last id | `id: <where the stream is>` (one channel), `retry: <ms>` |
//! | [`Reset`] | the resume point can not be honoured | `id: <head>`, `event: sse-reset`, `data: {"reason": …, "resume_from": …}` |
//! | heartbeat | after each idle interval | `:` (a comment; browsers ignore it) |
//! | [`REAUTH_EVENT`] | the authorization expired or was revoked; then the end frame | `event: sse-reauth`, `data: {"resume_from": …}` |
//! | [`BUSY_EVENT`] | a soft refusal: after the retry hint, and the end | `event: sse-busy`, `data: {"reason": …, "retry_ms": …}` |
//!
//! [spec]: https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation

use std::{fmt, sync::Arc, time::Duration};

use bytes::{BufMut, Bytes, BytesMut};

/// The event name of the reset signal ([`Reset`]); applications can not publish it.
pub const RESET_EVENT: &str = "sse-reset";

/// The event a stream sends before it ends because its authorization expired or was revoked:
/// `data: {"resume_from": "<id>"}`. The page should renew its credentials (a session refresh, say)
/// and let the `EventSource` reconnect, which resumes exactly after `resume_from`.
pub const REAUTH_EVENT: &str = "sse-reauth";

/// The event of a soft refusal: `data: {"reason": "...", "retry_ms": N}`; the response then ends,
/// and a native `EventSource` reconnects by itself after `retry_ms`.
pub const BUSY_EVENT: &str = "sse-busy";

/// Event names starting with this are the hub's own signals; applications can not publish them.
pub const RESERVED_PREFIX: &str = "sse-";

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
/// On the wire it is an event of type [`RESET_EVENT`] (`sse-reset`) whose `id` is `resume_from`
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

/// The frame that sets the client's reconnection delay, sent first on every stream.
pub(crate) fn retry_frame(delay: Duration) -> Bytes {
    // Every stream opens with one: the digits go straight into the frame, no `String` between.
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let mut buf = BytesMut::with_capacity(32);
    put_field(&mut buf, "retry", itoa::Buffer::new().format(millis));
    buf.put_u8(b'\n');
    buf.freeze()
}

/// `id: <id>\n` followed by `body`, a frame encoded without an id: how stores stamp the id they
/// assign onto an event encoded once, outside their lock.
pub(crate) fn frame_with_id(id: &str, body: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(id.len() + 5 + body.len());
    put_field(&mut buf, "id", id);
    buf.put_slice(body);
    buf.freeze()
}

/// The reset signal: an `sse-reset` event whose id is where the stream continues.
pub(crate) fn reset_frame(reset: &Reset) -> Bytes {
    let data = serde_json::json!({
        "reason": reset.reason.as_str(),
        "resume_from": reset.resume_from.as_str(),
    })
    .to_string();
    let mut buf = BytesMut::with_capacity(data.len() + reset.resume_from.as_str().len() + 32);
    put_field(&mut buf, "id", reset.resume_from.as_str());
    put_field(&mut buf, "event", RESET_EVENT);
    put_field(&mut buf, "data", &data);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// Writes a stored frame of `channel` as a stream of several channels sends it: its `id:` line
/// replaced by the set's `cursor`, and its type prefixed by the channel (`<channel>` for an
/// unnamed event, `<channel>:<name>` otherwise), so that a page tells channels apart with
/// `addEventListener` alone. Returns the event's own id (what the channel resumes from).
pub(crate) fn put_set_frame<'f>(
    out: &mut BytesMut,
    frame: &'f [u8],
    channel: &str,
    cursor: &str,
) -> Option<&'f str> {
    let text = std::str::from_utf8(frame).ok()?;
    let mut lines = text.lines();
    let id = lines.next()?.strip_prefix("id: ")?;
    let name = text.lines().find_map(|line| line.strip_prefix("event: "));
    put_field(out, "id", cursor);
    match name {
        Some(name) => put_field(out, "event", &format!("{channel}:{name}")),
        None => put_field(out, "event", channel),
    }
    for line in lines.filter(|line| !line.starts_with("event:") && !line.is_empty()) {
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    Some(id)
}

/// The reset signal of one channel of a set: `sse-reset` with the channel's name, whose id is the
/// set's cursor after the channel's jump to its head.
pub(crate) fn put_set_reset_frame(out: &mut BytesMut, channel: &str, reset: &Reset, cursor: &str) {
    let data = serde_json::json!({
        "channel": channel,
        "reason": reset.reason.as_str(),
        "resume_from": cursor,
    })
    .to_string();
    put_field(out, "id", cursor);
    put_field(out, "event", RESET_EVENT);
    put_field(out, "data", &data);
    out.put_u8(b'\n');
}

/// The last frames of a stream whose authorization ended: [`REAUTH_EVENT`] naming where to
/// resume, then the [`end_frame`] (`last_id`, the retry hint).
pub(crate) fn reauth_frame(
    resume_from: Option<&str>,
    last_id: Option<&str>,
    retry: Duration,
) -> Bytes {
    let data = serde_json::json!({ "resume_from": resume_from }).to_string();
    let mut buf = BytesMut::with_capacity(data.len() + 64);
    put_field(&mut buf, "event", REAUTH_EVENT);
    put_field(&mut buf, "data", &data);
    buf.put_u8(b'\n');
    buf.extend_from_slice(&end_frame(last_id, retry));
    buf.freeze()
}

/// The last frame of a stream that ends on purpose (its lifetime, a reauth): `id:` with where
/// the client resumes, when given, and the retry hint, in one block without data.
///
/// A block without data dispatches no event, but its id still becomes the client's last event
/// id (WHATWG "dispatch the event", step 1). So a browser whose stream ended before any event
/// reached it (it has no id of its own to send) resumes where the stream was rather than at the
/// head of the channel, and nothing published before its reconnect is lost.
pub(crate) fn end_frame(last_id: Option<&str>, retry: Duration) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    // An id with a line break or NUL can not be sent (the client would drop or split it); ids
    // the hub makes never have one.
    if let Some(id) = last_id.filter(|id| !id.contains(['\n', '\r', '\0'])) {
        put_field(&mut buf, "id", id);
    }
    buf.extend_from_slice(&retry_frame(retry));
    buf.freeze()
}

/// A soft refusal: the retry hint first (so that it applies), then [`BUSY_EVENT`] saying why.
pub(crate) fn busy_frame(reason: &str, retry: Duration) -> Bytes {
    let retry_ms = u64::try_from(retry.as_millis()).unwrap_or(u64::MAX);
    let data = serde_json::json!({ "reason": reason, "retry_ms": retry_ms }).to_string();
    let mut buf = BytesMut::with_capacity(data.len() + 64);
    buf.extend_from_slice(&retry_frame(retry));
    put_field(&mut buf, "event", BUSY_EVENT);
    put_field(&mut buf, "data", &data);
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The heartbeat: an empty comment line. Browsers ignore it; proxies and TCP see traffic.
pub(crate) const HEARTBEAT_FRAME: &[u8] = b":\n\n";

/// Splits on CR, LF and CRLF, as the parser does; `"a\n"` gives `["a", ""]`, `""` gives `[""]`.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Writes `name: value\n`; an empty value is written as `name:\n`. The space after the colon is
/// always written when there is a value, so a value starting with a space keeps it (the parser
/// strips exactly one).
pub(crate) fn put_field(buf: &mut BytesMut, name: &str, value: &str) {
    buf.put_slice(name.as_bytes());
    buf.put_u8(b':');
    if !value.is_empty() {
        buf.put_u8(b' ');
        buf.put_slice(value.as_bytes());
    }
    buf.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_frame_is_digits() {
        assert_eq!(
            &retry_frame(Duration::from_millis(3250))[..],
            b"retry: 3250\n\n"
        );
    }

    #[test]
    fn an_end_frame_sets_the_last_id_without_dispatching_an_event() {
        let retry = Duration::from_millis(500);
        assert_eq!(
            &end_frame(Some("e-7"), retry)[..],
            b"id: e-7\nretry: 500\n\n"
        );
        assert_eq!(&end_frame(None, retry)[..], b"retry: 500\n\n");
        assert_eq!(&end_frame(Some("a\nb"), retry)[..], b"retry: 500\n\n");
        let mut parser = testkit::parser::Parser::new();
        let events = parser.feed(&end_frame(Some("e-7"), retry));
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(parser.last_event_id(), "e-7");
    }

    #[test]
    fn reset_frame_names_reason_and_resume_point() {
        let frame = reset_frame(&Reset {
            reason: ResetReason::Epoch,
            resume_from: EventId::new("e-7"),
        });
        assert_eq!(
            &frame[..],
            &b"id: e-7\nevent: sse-reset\ndata: {\"reason\":\"epoch\",\"resume_from\":\"e-7\"}\n\n"
                [..]
        );
    }
}
