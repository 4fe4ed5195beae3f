//! Scenarios 3 and 4: server CPU per delivered event and publish→receive latency at a fixed
//! load, over HTTP/1.1 (`load`: one write per event per socket) and HTTP/2 (`load_h2`: many
//! streams per connection, where what the server does per frame shows).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::runner::{channels, Outcome, Session};
use super::scale::Scale;
use crate::delivery::{close, publish_and_drain, Delivered};
use crate::net::HttpVersion;
use crate::procfs;
use crate::publish::PublishPlan;
use crate::streams::StreamPlan;

/// The load over HTTP/1.1, one stream per connection.
pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    measure_over(s, scale, out, HttpVersion::H1, "load").await
}

/// The same load over HTTP/2 (cleartext), `per_conn` streams per connection.
pub(super) async fn measure_h2(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    measure_over(s, scale, out, HttpVersion::H2, "load_h2").await
}

async fn measure_over(
    s: &mut Session,
    scale: &Scale,
    out: &mut Outcome,
    version: HttpVersion,
    scenario: &str,
) -> Result<()> {
    let chans = channels("load", scale.load_channels);
    let mut plan = StreamPlan::new(scale.load_streams, chans.clone(), version);
    plan.per_conn = scale.per_conn;
    let set = s.hold(plan).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let per_channel = (scale.load_rate_per_channel * scale.load_secs)
        .round()
        .max(1.0) as u64;
    let pplan = PublishPlan::per_channel(
        chans.clone(),
        per_channel,
        scale.load_rate_per_channel * chans.len() as f64,
    );
    let cpu0 = procfs::cpu_time(s.server.pid)?;
    let own0 = procfs::own_cpu_time()?;
    let t0 = Instant::now();
    let prep = publish_and_drain(&set, &s.target, &pplan, Duration::from_secs(5)).await;
    let cpu1 = procfs::cpu_time(s.server.pid)?;
    let own1 = procfs::own_cpu_time()?;
    let elapsed = t0.elapsed();
    let Delivered {
        integrity,
        latency: hist,
        stream_errors,
    } = close(set, &prep.published).await;
    out.integrity.add(&integrity);
    let mut note = integrity.summary();
    if connected < scale.load_streams {
        note.push_str(&format!("; stream errors: {}", stream_errors.join("; ")));
    }
    if !prep.errors.is_empty() {
        note.push_str(&format!("; publish errors: {}", prep.errors.join("; ")));
    }
    let delivered = integrity.delivered as f64;
    let cpu_us = (cpu1.saturating_sub(cpu0)).as_secs_f64() * 1e6;
    out.push(
        scenario,
        "cpu_per_event",
        (delivered > 0.0).then(|| cpu_us / delivered),
        "µs/event",
        true,
        "",
    );
    let q = |p: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(p) as f64 / 1000.0);
    out.push(scenario, "latency_p50", q(0.5), "ms", true, "");
    out.push(scenario, "latency_p99", q(0.99), "ms", true, "");
    out.push(scenario, "latency_p999", q(0.999), "ms", true, "");
    let pct = if integrity.expected > 0 {
        100.0 * delivered / integrity.expected as f64
    } else {
        0.0
    };
    out.push(scenario, "delivered", Some(pct), "%", false, note);
    out.push(
        scenario,
        "publish_offered",
        Some(pplan.rate),
        "posts/s",
        false,
        "",
    );
    out.push(
        scenario,
        "publish_achieved",
        Some(prep.achieved_rate()),
        "posts/s",
        false,
        format!("{} late", prep.late),
    );
    out.push(
        scenario,
        "delivery_rate",
        Some(delivered / elapsed.as_secs_f64()),
        "events/s",
        false,
        "",
    );
    out.push(
        scenario,
        "generator_cpu",
        Some(100.0 * own1.saturating_sub(own0).as_secs_f64() / elapsed.as_secs_f64()),
        "% of a core",
        true,
        "",
    );
    Ok(())
}
