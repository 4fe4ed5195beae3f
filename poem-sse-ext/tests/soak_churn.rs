//! A bounded soak: connect/close churn on HTTP/1.1 and HTTP/2 leaves nothing behind (its own
//! process, so that memory is measured alone). The smoke form runs in CI;
//! `SOAK_ROUNDS=20 SOAK_PER_ROUND=500 cargo test --release -p poem-sse-ext --test soak_churn` is the
//! longer one.

mod common;

use std::time::Duration;

use common::*;
use poem_sse_ext::Hub;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of this process (the server and the clients), in KiB.
fn rss_kib() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_close_churn_on_h1_and_h2_keeps_memory_flat() {
    let rounds = env_or("SOAK_ROUNDS", 8);
    let per_round = env_or("SOAK_PER_ROUND", 100);
    let hub = Hub::builder().heartbeat(Duration::from_millis(200)).build();
    let server = serve(&hub).await;
    let mut samples = Vec::new();
    for round in 0..rounds {
        for client in [http1(), h2c()] {
            let mut open = Vec::with_capacity(per_round);
            for n in 0..per_round {
                let url = server.url(&format!("/events/churn-{}", n % 10));
                open.push(connect(&client, &url, Some("garbage")).await);
            }
            publish(&hub, "churn-0", "x").await;
            drop(open);
        }
        wait_until(|| hub.open_streams() == 0).await;
        samples.push(rss_kib());
        eprintln!(
            "round {round}: rss {} KiB, channels {}",
            rss_kib(),
            hub.channel_count()
        );
    }
    assert_eq!(
        hub.channel_count(),
        1,
        "only the channel holding an event stays"
    );
    // Flat: the last rounds hold no more than the first settled one, with room for allocator
    // noise.
    let settled = samples[rounds / 2 - 1];
    let last = samples[rounds - 1];
    assert!(
        last <= settled + settled / 5 + 2_048,
        "memory grew from {settled} KiB to {last} KiB: {samples:?}"
    );
    server.stop().await;
}
