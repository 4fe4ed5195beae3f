//! [`LogCursor`]: a position in a [`ChannelLog`] plus a waker, all that an open stream holds.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;

use super::{ChannelLog, Read};
use crate::{
    store::{EventId, Reset},
    sync::waiters::Waiter,
};

/// What a [`LogCursor`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorItem {
    /// One or more consecutive frames, joined into one chunk.
    Frames {
        /// The encoded frames.
        chunk: Bytes,
        /// How many frames the chunk holds.
        count: usize,
        /// How many of them were history at subscribe time.
        replayed: usize,
        /// How long the first frame waited in the log, if it is live (for the delivery-lag
        /// metric).
        lag: Option<std::time::Duration>,
    },
    /// The cursor missed events (it fell behind the retained tail, or the backend lost them); it
    /// continues from the head.
    Reset(Reset),
}

/// A position in a [`ChannelLog`] plus a waker: all that an open stream holds.
pub struct LogCursor {
    pub(super) log: Arc<ChannelLog>,
    pub(super) position: Key,
    pub(super) replay_through: Key,
    /// The log's break count when the cursor last read it.
    pub(super) breaks: u64,
    /// The id [`LogCursor::skip_to`] placed the cursor at, until it moves on.
    pub(super) skipped_to: Option<EventId>,
    /// Its place among the log's waiters, from its first wait until it is dropped.
    pub(super) waiter: Waiter,
}

impl std::fmt::Debug for LogCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogCursor")
            .field("position", &self.position.get())
            .finish_non_exhaustive()
    }
}

impl LogCursor {
    /// Polls for the frames after the cursor, joined into chunks of at most `max_bytes` (a single
    /// larger frame is yielded alone). Never holds back a ready frame waiting for more.
    pub fn poll_next_chunk(
        &mut self,
        cx: &mut Context<'_>,
        max_bytes: usize,
    ) -> Poll<Option<CursorItem>> {
        // Registered before reading: an append after the read wakes the task.
        self.log.waiters.register(&mut self.waiter, cx.waker());
        match self.log.read_after(
            self.position.get(),
            self.breaks,
            max_bytes,
            self.replay_through.get(),
        ) {
            Read::Frames(frames) => {
                self.position = Key::new(frames.last_key);
                self.skipped_to = None;
                Poll::Ready(Some(CursorItem::Frames {
                    chunk: frames.chunk,
                    count: frames.count,
                    replayed: frames.replayed,
                    lag: frames.live_since.map(|at| at.elapsed()),
                }))
            }
            Read::Gap {
                resume_key,
                breaks,
                reset,
            } => {
                self.position = Key::new(resume_key);
                self.breaks = breaks;
                self.skipped_to = None;
                Poll::Ready(Some(CursorItem::Reset(reset)))
            }
            Read::Nothing => Poll::Pending,
        }
    }

    /// The key of the last frame delivered (or of the start position).
    pub fn position(&self) -> u128 {
        self.position.get()
    }

    /// Moves the cursor forward to `key`, the position of `id` (never back): the entries up to it
    /// are not delivered, even those appended later. For a resume point that a shared backend
    /// issued but this log has not received yet. A break of the log since the cursor was made
    /// still resets it.
    pub fn skip_to(&mut self, key: u128, id: EventId) {
        if key > self.position.get() {
            self.position = Key::new(key);
            self.skipped_to = Some(id);
        }
    }

    /// The id of the last frame delivered (or of the start position), while the log still knows
    /// it: where a client that read this cursor resumes.
    pub fn last_id(&self) -> Option<EventId> {
        let state = self.log.read();
        let position = self.position.get();
        if position == state.head_key {
            return Some(state.head_id.clone());
        }
        // Where a break left it, with the log appended to since.
        if let Some(last) = state.last_break.as_ref().filter(|b| b.key == position) {
            return Some(last.id.clone());
        }
        let at = state
            .entries
            .binary_search_by_key(&position, |entry| entry.key)
            .ok();
        let Some(at) = at else {
            // Not in the log: the resume point a skip placed the cursor at, if nothing was
            // delivered since.
            return self.skipped_to.clone();
        };
        let frame = &state.entries[at].frame;
        let line = frame.strip_prefix(b"id: ")?;
        let end = line.iter().position(|&b| b == b'\n')?;
        std::str::from_utf8(&line[..end]).ok().map(EventId::new)
    }
}

/// A `u128` key kept as two words. A `u128` is aligned to 16 bytes, which padded the cursor and
/// every struct that holds one (the body of each open stream) by 8 bytes or more.
#[derive(Clone, Copy)]
pub(super) struct Key([u64; 2]);

impl Key {
    pub(super) fn new(key: u128) -> Self {
        // The high and the low word: the casts keep exactly those bits.
        Self([(key >> 64) as u64, key as u64])
    }

    pub(super) fn get(self) -> u128 {
        (u128::from(self.0[0]) << 64) | u128::from(self.0[1])
    }
}

impl Drop for LogCursor {
    fn drop(&mut self) {
        self.log.waiters.unregister(&mut self.waiter);
    }
}

/// Reads chunks of at most 64 KiB (a hub's default); call
/// [`LogCursor::poll_next_chunk`] for another bound.
impl Stream for LogCursor {
    type Item = CursorItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_next_chunk(cx, DEFAULT_MAX_CHUNK_BYTES)
    }
}

/// Most bytes of ready frames joined into one chunk unless told otherwise: large enough that a
/// replay goes out in few writes, small enough that one stream's burst does not hold a worker.
pub(crate) const DEFAULT_MAX_CHUNK_BYTES: usize = 64 << 10;
