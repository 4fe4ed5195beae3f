//! Cross-instance delivery over the Redis store, on loopback: publish→receive latency (p50/p99)
//! from a hub on instance A to SSE clients of instance B, and publish throughput.
//!
//! ```text
//! cargo run --release -p poem-sse-ext --features redis --example redis_fanout [-- EVENTS CONCURRENCY CLIENTS]
//! ```
//!
//! Starts its own `redis-server` (no persistence) on a free loopback port. A benchmark, not a
//! test: it prints numbers and checks only that every client received every event.

#[cfg(feature = "redis")]
#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    bench::run().await
}

#[cfg(not(feature = "redis"))]
fn main() {
    eprintln!("redis_fanout needs the `redis` feature: add `--features redis`");
}

#[cfg(feature = "redis")]
mod bench {
    use std::{
        error::Error,
        sync::{Arc, OnceLock},
        time::{Duration, Instant},
    };

    use poem::{get, listener::TcpListener, Route, Server};
    use poem_sse_ext::{store::RedisStore, Event, Hub};
    use testkit::{redis::RedisServer, sse_client::SseConnection};

    type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

    /// The time every timestamp in the event data counts from.
    fn since_start() -> Duration {
        static START: OnceLock<Instant> = OnceLock::new();
        START.get_or_init(Instant::now).elapsed()
    }

    async fn hub(url: &str) -> Result<Hub> {
        let store = RedisStore::builder(url).connect().await?;
        Ok(Hub::builder().history(100_000).store(store).build())
    }

    /// Serves `hub` on a free loopback port; returns the stream URL of `channel`.
    async fn serve(hub: &Hub, channel: &str) -> Result<String> {
        let port = testkit::free_port();
        let app = Route::new().at("/events/:channel", get(hub.endpoint()));
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
        Err("the server did not start".into())
    }

    /// Reads `n` events and returns the latency of each (now minus the timestamp it carries).
    async fn receive(mut conn: SseConnection, n: usize) -> Result<Vec<Duration>> {
        let mut latencies = Vec::with_capacity(n);
        while latencies.len() < n {
            let event = conn
                .next_event(Duration::from_secs(30))
                .await?
                .ok_or("stream ended")?;
            let sent: u64 = event.data.parse()?;
            latencies.push(since_start().saturating_sub(Duration::from_nanos(sent)));
        }
        Ok(latencies)
    }

    fn stamp() -> Event {
        Event::text(since_start().as_nanos().to_string())
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

    async fn connect_all(url: &str, clients: usize) -> Result<Vec<SseConnection>> {
        let client = reqwest::Client::builder().http1_only().build()?;
        let mut conns = Vec::with_capacity(clients);
        for _ in 0..clients {
            conns.push(SseConnection::connect(&client, url, None).await?);
        }
        Ok(conns)
    }

    pub async fn run() -> Result<()> {
        let mut args = std::env::args().skip(1).map(|arg| arg.parse::<usize>());
        let events = args.next().transpose()?.unwrap_or(20_000);
        let concurrency = args.next().transpose()?.unwrap_or(64).max(1);
        let clients = args.next().transpose()?.unwrap_or(10).max(1);
        let Some(redis) = RedisServer::start()? else {
            return Ok(());
        };
        since_start();
        let a = hub(&redis.url()).await?;
        let b = hub(&redis.url()).await?;
        println!(
            "redis-server on {}; instance A publishes, {clients} SSE clients on instance B",
            redis.url()
        );

        // 1. Latency, one event at a time: publish on A, wait until every client of B has it.
        let url = serve(&b, "latency").await?;
        let sequential = 2_000;
        let conns = connect_all(&url, clients).await?;
        let readers: Vec<_> = conns
            .into_iter()
            .map(|conn| tokio::spawn(receive(conn, sequential)))
            .collect();
        let mut first_client = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        // Pace by the slowest client: the next event goes out when the previous one arrived.
        let pacer = {
            let url = url.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut conn = connect_all(&url, 1).await?.pop().ok_or("no connection")?;
                let mut seen = Vec::with_capacity(sequential);
                for _ in 0..sequential {
                    let event = conn
                        .next_event(Duration::from_secs(30))
                        .await?
                        .ok_or("stream ended")?;
                    let sent: u64 = event.data.parse()?;
                    seen.push(since_start().saturating_sub(Duration::from_nanos(sent)));
                    let _ = tx.send(());
                }
                Ok::<_, Box<dyn Error + Send + Sync>>(seen)
            })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        for _ in 0..sequential {
            a.publish("latency", stamp()).await?;
            rx.recv().await.ok_or("pacer gone")?;
        }
        if let Ok(Ok(seen)) = pacer.await {
            first_client = seen;
        }
        let mut all = Vec::new();
        for reader in readers {
            all.extend(
                reader
                    .await
                    .map_err(|err| err.to_string())?
                    .map_err(|err| err.to_string())?,
            );
        }
        report("sequential, A→Redis→B→SSE client (1 client)", first_client);
        report(
            &format!("sequential, A→Redis→B→SSE client (all {clients} clients)"),
            all,
        );

        // 2. Throughput: `concurrency` publishes in flight on A; every client of B gets them all.
        let url = serve(&b, "load").await?;
        let conns = connect_all(&url, clients).await?;
        let readers: Vec<_> = conns
            .into_iter()
            .map(|conn| tokio::spawn(receive(conn, events)))
            .collect();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let publishers: Vec<_> = (0..concurrency)
            .map(|_| {
                let (a, next) = (a.clone(), Arc::clone(&next));
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < events {
                        a.publish("load", stamp()).await?;
                    }
                    Ok::<_, poem_sse_ext::PublishError>(())
                })
            })
            .collect();
        for publisher in publishers {
            publisher.await.map_err(|err| err.to_string())??;
        }
        let published = started.elapsed();
        let mut all = Vec::new();
        for reader in readers {
            all.extend(
                reader
                    .await
                    .map_err(|err| err.to_string())?
                    .map_err(|err| err.to_string())?,
            );
        }
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
}
