//! What an operator reads in the logs: one span per stream (channel, resume point, reset,
//! protocol, peer) and why each stream closed, at the level an operator expects.
//!
//! Alone in its test binary: the subscriber that captures the lines is installed for this test's
//! thread, and tracing caches per call site whether anyone listens, which other tests running in
//! parallel threads without a subscriber would disturb.

mod common;

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use poem_sse_ext::Hub;

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

    fn line(&self, containing: &str) -> String {
        self.lines()
            .into_iter()
            .find(|line| line.contains(containing))
            .unwrap_or_else(|| panic!("no log line with {containing:?} in {:#?}", self.lines()))
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

/// Runs `story` with every DEBUG line of this crate kept in `Logs` (the runtime is
/// current-thread, so the server's tasks log on this thread too).
async fn with_logs<F: std::future::Future<Output = ()>>(story: impl FnOnce(Logs) -> F) -> Logs {
    with_logs_at("poem_sse_ext=debug", story).await
}

/// Runs `story` with the lines `filter` lets through kept in `Logs`.
async fn with_logs_at<F: std::future::Future<Output = ()>>(
    filter: &str,
    story: impl FnOnce(Logs) -> F,
) -> Logs {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    story(logs.clone()).await;
    logs
}

/// Each stream logs in its own span (channel, resume point, reset, protocol, peer), and says
/// why it closed: lifetime, shutdown, client gone; a refusal at capacity is a warning.
#[tokio::test]
async fn every_stream_logs_in_its_span_and_says_why_it_closed() {
    let logs = with_logs(|_| async {
        let hub = Hub::builder()
            .max_stream_lifetime(Duration::from_millis(300))
            .max_stream_lifetime_jitter(0.0)
            .max_streams(2)
            .heartbeat(Duration::from_millis(100))
            .build();
        let server = serve(&hub).await;
        let client = http1();
        let first = publish(&hub, "orders", "1").await;

        let mut aging = connect(&client, &server.url("/events/orders"), Some(&first)).await;
        aging
            .wait_for_end(WAIT)
            .await
            .expect("ends at its lifetime");
        let gone = connect(&client, &server.url("/events/orders"), Some("stale")).await;
        let _waiting = connect(&client, &server.url("/events/alerts"), None).await;
        let _refused = connect(&client, &server.url("/events/alerts"), None).await;
        drop(gone);
        wait_until(|| hub.open_streams() == 1).await;
        server.stop().await; // shuts the hub down: the last stream says goodbye
        let metrics = hub.metrics();
        let closed = metrics.closed_by_reason;
        assert_eq!(closed.lifetime, 1);
        assert_eq!(closed.client_gone, 1);
        assert_eq!(closed.shutdown, 1);
        assert_eq!(metrics.closed, 3);
    })
    .await;

    let lifetime = logs.line("reason=\"lifetime\"");
    assert!(lifetime.contains("DEBUG"), "{lifetime}");
    assert!(lifetime.contains("sse stream closed"), "{lifetime}");
    for field in [
        "sse_stream{",
        "channel=\"orders\"",
        "protocol=HTTP/1.1",
        "peer=127.0.0.1",
    ] {
        assert!(lifetime.contains(field), "{field} missing: {lifetime}");
    }
    // It resumed from the first event's id (`<epoch>-1` in the memory store), without a reset.
    assert!(lifetime.contains("-1\""), "{lifetime}");
    assert!(!lifetime.contains("reset="), "{lifetime}");

    let gone = logs.line("reason=\"client_gone\"");
    assert!(gone.contains("reset=\"unknown\""), "{gone}");
    assert!(gone.contains("resume_from=\"stale\""), "{gone}");
    assert!(logs.line("sse reset").contains("resume_from="));

    let shutdown = logs.line("reason=\"shutdown\"");
    assert!(shutdown.contains("channel=\"alerts\""), "{shutdown}");

    let refused = logs.line("sse stream refused");
    assert!(refused.contains("WARN"), "{refused}");
    assert!(refused.contains("reason=\"max_streams\""), "{refused}");

    // At INFO, what an operator must see names its channel by itself: the per-stream span is
    // DEBUG, so that a server of idle streams does not keep one span per stream alive.
    let logs = with_logs_at("poem_sse_ext=info", |_| async {
        let hub = Hub::builder().history(2).build();
        let server = serve(&hub).await;
        let first = publish(&hub, "orders", "1").await;
        for n in 2..=5 {
            publish(&hub, "orders", &n.to_string()).await;
        }
        let client = http1();
        let _late = connect(&client, &server.url("/events/orders"), Some(&first)).await;
        wait_until(|| hub.metrics().total.resets == 1).await;
        server.stop().await;
    })
    .await;
    let missed = logs.line("the client missed events");
    assert!(missed.contains("INFO"), "{missed}");
    assert!(missed.contains("channel=\"orders\""), "{missed}");
    assert!(missed.contains("reason=\"evicted\""), "{missed}");
    assert!(
        logs.lines()
            .iter()
            .all(|line| !line.contains("sse_stream{")),
        "{:#?}",
        logs.lines()
    );
}

/// Polls `condition` until it holds, for at most [`WAIT`].
async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
