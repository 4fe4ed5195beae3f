//! A bounded soak: made-up channels leave nothing behind (its own process, so that memory is
//! measured alone). The smoke form runs in CI;
//! `SOAK_CHANNELS=100000 cargo test --release -p poem-sse-ext --test soak_channels` is the
//! longer one.

mod common;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_made_up_channels_leave_nothing_behind() {
    let names = env_or("SOAK_CHANNELS", 10_000);
    let hub = Hub::builder().max_channels(1_000).build();
    publish(&hub, "notifications", "kept").await;
    let baseline = rss_kib();
    for n in 0..names {
        let sub = hub.subscribe(&format!("made-up-{n}"), None).await;
        assert!(sub.is_ok(), "made-up channel {n} refused: {:?}", sub.err());
    }
    assert_eq!(hub.channel_count(), 1);
    let after = rss_kib();
    assert!(
        after <= baseline + 4_096,
        "{names} made-up channels left {} KiB behind",
        after.saturating_sub(baseline)
    );
    assert!(hub.subscribe("notifications", None).await.is_ok());
}
