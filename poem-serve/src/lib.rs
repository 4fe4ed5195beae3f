//! An accept loop for [poem] endpoints that serve long-lived streams (Server-Sent Events, long
//! polls, downloads): [`StreamServer`].
//!
//! ```
//! use std::time::Duration;
//! use poem::{get, handler, Route};
//! use poem_serve::StreamServer;
//!
//! #[handler]
//! fn hello() -> &'static str {
//!     "hello"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = StreamServer::bind("127.0.0.1:0")
//!     .await?
//!     .http2_keep_alive(Some(Duration::from_secs(20)), Duration::from_secs(20))
//!     .on_shutdown(|| println!("shutting down: end the open streams here"));
//! let addr = server.local_addr()?;
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.run_with_graceful_shutdown(
//!     Route::new().at("/", get(hello)),
//!     async { let _ = stopped.await; },
//! ));
//!
//! // Clients connect to `addr` (HTTP/1.1, or HTTP/2 with prior knowledge; both over TLS with
//! // `.tls(ReloadingTls::from_pem_files(cert, key)?)`).
//! # let _ = addr;
//! let _ = stop.send(());
//! serving.await??;
//! # Ok(())
//! # }
//! ```
//!
//! poem's own `Server` can not set what a server of long-lived streams needs: an HTTP/2 PING to
//! find dead peers (hyper stops polling the body of a client that stopped reading, so a timer in
//! the body can not), a bound on the time a client may take to send its headers, TCP keepalive.
//! This server runs its own accept loop over [hyper-util]'s HTTP/1 + HTTP/2 builder, turns each
//! request into a poem [`Request`] with poem's own conversion, and sets all of them explicitly:
//!
//! | setting | default |
//! | --- | --- |
//! | [`StreamServer::http2_max_concurrent_streams`] | 256 per connection |
//! | [`StreamServer::http2_keep_alive`] | PING after 20 s idle, close if no answer within 20 s |
//! | [`StreamServer::header_read_timeout`] | 10 s from accept to the first request (TLS, HTTP/2 preface, head) |
//! | [`StreamServer::request_body_timeout`] | 10 s without data in a request body |
//! | [`StreamServer::max_connections_per_ip`] | 256; more are closed at once |
//! | [`StreamServer::tcp_keepalive`] | 60 s |
//! | [`StreamServer::tcp_nodelay`] | on (frames go out at once) |
//! | [`StreamServer::coalesce_writes`] | on: HTTP/2 frames woken by one event share a write |
//! | [`StreamServer::tcp_user_timeout`] | 60 s: a client that stopped reading is disconnected |
//! | [`StreamServer::shutdown_grace`] | 1 s |
//! | [`StreamServer::bind`] | a listen backlog of [`DEFAULT_BACKLOG`] (4096) |
//!
//! Graceful shutdown runs the [`on_shutdown`](StreamServer::on_shutdown) hooks first (where an
//! app tells its streams to end), then asks each connection to close (HTTP/2 `GOAWAY`) and waits
//! at most the grace period before dropping what is left. TLS comes from [`ReloadingTls`], which
//! serves new handshakes the certificate files' current content.
//!
//! # Clients that hold sockets without using them
//!
//! Every open socket costs a file descriptor. A connection must bring its first request within
//! [`header_read_timeout`](StreamServer::header_read_timeout), counted from accept (time spent
//! in the kernel's listen queue before that is not counted); a request body may not pause for
//! longer than [`request_body_timeout`](StreamServer::request_body_timeout); one address holds
//! at most [`max_connections_per_ip`](StreamServer::max_connections_per_ip) connections. When
//! the process runs out of descriptors anyway (many addresses), accept backs off and warns once,
//! and new clients wait in the listen queue until stalled connections reach their deadline.
//!
//! # Idle HTTP/1.1 event streams without hyper's buffers
//!
//! hyper keeps a read buffer, a write buffer and its connection state for every HTTP/1.1
//! connection for as long as it lives, which for an event stream is hours of mostly idle
//! waiting. An event stream needs none of it, so by default
//! ([`StreamServer::lean_event_streams`]) a request that asks for one — an HTTP/1.1 `GET` that
//! accepts `text/event-stream`, with no body and no upgrade, as every `EventSource` sends — is
//! parsed with `httparse`, and its response is written a chunk per frame the moment the body
//! yields it, with nothing kept between frames (the memory per idle stream either way is in the
//! workspace's `BENCHMARKS.md`). Keep-alive and pipelining work as HTTP/1.1 says; a client that
//! closes ends its stream at once. The first request of any other kind hands the connection to
//! hyper for the rest of its life, and HTTP/2 is hyper's from the start.
//!
//! hyper answers a request it can not parse with its own `400` (or `414`, `431`) and an empty
//! body; it offers no hook to add one.
//!
//! [poem]: https://docs.rs/poem
//! [hyper-util]: https://docs.rs/hyper-util
//! [`Request`]: https://docs.rs/poem/3/poem/struct.Request.html
#![warn(missing_docs, missing_debug_implementations)]

mod accept;
mod coalesce;
mod connection;
mod drain;
mod handoff;
mod lean;
mod request_body;
mod server;
mod shutdown;
mod socket;
#[cfg(test)]
mod test_log;
mod tls;

pub use request_body::BodyTimeout;
pub use server::{StreamServer, DEFAULT_MAX_CONNECTIONS_PER_IP};
pub use socket::DEFAULT_BACKLOG;
pub use tls::{ReloadingTls, TlsError};
