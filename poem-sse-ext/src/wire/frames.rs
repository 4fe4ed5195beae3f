//! The frames a stream sends besides application events, and the field encoder they share.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Reset, BUSY_EVENT, REAUTH_EVENT, RESET_EVENT};

/// The frame that sets the client's reconnection delay, sent first on every stream.
pub(crate) fn retry_frame(delay: Duration) -> Bytes {
    // Every stream opens with one: the digits go straight into the frame, no `String` between.
    let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
    let mut buf = BytesMut::with_capacity(32);
    put_field(&mut buf, "retry", itoa::Buffer::new().format(millis));
    buf.put_u8(b'\n');
    buf.freeze()
}

/// The `retry:` frames of delays spread evenly over `[base, base + spread]` (at most
/// [`RetryFrames::STEPS`] + 1 of them, a millisecond apart at least), encoded once into one
/// buffer: a stream's opening hint is a slice of it, a reference count where encoding it took an
/// allocation per stream.
pub(crate) struct RetryFrames {
    frames: Bytes,
    /// Where each frame ends in `frames` (each starts where the one before ends).
    ends: Box<[usize]>,
}

impl RetryFrames {
    /// Steps the spread is cut into: enough that a crowd of clients does not reconnect in
    /// lockstep (for a spread of 3 s, one value every 12 ms).
    pub(crate) const STEPS: u64 = 256;

    pub(crate) fn new(base: Duration, spread: Duration) -> Self {
        let spread_ms = u64::try_from(spread.as_millis()).unwrap_or(u64::MAX);
        let steps = spread_ms.min(Self::STEPS);
        let mut buf = BytesMut::new();
        let mut ends = Vec::with_capacity(steps as usize + 1);
        for step in 0..=steps {
            // Even steps, the remainder spread over them: the last one is `spread` exactly.
            let offset = spread_ms.checked_div(steps).map_or(0, |each| {
                each * step + (spread_ms - each * steps) * step / steps
            });
            buf.put_slice(&retry_frame(base + Duration::from_millis(offset)));
            ends.push(buf.len());
        }
        Self {
            frames: buf.freeze(),
            ends: ends.into(),
        }
    }

    /// One of the frames, at random.
    pub(crate) fn pick(&self) -> Bytes {
        let i = rand::random_range(0..self.ends.len());
        let start = i.checked_sub(1).map_or(0, |before| self.ends[before]);
        self.frames.slice(start..self.ends[i])
    }
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
    use crate::wire::{EventId, ResetReason};

    #[test]
    fn retry_frame_is_digits() {
        assert_eq!(
            &retry_frame(Duration::from_millis(3250))[..],
            b"retry: 3250\n\n"
        );
    }

    #[test]
    fn retry_frames_cover_their_spread_evenly() {
        let frames = RetryFrames::new(Duration::from_secs(3), Duration::from_secs(3));
        let mut seen: Vec<u64> = (0..5_000)
            .map(|_| {
                let frame = frames.pick();
                let text = std::str::from_utf8(&frame).unwrap_or_default();
                assert!(
                    text.starts_with("retry: ") && text.ends_with("\n\n"),
                    "{text:?}"
                );
                text["retry: ".len()..text.len() - 2]
                    .parse()
                    .unwrap_or_default()
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.first(), Some(&3_000));
        assert_eq!(seen.last(), Some(&6_000));
        assert!(seen.len() > 200, "{} distinct hints", seen.len());
        assert!(seen.windows(2).all(|w| w[1] - w[0] <= 3_000 / 256 + 1));

        let exact = RetryFrames::new(Duration::from_millis(500), Duration::ZERO);
        assert_eq!(&exact.pick()[..], b"retry: 500\n\n");
        let few = RetryFrames::new(Duration::from_millis(10), Duration::from_millis(3));
        assert_eq!(
            few.ends.len(),
            4,
            "one frame per millisecond of a short spread"
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
