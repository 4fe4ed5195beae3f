//! `sse-bench`: the load generator and benchmark driver that write `BENCHMARKS.md`.
//!
//! ```text
//! sse-bench run   --base http://127.0.0.1:8080 --streams 500 [--proto h1|h2] ...
//! sse-bench suite --servers servers.json [--smoke] [--reps 3] [--pin-server 0] --out BENCHMARKS.md
//! sse-bench report --raw results.jsonl --servers servers.json --out BENCHMARKS.md
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bench::delivery::{close, publish_and_drain};
use bench::metric::Metric;
use bench::net::{HttpVersion, Target};
use bench::publish::PublishPlan;
use bench::report::{self, RunInfo};
use bench::server::load_specs;
use bench::streams::{StreamPlan, StreamSet};
use bench::suite::Suite;
use bench::{clock, procfs};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sse-bench", about = "SSE load generator and benchmark driver")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Hold streams against a running server and publish at a fixed rate; verify every event.
    Run(RunArgs),
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
        #[command(flatten)]
        report: ReportArgs,
        /// Raw figures, one JSON object per line.
        #[arg(long, default_value = "target/bench/results.jsonl")]
        raw: PathBuf,
        #[arg(long, default_value = "target/bench/logs")]
        log_dir: PathBuf,
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
        #[command(flatten)]
        report: ReportArgs,
        /// The raw figures came from a run pinned with taskset.
        #[arg(long)]
        pinned: bool,
    },
}

#[derive(Args)]
struct RunArgs {
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
}

/// Where the report goes, and the command it names for reproducing it.
#[derive(Args)]
struct ReportArgs {
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// SVG chart path, and how the Markdown links to it.
    #[arg(long)]
    svg: Option<PathBuf>,
    #[arg(long)]
    svg_link: Option<String>,
    /// Command shown in the report as the way to reproduce it.
    #[arg(long, default_value = "bench/run.sh")]
    command: String,
}

impl ReportArgs {
    fn output(&self) -> report::Output {
        report::Output {
            markdown: self.out.clone(),
            svg: self.svg.clone(),
            svg_link: self.svg_link.clone(),
        }
    }
}

fn main() -> ExitCode {
    clock::now_us();
    let nofile = procfs::raise_nofile_limit();
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
            Cmd::Run(args) => run(args).await,
            Cmd::Suite {
                servers,
                smoke,
                reps,
                scenarios,
                pin_server,
                report,
                raw,
                log_dir,
                note,
            } => {
                let suite = Suite {
                    servers,
                    smoke,
                    reps: reps.unwrap_or(if smoke { 1 } else { 3 }),
                    scenarios: scenarios.map(|s| {
                        s.split(',')
                            .map(|x| x.trim().to_owned())
                            .filter(|x| !x.is_empty())
                            .collect()
                    }),
                    pin_server,
                    report: report.output(),
                    raw,
                    log_dir,
                    command: report.command,
                    nofile,
                    notes: note,
                };
                suite.run().await
            }
            Cmd::Report {
                raw,
                servers,
                report,
                pinned,
            } => {
                let specs = load_specs(&servers)?;
                let metrics = Metric::read_jsonl(&raw)?;
                let reps = metrics.iter().map(|m| m.rep + 1).max().unwrap_or(0);
                let mut info = RunInfo::collect(reps, false, &report.command, nofile);
                info.pinned = pinned;
                report::write(&metrics, &specs, &info, &report.output(), &[])?;
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

/// `sse-bench run`: one delivery round against a server that is already running.
async fn run(a: RunArgs) -> Result<bool> {
    let target = Arc::new(Target::parse(&a.base, a.token, a.sources)?);
    let version = match a.proto.as_str() {
        "h1" => HttpVersion::H1,
        "h2" => HttpVersion::H2,
        other => anyhow::bail!("--proto is h1 or h2, not {other}"),
    };
    let chans: Vec<String> = (0..a.channels.max(1))
        .map(|i| format!("bench-{i}"))
        .collect();
    let mut plan = StreamPlan::new(a.streams, chans.clone(), version);
    plan.per_conn = a.per_conn;
    let t0 = Instant::now();
    let set = StreamSet::start(&target, &Arc::new(plan));
    let settled = set.wait_settled().await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    eprintln!(
        "{connected}/{} streams connected in {:.2} s{}",
        a.streams,
        t0.elapsed().as_secs_f64(),
        if settled { "" } else { " (timed out)" }
    );
    let per_channel = (a.rate * a.secs).round().max(1.0) as u64;
    let pplan = PublishPlan::per_channel(chans.clone(), per_channel, a.rate * chans.len() as f64);
    let prep = publish_and_drain(&set, &target, &pplan, Duration::from_secs(5)).await;
    let delivered = close(set, &prep.published).await;
    let (integrity, hist) = (delivered.integrity, delivered.latency);
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
    for e in delivered.stream_errors.iter().chain(&prep.errors) {
        println!("error: {e}");
    }
    Ok(integrity.is_clean() && prep.failed == 0 && integrity.expected > 0)
}
