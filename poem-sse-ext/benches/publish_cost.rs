//! Measures what one publish costs with 0 to 100,000 open subscriptions on the channel.
//!
//! `cargo bench -p poem-sse-ext --bench publish_cost`
//!
//! Each subscription is what an open stream holds (a `Subscriber`: a cursor in a task waiting
//! for the next frame), without HTTP. Reports the time of the `publish` call itself and the time until every
//! subscriber has read the event.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use poem_sse_ext::{Event, Hub};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        println!(
            "| subscribers | publish call (median µs) | all subscribers read it (median ms) |"
        );
        println!("|---:|---:|---:|");
        for subscribers in [0usize, 1_000, 10_000, 100_000] {
            let (call, fanout) = measure(subscribers).await;
            println!(
                "| {subscribers} | {:.1} | {:.2} |",
                call.as_secs_f64() * 1e6,
                fanout.as_secs_f64() * 1e3
            );
        }
    });
}

async fn measure(subscribers: usize) -> (Duration, Duration) {
    let hub = Hub::builder()
        .history(1_000)
        .max_streams(usize::MAX)
        .max_streams_per_channel(usize::MAX)
        .build();
    let received = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(subscribers);
    for _ in 0..subscribers {
        let mut sub = hub.subscribe("bench", None).await.expect("subscribe");
        let received = Arc::clone(&received);
        tasks.push(tokio::spawn(async move {
            while sub.next().await.is_some() {
                received.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut calls = Vec::new();
    let mut fanouts = Vec::new();
    for round in 1..=21 {
        let event = Event::text(format!("{{\"round\":{round}}}"));
        let started = Instant::now();
        hub.publish("bench", event).await.expect("publish");
        calls.push(started.elapsed());
        while received.load(Ordering::Relaxed) < subscribers * round {
            tokio::task::yield_now().await;
        }
        fanouts.push(started.elapsed());
    }
    for task in tasks {
        task.abort();
    }
    calls.sort_unstable();
    fanouts.sort_unstable();
    (calls[calls.len() / 2], fanouts[fanouts.len() / 2])
}
