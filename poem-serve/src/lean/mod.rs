//! HTTP/1.1 event streams served without hyper's per-connection buffers.
//!
//! hyper keeps, for every HTTP/1.1 connection, a read buffer, a write buffer and the parked
//! connection state for as long as the connection lives, which for an event stream is hours of
//! mostly idle waiting. An event stream needs none of it: its request has no body,
//! its response is written a frame at a time the moment each exists.
//!
//! So a connection's requests are read here first. A `GET` that accepts `text/event-stream`
//! (what every `EventSource` sends), over HTTP/1.1, with no body and no upgrade, is served by
//! this module: the head is parsed with `httparse`, the endpoint called, the response head
//! written, then each body frame written as a chunk as soon as the body yields it, with no
//! buffer kept between frames. Any other request (and HTTP/2) hands the connection, with the
//! bytes read so far, to hyper for the rest of its life.
//!
//! While a response streams, the read side is watched: a client that closes ends its stream at
//! once. Bytes a client sends ahead are kept and served after the response, so keep-alive and
//! pipelining work as HTTP/1.1 says.

mod head;
mod write;

use std::io;

use hyper::body::Bytes;
use poem::{http::uri::Scheme, web::LocalAddr, web::RemoteAddr, Body, Request, RequestParts};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite},
    time::Instant,
};

use crate::shutdown::ShutdownSignal;
use head::Head;
use write::Ended;

/// Who serves the rest of a connection after the lean path.
pub(crate) enum Next {
    /// The connection is over.
    Closed,
    /// hyper, starting with these bytes already read; a request must arrive by the deadline.
    Hyper(Bytes, Instant),
}

/// What the lean path needs from the connection.
pub(crate) struct Lean<'a> {
    pub(crate) local: &'a LocalAddr,
    pub(crate) remote: &'a RemoteAddr,
    pub(crate) scheme: &'a Scheme,
    /// How long a client may take to send a request head: the first from accept, each later one
    /// from the end of the previous response.
    pub(crate) head_timeout: std::time::Duration,
}

impl Lean<'_> {
    /// Serves the event-stream requests at the start of the connection; returns what to do with
    /// the rest. The first request must be complete by `deadline`.
    pub(crate) async fn serve<I, E>(
        &self,
        io: &mut I,
        endpoint: &E,
        shutdown: impl Fn() -> ShutdownSignal,
        mut deadline: Instant,
    ) -> Next
    where
        I: AsyncRead + AsyncWrite + Unpin,
        E: poem::Endpoint,
    {
        let mut buf = Vec::new();
        loop {
            // Boxed: its timer is needed while a head is awaited, not for the life of a stream.
            let head = Box::pin(read_head(io, &mut buf, deadline, shutdown())).await;
            let (parts, len) = match head {
                Ok(HeadRead::EventStream(parts, len)) => (parts, len),
                Ok(HeadRead::Other) => return Next::Hyper(Bytes::from(buf), deadline),
                Ok(HeadRead::Closed) => return Next::Closed,
                Err(err) => {
                    tracing::debug!(remote = %self.remote.0, %err, "no request head: closing the connection");
                    return Next::Closed;
                }
            };
            buf.drain(..len);
            // Usually empty now (no request sent ahead): an idle stream keeps no buffer.
            buf.shrink_to_fit();
            let close = head::wants_close(&parts);
            let request = Request::from_parts(
                RequestParts::from((
                    *parts,
                    self.local.clone(),
                    self.remote.clone(),
                    self.scheme.clone(),
                )),
                Body::empty(),
            );
            // Boxed: this task lives as long as the stream, and is as large as its largest
            // state; an endpoint's future is kilobytes and is done once the response exists.
            let response = write::prepare(Box::pin(endpoint.get_response(request)).await);
            let close = close || response.close;
            match write::write_response(io, response, &mut buf).await {
                Ok(Ended::Complete) if !close => {}
                Ok(_) => return Next::Closed,
                Err(err) => {
                    tracing::debug!(remote = %self.remote.0, %err, "writing a response failed");
                    return Next::Closed;
                }
            }
            buf.shrink_to_fit();
            deadline = Instant::now() + self.head_timeout;
        }
    }
}

enum HeadRead {
    EventStream(Box<poem::http::request::Parts>, usize),
    Other,
    Closed,
}

/// Reads into `buf` until it holds a request head (or something for hyper), the client leaves,
/// the deadline passes (an error) or shutdown begins (closed).
async fn read_head<I: AsyncRead + Unpin>(
    io: &mut I,
    buf: &mut Vec<u8>,
    deadline: Instant,
    mut shutdown: ShutdownSignal,
) -> io::Result<HeadRead> {
    loop {
        if !buf.is_empty() {
            match head::classify(buf) {
                Head::EventStream { parts, len } => return Ok(HeadRead::EventStream(parts, len)),
                Head::Other => return Ok(HeadRead::Other),
                Head::Partial => {}
            }
        }
        buf.reserve(1024);
        let read = tokio::select! {
            read = tokio::time::timeout_at(deadline, io.read_buf(buf)) => read,
            () = &mut shutdown => return Ok(HeadRead::Closed),
        };
        match read {
            Ok(Ok(0)) if buf.is_empty() => return Ok(HeadRead::Closed),
            // A head cut short: hyper answers it as HTTP says.
            Ok(Ok(0)) => return Ok(HeadRead::Other),
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err),
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no complete request head within the header read timeout",
                ))
            }
        }
    }
}
