//! The Redis store on a Redis Cluster doing what clusters do under two instances: a master
//! killed mid-publish, a live reshard. Clients that keep resuming with `Last-Event-ID` end with
//! exactly what Redis holds, never an event twice between two resets.
#![cfg(feature = "redis-cluster")]

mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::*;
use poem_sse_ext::{store::RedisStore, Hub};
use redis_support::{cluster::*, *};
use testkit::{redis_cluster::RedisCluster, ParsedEvent};

/// A master is SIGKILLed mid-publish; its replica takes over. Publishers retry what failed,
/// clients move between the two instances with `Last-Event-ID`, and every client ends with
/// exactly what Redis holds, in order, never an event twice between two resets. Meanwhile the
/// instances report degraded health naming the dead node, and are ready again by themselves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_mid_publish_costs_no_client_a_silent_gap_or_a_duplicate() {
    let Some(mut cluster) = RedisCluster::start().expect("cluster") else {
        return;
    };
    let fleet = Fleet::start(&cluster, 24).await;
    // The channels live on every master.
    let mut masters = std::collections::HashSet::new();
    for key in &fleet.keys {
        masters.insert(master_of(&cluster.seeds()[0], key).await);
    }
    assert_eq!(masters.len(), 3, "{masters:?}");
    let victim = port_of(&master_of(&cluster.seeds()[0], &fleet.keys[0]).await);

    let health = fleet.hubs[0].clone();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reports = tokio::spawn({
        let watching = Arc::clone(&watching);
        async move {
            let mut reports = Vec::new();
            while watching.load(std::sync::atomic::Ordering::Relaxed) {
                if let poem_sse_ext::store::StoreHealth::Degraded(reason) = health.health() {
                    reports.push(reason);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            reports
        }
    });
    let failed = fleet
        .publish(600, |n| {
            if n == 200 {
                cluster.kill(victim);
            }
            if n == 400 {
                fleet.hop.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
        .await;
    assert!(
        failed > 0,
        "publishes to the dead master failed until its replica took over"
    );
    cluster
        .wait_until_ok(Duration::from_secs(10))
        .expect("the cluster settles");
    fleet.hop.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let resets = fleet.settle(&cluster).await;
    for hub in &fleet.hubs {
        until("health is ok again", || {
            hub.health() == poem_sse_ext::store::StoreHealth::Ok
        })
        .await;
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let reports = reports.await.expect("health reports");
    let victim_address = format!("127.0.0.1:{victim}");
    assert!(
        reports
            .iter()
            .any(|reason| reason.contains(&victim_address)),
        "health named the dead master {victim_address}: {reports:?}"
    );
    eprintln!("failover: {failed} failed attempts, {resets} resets");
    fleet.stop().await;
}

/// Slots move from one master to another (`redis-cli --cluster reshard`, 2,000 slots, among
/// them buckets in use) while both instances publish and clients read: nothing is lost or
/// delivered twice, and no client gets a reset (a reshard loses nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_reshard_loses_and_repeats_nothing() {
    let Some(mut cluster) = RedisCluster::start().expect("cluster") else {
        return;
    };
    let fleet = Fleet::start(&cluster, 24).await;
    let masters = cluster.masters().expect("masters");
    // Bucket 0 (tag `{1768}`, slot 512) sits among the first slots of its master: they move.
    let from = port_of(&master_of(&cluster.seeds()[0], "{1768}").await);
    let to = *masters
        .iter()
        .find(|&&port| port != from)
        .expect("another master");
    let cluster = Arc::new(cluster);
    let mut resharding = None;
    fleet
        .publish(600, |n| {
            if n == 100 {
                let cluster = Arc::clone(&cluster);
                resharding = Some(std::thread::spawn(move || cluster.reshard(from, to, 2_000)));
            }
        })
        .await;
    resharding
        .expect("started")
        .join()
        .expect("reshard thread")
        .expect("reshard");
    assert_eq!(
        port_of(&master_of(&cluster.seeds()[0], "{1768}").await),
        to,
        "bucket 0 moved"
    );
    let resets = fleet.settle(&cluster).await;
    assert_eq!(resets, 0, "a reshard loses nothing");
    fleet.stop().await;
}

/// Two instances, channels on every master, a client per channel that moves between the
/// instances with `Last-Event-ID`, and a publisher that retries what fails.
struct Fleet {
    hubs: Vec<Hub>,
    servers: Vec<TestServer>,
    channels: Vec<String>,
    /// The stream key of each channel.
    keys: Vec<String>,
    clients: Vec<Arc<std::sync::Mutex<Vec<ParsedEvent>>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    /// Each bump makes every client reconnect to the other instance with its last id.
    hop: Arc<std::sync::atomic::AtomicUsize>,
}

impl Fleet {
    async fn start(cluster: &RedisCluster, channels: usize) -> Self {
        let mut hubs = Vec::new();
        let mut servers = Vec::new();
        let channels: Vec<String> = (0..channels).map(|n| format!("ch-{n}")).collect();
        let mut keys = Vec::new();
        for _ in 0..2 {
            let store = quick(RedisStore::cluster_builder(cluster.seeds()))
                .unreachable_grace(Duration::from_millis(100))
                .connect()
                .await
                .expect("connect");
            keys = channels.iter().map(|c| store.stream_key(c)).collect();
            let hub = Hub::builder().store(store).build();
            servers.push(serve(&hub).await);
            hubs.push(hub);
        }
        let mut fleet = Self {
            hubs,
            servers,
            channels,
            keys,
            clients: Vec::new(),
            tasks: Vec::new(),
            stop: Arc::default(),
            hop: Arc::default(),
        };
        let client = http1();
        for (k, channel) in fleet.channels.iter().enumerate() {
            let urls: Vec<String> = fleet
                .servers
                .iter()
                .map(|server| server.url(&format!("/events/{channel}")))
                .collect();
            let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
            let first = connect(&client, &urls[k % 2], None).await;
            fleet.clients.push(Arc::clone(&seen));
            fleet.tasks.push(tokio::spawn(follow(
                client.clone(),
                urls,
                k % 2,
                first,
                seen,
                Arc::clone(&fleet.stop),
                Arc::clone(&fleet.hop),
            )));
        }
        fleet
    }

    /// Publishes `count` events round the channels through both instances, retrying each until
    /// it is acknowledged; `during(n)` runs before the `n`th. Returns how many attempts failed.
    async fn publish(&self, count: usize, mut during: impl FnMut(usize)) -> usize {
        let mut failed = 0;
        for n in 0..count {
            during(n);
            let channel = &self.channels[n % self.channels.len()];
            let hub = &self.hubs[n % 2];
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while hub
                .publish(channel, poem_sse_ext::Event::text(format!("{channel}/{n}")))
                .await
                .is_err()
            {
                failed += 1;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "publishing never recovered"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        failed
    }

    /// Waits until every client holds exactly what Redis holds for its channel, then checks
    /// that no client got an event twice between two resets. Returns the resets clients got.
    async fn settle(&self, cluster: &RedisCluster) -> usize {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        let mut resets = 0;
        for (k, channel) in self.channels.iter().enumerate() {
            let truth = redis_truth(cluster, &self.keys[k]).await;
            loop {
                let seen = self.clients[k].lock().expect("events").clone();
                let (held, got) = apply(&seen);
                if held == truth {
                    resets += got.len();
                    let mut since_reset = std::collections::HashSet::new();
                    for event in &seen {
                        if event.event_type == RESET {
                            since_reset.clear();
                        } else {
                            assert!(
                                since_reset.insert(event.last_event_id.clone()),
                                "{channel}: {} twice without a reset between",
                                event.last_event_id
                            );
                        }
                    }
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{channel}: the client holds {held:?}\nRedis holds {truth:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        resets
    }

    async fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        for server in self.servers {
            server.stop().await;
        }
    }
}

/// A client that reads `channel` until `stop`, reconnecting (to the other instance, with its
/// last id) whenever its stream ends or `hop` moves.
async fn follow(
    client: reqwest::Client,
    urls: Vec<String>,
    mut at: usize,
    mut conn: SseConnection,
    seen: Arc<std::sync::Mutex<Vec<ParsedEvent>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    hop: Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::Ordering;
    let mut hops = 0;
    let mut last: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let moved = hop.load(Ordering::Relaxed) != hops;
        let event = if moved {
            None
        } else {
            match conn.next_event(Duration::from_millis(100)).await {
                Ok(Some(event)) => Some(event),
                Err(err) if err.is_timeout() => continue,
                Ok(None) | Err(_) => None,
            }
        };
        match event {
            Some(event) => {
                last = Some(event.last_event_id.clone());
                seen.lock().expect("events").push(event);
            }
            None => {
                hops = hop.load(Ordering::Relaxed);
                at = (at + 1) % urls.len();
                match SseConnection::connect(&client, &urls[at], last.as_deref()).await {
                    Ok(next) if next.status() == 200 => conn = next,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        }
    }
}
