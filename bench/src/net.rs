//! Connections from the load generator to the server under test: plain TCP or TLS (any
//! certificate accepted: the demo serves a self-signed one), HTTP/1.1 or HTTP/2 (h2c by prior
//! knowledge on cleartext, ALPN `h2` over TLS), optionally from a chosen 127.0.0.x source.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// How long a TCP connect, TLS handshake or HTTP handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The server under test, parsed from a base URL such as `http://127.0.0.1:8080`.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub tls: bool,
    /// `host:port` as written in the base URL, for `Host` and `:authority`.
    pub authority: String,
    /// Bearer token for publishing, when the server wants one.
    pub token: Option<String>,
    /// Source addresses to spread connections over (empty: let the kernel choose).
    pub sources: Vec<Ipv4Addr>,
    tls_h1: Arc<rustls::ClientConfig>,
    tls_h2: Arc<rustls::ClientConfig>,
}

impl Target {
    /// Parses `http://IP:PORT` or `https://IP:PORT`. Only loopback addresses are accepted:
    /// this tool never sends load anywhere else.
    pub fn parse(base: &str, token: Option<String>, source_count: usize) -> Result<Self> {
        let (tls, rest) = if let Some(r) = base.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = base.strip_prefix("http://") {
            (false, r)
        } else {
            bail!("base URL must start with http:// or https://: {base}");
        };
        let authority = rest.trim_end_matches('/').to_owned();
        let host_port = authority.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = host_port
            .parse()
            .with_context(|| format!("base URL needs a literal IP:PORT, got {authority}"))?;
        if !addr.ip().is_loopback() {
            bail!("refusing non-loopback target {addr}: load goes to 127.0.0.0/8 or ::1 only");
        }
        let sources = match (addr.ip(), source_count) {
            (IpAddr::V4(_), n) if n > 1 => (1..=n.min(250) as u8)
                .map(|i| Ipv4Addr::new(127, 0, 0, i))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            addr,
            tls,
            authority,
            token,
            sources,
            tls_h1: Arc::new(tls_config(&[b"http/1.1"])?),
            tls_h2: Arc::new(tls_config(&[b"h2"])?),
        })
    }

    /// The source address for connection number `n`.
    pub fn source(&self, n: usize) -> Option<Ipv4Addr> {
        (!self.sources.is_empty()).then(|| self.sources[n % self.sources.len()])
    }

    /// Builds a request for `path`, in the form each HTTP version wants.
    pub fn request(&self, method: &str, path: &str, h2: bool) -> http::request::Builder {
        let scheme = if self.tls { "https" } else { "http" };
        if h2 {
            Request::builder()
                .method(method)
                .uri(format!("{scheme}://{}{path}", self.authority))
        } else {
            Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, &self.authority)
        }
    }
}

/// HTTP version of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    H1,
    H2,
}

/// A connection's request sender. The connection task is aborted when the last handle is
/// dropped, so a dropped stream really closes its socket (the cleanup scenario measures that).
pub struct Conn {
    sender: SenderKind,
    _task: Arc<AbortOnDrop>,
}

enum SenderKind {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Conn {
    /// Opens a connection to `target` from `source`.
    pub async fn open(
        target: &Target,
        source: Option<Ipv4Addr>,
        version: HttpVersion,
    ) -> Result<Self> {
        Self::open_socket(target, socket(target, source)?, version).await
    }

    /// Opens a connection to `target` on `socket`, made by [`socket`].
    pub async fn open_socket(
        target: &Target,
        socket: TcpSocket,
        version: HttpVersion,
    ) -> Result<Self> {
        let fut = async {
            let io = TokioIo::new(dial(target, socket, version).await?);
            let (sender, task) = match version {
                HttpVersion::H1 => {
                    let (sender, conn) = http1::handshake(io).await?;
                    (
                        SenderKind::H1(sender),
                        tokio::spawn(async move { drop(conn.await) }),
                    )
                }
                HttpVersion::H2 => {
                    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
                        .initial_stream_window_size(1 << 20)
                        .initial_connection_window_size(16 << 20)
                        .handshake(io)
                        .await?;
                    (
                        SenderKind::H2(sender),
                        tokio::spawn(async move { drop(conn.await) }),
                    )
                }
            };
            Ok(Self {
                sender,
                _task: Arc::new(AbortOnDrop(task)),
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("connect to {} timed out", target.addr))?
    }

    /// Another handle on the same HTTP/2 connection (`None` for HTTP/1.1, which carries one
    /// request at a time).
    pub fn share(&self) -> Option<Self> {
        match &self.sender {
            SenderKind::H1(_) => None,
            SenderKind::H2(s) => Some(Self {
                sender: SenderKind::H2(s.clone()),
                _task: self._task.clone(),
            }),
        }
    }

    pub fn version(&self) -> HttpVersion {
        match self.sender {
            SenderKind::H1(_) => HttpVersion::H1,
            SenderKind::H2(_) => HttpVersion::H2,
        }
    }

    /// Sends one request and waits for the response head.
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>> {
        match &mut self.sender {
            SenderKind::H1(s) => {
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
            SenderKind::H2(s) => {
                s.ready().await?;
                Ok(s.send_request(req).await?)
            }
        }
    }

    /// Whether the connection can no longer take requests.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            SenderKind::H1(s) => s.is_closed(),
            SenderKind::H2(s) => s.is_closed(),
        }
    }
}

/// A socket for a connection to `target` from `source`, made and bound but not connected. The
/// storm makes its clients' sockets before its clock starts (clients elsewhere would have theirs):
/// the core that bounds its figure then spends the time on the connections themselves.
pub fn socket(target: &Target, source: Option<Ipv4Addr>) -> Result<TcpSocket> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(IpAddr::V4(ip), 0))
            .with_context(|| format!("bind source {ip}"))?;
    }
    socket.set_nodelay(true)?;
    Ok(socket)
}

async fn dial(target: &Target, socket: TcpSocket, version: HttpVersion) -> Result<Io> {
    let tcp = socket
        .connect(target.addr)
        .await
        .with_context(|| format!("connect {}", target.addr))?;
    if !target.tls {
        return Ok(Io::Plain(tcp));
    }
    let config = match version {
        HttpVersion::H1 => target.tls_h1.clone(),
        HttpVersion::H2 => target.tls_h2.clone(),
    };
    let name = ServerName::IpAddress(target.addr.ip().into());
    let tls = TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .context("TLS handshake")?;
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    match (version, alpn.as_deref()) {
        (HttpVersion::H2, Some(b"h2")) | (HttpVersion::H1, Some(b"http/1.1") | None) => {}
        (v, other) => bail!(
            "server negotiated ALPN {:?} where {v:?} was asked",
            other.map(String::from_utf8_lossy)
        ),
    }
    Ok(Io::Tls(Box::new(tls)))
}

/// A TCP or TLS stream.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn tls_config(alpn: &[&[u8]]) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Accepts any server certificate (the demo's is self-signed and generated on first start).
/// Signatures are still checked, so the handshake itself is a real one.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
