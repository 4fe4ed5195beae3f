//! Scenario 6: all streams reconnect at once, each `storm_behind` events behind, and resume
//! with `Last-Event-ID`; the figure is the time until every stream has caught up.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use tokio_util::sync::CancellationToken;

use super::runner::{channels, overflow_note, Outcome, Session};
use super::scale::Scale;
use crate::delivery::close;
use crate::net::{HttpVersion, Target};
use crate::procfs;
use crate::publish::{publish, PublishPlan};
use crate::streams::{Sockets, StreamPlan, StreamSet};

pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    let target = &s.target;
    if !supports_replay(target).await? {
        out.push(
            "storm",
            "catch_up",
            None,
            "s",
            true,
            "no replay: Last-Event-ID is ignored",
        );
        return Ok(());
    }
    let chans = channels("storm", 10);
    let n = scale.storm_streams;
    // Connected and live first, as real clients would be before their network drops.
    let set = s
        .hold(StreamPlan::new(n, chans.clone(), HttpVersion::H1))
        .await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    let first = publish(
        target,
        &PublishPlan::per_channel(chans.clone(), 1, 1_000.0),
        &CancellationToken::new(),
    )
    .await;
    set.wait_until(Duration::from_secs(10), |l| {
        l.events.load(Ordering::Relaxed) >= connected
    })
    .await;
    set.stop().await;
    if first.last_id.iter().any(Option::is_none) {
        return Err(anyhow!(
            "could not publish the first events: {}",
            first.errors.join("; ")
        ));
    }
    // While they are away, each channel moves `storm_behind` events ahead.
    let mut behind = PublishPlan::per_channel(chans.clone(), scale.storm_behind, 5_000.0);
    behind.first_seq = vec![1; chans.len()];
    let prep = publish(target, &behind, &CancellationToken::new()).await;
    if prep.failed > 0 {
        return Err(anyhow!(
            "publishing the missed events failed: {}",
            prep.errors.join("; ")
        ));
    }
    let mut plan = StreamPlan::new(n, chans.clone(), HttpVersion::H1);
    plan.first_seq = vec![1; chans.len()];
    plan.last_event_id = first.last_id.clone();
    plan.catch_up_seq = vec![Some(scale.storm_behind); chans.len()];
    // "At once": every connection is dialled immediately (the kernel's backlog is the limit).
    plan.dial_concurrency = n;
    // Made before the clock starts: the clients' own sockets are no work of the server's.
    plan.sockets = Some(Sockets::make(target, n)?);
    let overflows0 = procfs::listen_overflows();
    let cpu0 = (
        procfs::cpu_time(s.server.pid)?,
        procfs::cpu_time(std::process::id())?,
    );
    let t0 = Instant::now();
    let set = StreamSet::start(target, &Arc::new(plan));
    let done = set
        .wait_until(Duration::from_secs(60), |l| {
            l.caught_up.load(Ordering::Relaxed) + l.failed.load(Ordering::Relaxed) >= n
        })
        .await;
    let took = t0.elapsed().as_secs_f64();
    // Which side the time went to: the server's CPU and this load generator's while it ran.
    let server_cpu = procfs::cpu_time(s.server.pid)?.saturating_sub(cpu0.0);
    let client_cpu = procfs::cpu_time(std::process::id())?.saturating_sub(cpu0.1);
    let caught = set.live.caught_up.load(Ordering::Relaxed);
    let delivered = close(set, &prep.published).await;
    let integrity = delivered.integrity;
    out.integrity.add(&integrity);
    let mut note = format!(
        "{}{caught}/{n} caught up; {}; CPU meanwhile: server {:.2} s, load generator {:.2} s",
        overflow_note(overflows0),
        integrity.summary(),
        server_cpu.as_secs_f64(),
        client_cpu.as_secs_f64(),
    );
    if !delivered.stream_errors.is_empty() {
        note.push_str(&format!("; errors: {}", delivered.stream_errors.join("; ")));
    }
    let value = (done && caught == n).then_some(took);
    if value.is_none() {
        out.errors
            .push(format!("storm: not all streams caught up: {note}"));
    }
    out.push("storm", "catch_up", value, "s", true, note);
    Ok(())
}

/// Publishes two events and resumes after the first: does the second come back?
async fn supports_replay(target: &Arc<Target>) -> Result<bool> {
    let chans = channels("probe", 1);
    let first = publish(
        target,
        &PublishPlan::per_channel(chans.clone(), 1, 100.0),
        &CancellationToken::new(),
    )
    .await;
    let mut second = PublishPlan::per_channel(chans.clone(), 1, 100.0);
    second.first_seq = vec![1];
    let second = publish(target, &second, &CancellationToken::new()).await;
    if first.ok + second.ok < 2 {
        let errors = [first.errors, second.errors].concat();
        return Err(anyhow!("publish failed: {}", errors.join("; ")));
    }
    let mut plan = StreamPlan::new(1, chans, HttpVersion::H1);
    plan.first_seq = vec![1];
    plan.last_event_id = first.last_id;
    plan.catch_up_seq = vec![Some(1)];
    let set = StreamSet::start(target, &Arc::new(plan));
    let ok = set
        .wait_until(Duration::from_secs(2), |l| {
            l.caught_up.load(Ordering::Relaxed) >= 1
        })
        .await;
    set.stop().await;
    Ok(ok)
}
