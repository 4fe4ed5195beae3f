//! [`SseServer`]: serves a poem endpoint with the settings long-lived streams need.
//!
//! Enabled by the `server` feature.
//!
//! ```no_run
//! use std::time::Duration;
//! use poem::{get, Route};
//! use poem_sse_ext::{server::{ReloadingTls, SseServer}, Hub};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//! let app = Route::new().at("/events/:channel", get(hub.endpoint()));
//! let tls = ReloadingTls::from_pem_files("certs/cert.pem", "certs/key.pem")?;
//! SseServer::bind("127.0.0.1:8443")
//!     .await?
//!     .tls(tls)                                  // ALPN h2 + http/1.1, hot reload
//!     .hub(hub)                                  // streams end first on shutdown
//!     .http2_keep_alive(Some(Duration::from_secs(20)), Duration::from_secs(20))
//!     .run_with_graceful_shutdown(app, async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     })
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! poem's own `Server` can not set what a server of long-lived streams needs: an HTTP/2 PING to
//! find dead peers (hyper stops polling the body of a client that stopped reading, so a timer in
//! the body can not), a bound on the time a client may take to send its headers, TCP keepalive.
//! This server runs its own accept loop over hyper-util's HTTP/1 + HTTP/2 builder, converts each
//! request to a poem [`Request`] exactly as poem does, and sets all of them explicitly:
//!
//! | setting | default |
//! | --- | --- |
//! | [`SseServer::http2_max_concurrent_streams`] | 256 per connection |
//! | [`SseServer::http2_keep_alive`] | PING after 20 s idle, close if no answer within 20 s |
//! | [`SseServer::header_read_timeout`] | 10 s for the TLS handshake and the HTTP/1 request head |
//! | [`SseServer::tcp_keepalive`] | 60 s |
//! | [`SseServer::tcp_nodelay`] | on (frames go out at once) |
//! | [`SseServer::tcp_user_timeout`] | 60 s: a client that stopped reading is disconnected |
//! | [`SseServer::shutdown_grace`] | 1 s |
//!
//! Graceful shutdown calls [`Hub::shutdown`] first, so every stream sends its farewell and ends
//! itself, then asks each connection to close (HTTP/2 `GOAWAY`) and waits at most the grace
//! period before dropping what is left.

use std::{
    convert::Infallible,
    fmt,
    future::Future,
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
    time::{Duration, SystemTime},
};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
};
use poem::{
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, EndpointExt, IntoEndpoint, Request,
};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::{TcpListener, TcpStream, ToSocketAddrs},
    task::JoinSet,
};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::{shutdown::ShutdownTrigger, Hub};

/// Serves a poem endpoint over HTTP/1.1 and HTTP/2, in clear text or TLS. See the
/// [module documentation](self).
pub struct SseServer {
    listener: TcpListener,
    tls: Option<ReloadingTls>,
    hub: Option<Hub>,
    http2_max_concurrent_streams: u32,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Duration,
    header_read_timeout: Duration,
    tcp_keepalive: Option<Duration>,
    tcp_nodelay: bool,
    tcp_user_timeout: Option<Duration>,
    shutdown_grace: Duration,
}

impl SseServer {
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
            hub: None,
            http2_max_concurrent_streams: 256,
            http2_keep_alive_interval: Some(Duration::from_secs(20)),
            http2_keep_alive_timeout: Duration::from_secs(20),
            header_read_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
            tcp_nodelay: true,
            tcp_user_timeout: Some(Duration::from_secs(60)),
            shutdown_grace: Duration::from_secs(1),
        }
    }

    /// The address the server listens on (with the port the system chose for port 0).
    ///
    /// # Errors
    /// When the socket has no local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves TLS with `tls`: ALPN offers `h2` then `http/1.1`, and new handshakes use the
    /// certificate files' current content (see [`ReloadingTls`]).
    pub fn tls(mut self, tls: ReloadingTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Shuts `hub` down first when graceful shutdown begins, so its open streams end themselves
    /// instead of holding their connections open until the grace period runs out.
    pub fn hub(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
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

    /// The longest a client may take for the TLS handshake and for sending an HTTP/1 request
    /// head (default 10 s); slower connections are closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = timeout;
        self
    }

    /// TCP keepalive probes after `idle` (default 60 s); `None` turns them off.
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
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
        self.tcp_user_timeout = timeout;
        self
    }

    /// Sets `TCP_NODELAY` on accepted sockets (default on), so a small event frame is sent at
    /// once rather than held back by Nagle's algorithm.
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
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
    /// Never in practice: accept errors are logged and retried.
    pub async fn run<E>(self, ep: E) -> io::Result<()>
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        self.run_with_graceful_shutdown(ep, std::future::pending())
            .await
    }

    /// Serves `ep` until `signal` completes, then shuts down gracefully: the hub first (its
    /// streams end themselves), then every connection, waiting at most the grace period.
    ///
    /// # Errors
    /// Never in practice: accept errors are logged and retried.
    pub async fn run_with_graceful_shutdown<E>(
        self,
        ep: E,
        signal: impl Future<Output = ()>,
    ) -> io::Result<()>
    where
        E: IntoEndpoint,
        E::Endpoint: 'static,
    {
        let ep = Arc::new(ep.into_endpoint().map_to_response());
        let builder = Arc::new(self.http_builder());
        let acceptor = self.tls.as_ref().map(ReloadingTls::acceptor);
        let shutdown = ShutdownTrigger::new();
        if let Some(tls) = &self.tls {
            tokio::spawn(tls.clone().watch(shutdown.child_token()));
        }
        let mut connections = JoinSet::new();
        tokio::pin!(signal);
        loop {
            tokio::select! {
                biased;
                () = &mut signal => break,
                // Reap finished connections so that the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => {
                    let (stream, remote) = match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            // Usually out of file descriptors: wait for some to close.
                            tracing::warn!(%err, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    self.configure_socket(&stream);
                    let connection = Connection {
                        local: stream.local_addr().unwrap_or(remote),
                        remote,
                        builder: Arc::clone(&builder),
                        shutdown: shutdown.clone(),
                        handshake_timeout: self.header_read_timeout,
                    };
                    connections.spawn(connection.serve(stream, acceptor.clone(), Arc::clone(&ep)));
                }
            }
        }

        let started = tokio::time::Instant::now();
        if let Some(hub) = &self.hub {
            hub.shutdown();
        }
        drop(self.listener);
        shutdown.fire();
        let open = connections.len();
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = connections.len(),
                grace = ?self.shutdown_grace,
                "connections still open after the grace period: dropping them"
            );
            connections.shutdown().await;
        }
        tracing::info!(connections = open, elapsed = ?started.elapsed(), "server stopped");
        Ok(())
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

    fn configure_socket(&self, stream: &TcpStream) {
        if let Err(err) = stream.set_nodelay(self.tcp_nodelay) {
            tracing::debug!(%err, "setting TCP_NODELAY failed");
        }
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        if let Some(timeout) = self.tcp_user_timeout {
            if let Err(err) = socket2::SockRef::from(stream).set_tcp_user_timeout(Some(timeout)) {
                tracing::debug!(%err, "setting TCP_USER_TIMEOUT failed");
            }
        }
        if let Some(idle) = self.tcp_keepalive {
            let keepalive = socket2::TcpKeepalive::new()
                .with_time(idle)
                .with_interval(idle / 4);
            if let Err(err) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
                tracing::debug!(%err, "setting TCP keepalive failed");
            }
        }
    }
}

impl fmt::Debug for SseServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SseServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("tls", &self.tls.is_some())
            .field(
                "http2_max_concurrent_streams",
                &self.http2_max_concurrent_streams,
            )
            .field("http2_keep_alive_interval", &self.http2_keep_alive_interval)
            .field("header_read_timeout", &self.header_read_timeout)
            .finish_non_exhaustive()
    }
}

/// One accepted connection and what serving it needs.
struct Connection {
    local: SocketAddr,
    remote: SocketAddr,
    builder: Arc<auto::Builder<TokioExecutor>>,
    shutdown: ShutdownTrigger,
    handshake_timeout: Duration,
}

impl Connection {
    async fn serve<E: Endpoint + 'static>(
        self,
        stream: TcpStream,
        acceptor: Option<TlsAcceptor>,
        ep: Arc<E>,
    ) {
        // Each branch is boxed so that a cleartext connection's task is not sized for a TLS
        // session it does not have (a task is as large as the largest state of its future).
        let Some(acceptor) = acceptor else {
            return Box::pin(self.serve_io(stream, Scheme::HTTP, ep)).await;
        };
        let handshake = tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream));
        let tls = tokio::select! {
            handshake = handshake => handshake,
            () = self.shutdown.signal() => return,
        };
        match tls {
            Ok(Ok(tls)) => Box::pin(self.serve_io(tls, Scheme::HTTPS, ep)).await,
            Ok(Err(err)) => tracing::debug!(remote = %self.remote, %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(remote = %self.remote, "TLS handshake timed out"),
        }
    }

    async fn serve_io<E, I>(self, io: I, scheme: Scheme, ep: Arc<E>)
    where
        E: Endpoint + 'static,
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let local = LocalAddr(Addr::SocketAddr(self.local));
        let remote = RemoteAddr(Addr::SocketAddr(self.remote));
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let ep = Arc::clone(&ep);
            let req = Request::from((req, local.clone(), remote.clone(), scheme.clone()));
            // Boxed: hyper keeps a slot the size of the service future for the connection's life
            // (HTTP/1) or the stream's (HTTP/2, where the stream task holds it beside the body).
            // A poem endpoint's future is kilobytes; a streaming response lives for hours after
            // it completes, so the slot must be a pointer, not the future itself.
            futures_util::FutureExt::boxed(async move {
                let response = ep.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            })
        });
        let connection = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        // Polled on every wake-up of the connection (every event it writes): a `ShutdownSignal`
        // costs an atomic load there, where the token's own future would take its mutex.
        let mut shutdown = self.shutdown.signal();
        let result = tokio::select! {
            biased;
            () = &mut shutdown => {
                // Ends idle HTTP/1 connections now; HTTP/2 sends GOAWAY and lets open streams
                // (which the hub's shutdown is ending) finish.
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            result = connection.as_mut() => result,
        };
        if let Err(err) = result {
            tracing::debug!(remote = %self.remote, %err, "connection ended with an error");
        }
    }
}

/// The accept backlog of [`SseServer::bind`].
pub const DEFAULT_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Why TLS could not be set up from certificate files.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("can not read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(PathBuf),
    /// The key file holds no usable PEM private key.
    #[error("{} holds no usable PEM private key: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A TLS configuration read from PEM files and reloaded when they change.
///
/// Every new handshake uses the certificate that was current when it began; connections already
/// open keep theirs, so replacing the files never drops a stream. A pair that does not load (a key
/// written after its certificate, say) is logged and retried at the next check; the previous
/// certificate stays in use meanwhile.
#[derive(Clone)]
pub struct ReloadingTls {
    resolver: Arc<ReloadingCert>,
    config: Arc<rustls::ServerConfig>,
    poll: Duration,
}

impl ReloadingTls {
    /// Loads the certificate chain from `cert` and the private key from `key` (both PEM).
    ///
    /// # Errors
    /// A missing or unreadable file, a file without a certificate or key, or a key that does not
    /// match the certificate.
    pub fn from_pem_files(
        cert: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        let (cert, key) = (cert.into(), key.into());
        let stamp = FileStamp::of(&cert, &key);
        let current = load_certified_key(&cert, &key)?;
        let resolver = Arc::new(ReloadingCert {
            current: RwLock::new(Arc::new(current)),
            stamp: Mutex::new(stamp),
            cert,
            key,
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            resolver,
            config: Arc::new(config),
            poll: Duration::from_secs(2),
        })
    }

    /// How often the files' modification times are checked (default 2 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    /// Reloads the files now if they changed since the last load. Returns whether the certificate
    /// in use changed.
    ///
    /// # Errors
    /// When the changed files do not load; the previous certificate stays in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        self.resolver.reload_if_changed()
    }

    /// The rustls configuration (certificate resolver and ALPN), for use with another server.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.config)
    }

    fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }

    /// Checks the files every poll interval until `stop` is cancelled.
    async fn watch(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = stop.cancelled() => return,
            }
            let tls = self.clone();
            match tokio::task::spawn_blocking(move || tls.reload_if_changed()).await {
                Ok(Ok(true)) => tracing::info!(
                    cert = %self.resolver.cert.display(),
                    "TLS certificate reloaded: new handshakes use it"
                ),
                Ok(Ok(false)) => {}
                Ok(Err(err)) => {
                    tracing::warn!(%err, "TLS certificate not reloaded: keeping the previous one")
                }
                Err(err) => tracing::warn!(%err, "TLS certificate reload task failed"),
            }
        }
    }
}

impl fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("cert", &self.resolver.cert)
            .field("key", &self.resolver.key)
            .field("poll", &self.poll)
            .finish()
    }
}

/// The certificate resolver behind [`ReloadingTls`].
#[derive(Debug)]
struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files' stamp when `current` was loaded; a pair that failed to load leaves it as it
    /// was, so the next check tries again.
    stamp: Mutex<FileStamp>,
    cert: PathBuf,
    key: PathBuf,
}

impl ReloadingCert {
    fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let stamp = FileStamp::of(&self.cert, &self.key);
        if *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) == stamp {
            return Ok(false);
        }
        let loaded = load_certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
        *self.stamp.lock().unwrap_or_else(|p| p.into_inner()) = stamp;
        Ok(true)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

/// Modification time and length of the certificate and key files (`None` when unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp([Option<(SystemTime, u64)>; 2]);

impl FileStamp {
    fn of(cert: &Path, key: &Path) -> Self {
        let stamp = |path: &Path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        };
        Self([stamp(cert), stamp(key)])
    }
}

fn load_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::Key {
        path: key_path.to_owned(),
        reason: err.to_string(),
    })?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|err| TlsError::Key {
            path: key_path.to_owned(),
            reason: err.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
            })
        }
        // `Unknown` (the key can not tell its public half) is not a mismatch.
        _ => Ok(certified),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use poem::{get, Route};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::Event;

    async fn serve(
        server: SseServer,
        hub: &Hub,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<io::Result<()>>,
    ) {
        let addr = server.local_addr().unwrap();
        let app = Route::new().at("/events/:channel", get(hub.endpoint()));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(
            server
                .hub(hub.clone())
                .run_with_graceful_shutdown(app, async {
                    let _ = stopped.await;
                }),
        );
        (addr, stop, task)
    }

    #[tokio::test]
    async fn shutdown_ends_open_streams_at_once() {
        let hub = Hub::new();
        let server = SseServer::bind("127.0.0.1:0").await.unwrap();
        let (addr, stop, task) = serve(server, &hub).await;
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let h1 = reqwest::Client::builder().http1_only().build().unwrap();
        let mut streams = Vec::new();
        for client in [&h2, &h2, &h1, &h1] {
            let url = format!("http://{addr}/events/a");
            streams.push(
                testkit::SseConnection::connect(client, &url, None)
                    .await
                    .unwrap(),
            );
        }
        hub.publish("a", Event::text("x")).await.unwrap();
        for stream in &mut streams {
            stream.next_event(Duration::from_secs(5)).await.unwrap();
        }

        let started = Instant::now();
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{:?}",
            started.elapsed()
        );
        for stream in &mut streams {
            stream.wait_for_end(Duration::from_secs(1)).await.unwrap();
        }
        assert!(hub.is_shutting_down());
    }

    /// A client that stays connected but never reads: hyper stops polling its body, so only the
    /// socket can tell. With `TCP_USER_TIMEOUT` the kernel ends it and the hub uncounts it.
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stopped_reading_is_disconnected() {
        let hub = Hub::builder().history(16).no_heartbeat().build();
        let server = SseServer::bind("127.0.0.1:0")
            .await
            .unwrap()
            .tcp_user_timeout(Some(Duration::from_secs(1)));
        let (addr, stop, task) = serve(server, &hub).await;
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        socket.set_nonblocking(true).unwrap();
        let mut stalled = TcpStream::from_std(socket.into()).unwrap();
        stalled
            .write_all(b"GET /events/a HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let opened = Instant::now();
        while hub.metrics().total.open_streams == 0 {
            assert!(
                opened.elapsed() < Duration::from_secs(5),
                "stream not opened"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Fill the server's send buffer and the client's receive window; the client reads nothing.
        let payload = "x".repeat(16 << 10);
        for _ in 0..400 {
            hub.publish("a", Event::text(payload.as_str()))
                .await
                .unwrap();
            tokio::task::yield_now().await;
        }
        let filled = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            hub.metrics().total.open_streams,
            1,
            "still counted before the timeout"
        );
        while hub.metrics().total.open_streams != 0 {
            assert!(
                filled.elapsed() < Duration::from_secs(15),
                "the stalled client is still counted after {:?}",
                filled.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = stalled.shutdown().await;
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_client_that_sends_no_headers_is_cut_off() {
        let hub = Hub::new();
        let server = SseServer::bind("127.0.0.1:0")
            .await
            .unwrap()
            .header_read_timeout(Duration::from_millis(200));
        let (addr, stop, task) = serve(server, &hub).await;
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /events/a HTTP/1.1\r\n").await.unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        // The server answers 408 or just closes; either way the read ends.
        let read = tokio::time::timeout(Duration::from_secs(3), async {
            while slow.read(&mut buf).await.unwrap_or(0) > 0 {}
        })
        .await;
        assert!(read.is_ok(), "connection still open after 3 s");
        assert!(started.elapsed() >= Duration::from_millis(150));
        let _ = stop.send(());
        task.await.unwrap().unwrap();
    }

    #[test]
    fn missing_certificate_files_are_a_clear_error() {
        let err = ReloadingTls::from_pem_files("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("can not read /nonexistent/cert.pem"),
            "{err}"
        );
    }
}
