//! Several channels on one stream: one cursor per channel, read in turn, each event written with
//! the set's cursor as its id.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};

use crate::{
    hub::registry::Channel,
    hub::stats::{ChannelStats, StreamStats},
    hub::trace::log_reset,
    store::{CursorItem, LogCursor, Subscription},
    wire::set_cursor::{self as cursor},
    wire::Reset,
    wire::{put_set_frame, put_set_reset_frame},
};

/// One channel of a set: its cursor, the reset it starts with, and the id it has reached.
pub(crate) struct Member {
    channel: Arc<Channel>,
    cursor: LogCursor,
    reset: Option<Reset>,
    /// The id of the last event delivered (empty: the channel is at the head it started from).
    id: String,
}

impl Member {
    /// `start` is the id the channel resumes from (what the cursor is positioned after).
    pub(crate) fn new(channel: Arc<Channel>, sub: Subscription, start: Option<String>) -> Self {
        Self {
            channel,
            cursor: sub.cursor,
            reset: sub.reset,
            id: start.unwrap_or_default(),
        }
    }
}

/// The channels of a set, read in turn so that a hot channel can not starve a quiet one: each
/// poll takes at most one chunk from each channel, starting one channel further each time.
pub(crate) struct SetReader {
    members: Box<[Member]>,
    next: usize,
    max_chunk_bytes: usize,
}

impl SetReader {
    pub(crate) fn new(members: Vec<Member>, max_chunk_bytes: usize) -> Self {
        Self {
            members: members.into_boxed_slice(),
            next: 0,
            max_chunk_bytes,
        }
    }

    /// The channels, in the set's order.
    pub(crate) fn channels(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(|m| &*m.channel.name)
    }

    /// The set's cursor now.
    fn cursor(&self) -> String {
        let channels: Vec<&str> = self.channels().collect();
        let ids: Vec<Option<&str>> = self
            .members
            .iter()
            .map(|m| (!m.id.is_empty()).then_some(m.id.as_str()))
            .collect();
        cursor::encode(&channels, &ids)
    }

    /// The next chunk; delivery lag is recorded in `streams`, resets are logged in `span`.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        streams: &StreamStats,
        span: &tracing::Span,
    ) -> Poll<Option<Bytes>> {
        let mut out = BytesMut::new();
        let count = self.members.len();
        let mut ended = 0;
        for turn in 0..count {
            let at = (self.next + turn) % count;
            if let Some(reset) = self.members[at].reset.take() {
                self.write_reset(&mut out, at, &reset, span);
                continue;
            }
            let member = &mut self.members[at];
            match member.cursor.poll_next_chunk(cx, self.max_chunk_bytes) {
                Poll::Ready(Some(CursorItem::Frames {
                    chunk,
                    replayed,
                    lag,
                    ..
                })) => {
                    if let Some(lag) = lag {
                        streams.observe_lag(lag);
                    }
                    self.write_frames(&mut out, at, &chunk, replayed);
                }
                Poll::Ready(Some(CursorItem::Reset(reset))) => {
                    self.write_reset(&mut out, at, &reset, span);
                }
                Poll::Ready(None) => ended += 1,
                Poll::Pending => {}
            }
            if out.len() >= self.max_chunk_bytes {
                self.next = (at + 1) % count;
                return Poll::Ready(Some(out.freeze()));
            }
        }
        self.next = (self.next + 1) % count.max(1);
        if !out.is_empty() {
            Poll::Ready(Some(out.freeze()))
        } else if ended == count {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }

    /// Writes each frame of `chunk` (whole frames of member `at`) with the set's cursor.
    fn write_frames(&mut self, out: &mut BytesMut, at: usize, chunk: &Bytes, replayed: usize) {
        let start = out.len();
        let mut frames = 0;
        for frame in split_frames(chunk) {
            let own_id = frame_id(frame);
            if let Some(id) = own_id {
                self.members[at].id = id.to_owned();
            }
            let cursor = self.cursor();
            let name = Arc::clone(&self.members[at].channel);
            if put_set_frame(out, frame, &name.name, &cursor).is_some() {
                frames += 1;
            }
        }
        let stats = &self.members[at].channel.stats;
        ChannelStats::add(&stats.bytes_sent, out.len() - start);
        ChannelStats::add(&stats.delivered, frames);
        if replayed > 0 {
            ChannelStats::add(&stats.replayed, replayed.min(frames));
        }
    }

    fn write_reset(&mut self, out: &mut BytesMut, at: usize, reset: &Reset, span: &tracing::Span) {
        self.members[at].id = reset.resume_from.as_str().to_owned();
        let cursor = self.cursor();
        let member = &self.members[at];
        member.channel.stats.count_reset(reset.reason);
        log_reset(span, &member.channel.name, reset);
        put_set_reset_frame(out, &member.channel.name, reset, &cursor);
    }

    /// The id the member that delivered last has reached (for the reauth event).
    pub(crate) fn current_cursor(&self) -> String {
        self.cursor()
    }
}

/// The frames of a chunk: each ends with the blank line that dispatches it (a frame never holds
/// an empty line before its end).
fn split_frames(chunk: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = chunk;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest
            .windows(2)
            .position(|w| w == b"\n\n")
            .map_or(rest.len(), |at| at + 2);
        let (frame, tail) = rest.split_at(end);
        rest = tail;
        Some(frame)
    })
}

/// The id on a stored frame's first line.
fn frame_id(frame: &[u8]) -> Option<&str> {
    let line = frame.strip_prefix(b"id: ")?;
    let end = line.iter().position(|&b| b == b'\n')?;
    std::str::from_utf8(&line[..end]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_split_into_whole_frames() {
        let chunk = b"id: 1\ndata: a\n\nid: 2\ndata:\n\n";
        let frames: Vec<&[u8]> = split_frames(chunk).collect();
        assert_eq!(
            frames,
            [&b"id: 1\ndata: a\n\n"[..], &b"id: 2\ndata:\n\n"[..]]
        );
        assert_eq!(frame_id(frames[1]), Some("2"));
    }
}
