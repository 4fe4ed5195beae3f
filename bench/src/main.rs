//! `sse-bench`: the load generator and benchmark driver of issue 5.
//!
//! ```text
//! sse-bench run   --base http://127.0.0.1:8080 --streams 500 [--proto h1|h2] ...
//! sse-bench suite --servers servers.json [--smoke] [--reps 3] [--pin-server 0] --out BENCHMARKS.md
//! sse-bench report --raw results.jsonl --servers servers.json --out BENCHMARKS.md
//! ```

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bench::net::{HttpVersion, Target};
use bench::publish::{publish, PublishPlan};
use bench::report::{self, RunInfo, Table};
use bench::scenarios::{self, Ctx, Integrity, Metric, Scale};
use bench::server::{load_specs, Launcher, ServerSpec};
use bench::streams::{StreamPlan, StreamSet};
use bench::{clock, procfs};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "sse-bench", about = "SSE load generator and benchmark driver")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hold streams against a running server and publish at a fixed rate; verify every event.
    Run {
        /// Base URL, http:// or https:// on a loopback address.
        #[arg(long)]
        base: String,
        #[arg(long, default_value_t = 100)]
        streams: usize,
        /// h1 (one stream per connection) or h2 (h2c on http://, ALPN h2 on https://).
        #[arg(long, default_value = "h1")]
        proto: String,
        /// HTTP/2 streams per connection.
        #[arg(long, default_value_t = 100)]
        per_conn: usize,
        #[arg(long, default_value_t = 1)]
        channels: usize,
        /// Events per second per channel.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Bearer token for publishing.
        #[arg(long)]
        token: Option<String>,
        /// Spread connections over 127.0.0.1 ..= 127.0.0.N.
        #[arg(long, default_value_t = 1)]
        sources: usize,
    },
    /// Run the scenarios against each server of a servers file and write the report.
    Suite {
        #[arg(long)]
        servers: PathBuf,
        /// Small sizes, one repetition: the CI check.
        #[arg(long)]
        smoke: bool,
        #[arg(long)]
        reps: Option<usize>,
        /// Comma-separated subset of idle,load,maxrate,storm,shutdown,cleanup.
        #[arg(long)]
        scenarios: Option<String>,
        /// Pin each server to this CPU with taskset.
        #[arg(long)]
        pin_server: Option<usize>,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// SVG chart path, and how the Markdown links to it.
        #[arg(long)]
        svg: Option<PathBuf>,
        #[arg(long)]
        svg_link: Option<String>,
        /// Raw figures, one JSON object per line.
        #[arg(long, default_value = "target/bench/results.jsonl")]
        raw: PathBuf,
        #[arg(long, default_value = "target/bench/logs")]
        log_dir: PathBuf,
        /// Command shown in the report as the way to reproduce it.
        #[arg(long, default_value = "bench/run.sh")]
        command: String,
        /// A line for the report's header (for example why a peer was skipped).
        #[arg(long)]
        note: Vec<String>,
    },
    /// Rewrite the report from raw figures.
    Report {
        #[arg(long)]
        raw: PathBuf,
        #[arg(long)]
        servers: PathBuf,
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        #[arg(long)]
        svg: Option<PathBuf>,
        #[arg(long)]
        svg_link: Option<String>,
        #[arg(long, default_value = "bench/run.sh")]
        command: String,
        /// The raw figures came from a run pinned with taskset.
        #[arg(long)]
        pinned: bool,
    },
}

fn main() -> ExitCode {
    clock::now_us();
    let limit = procfs::raise_nofile_limit();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sse-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        match cli.cmd {
            Cmd::Run {
                base,
                streams,
                proto,
                per_conn,
                channels,
                rate,
                secs,
                token,
                sources,
            } => {
                run(
                    &base, streams, &proto, per_conn, channels, rate, secs, token, sources,
                )
                .await
            }
            Cmd::Suite {
                servers,
                smoke,
                reps,
                scenarios,
                pin_server,
                out,
                svg,
                svg_link,
                raw,
                log_dir,
                command,
                note,
            } => {
                let args = SuiteArgs {
                    notes: note,
                    servers,
                    smoke,
                    reps: reps.unwrap_or(if smoke { 1 } else { 3 }),
                    scenarios,
                    pin_server,
                    out,
                    svg,
                    svg_link,
                    raw,
                    log_dir,
                    command,
                    nofile: limit,
                };
                suite(args).await
            }
            Cmd::Report {
                raw,
                servers,
                out,
                svg,
                svg_link,
                command,
                pinned,
            } => {
                let specs = load_specs(&servers)?;
                let text = std::fs::read_to_string(&raw)
                    .with_context(|| format!("read {}", raw.display()))?;
                let metrics: Vec<Metric> = text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(serde_json::from_str)
                    .collect::<Result<_, _>>()?;
                let reps = metrics.iter().map(|m| m.rep + 1).max().unwrap_or(0);
                let mut info = run_info(&specs, reps, false, &command, limit);
                info.pinned = pinned;
                write_report(
                    &metrics,
                    &specs,
                    &info,
                    &out,
                    svg.as_deref(),
                    svg_link.as_deref(),
                    &[],
                )?;
                Ok(true)
            }
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("sse-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    base: &str,
    streams: usize,
    proto: &str,
    per_conn: usize,
    channels: usize,
    rate: f64,
    secs: f64,
    token: Option<String>,
    sources: usize,
) -> Result<bool> {
    let target = Arc::new(Target::parse(base, token, sources)?);
    let version = match proto {
        "h1" => HttpVersion::H1,
        "h2" => HttpVersion::H2,
        other => anyhow::bail!("--proto is h1 or h2, not {other}"),
    };
    let chans: Vec<String> = (0..channels.max(1)).map(|i| format!("bench-{i}")).collect();
    let mut plan = StreamPlan::new(streams, chans.clone(), version);
    plan.per_conn = per_conn;
    let t0 = Instant::now();
    let set = StreamSet::start(&target, &Arc::new(plan));
    let settled = set
        .wait_settled(Duration::from_secs(30 + streams as u64 / 200))
        .await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    eprintln!(
        "{connected}/{streams} streams connected in {:.2} s{}",
        t0.elapsed().as_secs_f64(),
        if settled { "" } else { " (timed out)" }
    );
    let per_channel = (rate * secs).round().max(1.0) as u64;
    let pplan = PublishPlan::per_channel(chans.clone(), per_channel, rate * chans.len() as f64);
    let prep = publish(&target, &pplan, &CancellationToken::new()).await;
    let expected: u64 = (0..streams)
        .map(|i| prep.published[i % chans.len()].len() as u64)
        .sum();
    set.wait_until(Duration::from_secs(5), |l| {
        l.events.load(Ordering::Relaxed) >= expected
    })
    .await;
    let errors = set.live.errors();
    let live = set.live.clone();
    let reports = set.stop().await;
    // Streams hand their last latencies over when they stop.
    let hist = live.take_latency();
    let integrity = Integrity::check(&reports, &prep.published);
    println!(
        "published {}/{} ({:.1}/s offered, {:.1}/s achieved, {} late, {} failed)",
        prep.ok,
        prep.offered,
        pplan.rate,
        prep.achieved_rate(),
        prep.late,
        prep.failed
    );
    println!("{}", integrity.summary());
    if !hist.is_empty() {
        println!(
            "latency ms: p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            hist.value_at_quantile(0.5) as f64 / 1e3,
            hist.value_at_quantile(0.99) as f64 / 1e3,
            hist.value_at_quantile(0.999) as f64 / 1e3,
            hist.max() as f64 / 1e3
        );
    }
    for e in errors.iter().chain(&prep.errors) {
        println!("error: {e}");
    }
    Ok(integrity.is_clean() && prep.failed == 0 && integrity.expected > 0)
}

struct SuiteArgs {
    servers: PathBuf,
    smoke: bool,
    reps: usize,
    scenarios: Option<String>,
    pin_server: Option<usize>,
    out: PathBuf,
    svg: Option<PathBuf>,
    svg_link: Option<String>,
    raw: PathBuf,
    log_dir: PathBuf,
    command: String,
    nofile: u64,
    notes: Vec<String>,
}

async fn suite(a: SuiteArgs) -> Result<bool> {
    let specs = load_specs(&a.servers)?;
    let scale = if a.smoke {
        Scale::smoke()
    } else {
        Scale::full()
    };
    let list: Vec<String> = match &a.scenarios {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().to_owned())
            .filter(|x| !x.is_empty())
            .collect(),
        None => scenarios::ALL.iter().map(|s| s.to_string()).collect(),
    };
    let ctx = Ctx {
        launcher: Launcher {
            pin: a.pin_server,
            log_dir: a.log_dir.clone(),
        },
        scale,
    };
    if let Some(dir) = a.raw.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut raw =
        std::fs::File::create(&a.raw).with_context(|| format!("create {}", a.raw.display()))?;
    let mut metrics = Vec::new();
    let mut failures = Vec::new();
    let started = Instant::now();
    for rep in 0..a.reps {
        // Servers take turns within a repetition, so slow drift of the machine hits all alike.
        for spec in &specs {
            for scenario in &list {
                let t = Instant::now();
                let out = scenarios::run(&ctx, spec, scenario).await;
                eprintln!(
                    "[{:>6.1}s] rep {} {:<24} {:<9} {:>5.1}s {}",
                    started.elapsed().as_secs_f64(),
                    rep + 1,
                    spec.name,
                    scenario,
                    t.elapsed().as_secs_f64(),
                    out.metrics
                        .iter()
                        .map(|m| format!(
                            "{}={}",
                            m.metric,
                            m.value.map_or("n/a".into(), |v| format!("{v:.3}"))
                        ))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if !out.integrity.is_clean() {
                    failures.push(format!(
                        "{} / {scenario} / rep {}: {}",
                        spec.name,
                        rep + 1,
                        out.integrity.summary()
                    ));
                }
                for e in &out.errors {
                    failures.push(format!("{} / rep {}: {e}", spec.name, rep + 1));
                }
                for mut m in out.metrics {
                    m.rep = rep;
                    writeln!(raw, "{}", serde_json::to_string(&m)?)?;
                    metrics.push(m);
                }
            }
        }
    }
    for f in &failures {
        eprintln!("FAILED: {f}");
    }
    let mut info = run_info(&specs, a.reps, a.smoke, &a.command, a.nofile);
    info.pinned = a.pin_server.is_some();
    info.versions.extend(a.notes.iter().cloned());
    write_report(
        &metrics,
        &specs,
        &info,
        &a.out,
        a.svg.as_deref(),
        a.svg_link.as_deref(),
        &failures,
    )?;
    eprintln!(
        "wrote {} ({} figures, {} failures) in {:.0} s",
        a.out.display(),
        metrics.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(failures.is_empty())
}

fn write_report(
    metrics: &[Metric],
    specs: &[ServerSpec],
    info: &RunInfo,
    out: &std::path::Path,
    svg: Option<&std::path::Path>,
    svg_link: Option<&str>,
    failures: &[String],
) -> Result<()> {
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let table = Table::build(metrics, &names);
    let mut link = None;
    if let Some(svg) = svg {
        if let Some(dir) = svg.parent() {
            std::fs::create_dir_all(dir)?;
        }
        report::svg(&table, svg)?;
        link = Some(
            svg_link
                .map(str::to_owned)
                .unwrap_or_else(|| svg.display().to_string()),
        );
    }
    let md = report::markdown(&table, specs, info, link.as_deref(), failures);
    std::fs::write(out, md).with_context(|| format!("write {}", out.display()))?;
    Ok(())
}

fn run_info(specs: &[ServerSpec], reps: usize, smoke: bool, command: &str, nofile: u64) -> RunInfo {
    let sh = |cmd: &str, args: &[&str]| -> String {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let crate_versions: Vec<String> = ["poem", "axum", "hyper", "h2", "tokio", "rustls"]
        .iter()
        .filter_map(|name| {
            let needle = format!("name = \"{name}\"\nversion = \"");
            let i = lock.find(&needle)? + needle.len();
            let v = lock[i..].split('"').next()?;
            Some(format!("{name} {v}"))
        })
        .collect();
    let _ = specs;
    RunInfo {
        date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        machine: vec![
            format!("CPU: {model}; {cores} core(s); memory {mem}"),
            format!("Linux {}; open files per process: {nofile}", kernel.trim()),
        ],
        versions: vec![
            sh("rustc", &["--version"]),
            format!("crates (Cargo.lock): {}", crate_versions.join(", ")),
        ],
        command: command.into(),
        reps,
        smoke,
        pinned: false,
    }
}
