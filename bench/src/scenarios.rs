//! The benchmark scenarios of issue 5. Each starts a fresh server, measures, stops it, and
//! returns its figures; a figure is `None` (n/a) when the server lacks the feature measured.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::net::{HttpVersion, Target};
use crate::procfs;
use crate::publish::{publish, PublishPlan, PublishReport};
use crate::server::{open_streams, Launcher, Running, ServerSpec};
use crate::streams::{StreamPlan, StreamReport, StreamSet};

/// One measured figure of one repetition.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metric {
    pub server: String,
    pub scenario: String,
    pub metric: String,
    pub rep: usize,
    /// `None`: not applicable to this server (or the scenario could not measure it).
    pub value: Option<f64>,
    pub unit: String,
    /// Whether smaller is better (for ratios and goals).
    pub lower_is_better: bool,
    #[serde(default)]
    pub note: String,
}

/// Sizes and durations of a run.
#[derive(Debug, Clone)]
pub struct Scale {
    pub mem_sizes: Vec<usize>,
    pub load_streams: usize,
    pub load_channels: usize,
    pub load_rate_per_channel: f64,
    pub load_secs: f64,
    pub maxrate_streams: usize,
    pub maxrate_step_secs: f64,
    pub maxrate_steps: usize,
    pub storm_streams: usize,
    pub storm_behind: u64,
    pub shutdown_streams: usize,
    pub cleanup_streams: usize,
    /// How long a server may take to exit after SIGTERM before it is killed.
    pub shutdown_limit: Duration,
    pub per_conn: usize,
    pub sources: usize,
    pub quiet: bool,
}

impl Scale {
    /// The sizes issue 5 asks for.
    pub fn full() -> Self {
        Self {
            mem_sizes: vec![1_000, 10_000],
            load_streams: 2_000,
            load_channels: 10,
            load_rate_per_channel: 5.0,
            load_secs: 20.0,
            maxrate_streams: 1_000,
            maxrate_step_secs: 4.0,
            maxrate_steps: 10,
            storm_streams: 10_000,
            storm_behind: 100,
            shutdown_streams: 10_000,
            cleanup_streams: 1_000,
            shutdown_limit: Duration::from_secs(20),
            per_conn: 100,
            sources: 32,
            quiet: true,
        }
    }

    /// A few hundred streams for a few seconds: checks that everything still works.
    pub fn smoke() -> Self {
        Self {
            mem_sizes: vec![300],
            load_streams: 300,
            load_channels: 3,
            load_rate_per_channel: 10.0,
            load_secs: 3.0,
            maxrate_streams: 200,
            maxrate_step_secs: 1.0,
            maxrate_steps: 2,
            storm_streams: 300,
            storm_behind: 100,
            shutdown_streams: 300,
            cleanup_streams: 300,
            shutdown_limit: Duration::from_secs(3),
            per_conn: 50,
            sources: 4,
            quiet: false,
        }
    }
}

/// Event integrity over a scenario; any non-zero field fails a smoke run.
#[derive(Debug, Default, Clone, Copy, Serialize, Deserialize)]
pub struct Integrity {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reorders: u64,
    pub foreign: u64,
    pub malformed: u64,
    pub failed_streams: u64,
}

impl Integrity {
    pub fn is_clean(&self) -> bool {
        self.lost
            + self.duplicates
            + self.reorders
            + self.foreign
            + self.malformed
            + self.failed_streams
            == 0
    }

    fn add(&mut self, o: &Integrity) {
        self.expected += o.expected;
        self.delivered += o.delivered;
        self.lost += o.lost;
        self.duplicates += o.duplicates;
        self.reorders += o.reorders;
        self.foreign += o.foreign;
        self.malformed += o.malformed;
        self.failed_streams += o.failed_streams;
    }

    /// Checks each stream against the sequence numbers really published on its channel.
    pub fn check(reports: &[StreamReport], published: &[Vec<u64>]) -> Self {
        let mut i = Integrity::default();
        for r in reports {
            if !r.connected {
                i.failed_streams += 1;
                continue;
            }
            let expected = published.get(r.channel).map_or(&[][..], Vec::as_slice);
            let missing = r.missing(expected.iter().copied());
            i.expected += expected.len() as u64;
            i.delivered += expected.len() as u64 - missing;
            i.lost += missing;
            i.duplicates += r.duplicates;
            i.reorders += r.reorders;
            i.foreign += r.foreign;
            i.malformed += r.malformed;
        }
        i
    }

    pub fn summary(&self) -> String {
        format!(
            "{}/{} delivered, {} lost, {} dup, {} reordered, {} foreign, {} malformed, {} streams failed",
            self.delivered, self.expected, self.lost, self.duplicates, self.reorders, self.foreign, self.malformed,
            self.failed_streams
        )
    }
}

/// What a scenario needs.
pub struct Ctx {
    pub launcher: Launcher,
    pub scale: Scale,
}

/// A scenario's figures and its integrity check (when it delivered events).
#[derive(Default)]
pub struct Outcome {
    pub metrics: Vec<Metric>,
    pub integrity: Integrity,
    /// Errors that make the run a failure (not n/a: something broke).
    pub errors: Vec<String>,
}

impl Outcome {
    fn push(
        &mut self,
        scenario: &str,
        metric: &str,
        value: Option<f64>,
        unit: &str,
        lower: bool,
        note: impl Into<String>,
    ) {
        self.metrics.push(Metric {
            server: String::new(),
            scenario: scenario.into(),
            metric: metric.into(),
            rep: 0,
            value,
            unit: unit.into(),
            lower_is_better: lower,
            note: note.into(),
        });
    }
}

/// The scenario names, in run order.
pub const ALL: &[&str] = &["idle", "load", "maxrate", "storm", "shutdown", "cleanup"];

/// Runs one scenario against one server.
pub async fn run(ctx: &Ctx, spec: &ServerSpec, scenario: &str) -> Outcome {
    if ctx.scale.quiet {
        procfs::wait_quiet(0.10, Duration::from_secs(15)).await;
    }
    let mut out = Outcome::default();
    let result = match scenario {
        "idle" => idle(ctx, spec, &mut out).await,
        "load" => load(ctx, spec, &mut out).await,
        "maxrate" => maxrate(ctx, spec, &mut out).await,
        "storm" => storm(ctx, spec, &mut out).await,
        "shutdown" => shutdown(ctx, spec, &mut out).await,
        "cleanup" => cleanup(ctx, spec, &mut out).await,
        other => Err(anyhow!("unknown scenario {other}")),
    };
    if let Err(e) = result {
        out.errors.push(format!("{scenario}: {e:#}"));
    }
    for m in &mut out.metrics {
        m.server = spec.name.clone();
    }
    out
}

fn channels(prefix: &str, n: usize) -> Vec<String> {
    (0..n.max(1)).map(|i| format!("{prefix}-{i}")).collect()
}

/// A note on accept-queue overflows since `before`, or nothing.
fn overflow_note(before: Option<u64>) -> String {
    match (before, procfs::listen_overflows()) {
        (Some(a), Some(b)) if b > a => format!(
            "{} handshakes overflowed the accept queue (dropped by the kernel, retried by the client); ",
            b - a
        ),
        _ => String::new(),
    }
}

fn settle_limit(n: usize) -> Duration {
    Duration::from_secs(30 + n as u64 / 200)
}

async fn target(ctx: &Ctx, srv: &Running) -> Result<Arc<Target>> {
    Ok(Arc::new(Target::parse(&srv.base, None, ctx.scale.sources)?))
}

/// Scenarios 1 and 2: RSS and setup CPU per idle stream, HTTP/1.1 and HTTP/2.
async fn idle(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    for &n in &ctx.scale.mem_sizes {
        for version in [HttpVersion::H1, HttpVersion::H2] {
            let label = match version {
                HttpVersion::H1 => "h1",
                HttpVersion::H2 => "h2",
            };
            let (mem, cpu) = (format!("mem_{label}_{n}"), format!("setup_cpu_{label}_{n}"));
            let tls = match (version, spec.h2.as_str()) {
                (HttpVersion::H2, "none") => {
                    out.push("idle", &mem, None, "KiB/stream", true, "no HTTP/2");
                    out.push("idle", &cpu, None, "µs/stream", true, "no HTTP/2");
                    continue;
                }
                (HttpVersion::H2, "tls") => true,
                _ => false,
            };
            let srv = ctx.launcher.start(spec, tls).await?;
            let r = idle_once(ctx, &srv, n, version).await;
            srv.stop().await;
            let (rss, cpu_us, note) = r?;
            let note = if tls {
                format!("HTTP/2 over TLS. {note}")
            } else {
                note
            };
            out.push("idle", &mem, rss, "KiB/stream", true, note.clone());
            out.push("idle", &cpu, cpu_us, "µs/stream", true, note);
        }
    }
    Ok(())
}

async fn idle_once(
    ctx: &Ctx,
    srv: &Running,
    n: usize,
    version: HttpVersion,
) -> Result<(Option<f64>, Option<f64>, String)> {
    let target = target(ctx, srv).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = procfs::rss_kib(srv.pid)?;
    let cpu0 = procfs::cpu_time(srv.pid)?;
    let overflows0 = procfs::listen_overflows();
    let mut plan = StreamPlan::new(n, channels("idle", 10), version);
    plan.per_conn = ctx.scale.per_conn;
    let set = StreamSet::start(&target, &Arc::new(plan));
    set.wait_settled(settle_limit(n)).await;
    let cpu1 = procfs::cpu_time(srv.pid)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(srv.pid)?;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let errors = set.live.errors();
    set.stop().await;
    let mut note = overflow_note(overflows0);
    if connected < n {
        note.push_str(&format!(
            "only {connected} of {n} streams connected ({})",
            errors.join("; ")
        ));
    }
    if connected == 0 {
        return Ok((None, None, note));
    }
    let c = connected as f64;
    let rss = rss1.saturating_sub(rss0) as f64 / c;
    let cpu = (cpu1.saturating_sub(cpu0)).as_secs_f64() * 1e6 / c;
    Ok((Some(rss), Some(cpu), note))
}

/// Scenarios 3 and 4: CPU per delivered event and latency at a fixed load.
async fn load(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    let srv = ctx.launcher.start(spec, false).await?;
    let r = load_once(ctx, &srv, out).await;
    srv.stop().await;
    r
}

async fn load_once(ctx: &Ctx, srv: &Running, out: &mut Outcome) -> Result<()> {
    let s = &ctx.scale;
    let target = target(ctx, srv).await?;
    let chans = channels("load", s.load_channels);
    let plan = Arc::new(StreamPlan::new(
        s.load_streams,
        chans.clone(),
        HttpVersion::H1,
    ));
    let set = StreamSet::start(&target, &plan);
    set.wait_settled(settle_limit(s.load_streams)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let per_channel = (s.load_rate_per_channel * s.load_secs).round().max(1.0) as u64;
    let pplan = PublishPlan::per_channel(
        chans.clone(),
        per_channel,
        s.load_rate_per_channel * chans.len() as f64,
    );
    let cpu0 = procfs::cpu_time(srv.pid)?;
    let own0 = procfs::own_cpu_time()?;
    let t0 = Instant::now();
    set.live.take_latency();
    let prep = publish(&target, &pplan, &CancellationToken::new()).await;
    let expected: u64 = (0..s.load_streams)
        .map(|i| prep.published[i % chans.len()].len() as u64)
        .sum();
    set.wait_until(Duration::from_secs(5), |l| {
        l.events.load(Ordering::Relaxed) >= expected
    })
    .await;
    let cpu1 = procfs::cpu_time(srv.pid)?;
    let own1 = procfs::own_cpu_time()?;
    let elapsed = t0.elapsed();
    let errors = set.live.errors();
    let live = set.live.clone();
    let reports = set.stop().await;
    // Streams hand their last latencies over when they stop.
    let hist = live.take_latency();
    let integrity = Integrity::check(&reports, &prep.published);
    out.integrity.add(&integrity);
    let mut note = integrity.summary();
    if connected < s.load_streams {
        note.push_str(&format!("; stream errors: {}", errors.join("; ")));
    }
    if !prep.errors.is_empty() {
        note.push_str(&format!("; publish errors: {}", prep.errors.join("; ")));
    }
    let delivered = integrity.delivered as f64;
    let cpu_us = (cpu1.saturating_sub(cpu0)).as_secs_f64() * 1e6;
    out.push(
        "load",
        "cpu_per_event",
        (delivered > 0.0).then(|| cpu_us / delivered),
        "µs/event",
        true,
        "",
    );
    let q = |p: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(p) as f64 / 1000.0);
    out.push("load", "latency_p50", q(0.5), "ms", true, "");
    out.push("load", "latency_p99", q(0.99), "ms", true, "");
    out.push("load", "latency_p999", q(0.999), "ms", true, "");
    let pct = if integrity.expected > 0 {
        100.0 * delivered / integrity.expected as f64
    } else {
        0.0
    };
    out.push("load", "delivered", Some(pct), "%", false, note);
    out.push(
        "load",
        "publish_offered",
        Some(pplan.rate),
        "posts/s",
        false,
        "",
    );
    out.push(
        "load",
        "publish_achieved",
        Some(prep.achieved_rate()),
        "posts/s",
        false,
        format!("{} late", prep.late),
    );
    out.push(
        "load",
        "delivery_rate",
        Some(delivered / elapsed.as_secs_f64()),
        "events/s",
        false,
        "",
    );
    out.push(
        "load",
        "generator_cpu",
        Some(100.0 * own1.saturating_sub(own0).as_secs_f64() / elapsed.as_secs_f64()),
        "% of a core",
        true,
        "",
    );
    Ok(())
}

/// Scenario 5: the highest delivery rate sustained with at least 99.9 % delivered.
async fn maxrate(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    let srv = ctx.launcher.start(spec, false).await?;
    let r = maxrate_once(ctx, &srv, out).await;
    srv.stop().await;
    r
}

async fn maxrate_once(ctx: &Ctx, srv: &Running, out: &mut Outcome) -> Result<()> {
    let s = &ctx.scale;
    let target = target(ctx, srv).await?;
    let chans = channels("max", 1);
    let n = s.maxrate_streams;
    let set = StreamSet::start(
        &target,
        &Arc::new(StreamPlan::new(n, chans.clone(), HttpVersion::H1)),
    );
    set.wait_settled(settle_limit(n)).await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    if connected == 0 {
        let errors = set.live.errors();
        set.stop().await;
        return Err(anyhow!("no stream connected: {}", errors.join("; ")));
    }
    // Delivery rate D = posts/s × streams. Start at 5,000 events/s, double until a step fails,
    // then bisect between the best pass and the first failure.
    let mut rate = 5_000.0 / connected as f64;
    let (mut best, mut best_note, mut fail): (Option<f64>, String, Option<f64>) =
        (None, String::new(), None);
    let mut next_seq = 0u64;
    for _ in 0..s.maxrate_steps {
        // Let the previous step's tail arrive before counting this one.
        let mut last = set.live.events.load(Ordering::Relaxed);
        for _ in 0..25 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = set.live.events.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
        let base = last;
        let per_channel = (rate * s.maxrate_step_secs).ceil().max(1.0) as u64;
        let mut plan = PublishPlan::per_channel(chans.clone(), per_channel, rate);
        plan.first_seq = vec![next_seq];
        next_seq += per_channel;
        let own0 = procfs::own_cpu_time()?;
        let t0 = Instant::now();
        let prep: PublishReport = publish(&target, &plan, &CancellationToken::new()).await;
        let expected = prep.ok * connected;
        let drained = set
            .wait_until(Duration::from_secs(1), |l| {
                l.events.load(Ordering::Relaxed) - base >= expected
            })
            .await;
        let elapsed = t0.elapsed();
        let got = set.live.events.load(Ordering::Relaxed) - base;
        let own =
            procfs::own_cpu_time()?.saturating_sub(own0).as_secs_f64() / elapsed.as_secs_f64();
        let achieved_posts = prep.achieved_rate();
        let pass = drained
            && prep.failed == 0
            && got as f64 >= 0.999 * expected as f64
            && achieved_posts >= 0.95 * rate;
        let delivered_rate = got.min(expected) as f64 / elapsed.as_secs_f64();
        if pass {
            if best.is_none_or(|b| delivered_rate > b) {
                best = Some(delivered_rate);
                best_note = format!(
                    "{connected} streams on one channel, {:.0} posts/s offered, generator at {:.0} % of a core",
                    rate,
                    own * 100.0
                );
            }
            rate = match fail {
                Some(f) => (rate + f) / 2.0,
                None => rate * 2.0,
            };
        } else {
            fail = Some(rate);
            let lo = best.map_or(rate / 4.0, |b| b / connected as f64);
            rate = (lo + rate) / 2.0;
        }
        if rate > 50_000.0 {
            break;
        }
    }
    set.stop().await;
    if best.is_none() {
        best_note = "no step passed".into();
    }
    out.push(
        "maxrate",
        "max_delivery_rate",
        best,
        "events/s",
        false,
        best_note,
    );
    Ok(())
}

/// Scenario 6: all streams reconnect at once, each `storm_behind` events behind.
async fn storm(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    let srv = ctx.launcher.start(spec, false).await?;
    let r = storm_once(ctx, &srv, out).await;
    srv.stop().await;
    r
}

async fn storm_once(ctx: &Ctx, srv: &Running, out: &mut Outcome) -> Result<()> {
    let s = &ctx.scale;
    let target = target(ctx, srv).await?;
    if !supports_replay(&target).await? {
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
    let n = s.storm_streams;
    // Connected and live first, as real clients would be before their network drops.
    let set = StreamSet::start(
        &target,
        &Arc::new(StreamPlan::new(n, chans.clone(), HttpVersion::H1)),
    );
    set.wait_settled(settle_limit(n)).await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    let first = publish(
        &target,
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
    let mut behind = PublishPlan::per_channel(chans.clone(), s.storm_behind, 5_000.0);
    behind.first_seq = vec![1; chans.len()];
    let prep = publish(&target, &behind, &CancellationToken::new()).await;
    if prep.failed > 0 {
        return Err(anyhow!(
            "publishing the missed events failed: {}",
            prep.errors.join("; ")
        ));
    }
    let mut plan = StreamPlan::new(n, chans.clone(), HttpVersion::H1);
    plan.first_seq = vec![1; chans.len()];
    plan.last_event_id = first.last_id.clone();
    plan.catch_up_seq = vec![Some(s.storm_behind); chans.len()];
    // "At once": every connection is dialled immediately (the kernel's backlog is the limit).
    plan.dial_concurrency = n;
    let overflows0 = procfs::listen_overflows();
    let t0 = Instant::now();
    let set = StreamSet::start(&target, &Arc::new(plan));
    let done = set
        .wait_until(Duration::from_secs(60), |l| {
            l.caught_up.load(Ordering::Relaxed) + l.failed.load(Ordering::Relaxed) >= n
        })
        .await;
    let took = t0.elapsed().as_secs_f64();
    let caught = set.live.caught_up.load(Ordering::Relaxed);
    let errors = set.live.errors();
    let reports = set.stop().await;
    let integrity = Integrity::check(&reports, &prep.published);
    out.integrity.add(&integrity);
    let mut note = format!(
        "{}{caught}/{n} caught up; {}",
        overflow_note(overflows0),
        integrity.summary()
    );
    if !errors.is_empty() {
        note.push_str(&format!("; errors: {}", errors.join("; ")));
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

/// Scenario 7: SIGTERM with open streams, time until the process exits.
async fn shutdown(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    let limit = ctx.scale.shutdown_limit;
    let n = ctx.scale.shutdown_streams;
    let srv = ctx.launcher.start(spec, false).await?;
    let target = match target(ctx, &srv).await {
        Ok(t) => t,
        Err(e) => {
            srv.stop().await;
            return Err(e);
        }
    };
    let set = StreamSet::start(
        &target,
        &Arc::new(StreamPlan::new(n, channels("down", 10), HttpVersion::H1)),
    );
    set.wait_settled(settle_limit(n)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let took = srv.terminate(limit).await;
    // Give the streams a moment to see their end.
    set.wait_until(Duration::from_secs(1), |l| {
        l.ended.load(Ordering::Relaxed) >= connected
    })
    .await;
    let ended = set.live.ended.load(Ordering::Relaxed);
    set.stop().await;
    let note = match took {
        Some(_) => format!("{connected} streams open; {ended} ended cleanly by the server"),
        None => format!(
            "{connected} streams open; still running after {} s, killed",
            limit.as_secs()
        ),
    };
    let value = Some(took.unwrap_or(limit).as_secs_f64());
    out.push("shutdown", "exit_time", value, "s", true, note);
    Ok(())
}

/// Scenario 8: 1,000 clients vanish; time until the server's metrics stop counting them.
async fn cleanup(ctx: &Ctx, spec: &ServerSpec, out: &mut Outcome) -> Result<()> {
    let srv = ctx.launcher.start(spec, false).await?;
    let r = cleanup_once(ctx, &srv, out).await;
    srv.stop().await;
    r
}

async fn cleanup_once(ctx: &Ctx, srv: &Running, out: &mut Outcome) -> Result<()> {
    let target = target(ctx, srv).await?;
    let Some(base) = open_streams(&target).await? else {
        out.push(
            "cleanup",
            "cleanup_time",
            None,
            "s",
            true,
            "no stream metrics endpoint",
        );
        return Ok(());
    };
    let n = ctx.scale.cleanup_streams;
    let set = StreamSet::start(
        &target,
        &Arc::new(StreamPlan::new(n, channels("gone", 10), HttpVersion::H1)),
    );
    set.wait_settled(settle_limit(n)).await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counted = 0;
    while Instant::now() < deadline {
        counted = open_streams(&target).await?.unwrap_or(0);
        if counted >= base + connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if counted < base + connected {
        out.push(
            "cleanup",
            "cleanup_time",
            None,
            "s",
            true,
            format!("metrics counted only {counted} of {connected} open streams"),
        );
        set.stop().await;
        return Ok(());
    }
    // The clients vanish: their sockets close without a goodbye on the HTTP level.
    let t0 = Instant::now();
    set.stop().await;
    let limit = Duration::from_secs(60);
    loop {
        let now = open_streams(&target).await?.unwrap_or(0);
        if now <= base {
            out.push(
                "cleanup",
                "cleanup_time",
                Some(t0.elapsed().as_secs_f64()),
                "s",
                true,
                format!("{connected} streams closed by the client (FIN)"),
            );
            return Ok(());
        }
        if t0.elapsed() > limit {
            out.push(
                "cleanup",
                "cleanup_time",
                Some(limit.as_secs_f64()),
                "s",
                true,
                format!("still counting {now} after {} s", limit.as_secs()),
            );
            out.errors.push(format!(
                "cleanup: metrics still count {now} streams after {} s",
                limit.as_secs()
            ));
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
