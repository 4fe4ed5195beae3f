//! The request body, with a bound on how long it may go without data.
//!
//! hyper waits for a request body's next bytes as long as the connection lives, and the handler
//! waits with it: a client that sends a head with `Content-Length: 100` and ten bytes holds a
//! task and a socket forever. [`TimedBody`] turns a wait longer than the timeout into an error
//! for the handler; on HTTP/1 hyper then closes the connection (the rest of the body will never
//! be read), on HTTP/2 it resets the stream.

use std::{
    fmt,
    future::Future,
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::time::{Instant, Sleep};

/// Why a request body could not be read: its next data did not arrive in time.
///
/// The handler receives it as an [`io::Error`] of kind [`io::ErrorKind::TimedOut`] (in poem,
/// inside `ReadBodyError::Io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(pub Duration);

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the request body sent no data for {:?}: the client stalled",
            self.0
        )
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body whose every wait for data is bounded by `idle`.
pub(crate) struct TimedBody {
    inner: Incoming,
    idle: Duration,
    /// Allocated on the first wait and reset for each later one; `armed` while it runs for the
    /// current wait.
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    timed_out: bool,
}

impl TimedBody {
    pub(crate) fn new(inner: Incoming, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            timer: None,
            armed: false,
            timed_out: false,
        }
    }

    fn timeout_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, BodyTimeout(self.idle))
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.timed_out {
            // Once timed out, always: a body cut short must not read as a complete one.
            return Poll::Ready(Some(Err(this.timeout_error())));
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame.map(|frame| frame.map_err(io::Error::other)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let timer = match &mut this.timer {
                    Some(timer) if this.armed => timer,
                    Some(timer) => {
                        timer.as_mut().reset(deadline);
                        timer
                    }
                    None => this
                        .timer
                        .insert(Box::pin(tokio::time::sleep_until(deadline))),
                };
                this.armed = true;
                if timer.as_mut().poll(cx).is_ready() {
                    this.timed_out = true;
                    this.timer = None;
                    return Poll::Ready(Some(Err(this.timeout_error())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        !self.timed_out && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
