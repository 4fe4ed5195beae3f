//! A million concurrent HTTP/2 streams against one server on this box, measured: every stream
//! connected and counted, the server's RSS per stream, the time to connect them all, the
//! server's CPU while they idle (heartbeats only), one broadcast reaching every stream (each
//! stream's receipt counted; p50/p99/last of publish → receipt), and SIGTERM → exit.
//!
//! ```text
//! million --server product --bin-dir target/release --connections 4000 --per-conn 250
//! million --server axum    --bin-dir target/release --connections 5000 --per-conn 200
//! ```
//!
//! The server is pinned to `--server-cpu` and this process to `--self-cpu` (one core each on
//! the 2-core box). The streams are h2c (HTTP/2 over cleartext TCP) from the lean client of
//! `bench::crowd`, whose cost per stream is a few dozen bytes; its own RSS and CPU are printed
//! so that it can be seen not to be the limit. The figures go to stdout as a Markdown table
//! and, with `--json FILE`, as one JSON object appended per run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bench::crowd::{Crowd, CrowdPlan};
use bench::net::Target;
use bench::publish::post_once;
use bench::server::{Launcher, ServerSpec};
use bench::{clock, procfs};
use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser)]
#[command(
    name = "million",
    about = "A million HTTP/2 streams against one server, measured"
)]
struct Cli {
    /// `product` (the demo app) or `axum` (the axum peer).
    #[arg(long, default_value = "product")]
    server: String,
    /// Where the server binaries are (`demo-app`, `peer-axum`).
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value_t = 4000)]
    connections: usize,
    /// Streams per connection (axum's HTTP/2 takes at most 200).
    #[arg(long, default_value_t = 250)]
    per_conn: usize,
    /// Connections being opened at once (each until all its streams are answered).
    #[arg(long, default_value_t = 64)]
    dial: usize,
    /// How long the crowd idles while the server's CPU is measured (the heartbeat is 15 s).
    #[arg(long, default_value_t = 45.0)]
    idle_secs: f64,
    #[arg(long, default_value_t = 0)]
    server_cpu: usize,
    #[arg(long, default_value_t = 1)]
    self_cpu: usize,
    /// Append the figures to this file as one JSON object.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "target/bench/logs")]
    log_dir: PathBuf,
}

fn main() -> ExitCode {
    clock::now_us();
    procfs::raise_nofile_limit();
    let cli = Cli::parse();
    if let Err(e) = pin_self(cli.self_cpu) {
        eprintln!("million: {e:#}");
        return ExitCode::FAILURE;
    }
    // One thread: the load generator has one core, and its connections need no other.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("million: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("million: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn spec(cli: &Cli, streams: usize) -> Result<ServerSpec> {
    let bin = |name: &str| cli.bin_dir.join(name).display().to_string();
    let max = streams.to_string();
    let (name, cmd) = match cli.server.as_str() {
        "product" => (
            "poem-sse-ext",
            vec![
                bin("demo-app"),
                "--plain".into(),
                "--listen".into(),
                "{addr}".into(),
                "--heartbeat".into(),
                "15s".into(),
                "--history".into(),
                "1000".into(),
                "--max-connections-per-ip".into(),
                "0".into(),
                "--max-streams".into(),
                max.clone(),
                "--max-streams-per-channel".into(),
                max,
                "--http2-max-streams".into(),
                cli.per_conn.to_string(),
            ],
        ),
        "axum" => (
            "axum Sse",
            vec![
                bin("peer-axum"),
                "--listen".into(),
                "{addr}".into(),
                "--heartbeat".into(),
                "15s".into(),
            ],
        ),
        other => bail!("--server is product or axum, not {other}"),
    };
    Ok(ServerSpec {
        product: name == "poem-sse-ext",
        ..ServerSpec::h2c(name, cmd)
    })
}

async fn run(cli: &Cli) -> Result<()> {
    let streams = cli.connections * cli.per_conn;
    let spec = spec(cli, streams)?;
    let launcher = Launcher {
        pin: Some(cli.server_cpu),
        log_dir: cli.log_dir.clone(),
    };
    let mut server = launcher.start(&spec, false).await?;
    let pid = server.pid;
    let target = Target::parse(&server.base, None, 0)?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| {
        println!("{k}: {v}");
        rows.push((k.to_owned(), v));
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = procfs::rss_kib(pid)?;
    let self_rss0 = procfs::rss_kib(std::process::id())?;
    let self_cpu0 = procfs::own_cpu_time()?;
    let plan = CrowdPlan {
        addr: target.addr,
        authority: target.authority.clone(),
        path: "/events/crowd".into(),
        connections: cli.connections,
        per_conn: cli.per_conn,
        dial_concurrency: cli.dial,
    };
    let t0 = Instant::now();
    let crowd = Crowd::start(&plan);
    let limit = Duration::from_secs(60 + streams as u64 / 5_000);
    crowd.wait_until(limit, |l| l.settled() >= streams).await;
    let connect_all = t0.elapsed().as_secs_f64();
    let live = crowd.live.clone();
    let connected = live.connected.load(std::sync::atomic::Ordering::Relaxed);
    let load = |a: &std::sync::atomic::AtomicUsize| a.load(std::sync::atomic::Ordering::Relaxed);
    row("server", spec.name.clone());
    row(
        "streams",
        format!(
            "{connected} connected of {streams} ({} connections × {}); refused {}, failed {}",
            cli.connections,
            cli.per_conn,
            load(&live.refused),
            load(&live.failed)
        ),
    );
    for e in live.errors() {
        row("error", e);
    }
    row("time to connect them all", format!("{connect_all:.2} s"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss1 = procfs::rss_kib(pid)?;
    let per = |kib: u64| kib as f64 / connected.max(1) as f64;
    row(
        "server RSS",
        format!(
            "{:.0} MiB in all, {:.3} KiB per stream ({} KiB before the streams)",
            rss1 as f64 / 1024.0,
            per(rss1.saturating_sub(rss0)),
            rss0
        ),
    );

    let comments0 = live.comments.load(std::sync::atomic::Ordering::Relaxed);
    let cpu0 = procfs::cpu_time(pid)?;
    let idle_t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(cli.idle_secs)).await;
    let idle = idle_t0.elapsed().as_secs_f64();
    let idle_cpu = procfs::cpu_time(pid)?.saturating_sub(cpu0).as_secs_f64();
    let beats = live.comments.load(std::sync::atomic::Ordering::Relaxed) - comments0;
    row(
        "idle: server CPU",
        format!(
            "{:.2} % of a core over {idle:.0} s; {beats} heartbeats received ({:.2} per stream)",
            100.0 * idle_cpu / idle,
            beats as f64 / connected.max(1) as f64
        ),
    );

    let seq = 1;
    live.watch(seq);
    let cpu_b0 = procfs::cpu_time(pid)?;
    let published = post_once(&target, &mut None, "crowd", 0, seq).await;
    let all = published.is_ok()
        && crowd
            .wait_until(Duration::from_secs(120), |l| load(&l.reached) >= connected)
            .await;
    let id = match published {
        Ok(id) => id,
        Err(e) => format!("(not published: {e:#})"),
    };
    let broadcast_cpu = procfs::cpu_time(pid)?.saturating_sub(cpu_b0).as_secs_f64();
    let reached = load(&live.reached);
    let mut hist = Histogram::<u64>::new(3).map_err(|e| anyhow!("{e}"))?;
    for l in live.latencies() {
        hist.record(u64::from(l)).map_err(|e| anyhow!("{e}"))?;
    }
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    row(
        "broadcast",
        format!(
            "event {id} reached {reached} of {connected} streams{}; duplicates {}",
            if all { "" } else { " (gave up after 120 s)" },
            load(&live.duplicates)
        ),
    );
    row(
        "broadcast latency",
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms; server CPU {broadcast_cpu:.2} s",
            ms(0.5),
            ms(0.99),
            hist.max() as f64 / 1000.0
        ),
    );
    let self_rss = procfs::rss_kib(std::process::id())?;
    let self_cpu = procfs::own_cpu_time()?
        .saturating_sub(self_cpu0)
        .as_secs_f64();
    row(
        "load generator",
        format!(
            "RSS {:.0} MiB ({:.3} KiB per stream), CPU {self_cpu:.1} s since the first connect",
            self_rss as f64 / 1024.0,
            per(self_rss.saturating_sub(self_rss0))
        ),
    );

    let exit = server.terminate(Duration::from_secs(60)).await;
    let ended = load(&live.ended);
    row(
        "SIGTERM → exit",
        match exit {
            Some(t) => format!(
                "{:.3} s; {ended} streams ended by the server",
                t.as_secs_f64()
            ),
            None => "did not exit within 60 s (killed)".into(),
        },
    );
    crowd.stop().await;

    if let Some(path) = &cli.json {
        let object: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let mut line = serde_json::to_string(&object)?;
        line.push('\n');
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("open {}", path.display()))?
            .write_all(line.as_bytes())?;
    }
    if reached < connected || connected < streams {
        bail!("not every stream connected and reached ({connected} connected, {reached} reached of {streams})");
    }
    Ok(())
}

/// Pins this process (its threads yet to come) to `cpu`.
fn pin_self(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET and sched_setaffinity get a valid
    // pointer to it and its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            bail!("pin to CPU {cpu}: {}", std::io::Error::last_os_error());
        }
    }
    Ok(())
}
