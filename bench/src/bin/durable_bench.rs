//! Durable Streams on one stream, poem-sse-ext's endpoint beside the Node reference server
//! (`@durable-streams/server`, in memory, `bench/durable`): appends per second, SSE fan-out
//! latency to 1, 100 and 1,000 followers at 50 appends/s, and the memory an idle SSE follower
//! costs the server. Each server runs in its own process; all traffic stays on loopback.
//!
//! ```text
//! durable-bench [--seconds 5] [--followers 1,100,1000] [--idle 1000] [--servers poem,poem-hyper,poem-redis,node]
//! durable-bench serve PORT [--hyper] [--redis URL]   # poem-sse-ext's endpoint alone (what the bench starts)
//! ```
//!
//! `poem-redis` is `poem` with the streams on a Redis of its own (a `redis-server` the bench
//! starts on loopback, without persistence): every append is a script on Redis, every read a
//! round trip to it.
//!
//! `poem` serves the endpoint with `poem-serve` as the demo does (idle HTTP/1.1 event streams
//! without hyper's buffers); `poem-hyper` with poem's own `Server` (hyper for everything).
//! Followers send `Accept: text/event-stream`, as an `EventSource` and the protocol's client do.
//!
//! ```text
//! ```
//! Prints a Markdown table (the figures of BENCHMARKS.md).

use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use poem::{listener::TcpListener, Route, Server};
use poem_sse_ext::durable::DurableStreams;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

const WRITERS: usize = 8;
const RATE: u64 = 50;

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

struct Target {
    name: &'static str,
    child: Child,
    base: String,
    /// The Redis of `poem-redis`, stopped with the target.
    _redis: Option<testkit::redis::RedisServer>,
}

async fn start(name: &'static str) -> Result<Target> {
    let port = testkit::free_port();
    let mut redis = None;
    let mut command = match name {
        "poem" | "poem-hyper" | "poem-redis" => {
            let mut c = Command::new(std::env::current_exe()?);
            c.args(["serve", &port.to_string()]);
            if name == "poem-hyper" {
                c.arg("--hyper");
            }
            if name == "poem-redis" {
                let server = testkit::redis::RedisServer::start()?
                    .context("poem-redis needs redis-server")?;
                c.args(["--redis", &server.url()]);
                redis = Some(server);
            }
            c
        }
        "node" => {
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/durable");
            if !std::path::Path::new(dir)
                .join("node_modules/@durable-streams/server")
                .is_dir()
            {
                bail!("run `npm ci` in {dir}");
            }
            let mut c = Command::new("node");
            c.args(["reference.mjs", &port.to_string()])
                .current_dir(dir);
            c
        }
        other => bail!("unknown server {other}"),
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await??;
    if !line.as_deref().is_some_and(|l| l.starts_with("listening")) {
        bail!("{name} did not start: {line:?}");
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Target {
        name,
        child,
        base: format!("http://127.0.0.1:{port}/v1/stream"),
        _redis: redis,
    })
}

impl Target {
    fn rss_kib(&self) -> u64 {
        self.child
            .id()
            .and_then(|pid| bench::procfs::rss_kib(pid).ok())
            .unwrap_or(0)
    }

    async fn create(&self, client: &reqwest::Client, name: &str) -> Result<String> {
        let url = format!("{}/{name}", self.base);
        let status = client
            .put(&url)
            .header("Content-Type", "text/plain")
            .send()
            .await?
            .status();
        if status.as_u16() != 201 {
            bail!("PUT {url}: {status}");
        }
        Ok(url)
    }
}

/// Appends per second: WRITERS connections appending 64 bytes in a loop to one stream.
async fn appends(target: &Target, seconds: u64) -> Result<f64> {
    let client = reqwest::Client::new();
    let url = Arc::new(target.create(&client, "appends").await?);
    let body = bytes::Bytes::from(vec![b'x'; 64]);
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (client, url, body) = (client.clone(), Arc::clone(&url), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                let r = client
                    .post(url.as_str())
                    .header("Content-Type", "text/plain")
                    .body(body.clone())
                    .send()
                    .await;
                if r.is_ok_and(|r| r.status().is_success()) {
                    done += 1;
                }
            }
            done
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await?;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// Opens `n` SSE followers at the tail of `url`; each records the latency of every data event
/// (the payload is its send time in µs). Returns once every follower has its first control event.
async fn followers(
    url: &str,
    n: usize,
    latencies: Arc<Mutex<Histogram<u64>>>,
    received: Arc<Mutex<u64>>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()?;
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n.max(1));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (client, url, ready, latencies, received) = (
            client.clone(),
            url.to_owned(),
            ready_tx.clone(),
            Arc::clone(&latencies),
            Arc::clone(&received),
        );
        tasks.push(tokio::spawn(async move {
            let Ok(response) = client
                .get(format!("{url}?offset=now&live=sse"))
                .header("Accept", "text/event-stream")
                .send()
                .await
            else {
                return;
            };
            let mut body = response.bytes_stream();
            let mut parser = testkit::parser::Parser::new();
            let mut announced = false;
            while let Some(Ok(chunk)) = body.next().await {
                let now = now_micros();
                for event in parser.feed(&chunk) {
                    if event.event_type == "control" && !announced {
                        announced = true;
                        let _ = ready.send(()).await;
                    }
                    if event.event_type == "data" {
                        for sent in event
                            .data
                            .split(';')
                            .filter_map(|t| t.trim().parse::<u64>().ok())
                        {
                            let _ = latencies
                                .lock()
                                .unwrap()
                                .record(now.saturating_sub(sent).max(1));
                            *received.lock().unwrap() += 1;
                        }
                    }
                }
            }
        }));
    }
    drop(ready_tx);
    for _ in 0..n {
        tokio::time::timeout(Duration::from_secs(30), ready_rx.recv())
            .await
            .context("followers connect")?;
    }
    Ok(tasks)
}

/// SSE fan-out latency (p50, p99 in ms) at RATE appends/s to `n` followers, and the share of
/// deliveries that arrived.
async fn fan_out(target: &Target, n: usize, seconds: u64) -> Result<(f64, f64, f64)> {
    let client = reqwest::Client::new();
    let url = target.create(&client, &format!("fanout-{n}")).await?;
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let received = Arc::new(Mutex::new(0u64));
    let tasks = followers(&url, n, Arc::clone(&latencies), Arc::clone(&received)).await?;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    let mut sent = 0u64;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        ticker.tick().await;
        // Each payload ends with `;` so that events a follower gets in one batch stay apart.
        let body = format!("{};", now_micros());
        client
            .post(&url)
            .header("Content-Type", "text/plain")
            .body(body)
            .send()
            .await?;
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    for task in tasks {
        task.abort();
    }
    let h = latencies.lock().unwrap();
    let delivered = *received.lock().unwrap() as f64 / (sent * n as u64) as f64;
    Ok((
        h.value_at_quantile(0.5) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        delivered,
    ))
}

/// The server's resident memory per idle SSE follower, in KiB.
async fn idle_memory(target: &Target, n: usize) -> Result<f64> {
    let client = reqwest::Client::new();
    let url = target.create(&client, "idle").await?;
    // One follower first, so that what any first stream allocates is not counted.
    let warm = followers(
        &url,
        1,
        Arc::new(Mutex::new(Histogram::new(3)?)),
        Arc::default(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = target.rss_kib();
    let tasks = followers(
        &url,
        n,
        Arc::new(Mutex::new(Histogram::new(3)?)),
        Arc::default(),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let after = target.rss_kib();
    for task in tasks.into_iter().chain(warm) {
        task.abort();
    }
    Ok(after.saturating_sub(before) as f64 / n as f64)
}

async fn serve(port: u16, hyper: bool, redis: Option<String>) -> Result<()> {
    let mut builder = DurableStreams::builder()
        .long_poll_timeout(Duration::from_millis(500))
        .max_streams_per_client(1_000_000);
    let store = match redis {
        Some(url) => Some(
            poem_sse_ext::store::RedisStore::builder(url)
                .connect()
                .await?,
        ),
        None => None,
    };
    if let Some(store) = &store {
        builder = builder.redis(store);
    }
    let streams = builder.build();
    let app = Route::new().nest("/v1/stream", streams.endpoint());
    let addr = format!("127.0.0.1:{port}");
    if hyper {
        let listener = TcpListener::bind(addr);
        println!("listening http://127.0.0.1:{port}");
        Server::new(listener).run(app).await?;
    } else {
        let server = poem_serve::StreamServer::bind(addr)
            .await?
            .max_connections_per_ip(None);
        println!("listening http://127.0.0.1:{port}");
        server.run(app).await?;
    }
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str) -> Option<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let port = args
            .get(2)
            .and_then(|p| p.parse().ok())
            .context("serve PORT")?;
        return serve(
            port,
            args.iter().any(|a| a == "--hyper"),
            arg(&args, "--redis"),
        )
        .await;
    }
    bench::procfs::raise_nofile_limit();
    let seconds = arg(&args, "--seconds").unwrap_or(5);
    let idle = arg(&args, "--idle").unwrap_or(1_000);
    let counts: Vec<usize> = arg::<String>(&args, "--followers")
        .unwrap_or_else(|| "1,100,1000".into())
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    let servers = arg::<String>(&args, "--servers").unwrap_or_else(|| "poem,node".into());
    let mut rows = Vec::new();
    for name in servers.split(',') {
        let name: &'static str = match name {
            "node" => "node",
            "poem-hyper" => "poem-hyper",
            "poem-redis" => "poem-redis",
            _ => "poem",
        };
        let target = start(name).await?;
        // Idle memory first, on a fresh server: after the fan-out runs, the followers opened
        // there would be reused memory and the growth would read low.
        let memory = idle_memory(&target, idle).await?;
        let rate = appends(&target, seconds).await?;
        let mut fan = Vec::new();
        for n in &counts {
            fan.push((*n, fan_out(&target, *n, seconds).await?));
        }
        rows.push((target.name, rate, fan, memory));
    }
    println!(
        "| server | appends/s ({WRITERS} writers, 64 B) | {} | idle SSE follower |",
        counts
            .iter()
            .map(|n| format!("SSE p50 / p99, {n} followers"))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}---|", "---|".repeat(counts.len()));
    for (name, rate, fan, memory) in rows {
        let server = match name {
            "poem" => "poem-sse-ext `durable` on poem-serve",
            "poem-hyper" => "poem-sse-ext `durable` on poem's `Server` (hyper)",
            "poem-redis" => "poem-sse-ext `durable` on poem-serve, streams on Redis 7 (one node)",
            _ => "`@durable-streams/server` 0.3.7 (Node)",
        };
        let cells: Vec<String> = fan
            .iter()
            .map(|(_, (p50, p99, got))| {
                format!("{p50:.2} / {p99:.2} ms ({:.1} % delivered)", got * 100.0)
            })
            .collect();
        println!(
            "| {server} | {rate:.0} | {} | {memory:.2} KiB |",
            cells.join(" | ")
        );
    }
    Ok(())
}
