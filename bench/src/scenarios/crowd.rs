//! Scenario 7: a crowd of streams on one box (100,000 over HTTP/2 in the full run: 400
//! connections × 250 streams, within the load generator's 20,000 open files). Figures: server
//! RSS per stream, the time to connect them all, one event broadcast to all of them (when the
//! first, the median, the 99th percentile and the last stream had it), and the server's CPU
//! while they idle (heartbeats only).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio_util::sync::CancellationToken;

use super::runner::{channels, overflow_note, Outcome, Session};
use super::scale::Scale;
use crate::delivery::close;
use crate::net::HttpVersion;
use crate::procfs;
use crate::publish::{publish, PublishPlan};
use crate::streams::{StreamPlan, StreamSet};

pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    let n = scale.crowd_streams;
    let pid = s.server.pid;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = procfs::rss_kib(pid)?;
    let overflows0 = procfs::listen_overflows();
    // One channel: the broadcast reaches every stream.
    let chans = channels("crowd", 1);
    let mut plan = StreamPlan::new(n, chans.clone(), HttpVersion::H2);
    plan.per_conn = scale.crowd_per_conn;
    let t0 = Instant::now();
    let set = StreamSet::start(&s.target, &Arc::new(plan));
    set.wait_settled().await;
    let connect_all = t0.elapsed().as_secs_f64();
    let connected = set.live.connected.load(Ordering::Relaxed);
    let mut note = overflow_note(overflows0);
    if connected < n {
        note.push_str(&format!(
            "only {connected} of {n} streams connected ({}); ",
            set.live.errors().join("; ")
        ));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(pid)?;

    // Idle: nothing published, so the server's CPU is its heartbeats and timers.
    let cpu0 = procfs::cpu_time(pid)?;
    tokio::time::sleep(Duration::from_secs_f64(scale.crowd_idle_secs)).await;
    let idle_cpu = procfs::cpu_time(pid)?.saturating_sub(cpu0).as_secs_f64();

    // One event to all of them.
    set.live.take_latency();
    let report = publish(
        &s.target,
        &PublishPlan::per_channel(chans, 1, 1.0),
        &CancellationToken::new(),
    )
    .await;
    let expected = connected as u64;
    set.wait_until(Duration::from_secs(30), |l| {
        l.events.load(Ordering::Relaxed) >= expected
    })
    .await;
    let delivered = close(set, &report.published).await;
    out.integrity.add(&delivered.integrity);
    note.push_str(&delivered.integrity.summary());
    let c = connected.max(1) as f64;
    let hist = &delivered.latency;
    let q = |p: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(p) as f64 / 1000.0);
    let some = |v: f64| (connected > 0).then_some(v);
    out.push(
        "crowd",
        "rss_per_stream",
        some(rss1.saturating_sub(rss0) as f64 / c),
        "KiB/stream",
        true,
        format!(
            "{connected} streams, {} per connection",
            scale.crowd_per_conn
        ),
    );
    out.push("crowd", "connect_all", some(connect_all), "s", true, "");
    out.push("crowd", "broadcast_p50", q(0.5), "ms", true, "");
    out.push("crowd", "broadcast_p99", q(0.99), "ms", true, "");
    out.push(
        "crowd",
        "broadcast_max",
        (!hist.is_empty()).then(|| hist.max() as f64 / 1000.0),
        "ms",
        true,
        note,
    );
    out.push(
        "crowd",
        "idle_cpu",
        some(100.0 * idle_cpu / scale.crowd_idle_secs),
        "% of a core",
        true,
        format!("over {} s idle", scale.crowd_idle_secs),
    );
    Ok(())
}
