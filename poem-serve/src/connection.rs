//! One accepted connection: the TLS handshake, then hyper's HTTP/1 or HTTP/2 serving a poem
//! endpoint, until the peer leaves or shutdown closes it.

use std::{convert::Infallible, net::SocketAddr, sync::Arc, time::Duration};

use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use poem::{
    http::uri::Scheme,
    web::{LocalAddr, RemoteAddr},
    Addr, Endpoint, Request,
};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    net::TcpStream,
};
use tokio_rustls::TlsAcceptor;

use crate::shutdown::ShutdownTrigger;

/// What every connection of one server shares.
pub(crate) struct Shared<E> {
    pub(crate) endpoint: E,
    pub(crate) http: auto::Builder<TokioExecutor>,
    pub(crate) tls: Option<TlsAcceptor>,
    /// The longest a TLS handshake may take.
    pub(crate) handshake_timeout: Duration,
    pub(crate) shutdown: ShutdownTrigger,
}

/// One accepted connection and what serving it needs.
pub(crate) struct Connection<E> {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) shared: Arc<Shared<E>>,
}

impl<E: Endpoint + 'static> Connection<E> {
    /// Serves the connection to its end; errors are logged at debug level.
    pub(crate) async fn serve(self, stream: TcpStream) {
        // Each branch is boxed so that a cleartext connection's task is not sized for a TLS
        // session it does not have (a task is as large as the largest state of its future).
        let Some(acceptor) = self.shared.tls.clone() else {
            return Box::pin(self.serve_io(stream, Scheme::HTTP)).await;
        };
        let handshake =
            tokio::time::timeout(self.shared.handshake_timeout, acceptor.accept(stream));
        let tls = tokio::select! {
            handshake = handshake => handshake,
            () = self.shared.shutdown.signal() => return,
        };
        match tls {
            Ok(Ok(tls)) => Box::pin(self.serve_io(tls, Scheme::HTTPS)).await,
            Ok(Err(err)) => tracing::debug!(remote = %self.remote, %err, "TLS handshake failed"),
            Err(_) => tracing::debug!(remote = %self.remote, "TLS handshake timed out"),
        }
    }

    async fn serve_io<I>(self, io: I, scheme: Scheme)
    where
        I: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let local = LocalAddr(Addr::SocketAddr(self.local));
        let remote = RemoteAddr(Addr::SocketAddr(self.remote));
        let shared = Arc::clone(&self.shared);
        let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let shared = Arc::clone(&shared);
            let req = Request::from((req, local.clone(), remote.clone(), scheme.clone()));
            // Boxed: hyper keeps a slot the size of the service future for the connection's life
            // (HTTP/1) or the stream's (HTTP/2, where the stream task holds it beside the body).
            // A poem endpoint's future is kilobytes; a streaming response lives for hours after
            // it completes, so the slot must be a pointer, not the future itself.
            futures_util::FutureExt::boxed(async move {
                let response = shared.endpoint.get_response(req).await;
                Ok::<_, Infallible>(hyper::Response::from(response))
            })
        });
        let connection = self
            .shared
            .http
            .serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(connection);
        // Polled on every wake-up of the connection (every event it writes): a `ShutdownSignal`
        // costs an atomic load there, where the token's own future would take its mutex.
        let mut shutdown = self.shared.shutdown.signal();
        let result = tokio::select! {
            biased;
            () = &mut shutdown => {
                // Ends idle HTTP/1 connections now; HTTP/2 sends GOAWAY and lets open streams
                // (which the shutdown hooks are ending) finish.
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
