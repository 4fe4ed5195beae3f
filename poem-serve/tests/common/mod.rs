//! A `StreamServer` serving a hub's streams on an ephemeral loopback port.
#![allow(dead_code)] // each test binary uses a different part

use std::{io, net::SocketAddr};

use poem::{get, Route};
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
    let addr = server
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"));
    let app = Route::new().at("/events/:channel", get(hub.endpoint()));
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
