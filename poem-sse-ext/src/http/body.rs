//! The body of an SSE response: preamble, then frames, with heartbeats and shutdown.
//!
//! It knows no hub: any stream of ready chunks (a [`crate::Subscriber`], or the encoded events of
//! an [`crate::http::SseResponse`]) becomes a body with the same wire guarantees.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::{
    sync::shutdown::ShutdownSignal,
    wire::Event,
    wire::{retry_frame, HEARTBEAT_FRAME},
};

/// Turns a source of ready-encoded chunks into an SSE body: sends `preamble` first, every chunk
/// the moment the source yields it, a heartbeat comment after each idle `heartbeat` interval, and
/// ends with a final frame when the shutdown token fires.
pub(crate) struct SseBody<S> {
    preamble: Option<Bytes>,
    source: S,
    heartbeat: Option<Heartbeat>,
    shutdown: Option<Shutdown>,
    done: bool,
}

/// The heartbeat timer. Restarting a tokio timer on every frame would cost a timer-wheel update
/// per event; instead the time of the last frame is recorded, and when the timer fires early
/// (because frames were sent meanwhile) it is re-armed for the real deadline.
struct Heartbeat {
    interval: Duration,
    last_sent: Instant,
    timer: Pin<Box<Sleep>>,
}

/// Makes the last frame a stream sends when shutdown begins. Shared: an endpoint makes one for
/// all its streams, so a stream's set-up allocates none.
pub(crate) type FinalFrame = Arc<dyn Fn() -> Bytes + Send + Sync>;

/// Ends a stream when shutdown begins: its signal, and the last frame to send.
pub(crate) struct Shutdown {
    signal: ShutdownSignal,
    final_frame: FinalFrame,
}

impl Shutdown {
    /// Ends the stream when `signal` fires, sending `final_frame()` last.
    pub(crate) fn new(signal: ShutdownSignal, final_frame: FinalFrame) -> Self {
        Self {
            signal,
            final_frame,
        }
    }

    /// The frame a hub sends on shutdown: its shutdown event, if any, and a jittered retry hint.
    pub(crate) fn farewell(event: Option<&Event>, retry: Duration) -> Bytes {
        let mut frame = event.map(Event::encode).map(Vec::from).unwrap_or_default();
        frame.extend_from_slice(&retry_frame(retry));
        Bytes::from(frame)
    }
}

impl<S> SseBody<S>
where
    S: Stream<Item = Bytes> + Unpin + Send,
{
    pub(crate) fn new(preamble: Option<Bytes>, source: S) -> Self {
        Self {
            preamble,
            source,
            heartbeat: None,
            shutdown: None,
            done: false,
        }
    }

    pub(crate) fn heartbeat(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat = interval.map(|interval| {
            let now = Instant::now();
            Heartbeat {
                interval,
                last_sent: now,
                timer: Box::pin(tokio::time::sleep_until(now + interval)),
            }
        });
        self
    }

    pub(crate) fn shutdown(mut self, shutdown: Option<Shutdown>) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// The last frame: the stream ends after it.
    fn farewell(&mut self) -> Bytes {
        self.done = true;
        self.shutdown
            .as_ref()
            .map_or_else(Bytes::new, |shutdown| (shutdown.final_frame)())
    }

    fn sent(&mut self) {
        if let Some(heartbeat) = &mut self.heartbeat {
            heartbeat.last_sent = Instant::now();
        }
    }
}

impl<S> Stream for SseBody<S>
where
    S: Stream<Item = Bytes> + Unpin + Send,
{
    type Item = Result<Bytes, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(preamble) = this.preamble.take() {
            this.sent();
            return Poll::Ready(Some(Ok(preamble)));
        }
        if let Some(shutdown) = &mut this.shutdown {
            if shutdown.signal.poll_fired(cx) {
                return Poll::Ready(Some(Ok(this.farewell())));
            }
        }
        match this.source.poll_next_unpin(cx) {
            Poll::Ready(Some(chunk)) => {
                this.sent();
                return Poll::Ready(Some(Ok(chunk)));
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        if let Some(heartbeat) = &mut this.heartbeat {
            while heartbeat.timer.as_mut().poll(cx).is_ready() {
                let due = heartbeat.last_sent + heartbeat.interval;
                let now = Instant::now();
                if due <= now {
                    heartbeat.last_sent = now;
                    heartbeat.timer.as_mut().reset(now + heartbeat.interval);
                    return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT_FRAME))));
                }
                // Frames went out since the timer was armed: wait for the real deadline.
                heartbeat.timer.as_mut().reset(due);
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;

    use super::*;
    use crate::sync::shutdown::ShutdownTrigger;

    async fn next(body: &mut SseBody<impl Stream<Item = Bytes> + Unpin + Send>) -> Bytes {
        match body.next().await {
            Some(Ok(chunk)) => chunk,
            other => panic!("expected a chunk, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_after_each_idle_interval_and_restarted_by_frames() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let source = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let mut body = SseBody::new(Some(Bytes::from_static(b"retry: 1\n\n")), source)
            .heartbeat(Some(Duration::from_secs(15)));
        let start = Instant::now();
        assert_eq!(&next(&mut body).await[..], b"retry: 1\n\n");

        assert_eq!(&next(&mut body).await[..], HEARTBEAT_FRAME);
        assert_eq!(start.elapsed(), Duration::from_secs(15));

        // An event at +25s pushes the next heartbeat to +40s, not +30s.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let _ = tx.send(Bytes::from_static(b"data: x\n\n"));
        assert_eq!(&next(&mut body).await[..], b"data: x\n\n");
        assert_eq!(&next(&mut body).await[..], HEARTBEAT_FRAME);
        assert_eq!(start.elapsed(), Duration::from_secs(40));
    }

    #[tokio::test]
    async fn shutdown_ends_a_stream_whose_source_never_runs_dry() {
        let trigger = ShutdownTrigger::new();
        let mut body = SseBody::new(None, stream::repeat(Bytes::from_static(b"data: x\n\n")))
            .shutdown(Some(Shutdown::new(
                trigger.signal(),
                Arc::new(|| Bytes::from_static(b"retry: 5\n\n")),
            )));
        assert_eq!(&next(&mut body).await[..], b"data: x\n\n");
        trigger.fire();
        assert_eq!(&next(&mut body).await[..], b"retry: 5\n\n");
        assert!(body.next().await.is_none());
    }

    /// The body is what every open stream keeps, whether it is busy or idle for hours: it is held
    /// to 384 bytes, the crate's budget for it (a field more, or a 16-byte-aligned one that pads
    /// it, shows here first; `tests/setup_budget.rs` holds the heap a stream keeps).
    #[test]
    fn an_open_streams_body_fits_in_384_bytes() {
        let size = std::mem::size_of::<SseBody<crate::Subscriber>>();
        assert!(size <= 384, "the body of a hub stream is {size} bytes");
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_sends_the_final_frame_and_ends() {
        let token = tokio_util::sync::CancellationToken::new();
        let mut body = SseBody::new(None, stream::pending::<Bytes>())
            .heartbeat(None)
            .shutdown(Some(Shutdown::new(
                ShutdownSignal::from_token(token.clone()),
                Arc::new(|| Bytes::from_static(b"retry: 5\n\n")),
            )));
        token.cancel();
        assert_eq!(&next(&mut body).await[..], b"retry: 5\n\n");
        assert!(body.next().await.is_none());
    }
}
