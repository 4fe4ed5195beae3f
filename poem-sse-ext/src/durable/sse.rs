//! `live=sse`: the stream's data as server-sent events, one follower reading from its own
//! position in the shared log.
//!
//! | Event | When |
//! |---|---|
//! | `event: data` | each chunk of data: text as it is (`text/*`), a JSON array (JSON), base64 otherwise |
//! | `event: control` | after every `data` event, and once at the start when there is nothing to send: `streamNextOffset`, `streamCursor` (while open), `upToDate`, `streamClosed` |
//! | `:` comment | after each idle heartbeat interval |
//!
//! A frame is encoded once per position: followers at the same position (all the live ones,
//! usually) send the frame the first of them encoded, so an append costs one encoding however
//! many follow it.
//!
//! The response ends after the control event that says `streamClosed`, when the stream is
//! deleted, at shutdown, and after the configured lifetime (the client resumes from the last
//! `streamNextOffset`). `data:` lines carry no space after the colon unless the line itself
//! starts with one (which the space then protects); CR, LF and CRLF in text split lines, so no
//! payload can forge an event.

use std::{pin::pin, sync::Arc};

use base64::Engine as _;
use bytes::{BufMut, Bytes, BytesMut};
use poem::{http::header, Body, Response};
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{
    backend::{Handle, Seen},
    log::Chunk,
    offset::Offset,
    stream::FrameKey,
    time, Shared,
};

/// The largest frame kept for other followers at the same position.
const MAX_SHARED_FRAME: usize = 64 << 10;

/// The SSE response from position `from`, where the read saw `first`.
pub(crate) fn response(
    shared: &Shared,
    stream: Handle,
    from: u64,
    cursor: Option<String>,
    first: Seen,
) -> Response {
    let base64 = !stream.is_text();
    let follower = Follower {
        stream: Arc::new(stream),
        first: Some(first),
        position: from,
        cursor,
        base64,
        chunk_bytes: shared.options.read_chunk_bytes,
        heartbeat: shared.options.heartbeat,
        ends_at: Instant::now() + shared.options.sse_lifetime,
        shutdown: shared.shutdown.clone(),
        started: false,
        done: false,
    };
    let events = futures_util::stream::unfold(follower, |mut follower| async move {
        let frame = follower.next().await?;
        Some((Ok::<Bytes, std::io::Error>(frame), follower))
    });
    let mut builder = Response::builder()
        .content_type("text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("X-Accel-Buffering", "no");
    if base64 {
        builder = builder.header("stream-sse-data-encoding", "base64");
    }
    builder.body(Body::from_bytes_stream(events))
}

struct Follower {
    stream: Arc<Handle>,
    /// What the request's own read saw, used for the first frame.
    first: Option<Seen>,
    position: u64,
    cursor: Option<String>,
    base64: bool,
    chunk_bytes: u64,
    heartbeat: std::time::Duration,
    ends_at: Instant,
    shutdown: CancellationToken,
    started: bool,
    done: bool,
}

enum Step {
    Data {
        chunk: Chunk,
        from: u64,
        up_to_date: bool,
        closed: bool,
    },
    Control {
        closed: bool,
    },
    Wait,
    End,
}

impl Follower {
    /// The next frame to send, `None` at the end of the response.
    async fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        loop {
            let step = match self.first.take() {
                Some(first) => self.step(first),
                None => Step::Wait,
            };
            if !matches!(step, Step::Wait) || !self.started {
                match self.frame(step) {
                    Some(frame) => return frame,
                    None => continue,
                }
            }
            let stream = Arc::clone(&self.stream);
            let mut changed = pin!(stream.changed().notified());
            changed.as_mut().enable();
            // A read that fails (Redis out of reach) ends the response: the client resumes.
            let step = match stream.look(self.position, self.chunk_bytes).await {
                Ok(seen) => self.step(seen),
                Err(_) => Step::End,
            };
            if !matches!(step, Step::Wait) {
                match self.frame(step) {
                    Some(frame) => return frame,
                    None => continue,
                }
            }
            tokio::select! {
                () = &mut changed => {}
                () = sleep(self.heartbeat) => return Some(Bytes::from_static(b":\n\n")),
                () = sleep_until(self.ends_at) => return None,
                () = self.shutdown.cancelled() => return None,
            }
        }
    }

    /// The frame for `step`: `Some(None)` ends the response, `None` means nothing to send yet.
    fn frame(&mut self, step: Step) -> Option<Option<Bytes>> {
        let started = std::mem::replace(&mut self.started, true);
        match step {
            Step::Data {
                chunk,
                from,
                up_to_date,
                closed,
            } => {
                self.done = closed;
                let cursor = (!closed).then(|| time::cursor(self.cursor.as_deref()));
                let key = FrameKey {
                    from,
                    next: self.position,
                    up_to_date,
                    closed,
                    cursor,
                };
                if let Some(frame) = self.stream.cached_frame(key) {
                    return Some(Some(frame));
                }
                let body = if self.stream.json() {
                    chunk.json_array()
                } else {
                    chunk.bytes()
                };
                let mut frame = BytesMut::with_capacity(body.len() + 160);
                self.data_event(&mut frame, &body);
                self.control_event(&mut frame, up_to_date, cursor);
                let frame = frame.freeze();
                // Live appends are small; a large catch-up frame is not worth keeping.
                if frame.len() <= MAX_SHARED_FRAME {
                    self.stream.cache_frame(key, frame.clone());
                }
                Some(Some(frame))
            }
            Step::Control { closed } => {
                let mut frame = BytesMut::with_capacity(160);
                let cursor = (!closed).then(|| time::cursor(self.cursor.as_deref()));
                self.control_event(&mut frame, true, cursor);
                self.done = closed;
                Some(Some(frame.freeze()))
            }
            Step::End => Some(None),
            Step::Wait if !started => {
                let mut frame = BytesMut::with_capacity(160);
                let cursor = time::cursor(self.cursor.as_deref());
                self.control_event(&mut frame, true, Some(cursor));
                Some(Some(frame.freeze()))
            }
            Step::Wait => None,
        }
    }

    /// What to send after a read saw `seen` at the follower's position.
    fn step(&mut self, seen: Seen) -> Step {
        if !seen.chunk.is_empty() {
            let from = std::mem::replace(&mut self.position, seen.chunk.next);
            let up_to_date = self.position == seen.tail;
            return Step::Data {
                chunk: seen.chunk,
                from,
                up_to_date,
                closed: seen.closed && up_to_date,
            };
        }
        if seen.closed {
            Step::Control { closed: true }
        } else {
            Step::Wait
        }
    }

    fn data_event(&self, out: &mut BytesMut, body: &[u8]) {
        out.put_slice(b"event: data\n");
        if self.base64 {
            let encoded = base64::engine::general_purpose::STANDARD.encode(body);
            data_lines(out, encoded.as_bytes());
        } else {
            data_lines(out, body);
        }
        out.put_slice(b"\n");
    }

    /// The control event after a frame; `cursor` is `None` once the stream is closed (and the
    /// event then says `streamClosed`).
    fn control_event(&self, out: &mut BytesMut, up_to_date: bool, cursor: Option<u64>) {
        let mut control = serde_json::Map::new();
        control.insert(
            "streamNextOffset".into(),
            Offset(self.position).to_string().into(),
        );
        match cursor {
            None => control.insert("streamClosed".into(), true.into()),
            Some(cursor) => control.insert("streamCursor".into(), cursor.to_string().into()),
        };
        if up_to_date {
            control.insert("upToDate".into(), true.into());
        }
        out.put_slice(b"event: control\ndata:");
        out.put_slice(serde_json::Value::Object(control).to_string().as_bytes());
        out.put_slice(b"\n\n");
    }
}

/// `data:` lines for `text`, split at CR, LF and CRLF.
fn data_lines(out: &mut BytesMut, text: &[u8]) {
    let mut rest = text;
    loop {
        let end = rest
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
            .unwrap_or(rest.len());
        let line = &rest[..end];
        out.put_slice(b"data:");
        if line.first() == Some(&b' ') {
            out.put_slice(b" ");
        }
        out.put_slice(line);
        out.put_slice(b"\n");
        if end == rest.len() {
            return;
        }
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> String {
        let mut out = BytesMut::new();
        data_lines(&mut out, text.as_bytes());
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn payload_lines_can_not_forge_events() {
        assert_eq!(lines("a\nb"), "data:a\ndata:b\n");
        assert_eq!(lines("a\r\n\r\nevent: x"), "data:a\ndata:\ndata:event: x\n");
        assert_eq!(lines("a\r\rb"), "data:a\ndata:\ndata:b\n");
        assert_eq!(lines(" lead"), "data:  lead\n");
        assert_eq!(lines(""), "data:\n");
        assert_eq!(lines("end\n"), "data:end\ndata:\n");
    }
}
