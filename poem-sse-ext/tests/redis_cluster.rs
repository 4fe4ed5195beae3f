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
    let synced: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2_000)
        .query_async(&mut on_master)
        .await
        .expect("WAIT");
    assert_eq!(synced, 1, "the replica has the kept events");

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
