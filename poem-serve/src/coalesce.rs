//! Writes that let the tasks already woken go first: one system call for a burst of frames.
//!
//! A published event wakes every stream that reads its channel. Over HTTP/2 each stream's task
//! hands its frame to the connection and wakes the connection's task, and tokio runs a task woken
//! by another straight away (its LIFO slot): the connection wrote each frame on its own, a
//! `writev` and a TCP segment per frame, where several streams' frames could share one.
//! (`TCP_NODELAY` stays on: Nagle's algorithm would merge them too, but hold a frame back until
//! the previous one is acknowledged. The figures are in the workspace's `BENCHMARKS.md`.)
//!
//! So the bytes hyper writes are kept here, and the flush that would send them waits for the
//! tasks that were ready when it was asked for: a small task yields once and then wakes the
//! connection (tokio runs a yielded task's wake-up once the worker has run its queue, or after
//! its periodic check of the IO driver). Meanwhile the connection still runs after each stream
//! that hands it a frame, so hyper encodes each frame at once and keeps none queued: a
//! connection holds a few bytes per frame until the write, not a queued frame with its headers
//! (frames held queued in hyper kept memory in every idle HTTP/2 stream after a burst of
//! set-ups). There is no timer.

use std::{
    io,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{ready, Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept for one write at most; past this a write goes out at once.
const MAX_PENDING: usize = 64 * 1024;

/// An IO whose writes are sent together, once the tasks already woken have run (see the module
/// documentation). Reads pass through.
pub(crate) struct Coalesce<I> {
    inner: I,
    /// Off: every write and flush goes through at once.
    on: bool,
    /// Written by hyper, not yet sent; freed once sent, so an idle connection keeps nothing.
    pending: Vec<u8>,
    /// Whether a flush is waiting for the tasks ahead of it.
    armed: bool,
    /// Set by the task that yields, when the tasks ahead have run.
    due: Arc<AtomicBool>,
}

impl<I> Coalesce<I> {
    pub(crate) fn new(inner: I, on: bool) -> Self {
        Self {
            inner,
            on,
            pending: Vec::new(),
            armed: false,
            due: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl<I: AsyncWrite + Unpin> Coalesce<I> {
    /// Sends the pending bytes; `Ready` once all are written.
    fn send_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut sent = 0;
        let result = loop {
            if sent == self.pending.len() {
                break Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &self.pending[sent..]) {
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => sent += n,
                Poll::Ready(Err(err)) => break Poll::Ready(Err(err)),
                Poll::Pending => break Poll::Pending,
            }
        };
        self.pending.drain(..sent);
        if self.pending.is_empty() {
            self.pending = Vec::new();
        }
        result
    }

    /// Asks for a wake-up once the tasks woken so far have run.
    fn arm(&mut self, cx: &mut Context<'_>) {
        self.armed = true;
        self.due.store(false, Ordering::Relaxed);
        let due = Arc::clone(&self.due);
        let waker = cx.waker().clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            due.store(true, Ordering::Release);
            waker.wake();
        });
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Coalesce<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Coalesce<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if !self.on {
            return Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        }
        if self.pending.len() >= MAX_PENDING {
            ready!(self.send_pending(cx))?;
        }
        let room = MAX_PENDING.saturating_sub(self.pending.len()).max(1);
        let mut taken = 0;
        for buf in bufs {
            let take = buf.len().min(room - taken);
            self.pending.extend_from_slice(&buf[..take]);
            taken += take;
            if taken == room {
                break;
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        // On, slices are copied here, so hyper need not join them first.
        self.on || self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() {
            if !self.armed {
                self.arm(cx);
                return Poll::Pending;
            }
            if !self.due.load(Ordering::Acquire) {
                // Woken by a stream with a frame: it is taken above; the write waits its turn.
                return Poll::Pending;
            }
            ready!(self.send_pending(cx))?;
            self.armed = false;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.send_pending(cx))?;
        self.armed = false;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    };

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Records each write call it gets.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(buf.to_vec());
            Poll::Ready(Ok(buf.len()))
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// A writer that, like an HTTP/2 connection, takes the frames queued when it runs into its
    /// buffer, writes the buffer and flushes; other tasks queue frames when they run.
    async fn connection(io: Recorder, queue: Arc<Mutex<Vec<u8>>>, frames: usize) {
        let mut io = Coalesce::new(io, true);
        let mut buffered = Vec::new();
        let mut written = 0;
        std::future::poll_fn(|cx| loop {
            buffered.append(&mut queue.lock().unwrap());
            if buffered.is_empty() {
                if written == frames {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let n = std::task::ready!(Pin::new(&mut io).poll_write(cx, &buffered)).unwrap();
            buffered.drain(..n);
            written += n;
            std::task::ready!(Pin::new(&mut io).poll_flush(cx)).unwrap();
        })
        .await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn frames_queued_by_tasks_woken_together_leave_in_one_write() {
        let io = Recorder::default();
        let queue = Arc::new(Mutex::new(Vec::new()));
        let ran = Arc::new(AtomicUsize::new(0));
        // The first stream's frame is there when the connection runs; nine more streams are
        // ready to run behind it.
        queue.lock().unwrap().push(0);
        let writer = tokio::spawn(connection(io.clone(), Arc::clone(&queue), 10));
        for n in 1..10u8 {
            let (queue, ran) = (Arc::clone(&queue), Arc::clone(&ran));
            tokio::spawn(async move {
                queue.lock().unwrap().push(n);
                ran.fetch_add(1, Ordering::Relaxed);
            });
        }
        writer.await.unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 9);
        let writes = io.0.lock().unwrap().clone();
        assert_eq!(writes, vec![(0..10).collect::<Vec<u8>>()], "{writes:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn writes_wait_for_the_flush_and_leave_together() {
        let io = Recorder::default();
        let mut coalesce = Coalesce::new(io.clone(), true);
        coalesce.write_all(b"head").await.unwrap();
        coalesce.write_all(b" body").await.unwrap();
        assert!(
            io.0.lock().unwrap().is_empty(),
            "nothing is sent before the flush"
        );
        coalesce.flush().await.unwrap();
        assert_eq!(*io.0.lock().unwrap(), vec![b"head body".to_vec()]);
        // Sent, the buffer is given back: an idle connection keeps nothing.
        assert_eq!(coalesce.pending.capacity(), 0);
        // Off, every write goes through as it comes.
        let io = Recorder::default();
        let mut direct = Coalesce::new(io.clone(), false);
        direct.write_all(b"a").await.unwrap();
        direct.write_all(b"b").await.unwrap();
        assert_eq!(io.0.lock().unwrap().len(), 2);
    }
}
