//! [`Subscriber`]: one reader of one channel, as a stream of ready frames.

use std::{
    fmt,
    pin::Pin,
    sync::{atomic::Ordering, Arc},
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;

use crate::{
    metrics::ChannelStats,
    registry::{Channel, Registry},
    store::{CursorItem, LogCursor, Reset, Subscription},
    wire::reset_frame,
};

/// The frames of one channel from a resume point on: the reset signal if the resume point could
/// not be honoured, the retained events after it, then live events as they are published. Made
/// by [`Hub::subscribe`](crate::Hub::subscribe); counted as an open stream until dropped.
///
/// It is a [`Stream`] of wire-ready chunks (one or more whole frames each, never a partial one),
/// so a Rust caller can read a channel without HTTP, and an HTTP body can send each chunk as it
/// is:
///
/// ```
/// use futures_util::StreamExt;
/// use poem_sse_ext::{Event, Hub};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hub = Hub::new();
/// let first = hub.publish("feed", Event::text("one")).await?;
/// hub.publish("feed", Event::text("two")).await?;
/// let mut feed = hub.subscribe("feed", Some(first.as_str())).await?;
/// let chunk = feed.next().await.unwrap_or_default();
/// assert!(String::from_utf8_lossy(&chunk).ends_with("data: two\n\n"));
/// # Ok(())
/// # }
/// ```
pub struct Subscriber {
    reset: Option<Reset>,
    cursor: LogCursor,
    max_chunk_bytes: usize,
    stream: OpenStream,
}

impl Subscriber {
    pub(crate) fn new(sub: Subscription, max_chunk_bytes: usize, stream: OpenStream) -> Self {
        Self {
            reset: sub.reset,
            cursor: sub.cursor,
            max_chunk_bytes,
            stream,
        }
    }

    /// The reset this subscriber starts with, until it is read from the stream.
    pub fn pending_reset(&self) -> Option<&Reset> {
        self.reset.as_ref()
    }

    /// The channel it reads.
    pub fn channel(&self) -> &str {
        &self.stream.channel().name
    }

    fn record(&self, bytes: usize, frames: usize, replayed: usize) {
        let stats = &self.stream.channel().stats;
        ChannelStats::add(&stats.bytes_sent, bytes);
        ChannelStats::add(&stats.delivered, frames);
        if replayed > 0 {
            ChannelStats::add(&stats.replayed, replayed);
        }
    }

    fn reset_chunk(&self, reset: &Reset) -> Bytes {
        ChannelStats::add(&self.stream.channel().stats.resets, 1);
        tracing::debug!(channel = self.channel(), reason = %reset.reason, resume_from = %reset.resume_from, "sse reset");
        reset_frame(reset)
    }
}

impl Stream for Subscriber {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if let Some(reset) = this.reset.take() {
            return Poll::Ready(Some(this.reset_chunk(&reset)));
        }
        match this.cursor.poll_next_chunk(cx, this.max_chunk_bytes) {
            Poll::Ready(Some(CursorItem::Frames {
                chunk,
                count,
                replayed,
            })) => {
                this.record(chunk.len(), count, replayed);
                Poll::Ready(Some(chunk))
            }
            Poll::Ready(Some(CursorItem::Reset(reset))) => {
                Poll::Ready(Some(this.reset_chunk(&reset)))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("channel", &self.channel())
            .field("reset", &self.reset)
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

/// One open stream, counted in the metrics and the caps until it is dropped (which hyper does as
/// soon as it notices the client is gone).
pub(crate) struct OpenStream {
    registry: Arc<Registry>,
    /// `None` only while dropping.
    channel: Option<Arc<Channel>>,
}

impl OpenStream {
    /// Counts a new stream on `channel` against `max_total` and `max_per_channel`; `Err` names
    /// the cap that refused it.
    pub(crate) fn admit(
        registry: &Arc<Registry>,
        channel: Arc<Channel>,
        max_total: usize,
        max_per_channel: usize,
    ) -> Result<Self, StreamCap> {
        // Increment first, then check: two racing opens can not both take the last place.
        if registry.open.fetch_add(1, Ordering::AcqRel) >= max_total {
            registry.open.fetch_sub(1, Ordering::AcqRel);
            return Err(StreamCap::Total(max_total));
        }
        if channel.stats.open.fetch_add(1, Ordering::AcqRel) >= max_per_channel {
            channel.stats.open.fetch_sub(1, Ordering::AcqRel);
            registry.open.fetch_sub(1, Ordering::AcqRel);
            return Err(StreamCap::PerChannel(max_per_channel));
        }
        Ok(Self {
            registry: Arc::clone(registry),
            channel: Some(channel),
        })
    }
}

/// The cap that refused a stream.
pub(crate) enum StreamCap {
    Total(usize),
    PerChannel(usize),
}

impl OpenStream {
    fn channel(&self) -> &Channel {
        // Set from `admit` until `drop`.
        self.channel
            .as_deref()
            .unwrap_or_else(|| unreachable!("an open stream has its channel"))
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let Some(channel) = self.channel.take() else {
            return;
        };
        let last = channel.stats.open.fetch_sub(1, Ordering::AcqRel) == 1;
        self.registry.open.fetch_sub(1, Ordering::AcqRel);
        tracing::debug!(channel = &*channel.name, "sse stream closed");
        if last {
            let name = channel.name.clone();
            drop(channel);
            self.registry.forget_if_idle(&name);
        }
    }
}
