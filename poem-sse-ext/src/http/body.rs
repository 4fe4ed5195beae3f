//! The body of an SSE response: preamble, then frames, with heartbeats and shutdown.
//!
//! It knows no hub: any stream of ready chunks (a [`crate::Subscriber`], or the encoded events of
//! an [`crate::http::SseResponse`]) becomes a body with the same wire guarantees.

use std::{
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::{
    sync::clock::{Clock, Heartbeat},
    sync::shutdown::ShutdownSignal,
    wire::Event,
    wire::{retry_frame, HEARTBEAT_FRAME},
};

/// Turns a source of ready-encoded chunks into an SSE body: sends `preamble` first, every chunk
/// the moment the source yields it, a heartbeat comment after each idle `heartbeat` interval, and
/// ends with a final frame when the shutdown token fires.
///
/// The heartbeat is timed by the [`Clock`] of the thread the body is made on, shared by every
/// stream there: a frame sent records the clock's tick, and no timer of its own is kept.
pub(crate) struct SseBody<S> {
    preamble: Option<Bytes>,
    source: S,
    heartbeat: Option<Heartbeat>,
    shutdown: Option<Shutdown>,
    done: bool,
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
        self.heartbeat = interval.map(|interval| Clock::for_interval(interval).heartbeat());
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
            heartbeat.sent();
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
            if heartbeat.poll_due(cx) {
                return Poll::Ready(Some(Ok(Bytes::from_static(HEARTBEAT_FRAME))));
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use tokio::time::Instant;

    use super::*;
    use crate::sync::shutdown::ShutdownTrigger;

    async fn next(body: &mut SseBody<impl Stream<Item = Bytes> + Unpin + Send>) -> Bytes {
        match body.next().await {
            Some(Ok(chunk)) => chunk,
            other => panic!("expected a chunk, got {other:?}"),
        }
    }

    /// Whether `elapsed` is `interval` within 10 %.
    fn on_time(elapsed: Duration, interval: Duration) -> bool {
        elapsed >= interval.mul_f64(0.9) && elapsed <= interval.mul_f64(1.1)
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_after_each_idle_interval_and_restarted_by_frames() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let source = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let interval = Duration::from_secs(15);
        let mut body = SseBody::new(Some(Bytes::from_static(b"retry: 1\n\n")), source)
            .heartbeat(Some(interval));
        let start = Instant::now();
        assert_eq!(&next(&mut body).await[..], b"retry: 1\n\n");

        assert_eq!(&next(&mut body).await[..], HEARTBEAT_FRAME);
        let first = start.elapsed();
        assert!(on_time(first, interval), "first heartbeat after {first:?}");

        // An event 10 s later pushes the next heartbeat to an interval after it, not after the
        // first heartbeat.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let _ = tx.send(Bytes::from_static(b"data: x\n\n"));
        assert_eq!(&next(&mut body).await[..], b"data: x\n\n");
        let event = Instant::now();
        assert_eq!(&next(&mut body).await[..], HEARTBEAT_FRAME);
        let after = event.elapsed();
        assert!(
            on_time(after, interval),
            "heartbeat {after:?} after the event"
        );
    }

    /// Two streams on one clock for six intervals: the one with an event every third of an
    /// interval never sends a heartbeat; the idle one sends one after each interval, on time.
    #[tokio::test(start_paused = true)]
    async fn a_busy_stream_sends_no_heartbeat_and_an_idle_one_sends_each_on_time() {
        let interval = Duration::from_secs(15);
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let source = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        let mut busy = SseBody::new(None, source).heartbeat(Some(interval));
        let mut idle = SseBody::new(Some(Bytes::from_static(b"retry: 1\n\n")), stream::pending())
            .heartbeat(Some(interval));

        let idle = tokio::spawn(async move {
            assert_eq!(&next(&mut idle).await[..], b"retry: 1\n\n");
            let mut gaps = Vec::new();
            let mut last = Instant::now();
            for _ in 0..6 {
                assert_eq!(&next(&mut idle).await[..], HEARTBEAT_FRAME);
                gaps.push(last.elapsed());
                last = Instant::now();
            }
            gaps
        });
        tokio::spawn(async move {
            for _ in 0..18 {
                tokio::time::sleep(interval / 3).await;
                let _ = tx.send(Bytes::from_static(b"data: x\n\n"));
            }
        });
        let mut frames = Vec::new();
        while let Some(Ok(frame)) = busy.next().await {
            frames.push(frame);
        }
        assert_eq!(
            frames.len(),
            18,
            "the busy stream's frames: its events only"
        );
        assert!(frames.iter().all(|frame| &frame[..] == b"data: x\n\n"));

        let gaps = idle.await.unwrap_or_default();
        assert_eq!(gaps.len(), 6);
        for gap in gaps {
            assert!(
                on_time(gap, interval),
                "a heartbeat {gap:?} after the last frame"
            );
        }
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
