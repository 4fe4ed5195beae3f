//! What an operator reads when one client address is at its cap: one warning naming the address
//! and the cap for a burst of refusals, not one line per refusal and not silence.
//!
//! Alone in its test binary: the subscriber that captures the lines is installed for this test's
//! thread, and tracing caches per call site whether anyone listens, which other tests running in
//! parallel threads without a subscriber would disturb.

mod common;

use std::{
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{open_for, serve_hub};
use poem_serve::StreamServer;
use poem_sse_ext::Hub;
use tokio::net::TcpStream;

const MAX_PER_IP: usize = 2;
const REFUSED: usize = 40;

/// Every log line a subscriber formats, kept for the test to read.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut logs) = self.0.lock() {
            logs.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Connects to `addr` and waits until the server closes the connection; panics if it stays open.
async fn refused(addr: SocketAddr) {
    let mut over = TcpStream::connect(addr).await.unwrap();
    let open = open_for(&mut over, Duration::from_secs(3)).await;
    assert!(
        open.is_some_and(|open| open < Duration::from_secs(1)),
        "a connection over the cap stayed open {open:?}"
    );
}

// Current-thread: the server's tasks log on this thread, where the subscriber is installed.
#[tokio::test(flavor = "current_thread")]
async fn many_refusals_from_one_address_are_one_warning_naming_it_and_the_cap() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let hub = Hub::new();
    let server = StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .max_connections_per_ip(Some(MAX_PER_IP));
    let running = serve_hub(server, &hub);
    // Idle connections use up 127.0.0.1's share (the first-request deadline is 10 s).
    let mut held = Vec::new();
    for _ in 0..MAX_PER_IP {
        held.push(TcpStream::connect(running.addr).await.unwrap());
    }
    for _ in 0..REFUSED {
        refused(running.addr).await;
    }
    running.stop().await;
    drop(held);

    let lines = logs.lines();
    let warnings: Vec<&String> = lines.iter().filter(|l| l.contains(" WARN ")).collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0].contains("remote=127.0.0.1")
            && warnings[0].contains(&format!("max={MAX_PER_IP}"))
            && warnings[0].contains("max_connections_per_ip"),
        "{}",
        warnings[0]
    );
    let closed = lines
        .iter()
        .filter(|l| l.contains("too many open from this address"))
        .count();
    assert_eq!(closed, REFUSED - 1, "the other refusals are at debug level");
    let stopped = lines
        .iter()
        .find(|l| l.contains("server stopped"))
        .unwrap_or_else(|| panic!("no stop line in {lines:#?}"));
    assert!(
        stopped.contains(&format!("refused_per_ip={REFUSED}")),
        "{stopped}"
    );
}
