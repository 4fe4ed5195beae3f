//! The Redis store on a Redis Cluster when a failover loses acknowledged events, and a store
//! pointed at the other kind of Redis: clients that held events Redis lost are told with an
//! `sse-reset`, and end with exactly what Redis holds.
#![cfg(feature = "redis-cluster")]

mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::*;
use poem_sse_ext::{
    store::{RedisStore, RedisStoreError, Retention},
    Hub,
};
use redis_support::{cluster::*, *};
use testkit::redis_cluster::RedisCluster;

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
