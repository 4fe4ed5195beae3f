//! [`StreamServer`]: the builder, and `run`, which hands its settings to the accept loop and
//! then to the drain.

use std::{fmt, future::Future, io, net::SocketAddr, sync::Arc, time::Duration};

#[cfg(doc)]
use crate::BodyTimeout;

use hyper_util::{
    rt::{TokioExecutor, TokioTimer},
    server::conn::auto,
};
use poem::{EndpointExt, IntoEndpoint};
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::{
    accept::{per_ip::PerIpLimit, AcceptLoop},
    connection::Shared,
    drain::ShutdownHook,
    shutdown::ShutdownTrigger,
    socket::{listen, SocketOptions, DEFAULT_BACKLOG},
    ReloadingTls,
};

/// The default of [`StreamServer::max_connections_per_ip`].
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// Serves a poem endpoint over HTTP/1.1 and HTTP/2, in clear text or TLS, with the settings
/// long-lived streams need. See the [crate documentation](crate).
#[must_use = "a server does nothing until it is run"]
pub struct StreamServer {
    listener: TcpListener,
    tls: Option<ReloadingTls>,
    on_shutdown: Vec<ShutdownHook>,
    http2_max_concurrent_streams: u32,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Duration,
    header_read_timeout: Duration,
    request_body_timeout: Option<Duration>,
    max_connections_per_ip: Option<usize>,
    socket: SocketOptions,
    shutdown_grace: Duration,
    lean_event_streams: bool,
    coalesce_writes: bool,
}

impl StreamServer {
    /// Binds a TCP listener on `addr` with an accept backlog of [`DEFAULT_BACKLOG`].
    ///
    /// # Errors
    /// When the address can not be bound.
    pub async fn bind(addr: impl ToSocketAddrs) -> io::Result<Self> {
        Self::bind_with_backlog(addr, DEFAULT_BACKLOG).await
    }

    /// Binds a TCP listener on `addr` with room for `backlog` connections waiting to be
    /// accepted (the kernel caps it at `net.core.somaxconn`). A reconnect storm after a restart
    /// brings thousands of connects at once; each that overflows the queue waits for a SYN
    /// retransmit (1 s, then 3 s).
    ///
    /// # Errors
    /// When no address `addr` resolves to can be bound.
    pub async fn bind_with_backlog(addr: impl ToSocketAddrs, backlog: u32) -> io::Result<Self> {
        let mut last_err = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match listen(addr, backlog) {
                Ok(listener) => return Ok(Self::from_listener(listener)),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind")))
    }

    /// Serves on a listener bound elsewhere.
    pub fn from_listener(listener: TcpListener) -> Self {
        Self {
            listener,
            tls: None,
            on_shutdown: Vec::new(),
            http2_max_concurrent_streams: 256,
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            header_read_timeout: Duration::from_secs(10),
            request_body_timeout: Some(Duration::from_secs(10)),
            max_connections_per_ip: Some(DEFAULT_MAX_CONNECTIONS_PER_IP),
            socket: SocketOptions::default(),
            shutdown_grace: Duration::from_secs(1),
            lean_event_streams: true,
            coalesce_writes: true,
        }
    }

    /// The address the server listens on (with the port the system chose for port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether HTTP/1.1 requests for an event stream are served without hyper (on by default).
    ///
    /// hyper keeps read and write buffers and the parked connection state for every HTTP/1.1
    /// connection for its whole life; an idle event stream needs none of it. With this on, a
    /// connection's leading `GET` requests that accept `text/event-stream`, with no body and no
    /// upgrade, are parsed here and their responses written a frame at a time as each frame
    /// exists, keeping no buffer between frames; a client that closes ends its stream at once.
    /// The first request of any other kind, and HTTP/2, hand the connection to hyper for the
    /// rest of its life. Off, hyper serves every request.
    pub fn lean_event_streams(mut self, on: bool) -> Self {
        self.lean_event_streams = on;
        self
    }

    /// Whether a connection served by hyper sends what it writes once the tasks already woken
    /// have run (on by default), so that the frames of many HTTP/2 streams woken by one event
    /// leave in one system call and one TCP segment instead of one each.
    ///
    /// This trades a little median latency (the write waits for the tasks ahead of it) for less
    /// CPU per event and far fewer TCP segments under load; the tail latency does not grow.
    /// There is no timer, and `TCP_NODELAY` stays on. Off, a connection writes each time it
    /// runs.
    pub fn coalesce_writes(mut self, on: bool) -> Self {
        self.coalesce_writes = on;
        self
    }

    /// Serves TLS with `tls`: ALPN offers `h2` then `http/1.1`, and new handshakes use the
    /// certificate files' current content (see [`ReloadingTls`]). Without it (the default) the
    /// server speaks clear-text HTTP/1.1 and HTTP/2 with prior knowledge.
    pub fn tls(mut self, tls: ReloadingTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Runs `hook` first when graceful shutdown begins, before connections are asked to close.
    ///
    /// This is where streams are told to end: an open stream holds its connection open until
    /// the grace period runs out unless something ends it. For a `poem-sse-ext` hub:
    /// `.on_shutdown(move || hub.shutdown())`. Hooks run in the order they were added; there
    /// are none by default.
    pub fn on_shutdown(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.on_shutdown.push(Box::new(hook));
        self
    }

    /// Most concurrent HTTP/2 streams per connection (`SETTINGS_MAX_CONCURRENT_STREAMS`,
    /// default 256). Each `EventSource` of a page is one stream of its connection.
    pub fn http2_max_concurrent_streams(mut self, max: u32) -> Self {
        self.http2_max_concurrent_streams = max;
        self
    }

    /// Sends an HTTP/2 `PING` after `interval` without a frame from the peer, and closes the
    /// connection when no answer comes within `timeout` (default 20 s and 20 s). This finds dead
    /// peers even when no stream is polled. `None` sends no pings.
    pub fn http2_keep_alive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.http2_keep_alive_interval = interval;
        self.http2_keep_alive_timeout = timeout;
        self
    }

    /// The longest a client may take, from accept, to bring its first request (default 10 s):
    /// the TLS handshake, the bytes that tell HTTP/1 from HTTP/2, the HTTP/2 preface and
    /// SETTINGS, and the first request head (HTTP/1) or `HEADERS` frame (HTTP/2) all count. A
    /// connection that stalls anywhere before is closed, whatever it has sent; an HTTP/2
    /// connection that never opens a stream is closed too.
    ///
    /// On HTTP/1 each later request head, and the idle time before it, is bounded by the same
    /// duration (hyper's header read timeout). A request body is bounded by
    /// [`request_body_timeout`](Self::request_body_timeout).
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// The longest a request body may go without data while the handler reads it (default
    /// 10 s); `None` waits indefinitely.
    ///
    /// The wait starts when the handler asks for data that has not arrived, and restarts with
    /// each chunk, so a large upload at any steady rate is not cut. When it runs out the handler's
    /// read fails with an [`io::Error`] of kind `TimedOut` carrying a [`BodyTimeout`] (poem's
    /// `Body::into_bytes` wraps it in one more `io::Error`; poem answers `400` when the handler
    /// passes the error on). On HTTP/1 the connection closes after the response; on HTTP/2 only
    /// the stream ends.
    pub fn request_body_timeout(mut self, idle: Option<Duration>) -> Self {
        self.request_body_timeout = idle;
        self
    }

    /// Most connections one client address may hold open (default
    /// [`DEFAULT_MAX_CONNECTIONS_PER_IP`], 256); `None` or `Some(0)` for no limit.
    ///
    /// A connection over the cap is closed as soon as it is accepted, before the TLS handshake.
    /// The first refusal of an address is a warning naming it and the cap; its further refusals
    /// are at debug level until it has gone 5 s without one, and then a new refusal warns again
    /// (the count refused is in the line logged when the server stops).
    /// A browser needs one connection per origin over HTTP/2 and up to six over HTTP/1.1, so the
    /// cap is only ever reached by many clients behind one address (a NAT, a proxy) or by one
    /// client opening connections on purpose. IPv6 clients are counted per address, not per
    /// prefix.
    pub fn max_connections_per_ip(mut self, max: Option<usize>) -> Self {
        self.max_connections_per_ip = max.filter(|&max| max > 0);
        self
    }

    /// TCP keepalive probes after `idle` (default 60 s); `None` turns them off.
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.socket.keepalive = idle;
        self
    }

    /// Closes a connection whose sent data stays unacknowledged, or which has advertised a zero
    /// receive window, for longer than `timeout` (`TCP_USER_TIMEOUT`, Linux; default 60 s).
    ///
    /// This is what ends a client that stays connected but stopped reading: hyper then stops
    /// polling the response body, so nothing inside the body (no heartbeat, no timer) can notice.
    /// The kernel can: the socket's send buffer is full and the peer's window stays shut. `None`
    /// leaves the system default (about 15 minutes of retransmissions, and no limit on a shut
    /// window).
    pub fn tcp_user_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.socket.user_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on accepted sockets (default on), so a small event frame is sent at
    /// once rather than held back by Nagle's algorithm.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.socket.nodelay = on;
        self
    }

    /// How long graceful shutdown waits for connections to close before dropping them
    /// (default 1 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Serves `ep` until the process ends.
    ///
    /// # Errors
    /// Never in practice: accept errors are logged and retried (with a backoff when the process
    /// is out of file descriptors or memory).
    pub async fn run<E>(self, ep: E) -> io::Result<()>
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.run_with_graceful_shutdown(ep, std::future::pending())
            .await
    }

    /// Serves `ep` until `signal` completes, then shuts down gracefully: runs the
    /// [`on_shutdown`](Self::on_shutdown) hooks, stops accepting, asks every connection to close
    /// (HTTP/2 `GOAWAY`; idle HTTP/1 connections close at once) and waits at most the grace
    /// period before dropping what is left.
    ///
    /// # Errors
    /// Never in practice: accept errors are logged and retried (with a backoff when the process
    /// is out of file descriptors or memory).
    pub async fn run_with_graceful_shutdown<E>(
        self,
        ep: E,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        let shutdown = ShutdownTrigger::new();
        let shared = Arc::new(self.shared(ep.into_endpoint().map_to_response(), &shutdown));
        let per_ip = self.max_connections_per_ip.map(PerIpLimit::new);
        let Self {
            listener,
            tls,
            on_shutdown,
            socket,
            shutdown_grace,
            ..
        } = self;
        if let Some(tls) = tls {
            tokio::spawn(tls.watch(shutdown.child_token()));
        }
        let drain = AcceptLoop::new(listener, socket, per_ip, shared)
            .run(signal)
            .await;
        drain.run(on_shutdown, &shutdown, shutdown_grace).await;
        Ok(())
    }

    /// What every connection shares.
    pub(crate) fn shared<E>(&self, endpoint: E, shutdown: &ShutdownTrigger) -> Shared<E> {
        Shared {
            endpoint,
            http: self.http_builder(),
            tls: self.tls.as_ref().map(ReloadingTls::acceptor),
            first_request_timeout: self.header_read_timeout,
            lean_event_streams: self.lean_event_streams,
            coalesce_writes: self.coalesce_writes,
            request_body_timeout: self.request_body_timeout,
            shutdown: shutdown.clone(),
        }
    }

    fn http_builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_read_timeout)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(self.http2_max_concurrent_streams)
            .keep_alive_interval(self.http2_keep_alive_interval)
            .keep_alive_timeout(self.http2_keep_alive_timeout);
        builder
    }
}

impl fmt::Debug for StreamServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls)
            .field("on_shutdown", &self.on_shutdown.len())
            .field(
                "http2_max_concurrent_streams",
                &self.http2_max_concurrent_streams,
            )
            .field("http2_keep_alive_interval", &self.http2_keep_alive_interval)
            .field("http2_keep_alive_timeout", &self.http2_keep_alive_timeout)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("request_body_timeout", &self.request_body_timeout)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("socket", &self.socket)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("lean_event_streams", &self.lean_event_streams)
            .field("coalesce_writes", &self.coalesce_writes)
            .finish()
    }
}
