//! One accepted connection: the TLS handshake, then hyper's HTTP/1 or HTTP/2 serving a poem
//! endpoint, until the peer leaves or shutdown closes it.
//!
//! A connection must bring its first request before a deadline counted from accept. hyper has a
//! timer for an HTTP/1 request head only; it does not cover the TLS handshake, the wait for the
//! bytes that tell HTTP/1 from HTTP/2, the HTTP/2 preface and SETTINGS, or an HTTP/2 connection
//! that never opens a stream. Each such socket costs a file descriptor, and a client can open
//! thousands. So the connection is raced against the deadline until hyper has handed the
//! service its first request.

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Body, Endpoint, Request, RequestParts,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
    time::{Instant, Sleep},
};
use tokio_rustls::TlsAcceptor;

use crate::{
    accept::per_ip::IpSlot,
    coalesce::Coalesce,
    handoff::Handoff,
    lean::{Lean, Next},
    request_body::TimedBody,
    shutdown::ShutdownTrigger,
};

/// What every connection of one server shares.
pub(crate) struct Shared<E> {
    pub(crate) endpoint: E,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) tls: Option<TlsAcceptor>,
    /// The longest from accept until the first request has arrived.
    pub(crate) first_request_timeout: Duration,
    /// Whether HTTP/1.1 event streams take the lean path ([`crate::lean`]).
    pub(crate) lean_event_streams: bool,
    /// Whether what hyper writes waits for the tasks already woken, to leave together
    /// ([`crate::coalesce`]).
    pub(crate) coalesce_writes: bool,
    /// The longest a request body may go without data; `None` for no bound.
    pub(crate) request_body_timeout: Option<Duration>,
    pub(crate) shutdown: ShutdownTrigger,
}

/// One accepted connection and what serving it needs.
pub(crate) struct Connection<E> {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) shared: Arc<Shared<E>>,
    /// Its place in its client address's share, given back when the connection ends.
    pub(crate) _ip_slot: Option<IpSlot>,
}

impl<E: Endpoint + 'static> Connection<E> {
    /// Serves the connection, accepted at `accepted`, to its end; errors are logged at debug
    /// level.
    pub(crate) async fn serve(self, stream: TcpStream, accepted: Instant) {
        let deadline = accepted + self.shared.first_request_timeout;
        // Each branch is boxed: a task is as large as the largest state of its future, and it
        // lives as long as its stream; this one holds the connection and a pointer.
        match self.shared.tls.clone() {
            None => Box::pin(self.serve_io(stream, Scheme::HTTP, deadline)).await,
            Some(acceptor) => Box::pin(self.serve_tls(acceptor, stream, deadline)).await,
        }
    }

    /// The TLS handshake (by `deadline`), then HTTP over it.
    async fn serve_tls(self, acceptor: TlsAcceptor, stream: TcpStream, deadline: Instant) {
        // Boxed, so that the task keeps no room for a handshake once it is done.
        let handshake = tokio::time::timeout_at(deadline, Box::pin(acceptor.accept(stream)));
        let tls = tokio::select! {
            handshake = handshake => handshake,
            () = self.shared.shutdown.signal() => return,
        };
        match tls {
            Ok(Ok(tls)) => Box::pin(self.serve_io(tls, Scheme::HTTPS, deadline)).await,
            Ok(Err(err)) => tracing::debug!(remote = %self.remote, %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(remote = %self.remote, "TLS handshake timed out"),
        }
    }

    /// Serves HTTP on `io`: event streams over HTTP/1.1 on the lean path while the client asks
    /// for them, then hyper for the rest (see [`crate::lean`]). Closes the connection at
    /// `deadline` unless a request has arrived by then.
    async fn serve_io<I>(self, mut io: I, scheme: Scheme, deadline: Instant)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let local = LocalAddr(Addr::SocketAddr(self.local));
        let remote = RemoteAddr(Addr::SocketAddr(self.remote));
        let (read, deadline) = if self.shared.lean_event_streams {
            let lean = Lean {
                local: &local,
                remote: &remote,
                scheme: &scheme,
                head_timeout: self.shared.first_request_timeout,
            };
            let shutdown = || self.shared.shutdown.signal();
            match lean
                .serve(&mut io, &self.shared.endpoint, shutdown, deadline)
                .await
            {
                Next::Closed => return,
                Next::Hyper(read, deadline) => (read, deadline),
            }
        } else {
            (Bytes::new(), deadline)
        };
        // Boxed: hyper's connection state is large, and this task stays as small as the lean
        // path's while it serves a stream.
        let io = Coalesce::new(Handoff::new(read, io), self.shared.coalesce_writes);
        Box::pin(self.serve_hyper(io, scheme, local, remote, deadline)).await;
    }

    /// Serves HTTP on `io` with hyper; closes it at `deadline` unless a request has arrived by
    /// then.
    async fn serve_hyper<I>(
        self,
        io: I,
        scheme: Scheme,
        local: LocalAddr,
        remote: RemoteAddr,
        deadline: Instant,
    ) where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let shared = Arc::clone(&self.shared);
        // Set by the service when hyper hands it a request: on HTTP/1 once the head is parsed, on
        // HTTP/2 once a stream's HEADERS have arrived. Read once, when the deadline passes.
        // Relaxed: hyper calls the service while this task polls the connection, so the store is
        // sequenced before that read.
        let requested = Arc::new(AtomicBool::new(false));
        let requested_in_service = Arc::clone(&requested);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            requested_in_service.store(true, Ordering::Relaxed);
            let shared = Arc::clone(&shared);
            let (local, remote, scheme) = (local.clone(), remote.clone(), scheme.clone());
            let req = match shared.request_body_timeout {
                // poem's own conversion: the addresses, the scheme and the upgrade handle.
                None => Request::from((req, local, remote, scheme)),
                // poem converts a request whose body is hyper's `Incoming` only: the parts go
                // through its conversion, the timed body beside them.
                Some(idle) => {
                    let (parts, body) = req.into_parts();
                    let parts = RequestParts::from((parts, local, remote, scheme));
                    Request::from_parts(parts, Body::from(BoxBody::new(TimedBody::new(body, idle))))
                }
            };
            // Boxed: hyper keeps a slot the size of the service future for the connection's life
            // (HTTP/1) or the stream's (HTTP/2, where the stream task holds it beside the body).
            // A streaming response lives for hours after it completes, so the slot must be a
            // pointer, not the future itself.
            futures_util::FutureExt::boxed(respond(shared, req))
        });
        let connection = self
            .shared
            .http
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        // Polled on every wake-up of the connection (every event it writes): a `ShutdownSignal`
        // costs an atomic load there, where the token's own future would take its mutex.
        let mut shutdown = self.shared.shutdown.signal();
        // Boxed and dropped once it has fired: a stream that lives for hours carries no timer.
        let mut first_request_deadline: Option<Pin<Box<Sleep>>> =
            Some(Box::pin(tokio::time::sleep_until(deadline)));
        let result = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    // Ends idle HTTP/1 connections now; HTTP/2 sends GOAWAY and lets open streams
                    // (which the shutdown hooks are ending) finish.
                    connection.as_mut().graceful_shutdown();
                    break connection.await;
                }
                result = connection.as_mut() => break result,
                () = fired(&mut first_request_deadline), if first_request_deadline.is_some() => {
                    first_request_deadline = None;
                    if !requested.load(Ordering::Relaxed) {
                        tracing::debug!(
                            remote = %self.remote,
                            "no request within the header read timeout: closing the connection"
                        );
                        return;
                    }
                }
            }
        };
        if let Err(err) = result {
            tracing::debug!(remote = %self.remote, %err, "connection ended with an error");
        }
    }
}

/// The response of `shared`'s endpoint to `req`, for hyper.
///
/// Until its first poll this future holds the request and a pointer: the endpoint's own future
/// (kilobytes, with a deep chain of routes and layers) is allocated when it starts, and an event
/// stream's is freed as soon as it has answered. hyper's HTTP/2 server takes in every stream
/// that a read brought before it runs any of them, so with the endpoint's future made up front
/// a burst of set-ups held thousands of them at once, and the allocator kept that memory
/// resident after they were freed.
async fn respond<E: Endpoint>(
    shared: Arc<Shared<E>>,
    req: Request,
) -> Result<hyper::Response<BoxBody<Bytes, io::Error>>, Infallible> {
    let response = Box::pin(shared.endpoint.get_response(req)).await;
    Ok(hyper::Response::from(response))
}

/// Completes when `deadline` fires; never when there is none.
async fn fired(deadline: &mut Option<Pin<Box<Sleep>>>) {
    match deadline {
        Some(deadline) => deadline.as_mut().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use poem::{endpoint::make_sync, EndpointExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::StreamServer;

    /// A connection's task lives as long as its stream (hours) and is as large as its largest
    /// state: what it holds inline is paid by every idle stream.
    #[tokio::test]
    async fn a_connection_task_holds_little_inline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (stream, remote) = listener.accept().await.unwrap();
        let server = StreamServer::from_listener(listener);
        let shutdown = ShutdownTrigger::new();
        let shared = Arc::new(server.shared(make_sync(|_| "x").map_to_response(), &shutdown));
        let connection = || Connection {
            local: addr,
            remote,
            shared: Arc::clone(&shared),
            _ip_slot: None,
        };
        let deadline = Instant::now();
        let task = std::mem::size_of_val(&connection().serve(stream, deadline));
        let stream = TcpStream::connect(addr).await.unwrap();
        // The lean path's state, boxed once per connection.
        let lean = std::mem::size_of_val(&connection().serve_io(stream, Scheme::HTTP, deadline));
        assert!(task <= 320, "the connection task holds {task} bytes inline");
        // hyper's state is boxed apart and allocated only for a connection hyper serves.
        assert!(lean <= 1_100, "the lean path holds {lean} bytes inline");
    }

    /// An endpoint whose future keeps 8 KiB across an await, as deep layer chains do.
    struct Large;

    impl Endpoint for Large {
        type Output = &'static str;

        async fn call(&self, _req: Request) -> poem::Result<Self::Output> {
            let scratch = [1u8; 8192];
            tokio::task::yield_now().await;
            Ok(if std::hint::black_box(scratch)[8191] == 1 {
                "large"
            } else {
                ""
            })
        }
    }

    /// hyper holds each new HTTP/2 stream's response future from the moment the stream arrives
    /// until its task first runs; a burst of set-ups holds thousands of them at once. Until it
    /// starts, that future must not carry the endpoint's own.
    #[tokio::test]
    async fn a_waiting_request_holds_no_room_for_the_endpoint() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = ShutdownTrigger::new();
        let server = StreamServer::from_listener(listener);
        let shared = Arc::new(server.shared(Large.map_to_response(), &shutdown));
        let waiting = respond(Arc::clone(&shared), Request::default());
        let size = std::mem::size_of_val(&waiting);
        assert!(size <= 1_024, "a waiting request holds {size} bytes");
        let response = waiting.await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"large");
    }
}
