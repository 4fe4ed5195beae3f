//! [`Subscriber`]: one reader of a channel (or of a set of channels), as a stream of ready frames.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::{atomic::Ordering, Arc, LazyLock},
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::Stream;
use tokio::time::{Instant, Sleep};

use crate::{
    hub::admission::Admitted,
    hub::registry::{Channel, Registry},
    hub::set_reader::SetReader,
    hub::stats::{ChannelStats, CloseReason},
    hub::trace,
    store::{CursorItem, LogCursor, Subscription},
    sync::shutdown::{ShutdownSignal, ShutdownTrigger},
    wire::Reset,
    wire::{end_frame, reauth_frame, reset_frame},
};

/// The frames of one channel from a resume point on: the reset signal if the resume point could
/// not be honoured, the retained events after it, then live events as they are published. Made
/// by [`Hub::subscribe`](crate::Hub::subscribe) (or, for several channels on one stream, by
/// [`Hub::subscribe_set`](crate::Hub::subscribe_set)); counted as an open stream until dropped.
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
    source: Source,
    /// How the stream ends on purpose, if it does; boxed so that a stream without costs one word.
    ending: Option<Box<Ending>>,
    stream: OpenStream,
}

/// Where the frames come from: one channel's cursor, or a set's.
pub(crate) enum Source {
    One {
        reset: Option<Reset>,
        cursor: LogCursor,
        max_chunk_bytes: usize,
    },
    Set(Box<SetReader>),
}

impl Source {
    /// One channel's subscription.
    pub(crate) fn one(sub: Subscription, max_chunk_bytes: usize) -> Self {
        Self::One {
            reset: sub.reset,
            cursor: sub.cursor,
            max_chunk_bytes,
        }
    }
}

/// A stream that ends on purpose: at its deadline (the grant's expiry or the stream lifetime,
/// whichever comes first) or when its principal's streams are revoked. It then sends its last
/// frame (the reauth event and a retry hint, or the retry hint alone) and ends.
pub(crate) struct Ending {
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether the deadline is the grant's expiry (a reauth) rather than the lifetime.
    deadline_is_expiry: bool,
    revoked: Option<ShutdownSignal>,
    retry: Duration,
    ended: bool,
}

impl Ending {
    /// `None` when the stream never ends on purpose.
    pub(crate) fn new(
        lifetime: Option<Instant>,
        expiry: Option<Instant>,
        revoked: Option<ShutdownSignal>,
        retry: Duration,
    ) -> Option<Box<Self>> {
        let (deadline, deadline_is_expiry) = match (lifetime, expiry) {
            (Some(lifetime), Some(expiry)) if lifetime < expiry => (Some(lifetime), false),
            (_, Some(expiry)) => (Some(expiry), true),
            (lifetime, None) => (lifetime, false),
        };
        if deadline.is_none() && revoked.is_none() {
            return None;
        }
        Some(Box::new(Self {
            deadline: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
            deadline_is_expiry,
            revoked,
            retry,
            ended: false,
        }))
    }

    /// `Some(reauth)` once the stream must end; registers the waker otherwise.
    fn poll_due(&mut self, cx: &mut Context<'_>) -> Option<bool> {
        if self.revoked.as_mut().is_some_and(|r| r.poll_fired(cx)) {
            return Some(true);
        }
        let due = self
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        due.then_some(self.deadline_is_expiry)
    }
}

impl Subscriber {
    pub(crate) fn new(source: Source, ending: Option<Box<Ending>>, stream: OpenStream) -> Self {
        Self {
            source,
            ending,
            stream,
        }
    }

    /// The reset this subscriber of one channel starts with, until it is read from the stream.
    pub fn pending_reset(&self) -> Option<&Reset> {
        match &self.source {
            Source::One { reset, .. } => reset.as_ref(),
            Source::Set(_) => None,
        }
    }

    /// The channel it reads (the first, for a set).
    pub fn channel(&self) -> &str {
        &self.stream.channels()[0].name
    }

    /// The channels it reads, in order.
    pub fn channels(&self) -> impl Iterator<Item = &str> {
        self.stream.channels().iter().map(|c| &*c.name)
    }

    /// Where a client that read everything so far resumes: the last id (a set's cursor).
    fn resume_point(&self) -> Option<String> {
        match &self.source {
            Source::One { cursor, .. } => cursor.last_id().map(|id| id.to_string()),
            Source::Set(set) => Some(set.current_cursor()),
        }
    }

    /// The id a stream that ends on purpose gives its client to resume from (see
    /// [`end_frame`]): where a single channel's cursor is, unless a reset is still to be sent
    /// (the client must resume from its own id to get it). `None` for a set: its cursor only
    /// knows the channels that delivered, so the client's own last id says as much.
    fn last_id(&self) -> Option<String> {
        match &self.source {
            Source::One {
                reset: None,
                cursor,
                ..
            } => cursor.last_id().map(|id| id.to_string()),
            Source::One { .. } | Source::Set(_) => None,
        }
    }

    fn poll_one(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let Source::One {
            reset,
            cursor,
            max_chunk_bytes,
        } = &mut self.source
        else {
            return Poll::Ready(None);
        };
        let stream = &self.stream;
        let channel = &stream.channels()[0];
        let stats = &channel.stats;
        if let Some(reset) = reset.take() {
            return Poll::Ready(Some(reset_chunk(channel, &reset, stream.span())));
        }
        match cursor.poll_next_chunk(cx, *max_chunk_bytes) {
            Poll::Ready(Some(CursorItem::Frames {
                chunk,
                count,
                replayed,
                lag,
            })) => {
                ChannelStats::add(&stats.bytes_sent, chunk.len());
                ChannelStats::add(&stats.delivered, count);
                if replayed > 0 {
                    ChannelStats::add(&stats.replayed, replayed);
                }
                if let Some(lag) = lag {
                    stream.registry.streams.observe_lag(lag);
                }
                Poll::Ready(Some(chunk))
            }
            Poll::Ready(Some(CursorItem::Reset(reset))) => {
                Poll::Ready(Some(reset_chunk(channel, &reset, stream.span())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The stream's span (see [`crate::hub::trace::stream_span`]), for the endpoint to record the
    /// protocol in.
    pub(crate) fn span(&self) -> &tracing::Span {
        self.stream.span()
    }

    /// Puts the stream in `span`: its resets and its close are logged there.
    pub(crate) fn in_span(mut self, span: tracing::Span) -> Self {
        self.stream.span = (!span.is_disabled()).then(|| Box::new(span));
        self
    }
}

fn reset_chunk(channel: &Channel, reset: &Reset, span: &tracing::Span) -> Bytes {
    channel.stats.count_reset(reset.reason);
    trace::log_reset(span, &channel.name, reset);
    reset_frame(reset)
}

impl Stream for Subscriber {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let this = self.get_mut();
        if let Some(ending) = &mut this.ending {
            if ending.ended {
                return Poll::Ready(None);
            }
            // Checked before any frame: an expired or revoked grant receives nothing more.
            if let Some(reauth) = ending.poll_due(cx) {
                ending.ended = true;
                let retry = ending.retry;
                let last_id = this.last_id();
                let frame = if reauth {
                    this.stream.close = Some(CloseReason::Reauth);
                    reauth_frame(this.resume_point().as_deref(), last_id.as_deref(), retry)
                } else {
                    this.stream.close = Some(CloseReason::Lifetime);
                    end_frame(last_id.as_deref(), retry)
                };
                return Poll::Ready(Some(frame));
            }
        }
        let next = match &mut this.source {
            Source::One { .. } => this.poll_one(cx),
            Source::Set(set) => {
                set.poll_next(cx, &this.stream.registry.streams, this.stream.span())
            }
        };
        if let Poll::Ready(None) = next {
            this.stream.close.get_or_insert(CloseReason::Ended);
        }
        next
    }
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("channels", &self.channels().collect::<Vec<_>>())
            .field("pending_reset", &self.pending_reset())
            .finish_non_exhaustive()
    }
}

/// One open stream, counted in the metrics and the caps until it is dropped (which hyper does as
/// soon as it notices the client is gone). A stream of several channels counts once in the total
/// and once on each of its channels.
pub(crate) struct OpenStream {
    registry: Arc<Registry>,
    /// The stream's places in every count of the admission, and its channels.
    admitted: Option<Admitted>,
    /// Why the stream ends, once it ends on purpose; a stream dropped without one lost its client
    /// (or ended with the hub's shutdown).
    close: Option<CloseReason>,
    shutdown: ShutdownTrigger,
    opened_at: tokio::time::Instant,
    /// `None` while the span is disabled (at INFO): 8 bytes instead of 40 in every idle stream.
    span: Option<Box<tracing::Span>>,
}

impl OpenStream {
    /// Counts a stream that `admitted` holds places for as opened.
    pub(crate) fn new(
        registry: &Arc<Registry>,
        admitted: Admitted,
        shutdown: &ShutdownTrigger,
    ) -> Self {
        registry.streams.opened();
        Self {
            registry: Arc::clone(registry),
            admitted: Some(admitted),
            close: None,
            shutdown: shutdown.clone(),
            opened_at: tokio::time::Instant::now(),
            span: None,
        }
    }

    fn channels(&self) -> &[Arc<Channel>] {
        self.admitted.as_ref().map_or(&[], Admitted::channels)
    }

    fn span(&self) -> &tracing::Span {
        static DISABLED: LazyLock<tracing::Span> = LazyLock::new(tracing::Span::none);
        self.span.as_deref().unwrap_or(&DISABLED)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let reason = self.close.unwrap_or(if self.shutdown.is_fired() {
            CloseReason::Shutdown
        } else {
            CloseReason::ClientGone
        });
        self.registry.streams.closed(reason);
        trace::log_closed(self.span(), reason, self.opened_at.elapsed(), || {
            let names: Vec<&str> = self.channels().iter().map(|c| &*c.name).collect();
            names.join(",")
        });
        let Some(admitted) = self.admitted.take() else {
            return;
        };
        // The places first, then the channels: a channel is forgotten only once nothing holds it.
        for channel in Vec::from(admitted.release()) {
            if channel.stats.open.load(Ordering::Acquire) == 0 {
                let name = channel.name.clone();
                drop(channel);
                self.registry.forget_if_idle(&name);
            }
        }
    }
}
