//! `redis-storm`: the reconnect storm across instances on the Redis store. Two demo-app
//! instances share one `redis-server`; every stream is open on instance A over HTTP/2
//! (`STREAMS` streams, `PER_CONN` per connection) and has the first event of its channel. A is
//! then killed (SIGKILL: a crash, no goodbye), each channel gets `BEHIND` events through
//! instance B, and every stream reconnects at once with its `Last-Event-ID`, to B (or, with
//! `--resume-on restarted-a`, to A started again). The figure is the time until every stream
//! has every event it missed, counted per stream (lost, twice, out of order, or a reset instead
//! are counted, none assumed), and the peak RSS of the instance serving the storm.
//!
//! ```text
//! cargo build --release -p demo-app -p bench
//! target/release/redis-storm [--streams 100000] [--per-conn 250] [--channels 10] [--behind 10]
//! ```
//!
//! Starts its own `redis-server` (no persistence) on a free loopback port; without one it
//! prints `skipped: redis-server is not installed` (and fails under `CI=true`). The demo-app
//! binary is the one beside this binary unless `--demo-app` names another. A benchmark, not a
//! test: it prints numbers, and fails only when a stream did not get every event it missed.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bench::integrity::Integrity;
use bench::net::{HttpVersion, Target};
use bench::procfs;
use bench::publish::{publish, PublishPlan, PublishReport};
use bench::server::{Launcher, Running, ServerSpec};
use bench::streams::{StreamPlan, StreamSet};
use clap::{Parser, ValueEnum};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "redis-storm",
    about = "Streams of a killed instance resume on another instance of the same Redis: time until all caught up, peak RSS"
)]
struct Args {
    /// Streams in the storm.
    #[arg(long, default_value_t = 100_000)]
    streams: usize,
    /// HTTP/2 streams per connection.
    #[arg(long, default_value_t = 250)]
    per_conn: usize,
    /// Channels; stream `i` reads channel `i % channels`.
    #[arg(long, default_value_t = 10)]
    channels: usize,
    /// Events each channel gets while its streams are away.
    #[arg(long, default_value_t = 10)]
    behind: u64,
    /// Where the streams resume.
    #[arg(long, value_enum, default_value_t = ResumeOn::B)]
    resume_on: ResumeOn,
    /// The demo-app binary (default: the one beside this binary).
    #[arg(long)]
    demo_app: Option<PathBuf>,
    /// How long the storm may take before the run fails.
    #[arg(long, default_value_t = 300)]
    limit_secs: u64,
    /// How long the caught-up streams stay open before the serving instance's RSS is read
    /// again (what the burst left allocated, against what the streams hold).
    #[arg(long, default_value_t = 0)]
    hold_secs: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ResumeOn {
    /// The other instance, B.
    B,
    /// Instance A, started again on the same Redis.
    RestartedA,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    procfs::raise_nofile_limit();
    let demo = match &args.demo_app {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .ok_or_else(|| anyhow!("this binary has no directory"))?
            .join("demo-app"),
    };
    if !demo.is_file() {
        bail!(
            "no demo-app at {}: build it (cargo build --release -p demo-app) or pass --demo-app",
            demo.display()
        );
    }
    let Some(redis) = testkit::redis::RedisServer::start().context("start redis-server")? else {
        return Ok(());
    };
    let spec = instance_spec(&demo, &redis.url(), args.per_conn);
    let log_dir = std::env::temp_dir().join(format!("redis-storm-{}", std::process::id()));
    let launcher = Launcher {
        pin: None,
        log_dir: log_dir.clone(),
    };
    let a = launcher.start(&spec, false).await?;
    let b = launcher.start(&spec, false).await?;
    let outcome = storm(&args, &launcher, &spec, a, b).await;
    let _ = std::fs::remove_dir_all(&log_dir);
    outcome
}

fn instance_spec(demo: &std::path::Path, redis_url: &str, per_conn: usize) -> ServerSpec {
    let cmd = [
        "--plain",
        "--listen",
        "{addr}",
        "--store",
        redis_url,
        "--heartbeat",
        "15s",
        "--history",
        "1000",
        "--max-connections-per-ip",
        "0",
        "--max-streams",
        "200000",
        "--max-streams-per-channel",
        "200000",
        "--http2-max-streams",
        &per_conn.max(256).to_string(),
    ];
    ServerSpec {
        product: true,
        ..ServerSpec::h2c(
            "demo-app",
            std::iter::once(demo.display().to_string())
                .chain(cmd.iter().map(|s| (*s).to_owned()))
                .collect(),
        )
    }
}

async fn storm(
    args: &Args,
    launcher: &Launcher,
    spec: &ServerSpec,
    a: Running,
    b: Running,
) -> Result<()> {
    let n = args.streams;
    let chans: Vec<String> = (0..args.channels.max(1))
        .map(|c| format!("storm-{c}"))
        .collect();
    let target_a = Arc::new(Target::parse(&a.base, None, 0)?);
    let target_b = Arc::new(Target::parse(&b.base, None, 0)?);
    let connections = n.div_ceil(args.per_conn.max(1));

    // Every stream open on A, live, with the first event of its channel.
    let mut plan = StreamPlan::new(n, chans.clone(), HttpVersion::H2);
    plan.per_conn = args.per_conn.max(1);
    plan.dial_concurrency = 64;
    let started = Instant::now();
    let held = StreamSet::start(&target_a, &Arc::new(plan));
    if !held.wait_settled().await || held.live.connected.load(Ordering::Relaxed) < n {
        bail!(
            "{} of {n} streams connected to A: {:?}",
            held.live.connected.load(Ordering::Relaxed),
            held.live.errors()
        );
    }
    println!(
        "{n} streams on A ({connections} HTTP/2 connections × {}) in {:.1} s; A's RSS {} MiB",
        args.per_conn,
        started.elapsed().as_secs_f64(),
        procfs::rss_kib(a.pid)? / 1024
    );
    let first = publish(
        &target_a,
        &PublishPlan::per_channel(chans.clone(), 1, 1_000.0),
        &CancellationToken::new(),
    )
    .await;
    if first.last_id.iter().any(Option::is_none) {
        bail!("publishing the first events failed: {:?}", first.errors);
    }
    let live = held.wait_until(Duration::from_secs(60), |l| {
        l.events.load(Ordering::Relaxed) >= n as u64
    });
    if !live.await {
        bail!("the first events did not reach every stream on A");
    }

    // A crashes; its streams' connections drop; the channels move on through B.
    a.stop().await;
    held.stop().await;
    let mut missed = PublishPlan::per_channel(chans.clone(), args.behind, 5_000.0);
    missed.first_seq = vec![1; chans.len()];
    let missed = publish(&target_b, &missed, &CancellationToken::new()).await;
    if missed.failed > 0 {
        bail!("publishing the missed events failed: {:?}", missed.errors);
    }
    let (serving, restarted) = match args.resume_on {
        ResumeOn::B => (b, None),
        ResumeOn::RestartedA => {
            let again = launcher.start(spec, false).await?;
            (again, Some(b))
        }
    };
    let target = match restarted {
        None => target_b,
        Some(_) => Arc::new(Target::parse(&serving.base, None, 0)?),
    };
    let outcome = resume(args, &serving, &target, &chans, &first, &missed).await;
    serving.stop().await;
    if let Some(b) = restarted {
        b.stop().await;
    }
    outcome
}

/// Every stream reconnects at once to `serving` with its `Last-Event-ID`.
async fn resume(
    args: &Args,
    serving: &Running,
    target: &Arc<Target>,
    chans: &[String],
    first: &PublishReport,
    missed: &PublishReport,
) -> Result<()> {
    let n = args.streams;
    let mut plan = StreamPlan::new(n, chans.to_vec(), HttpVersion::H2);
    plan.per_conn = args.per_conn.max(1);
    plan.first_seq = vec![1; chans.len()];
    plan.last_event_id = first.last_id.clone();
    plan.catch_up_seq = vec![Some(args.behind); chans.len()];
    // "At once": every connection is dialled immediately.
    plan.dial_concurrency = n.div_ceil(plan.per_conn);
    let rss_before = procfs::rss_kib(serving.pid)?;
    // Peak RSS from here on: VmHWM, reset now (clear_refs 5), sampled as well in case the
    // kernel does not allow the reset.
    let _ = std::fs::write(format!("/proc/{}/clear_refs", serving.pid), "5");
    let sampled = Arc::new(AtomicU64::new(rss_before));
    let sampler = {
        let (sampled, pid) = (Arc::clone(&sampled), serving.pid);
        tokio::spawn(async move {
            while let Ok(rss) = procfs::rss_kib(pid) {
                sampled.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let cpu0 = procfs::cpu_time(serving.pid)?;
    let t0 = Instant::now();
    let set = StreamSet::start(target, &Arc::new(plan));
    let done = set
        .wait_until(Duration::from_secs(args.limit_secs), |l| {
            l.caught_up.load(Ordering::Relaxed) + l.failed.load(Ordering::Relaxed) >= n
        })
        .await;
    let took = t0.elapsed();
    let cpu = procfs::cpu_time(serving.pid)?.saturating_sub(cpu0);
    sampler.abort();
    let peak = vm_hwm_kib(serving.pid)
        .unwrap_or(0)
        .max(sampled.load(Ordering::Relaxed));
    // Once caught up, with every stream still open: what the streams themselves hold.
    let rss_after = procfs::rss_kib(serving.pid)?;
    tokio::time::sleep(Duration::from_secs(args.hold_secs)).await;
    let rss_held = procfs::rss_kib(serving.pid)?;
    let caught = set.live.caught_up.load(Ordering::Relaxed);
    let errors = set.live.errors();
    let reports = set.stop().await;
    let integrity = Integrity::check(&reports, &missed.published);
    let resets: u64 = reports.iter().map(|r| r.other_types).sum();
    let stale: u64 = reports.iter().map(|r| r.stale).sum();
    let to = match args.resume_on {
        ResumeOn::B => "B",
        ResumeOn::RestartedA => "A, restarted",
    };
    println!(
        "storm: {n} streams resumed on {to}, {} events behind, {} connections at once: \
         {caught}/{n} caught up in {:.2} s; {}; {resets} resets, {stale} events they had \
         already; serving instance RSS {} MiB before, peak {} MiB, {} MiB once caught up, {} MiB \
         {} s later; its CPU {:.2} s",
        args.behind,
        n.div_ceil(args.per_conn.max(1)),
        took.as_secs_f64(),
        integrity.summary(),
        rss_before / 1024,
        peak / 1024,
        rss_after / 1024,
        rss_held / 1024,
        args.hold_secs,
        cpu.as_secs_f64(),
    );
    let clean = integrity.is_clean() && resets == 0 && stale == 0;
    if !done || caught < n || !clean {
        bail!("not every stream got exactly the events it missed: {errors:?}");
    }
    Ok(())
}

/// The peak resident set size of `pid` (`VmHWM`), in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
