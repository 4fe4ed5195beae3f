//! `redis-fanout`: cross-instance delivery over the Redis store, on loopback. Publish→receive
//! latency (p50/p99) from a hub on instance A to SSE clients of instance B, one event at a
//! time and under load, publish throughput, and catch-up reads on B right after a publish on A.
//!
//! ```text
//! cargo run --release -p bench --bin redis-fanout [-- EVENTS CONCURRENCY CLIENTS]
//! ```
//!
//! Starts its own `redis-server` (no persistence) on a free loopback port; without one it
//! prints `skipped: redis-server is not installed` (and fails under `CI=true`). A benchmark,
//! not a test: it prints numbers and checks only that every client received every event.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use poem::{listener::TcpListener, Route, Server};
use poem_sse_ext::{store::RedisStore, Event, Hub};
use testkit::{redis::RedisServer, sse_client::SseConnection};

/// Publish-then-read rounds of the catch-up run.
const CATCH_UP_ROUNDS: usize = 2_000;
/// Events of the one-at-a-time latency run.
const SEQUENTIAL: usize = 2_000;
/// How long a client waits for its next event before the run fails.
const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Parser)]
#[command(
    name = "redis-fanout",
    about = "Latency and throughput of delivery from instance A through Redis to SSE clients of instance B"
)]
struct Args {
    /// Events of the throughput run.
    #[arg(default_value_t = 20_000)]
    events: usize,
    /// Publishes in flight on instance A during the throughput run.
    #[arg(default_value_t = 64)]
    concurrency: usize,
    /// SSE clients on instance B.
    #[arg(default_value_t = 10)]
    clients: usize,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let (events, concurrency, clients) =
        (args.events, args.concurrency.max(1), args.clients.max(1));
    let Some(redis) = RedisServer::start().context("start redis-server")? else {
        return Ok(());
    };
    since_start();
    let a = hub(&redis.url()).await?;
    let b = hub(&redis.url()).await?;
    println!(
        "redis-server on {}; instance A publishes, {clients} SSE clients on instance B",
        redis.url()
    );
    sequential(&a, &b, clients).await?;
    throughput(&a, &b, events, concurrency, clients).await?;
    let reads = bench::catchup::catch_up_reads(&a, &b, "catch-up", CATCH_UP_ROUNDS).await?;
    println!("{reads}");
    Ok(())
}

/// Latency, one event at a time: publish on A, wait until a client of B has it, and so on.
async fn sequential(a: &Hub, b: &Hub, clients: usize) -> Result<()> {
    let url = serve(b, "latency").await?;
    let readers = spawn_readers(&url, clients, SEQUENTIAL).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    // Pace by one more client: the next event goes out when the previous one arrived.
    let pacer = {
        let mut conn = connect_all(&url, 1)
            .await?
            .pop()
            .ok_or_else(|| anyhow!("no connection"))?;
        tokio::spawn(async move {
            let mut seen = Vec::with_capacity(SEQUENTIAL);
            for _ in 0..SEQUENTIAL {
                seen.push(next_latency(&mut conn).await?);
                let _ = tx.send(());
            }
            Ok::<_, anyhow::Error>(seen)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..SEQUENTIAL {
        a.publish("latency", stamp()).await?;
        rx.recv().await.ok_or_else(|| anyhow!("pacer gone"))?;
    }
    let first_client = pacer.await??;
    let all = join_readers(readers).await?;
    report("sequential, A→Redis→B→SSE client (1 client)", first_client);
    report(
        &format!("sequential, A→Redis→B→SSE client (all {clients} clients)"),
        all,
    );
    Ok(())
}

/// Throughput: `concurrency` publishes in flight on A; every client of B gets them all.
async fn throughput(
    a: &Hub,
    b: &Hub,
    events: usize,
    concurrency: usize,
    clients: usize,
) -> Result<()> {
    let url = serve(b, "load").await?;
    let readers = spawn_readers(&url, clients, events).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let publishers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (a, next) = (a.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < events {
                    a.publish("load", stamp()).await?;
                }
                Ok::<_, poem_sse_ext::PublishError>(())
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await??;
    }
    let published = started.elapsed();
    let all = join_readers(readers).await?;
    let delivered = started.elapsed();
    println!(
        "throughput: {events} events, {concurrency} in flight: published in {:.2} s = {:.0} events/s; all {clients} clients of B had every event after {:.2} s",
        published.as_secs_f64(),
        events as f64 / published.as_secs_f64(),
        delivered.as_secs_f64(),
    );
    report(
        &format!("under load ({concurrency} in flight), A→B latency, all clients"),
        all,
    );
    Ok(())
}

/// The time every timestamp in the event data counts from.
fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn stamp() -> Event {
    Event::text(since_start().as_nanos().to_string())
}

async fn hub(url: &str) -> Result<Hub> {
    let store = RedisStore::builder(url).connect().await?;
    Ok(Hub::builder().history(100_000).store(store).build())
}

/// Serves `hub` on a free loopback port; returns the stream URL of `channel`.
async fn serve(hub: &Hub, channel: &str) -> Result<String> {
    let port = testkit::free_port();
    let app = Route::new().at("/events/:channel", hub.endpoint());
    tokio::spawn(Server::new(TcpListener::bind(("127.0.0.1", port))).run(app));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(format!("http://127.0.0.1:{port}/events/{channel}"));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(anyhow!("the server on port {port} did not start"))
}

async fn connect_all(url: &str, clients: usize) -> Result<Vec<SseConnection>> {
    let client = reqwest::Client::builder().http1_only().build()?;
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(SseConnection::connect(&client, url, None).await?);
    }
    Ok(conns)
}

type Reader = tokio::task::JoinHandle<Result<Vec<Duration>>>;

/// Connects `clients` streams to `url`, each reading `n` events in a task of its own.
async fn spawn_readers(url: &str, clients: usize, n: usize) -> Result<Vec<Reader>> {
    Ok(connect_all(url, clients)
        .await?
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(n);
                while latencies.len() < n {
                    latencies.push(next_latency(&mut conn).await?);
                }
                Ok(latencies)
            })
        })
        .collect())
}

/// The latencies all readers saw, or the first reader's failure.
async fn join_readers(readers: Vec<Reader>) -> Result<Vec<Duration>> {
    let mut all = Vec::new();
    for reader in readers {
        all.extend(reader.await??);
    }
    Ok(all)
}

/// Reads the next event: now minus the timestamp it carries.
async fn next_latency(conn: &mut SseConnection) -> Result<Duration> {
    let event = conn
        .next_event(EVENT_TIMEOUT)
        .await?
        .ok_or_else(|| anyhow!("stream ended"))?;
    let sent: u64 = event
        .data
        .parse()
        .with_context(|| format!("event data is not a timestamp: {:?}", event.data))?;
    Ok(since_start().saturating_sub(Duration::from_nanos(sent)))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn report(name: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    println!(
        "{name}: n={} p50={:.3} ms p99={:.3} ms max={:.3} ms",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}
