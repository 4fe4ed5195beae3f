//! The accept loop: each turn waits for one thing to happen ([`Wake`]), then takes one step —
//! admit and spawn an accepted connection, back off after a failed `accept`, reap a finished
//! connection — until shutdown begins and the open connections go to the [`Drain`].
//!
//! - [`backoff`]: what a failed `accept` does (a pause while the server is out of a resource).
//! - [`per_ip`]: per-address admission (the cap on one client address's connections).

pub(crate) mod backoff;
pub(crate) mod per_ip;

use std::{future::Future, io, net::SocketAddr, pin::Pin, sync::Arc};

use poem::Endpoint;
use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinSet,
    time::Instant,
};

use crate::{
    connection::{Connection, Shared},
    drain::Drain,
    socket::SocketOptions,
};
use backoff::Backoff;
use per_ip::PerIpLimit;

/// The listener and the connections it accepted, served with what they share.
pub(crate) struct AcceptLoop<E> {
    listener: TcpListener,
    socket: SocketOptions,
    /// The cap per client address; `None` for no cap.
    per_ip: Option<Arc<PerIpLimit>>,
    backoff: Backoff,
    connections: JoinSet<()>,
    shared: Arc<Shared<E>>,
}

/// What woke the accept loop.
enum Wake {
    /// Shutdown began.
    Shutdown,
    /// `accept` returned, at this instant.
    Accepted(io::Result<(TcpStream, SocketAddr)>, Instant),
    /// A connection ended, a pause ended or an episode of failures went quiet: already handled.
    Handled,
}

impl<E: Endpoint + 'static> AcceptLoop<E> {
    pub(crate) fn new(
        listener: TcpListener,
        socket: SocketOptions,
        per_ip: Option<Arc<PerIpLimit>>,
        shared: Arc<Shared<E>>,
    ) -> Self {
        Self {
            listener,
            socket,
            per_ip,
            backoff: Backoff::new(),
            connections: JoinSet::new(),
            shared,
        }
    }

    /// Accepts and serves connections until `signal` completes; hands the open ones to the
    /// drain.
    pub(crate) async fn run(mut self, signal: impl Future<Output = ()>) -> Drain {
        tokio::pin!(signal);
        loop {
            match self.wake(signal.as_mut()).await {
                Wake::Shutdown => break,
                Wake::Accepted(Ok((stream, remote)), at) => {
                    self.backoff.succeeded();
                    self.admit(stream, remote, at);
                }
                Wake::Accepted(Err(err), at) => self.backoff.failed(&err, at),
                Wake::Handled => {}
            }
        }
        self.backoff.end();
        Drain {
            listener: self.listener,
            connections: self.connections,
            refused_per_ip: self.per_ip.as_ref().map_or(0, |per_ip| per_ip.refused()),
        }
    }

    /// Waits for the next thing to do: shutdown first, then a finished connection, the
    /// backoff's timers, and a new connection unless accepting is paused.
    async fn wake(&mut self, signal: Pin<&mut impl Future<Output = ()>>) -> Wake {
        tokio::select! {
            biased;
            () = signal => Wake::Shutdown,
            // Reaped, so that the set does not grow without bound; each one freed a file
            // descriptor, so a paused accept may try again now.
            Some(_) = self.connections.join_next(), if !self.connections.is_empty() => {
                self.backoff.connection_closed();
                Wake::Handled
            }
            () = self.backoff.timer() => Wake::Handled,
            accepted = self.listener.accept(), if !self.backoff.is_paused() => {
                Wake::Accepted(accepted, Instant::now())
            }
        }
    }

    /// Admits a connection accepted at `accepted_at` under its address's cap (dropping it, which
    /// closes it, when the address is at its cap), sets its socket options and spawns its task.
    fn admit(&mut self, stream: TcpStream, remote: SocketAddr, accepted_at: Instant) {
        let ip_slot = match &self.per_ip {
            Some(per_ip) => match per_ip.admit(remote.ip(), accepted_at.into_std()) {
                Some(slot) => Some(slot),
                None => return,
            },
            None => None,
        };
        self.socket.apply(&stream);
        let connection = Connection {
            local: stream.local_addr().unwrap_or(remote),
            remote,
            shared: Arc::clone(&self.shared),
            _ip_slot: ip_slot,
        };
        self.connections
            .spawn(connection.serve(stream, accepted_at));
    }
}
