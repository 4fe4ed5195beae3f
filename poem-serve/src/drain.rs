//! The drain: graceful shutdown's last step, after the accept loop has stopped.
//!
//! The hooks run first, because an open stream holds its connection until something ends it;
//! then the listener closes, every connection is asked to close (HTTP/2 `GOAWAY`; idle HTTP/1
//! connections close at once), and what is still open after the grace period is dropped.

use std::time::Duration;

use tokio::{net::TcpListener, task::JoinSet};

use crate::shutdown::ShutdownTrigger;

/// A hook run when graceful shutdown begins.
pub(crate) type ShutdownHook = Box<dyn FnOnce() + Send>;

/// What the accept loop leaves when shutdown begins.
pub(crate) struct Drain {
    pub(crate) listener: TcpListener,
    pub(crate) connections: JoinSet<()>,
    /// Connections refused by the cap per address while the server ran.
    pub(crate) refused_per_ip: u64,
}

impl Drain {
    /// Runs `hooks`, stops accepting, fires `shutdown` and waits at most `grace` for the
    /// connections to close before dropping the rest; logs what it did.
    pub(crate) async fn run(
        self,
        hooks: Vec<ShutdownHook>,
        shutdown: &ShutdownTrigger,
        grace: Duration,
    ) {
        let Self {
            listener,
            mut connections,
            refused_per_ip,
        } = self;
        let started = tokio::time::Instant::now();
        for hook in hooks {
            hook();
        }
        drop(listener);
        shutdown.fire();
        let open = connections.len();
        if !wait_for_all(&mut connections, grace).await {
            tracing::warn!(
                left = connections.len(),
                grace = ?grace,
                "connections still open after the grace period: dropping them"
            );
            connections.shutdown().await;
        }
        tracing::info!(
            connections = open,
            refused_per_ip,
            elapsed = ?started.elapsed(),
            "server stopped"
        );
    }
}

/// Whether every task of `connections` ended within `grace`.
async fn wait_for_all(connections: &mut JoinSet<()>, grace: Duration) -> bool {
    tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await
    .is_ok()
}
