//! `redis-cluster`: the Redis store on one node and on a 3-master Redis Cluster, same run, on
//! loopback. For each: publish throughput and publish→delivery latency (instance A publishes,
//! instance B's store delivers) over 1,000 channels, and the connections each instance holds to
//! Redis. On the cluster, a failover: a master is SIGKILLed while one channel on it gets an
//! event every 2 ms; time from the kill to delivery resuming, events Redis lost, and events
//! delivered twice without a reset between (must be 0). And catch-up reads: `recent` and a resume
//! on B right after a publish on A, their latency, and how many had the write.
//!
//! ```text
//! cargo run --release -p bench --bin redis-cluster [-- EVENTS CONCURRENCY CHANNELS]
//! ```
//!
//! Starts its own `redis-server`s; without them it prints `skipped: redis-server is not
//! installed` (and fails under `CI=true`). A benchmark, not a test: it prints numbers, and
//! fails only when an event is not delivered.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures_util::{stream, StreamExt};
use poem_sse_ext::{
    store::{CursorItem, RedisStore, RedisStoreBuilder, ReplayStore, Retention},
    Event, Hub,
};
use testkit::{redis::RedisServer, redis_cluster::RedisCluster};

#[derive(Parser)]
#[command(
    name = "redis-cluster",
    about = "The Redis store on one node and on a 3-master cluster: throughput, latency, connections, failover"
)]
struct Args {
    /// Events of each throughput run.
    #[arg(default_value_t = 20_000)]
    events: usize,
    /// Publishes in flight on instance A.
    #[arg(default_value_t = 64)]
    concurrency: usize,
    /// Channels, each followed by instance B.
    #[arg(default_value_t = 1_000)]
    channels: usize,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let Some(single) = RedisServer::start().context("start redis-server")? else {
        return Ok(());
    };
    let Some(mut cluster) = RedisCluster::start().context("start the cluster")? else {
        return Ok(());
    };
    since_start();
    let single_url = single.url();
    let seeds = cluster.seeds();
    println!(
        "{} events, {} in flight, {} channels; A publishes, B delivers",
        args.events, args.concurrency, args.channels
    );
    let one = run(
        "one node",
        || RedisStore::builder(single_url.as_str()),
        &[single.port()],
        &args,
    )
    .await?;
    let three = run(
        "3-master cluster",
        || RedisStore::cluster_builder(seeds.clone()),
        &cluster.ports(),
        &args,
    )
    .await?;
    for figures in [one, three] {
        println!("{figures}");
    }
    failover(&mut cluster).await
}

/// Throughput, latency and connections of one backend.
async fn run(
    name: &str,
    builder: impl Fn() -> RedisStoreBuilder,
    ports: &[u16],
    args: &Args,
) -> Result<String> {
    let before = clients(ports).await;
    let a = Arc::new(builder().connect().await?);
    let b = Arc::new(builder().connect().await?);
    let channels: Vec<String> = (0..args.channels).map(|n| format!("bench-{n}")).collect();
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(args.events)));
    let mut readers = Vec::new();
    for channel in &channels {
        let mut sub = Arc::clone(&b).channel(channel).subscribe(None).await?;
        let latencies = Arc::clone(&latencies);
        readers.push(tokio::spawn(async move {
            while let Some(item) = sub.cursor.next().await {
                if let CursorItem::Frames { chunk, .. } = item {
                    let now = since_start();
                    let mut seen = lock(&latencies);
                    seen.extend(stamps(&chunk).map(|sent| now.saturating_sub(sent)));
                }
            }
        }));
    }
    // Every reader of B is connected now (idle ones included).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let held = clients(ports).await.saturating_sub(before) / 2;
    let handles: Vec<_> = channels.iter().map(|c| Arc::clone(&a).channel(c)).collect();
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..args.events)
        .map(|n| {
            let handle = &handles[n % handles.len()];
            async move { handle.append(&stamp()).await }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    if let Some(Err(err)) = results.iter().find(|r| r.is_err()) {
        return Err(anyhow!("{name}: a publish failed: {err}"));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while lock(&latencies).len() < args.events {
        if Instant::now() > deadline {
            return Err(anyhow!(
                "{name}: {} of {} events delivered",
                lock(&latencies).len(),
                args.events
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for reader in readers {
        reader.abort();
    }
    let mut latencies = std::mem::take(&mut *lock(&latencies));
    latencies.sort();
    let hub = |store| Hub::builder().history(100_000).store(store).build();
    let (hub_a, hub_b) = (
        hub(builder().connect().await?),
        hub(builder().connect().await?),
    );
    let reads = bench::catchup::catch_up_reads(&hub_a, &hub_b, "catch-up", 2_000).await?;
    Ok(format!(
        "{name:>17}: {:>7.0} publishes/s, delivery p50 {:.2} ms p99 {:.2} ms, {held} connections to Redis per instance\n{name:>17}: {reads}",
        args.events as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    ))
}

/// A master dies under a channel that gets an event every 2 ms.
async fn failover(cluster: &mut RedisCluster) -> Result<()> {
    let seeds = cluster.seeds();
    let builder = || {
        // Room for every event of the run: what Redis no longer holds was lost, not trimmed.
        RedisStore::cluster_builder(seeds.clone())
            .retention(Retention::default().max_events(100_000))
            .command_timeout(Duration::from_millis(500))
            .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
    };
    let a = Arc::new(builder().connect().await?);
    let b = Arc::new(builder().connect().await?);
    let key = a.stream_key("failover");
    let publisher = Arc::clone(&a).channel("failover");
    // The key exists from here on, so the master that holds it can be told.
    publisher.append(&Event::text("0")).await?;
    let master = master_port(cluster, &key)?;
    let mut sub = Arc::clone(&b).channel("failover").subscribe(None).await?;
    let seen = Arc::new(Mutex::new(Vec::<(Duration, Option<String>)>::new()));
    let reader = tokio::spawn({
        let seen = Arc::clone(&seen);
        async move {
            while let Some(item) = sub.cursor.next().await {
                let now = since_start();
                let mut seen = lock(&seen);
                match item {
                    CursorItem::Frames { chunk, .. } => {
                        seen.extend(ids(&chunk).map(|id| (now, Some(id))));
                    }
                    CursorItem::Reset(_) => seen.push((now, None)),
                }
            }
        }
    });
    let mut acked = Vec::new();
    let mut killed_at = None;
    let mut failed = 0;
    let end = Instant::now() + Duration::from_secs(8);
    let mut n = 0;
    while Instant::now() < end {
        if n == 500 {
            cluster.kill(master);
            killed_at = Some(since_start());
        }
        n += 1;
        match publisher.append(&Event::text(n.to_string())).await {
            Ok(id) => acked.push((since_start(), id.to_string())),
            Err(_) => failed += 1,
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cluster.wait_until_ok(Duration::from_secs(10))?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    reader.abort();
    let killed_at = killed_at.ok_or_else(|| anyhow!("the master was not killed"))?;
    let seen = std::mem::take(&mut *lock(&seen));
    let resumed = seen
        .iter()
        .find(|(at, id)| {
            *at > killed_at
                && id.as_ref().is_some_and(|id| {
                    acked
                        .iter()
                        .any(|(sent, acked)| acked == id && *sent > killed_at)
                })
        })
        .map(|(at, _)| *at - killed_at);
    let truth = stream_ids(cluster, &key).await?;
    let lost = acked.iter().filter(|(_, id)| !truth.contains(id)).count();
    let mut twice = 0;
    let mut since_reset = std::collections::HashSet::new();
    for (_, id) in &seen {
        match id {
            None => since_reset.clear(),
            Some(id) if !since_reset.insert(id.clone()) => twice += 1,
            Some(_) => {}
        }
    }
    let resets = seen.iter().filter(|(_, id)| id.is_none()).count();
    // Delivered, not in Redis, and no reset after: a client left holding an event Redis lost.
    let last_reset = seen
        .iter()
        .rposition(|(_, id)| id.is_none())
        .map_or(0, |at| at + 1);
    let held_lost = seen[last_reset..]
        .iter()
        .filter(|(_, id)| id.as_ref().is_some_and(|id| !truth.contains(id)))
        .count();
    let delivered_lost = seen
        .iter()
        .filter(|(_, id)| id.as_ref().is_some_and(|id| !truth.contains(id)))
        .count();
    println!(
        "         failover: delivery resumed {} after the kill; {failed} publishes refused meanwhile; {lost} acknowledged events lost by Redis, {delivered_lost} of them delivered, {held_lost} still held without a reset after them; {resets} resets; {twice} events seen twice without a reset between",
        resumed.map_or_else(|| "never".to_owned(), |d| format!("{} ms", d.as_millis()))
    );
    Ok(())
}

/// `connected_clients` summed over the nodes at `ports` (replication links are not counted).
async fn clients(ports: &[u16]) -> usize {
    let mut total = 0;
    for port in ports {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
            continue;
        };
        let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
            continue;
        };
        let info: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        let connected: usize = info
            .lines()
            .find_map(|line| line.strip_prefix("connected_clients:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        // Not counting this connection.
        total += connected.saturating_sub(1);
    }
    total
}

fn master_port(cluster: &mut RedisCluster, key: &str) -> Result<u16> {
    let slot: u16 = cluster
        .command(cluster.ports()[0], &format!("CLUSTER KEYSLOT {key}"))?
        .parse()?;
    for master in cluster.masters()? {
        let count: u64 = cluster
            .command(master, &format!("CLUSTER COUNTKEYSINSLOT {slot}"))
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if count > 0 {
            return Ok(master);
        }
    }
    Err(anyhow!("no master holds {key}"))
}

/// The ids of `key`'s entries, from whichever node answers with them.
async fn stream_ids(cluster: &RedisCluster, key: &str) -> Result<Vec<String>> {
    let client = redis::cluster::ClusterClient::new(cluster.seeds())?;
    let mut conn = client.get_async_connection().await?;
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    Ok(entries.into_iter().map(|(id, _)| id).collect())
}

fn since_start() -> Duration {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed()
}

fn stamp() -> Event {
    Event::text(since_start().as_nanos().to_string())
}

/// The send times in a chunk of frames (`data: <nanos>` lines).
fn stamps(chunk: &Bytes) -> impl Iterator<Item = Duration> + '_ {
    chunk.split(|&b| b == b'\n').filter_map(|line| {
        let nanos = std::str::from_utf8(line.strip_prefix(b"data: ")?).ok()?;
        Some(Duration::from_nanos(nanos.parse().ok()?))
    })
}

/// The ids in a chunk of frames (`id: <id>` lines).
fn ids(chunk: &Bytes) -> impl Iterator<Item = String> + '_ {
    chunk.split(|&b| b == b'\n').filter_map(|line| {
        Some(
            std::str::from_utf8(line.strip_prefix(b"id: ")?)
                .ok()?
                .to_owned(),
        )
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
