//! Measures the memory an idle subscriber holds: one channel against a set of eleven.
//!
//! `cargo bench -p poem-sse-ext --bench subscriber_memory`
//!
//! Opens 10,000 subscribers of each kind on a hub without HTTP and reports the growth of the
//! process's resident memory per subscriber (Linux, from /proc/self/statm). HTTP costs (hyper's
//! buffers, the connection) come on top and are measured by `bench/run.sh`.

use std::time::Duration;

use poem_sse_ext::{hub::Opener, Event, Hub};

const SUBSCRIBERS: usize = 10_000;
const CHANNELS: [&str; 11] = [
    "sys.cpu",
    "sys.cores",
    "sys.mem",
    "sys.swap",
    "sys.load",
    "sys.net",
    "sys.disk",
    "sys.procs",
    "sys.ctxt",
    "sys.forks",
    "sys.uptime",
];

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let hub = Hub::builder()
            .max_streams(usize::MAX)
            .max_streams_per_channel(usize::MAX)
            .build();
        for channel in CHANNELS {
            hub.publish(channel, Event::text("warm"))
                .await
                .expect("publish");
        }
        println!("| subscriber | bytes per idle subscriber |");
        println!("|---|---:|");
        for (label, set) in [("one channel", false), ("set of 11 channels", true)] {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let before = resident_bytes();
            let mut held = Vec::with_capacity(SUBSCRIBERS);
            for _ in 0..SUBSCRIBERS {
                let sub = if set {
                    hub.subscribe_set(&CHANNELS, None, &Opener::default()).await
                } else {
                    hub.subscribe(CHANNELS[0], None).await
                };
                held.push(sub.expect("subscribe"));
            }
            let after = resident_bytes();
            println!(
                "| {label} | {} |",
                after.saturating_sub(before) / SUBSCRIBERS
            );
            drop(held);
        }
    });
}
