//! The Redis store on a Redis Cluster doing what clusters do: a failover that loses
//! acknowledged events, a master killed mid-publish, a live reshard. Clients that keep
//! resuming with `Last-Event-ID` end with exactly what Redis holds, and those that held events
//! Redis lost are told with an `sse-reset`.
#![cfg(feature = "redis-cluster")]

mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::*;
use poem_sse_ext::{
    store::{RedisStore, RedisStoreError, Retention},
    Hub,
};
use redis::AsyncConnectionConfig;
use redis_support::*;
use testkit::{redis_cluster::RedisCluster, ParsedEvent};

/// A raw connection to the node at `port` whose replies may take `timeout` (the node may be
/// frozen on purpose).
async fn node(port: u16, timeout: Duration) -> redis::aio::MultiplexedConnection {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// What a client holds after applying `events` the way the reset tells it to: an `sse-reset`
/// says "what you have after `resume_from` is not Redis's" (it drops those), then the stream
/// goes on after it. Returns the (id, data) it holds, and the resets it got.
fn apply(events: &[ParsedEvent]) -> (Vec<(String, String)>, Vec<serde_json::Value>) {
    let mut held: Vec<(String, String)> = Vec::new();
    let mut resets = Vec::new();
    for event in events {
        if event.event_type == RESET {
            let body: serde_json::Value = event.json().expect("reset json");
            let from = body["resume_from"]
                .as_str()
                .expect("resume_from")
                .to_owned();
            held.retain(|(id, _)| stream_id(id) <= stream_id(&from));
            resets.push(body);
        } else {
            held.push((event.last_event_id.clone(), event.data.clone()));
        }
    }
    (held, resets)
}

fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("a stream id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

/// The (id, data) of every entry of `key`, read from the master that owns it now.
async fn redis_truth(cluster: &RedisCluster, key: &str) -> Vec<(String, String)> {
    let mut master = redis::Client::open(master_of(&cluster.seeds()[0], key).await)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut master)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(id, fields)| {
            let frame = &fields[0].1;
            let data = frame
                .trim_end()
                .strip_prefix("data: ")
                .unwrap_or(frame)
                .to_owned();
            (id, data)
        })
        .collect()
}

/// A replica that missed acknowledged events is promoted (here: frozen with `DEBUG SLEEP`, cut
/// from its master, then `CLUSTER FAILOVER TAKEOVER`), and gets more new events than were lost
/// before the store's reader finds it: the stream's counters then look like a stream that only
/// grew, and only the check that the reader's position still exists sees the loss. The open
/// stream and a client resuming from a lost id both get an `sse-reset` from the newest event
/// Redis kept, then the new events: they end with exactly what Redis holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_lost_in_a_failover_are_told_even_when_more_new_ones_follow() {
    let Some(mut cluster) = RedisCluster::start().expect("cluster") else {
        return;
    };
    let store = quick(RedisStore::cluster_builder(cluster.seeds()))
        .connect()
        .await
        .expect("connect");
    let key = store.stream_key("ledger");
    let hub = Hub::builder().store(store).build();
    let server = serve(&hub).await;
    let client = http1();
    let mut open = connect(&client, &server.url("/events/ledger"), None).await;

    let master = port_of(&master_of(&cluster.seeds()[0], &key).await);
    let replica = cluster
        .replica_of(master)
        .expect("nodes")
        .expect("a replica");
    for n in 0..5 {
        publish(&hub, "ledger", &format!("kept-{n}")).await;
    }
    let kept = open.next_events(5, WAIT).await.expect("kept events");
    let mut on_master = node(master, Duration::from_secs(5)).await;
    // The replica has them (WAIT would only count the writes of its own connection).
    let mut on_replica = node(replica, Duration::from_secs(5)).await;
    redis::cmd("READONLY")
        .exec_async(&mut on_replica)
        .await
        .expect("READONLY");
    let mut replicated = 0;
    for _ in 0..200 {
        replicated = redis::cmd("XLEN")
            .arg(&key)
            .query_async(&mut on_replica)
            .await
            .expect("XLEN");
        if replicated == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(replicated, 5, "the replica has the kept events");

    // Freeze the replica and cut it from its master: what the master acknowledges now, the
    // replica never gets.
    let mut frozen = node(replica, Duration::from_secs(5)).await;
    let sleep = tokio::spawn({
        let mut frozen = frozen.clone();
        async move {
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(1.5)
                .query_async(&mut frozen)
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .exec_async(&mut on_master)
        .await
        .expect("cut the replica");
    for n in 0..3 {
        publish(&hub, "ledger", &format!("lost-{n}")).await;
    }
    let lost = open
        .next_events(3, WAIT)
        .await
        .expect("the events Redis will lose");
    // Queued while it sleeps: the replica takes over at once when it wakes, then gets more new
    // events than were lost, all before the store's reader can reach it.
    let mut takeover = redis::pipe();
    takeover.cmd("CLUSTER").arg("FAILOVER").arg("TAKEOVER");
    for n in 0..6 {
        takeover
            .cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("f")
            .arg(format!("data: new-{n}\n\n"));
    }
    let replies: Vec<redis::Value> = takeover
        .query_async(&mut frozen)
        .await
        .expect("take over and publish");
    assert_eq!(replies.len(), 7, "{replies:?}");
    sleep.await.expect("slept");

    // The open stream: the reset from the newest event Redis kept, then the new events.
    let mut seen = [kept.clone(), lost.clone()].concat();
    seen.extend(
        open.next_events(7, Duration::from_secs(10))
            .await
            .expect("reset and new"),
    );
    let (held, resets) = apply(&seen);
    assert_eq!(resets.len(), 1, "one reset: {seen:?}");
    assert_eq!(resets[0]["reason"], "epoch");
    assert_eq!(resets[0]["resume_from"], kept[4].last_event_id.as_str());
    cluster
        .wait_until_ok(Duration::from_secs(10))
        .expect("the cluster settles");
    assert_eq!(
        held,
        redis_truth(&cluster, &key).await,
        "exactly what Redis holds"
    );
    assert_eq!(held.len(), 11, "5 kept and 6 new: {held:?}");

    // A client that had read up to a lost event and comes back now is told as well.
    let mut back = connect(
        &client,
        &server.url("/events/ledger"),
        Some(&lost[1].last_event_id),
    )
    .await;
    let reset = back.next_event(WAIT).await.expect("event").expect("open");
    assert_eq!(reset.event_type, RESET);
    let body: serde_json::Value = reset.json().expect("json");
    assert_eq!(body["resume_from"], kept[4].last_event_id.as_str());
    assert_eq!(
        data_of(&mut back, 6).await,
        (0..6).map(|n| format!("new-{n}")).collect::<Vec<_>>()
    );
    let ledger = hub.metrics().channels["ledger"].clone();
    assert_eq!(
        ledger.resets, 2,
        "the open stream's and the returning client's"
    );
    server.stop().await;
}

/// A store is refused at start-up, with a sentence saying which is which, when it is pointed at
/// the other kind of Redis: a single-node store on a cluster node (it would acknowledge
/// publishes it can never deliver), a cluster store on a single Redis.
#[tokio::test]
async fn a_store_pointed_at_the_other_kind_of_redis_is_refused_at_start_up() {
    let (Some(cluster), Some(single)) = (RedisCluster::shared().expect("cluster"), redis()) else {
        return;
    };
    let seed = cluster.seeds()[0].clone();
    match RedisStore::builder(seed.as_str()).connect().await {
        Err(err @ RedisStoreError::ClusterNode(_)) => {
            let message = err.to_string();
            assert!(message.contains(&seed), "{message}");
            assert!(
                message.contains("is a node of a Redis Cluster"),
                "{message}"
            );
            assert!(message.contains("cluster_builder"), "{message}");
        }
        other => panic!("expected ClusterNode, got {other:?}"),
    }
    match RedisStore::cluster_builder([single.url()]).connect().await {
        Err(err @ RedisStoreError::NotAClusterNode(_)) => {
            let message = err.to_string();
            assert!(message.contains(&single.url()), "{message}");
            assert!(message.contains("is a single Redis"), "{message}");
        }
        other => panic!("expected NotAClusterNode, got {other:?}"),
    }
    // Seeds in any order, unreachable ones among them: the first that answers decides.
    let mut seeds = cluster.seeds();
    seeds.reverse();
    seeds.insert(0, "redis://127.0.0.1:1".to_owned());
    let store = Arc::new(
        quick(RedisStore::cluster_builder(seeds).retention(Retention::default()))
            .connect()
            .await
            .expect("a cluster store"),
    );
    let _ = store;
}

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
