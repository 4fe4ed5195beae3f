//! A `StreamServer` serving a hub's streams on an ephemeral loopback port.
#![allow(dead_code)] // each test binary uses a different part

use std::{io, net::SocketAddr};

use poem::Route;
use poem_serve::StreamServer;
use poem_sse_ext::Hub;
use tokio::{sync::oneshot, task::JoinHandle};

/// A running server and the means to stop it.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<io::Result<()>>>,
}

/// Serves `/events/:channel` from `hub` with `server`; the hub is shut down first when the
/// server shuts down.
pub fn serve_hub(server: StreamServer, hub: &Hub) -> Running {
    serve_app(server, hub, Route::new())
}

/// Serves `app` with `/events/:channel` from `hub` added; the hub is shut down first when the
/// server shuts down.
pub fn serve_app(server: StreamServer, hub: &Hub, app: Route) -> Running {
    let addr = server
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    let app = app.at("/events/:channel", hub.endpoint());
    let (stop, stopped) = oneshot::channel::<()>();
    let hub = hub.clone();
    let task = tokio::spawn(
        server
            .on_shutdown(move || hub.shutdown())
            .run_with_graceful_shutdown(app, async {
                let _ = stopped.await;
            }),
    );
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Running {
    /// Signals graceful shutdown and waits until the server has stopped.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .unwrap_or_else(|e| panic!("server task: {e}"))
                .unwrap_or_else(|e| panic!("server: {e}"));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// How long `socket` stays open while the test sends nothing more: reads (and discards) until
/// the server closes it, for at most `limit`. `None` when it is still open after `limit`.
pub async fn open_for<S>(socket: &mut S, limit: std::time::Duration) -> Option<std::time::Duration>
where
    S: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        while socket.read(&mut buf).await.unwrap_or(0) > 0 {}
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

/// A self-signed certificate for `127.0.0.1` in a fresh directory: the server's TLS, and a
/// client configuration that trusts it.
pub struct TestCert {
    pub dir: std::path::PathBuf,
    pub server: poem_serve::ReloadingTls,
    pub client: tokio_rustls::TlsConnector,
}

impl TestCert {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("poem-serve-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .unwrap_or_else(|e| panic!("generating a certificate: {e}"));
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        let server = poem_serve::ReloadingTls::from_pem_files(&cert, &key)
            .unwrap_or_else(|e| panic!("loading the certificate: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        client.alpn_protocols = vec![b"http/1.1".to_vec()];
        Self {
            dir,
            server,
            client: tokio_rustls::TlsConnector::from(std::sync::Arc::new(client)),
        }
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
