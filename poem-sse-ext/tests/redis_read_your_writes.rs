//! Read-your-writes on the Redis store: once a publish is acknowledged, a catch-up read that
//! begins afterwards sees it, on the instance that published and on every other instance of the
//! same Redis: `Hub::recent`, a resume with `Last-Event-ID`, and a set's resume, each in id order
//! and with nothing twice. Two hubs on one Redis (and on a Redis Cluster) stand for two instances.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::BTreeMap;

use futures_util::{FutureExt, StreamExt};
use poem_sse_ext::{
    hub::Opener, store::Retention, wire::set_cursor, Event, EventId, Hub, Subscriber,
};
use redis_support::*;
use testkit::{ParsedEvent, Parser};

/// Publishes on one instance and reads at once, this many times per target.
const ROUNDS: usize = 300;

async fn hub_on(target: &Target) -> Hub {
    Hub::builder()
        .store(target.store(Retention::default().max_events(10_000)).await)
        .build()
}

/// The events a subscriber has ready now, without waiting: what its replay holds.
fn ready_now(sub: &mut Subscriber) -> Vec<ParsedEvent> {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    while let Some(Some(chunk)) = sub.next().now_or_never() {
        events.extend(parser.feed(&chunk));
    }
    events
}

/// The `n` of events published as `n`, checking that they are in order and none is twice.
fn rounds_in_order(what: &str, data: impl Iterator<Item = String>) -> Vec<usize> {
    let seen: Vec<usize> = data
        .map(|data| {
            data.parse()
                .unwrap_or_else(|_| panic!("{what}: data {data:?}"))
        })
        .collect();
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "{what}: in publish order, none twice: {seen:?}"
    );
    seen
}

fn stream_id(id: &EventId) -> (u64, u64) {
    let (ms, seq) = id.as_str().split_once('-').expect("a stream id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_begins_after_a_publish_sees_it_on_every_instance() {
    for target in targets() {
        let name = target.name();
        let a = hub_on(&target).await;
        let b = hub_on(&target).await;
        // Both instances follow the channel before the first publish: the reads below then come
        // from logs the readers feed, which is where a just-acknowledged write can be missing.
        let _watch_a = a.subscribe("orders", None).await.expect("subscribe on A");
        let _watch_b = b.subscribe("orders", None).await.expect("subscribe on B");
        let mut before = a.head("orders").await.expect("head");
        // Reads that lacked the write, by kind: all must be 0.
        let mut missed = BTreeMap::<String, usize>::new();
        for round in 0..ROUNDS {
            let id = a
                .publish("orders", Event::text(round.to_string()))
                .await
                .expect("publish on A");
            for (instance, hub) in [("A", &a), ("B", &b)] {
                let what = format!("{name}, round {round}, recent on {instance}");
                let recent = hub.recent("orders", 3).await.expect("recent");
                let ids: Vec<_> = recent.events.iter().map(|e| stream_id(&e.id)).collect();
                assert!(
                    ids.windows(2).all(|pair| pair[0] < pair[1]),
                    "{what}: ids in order, none twice: {ids:?}"
                );
                rounds_in_order(&what, recent.events.iter().map(|e| e.data.clone()));
                let has_it = recent.events.last().map(|e| &e.id) == Some(&id) && recent.head == id;
                *missed.entry(format!("recent on {instance}")).or_default() += usize::from(!has_it);

                let what = format!("{name}, round {round}, resume on {instance}");
                let mut sub = hub
                    .subscribe("orders", Some(before.as_str()))
                    .await
                    .expect("subscribe");
                let replay = ready_now(&mut sub);
                let ids: Vec<&str> = replay.iter().map(|e| e.last_event_id.as_str()).collect();
                assert!(ids.len() <= 1, "{what}: only the write, once: {ids:?}");
                let has_it = ids == [id.as_str()] && replay[0].data == round.to_string();
                *missed.entry(format!("resume on {instance}")).or_default() += usize::from(!has_it);
            }
            before = id;
        }
        assert!(
            missed.values().all(|&n| n == 0),
            "{name}: reads right after a publish that lacked it, of {ROUNDS}: {missed:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_resumed_after_publishes_on_another_instance_replays_them_at_once() {
    for target in targets() {
        let name = target.name();
        let a = hub_on(&target).await;
        let b = hub_on(&target).await;
        let _watch = b
            .subscribe_set(&["cpu", "mem"], None, &Opener::default())
            .await
            .expect("subscribe on B");
        let mut cpu_at = b.head("cpu").await.expect("head");
        let mut mem_at = b.head("mem").await.expect("head");
        for round in 0..ROUNDS / 3 {
            let what = format!("{name}, round {round}, set resumed on B");
            let cursor = set_cursor(&["cpu", "mem"], &[Some(&cpu_at), Some(&mem_at)]);
            cpu_at = a
                .publish("cpu", Event::text(round.to_string()))
                .await
                .expect("publish cpu on A");
            mem_at = a
                .publish("mem", Event::text(round.to_string()))
                .await
                .expect("publish mem on A");
            let mut sub = b
                .subscribe_set(&["cpu", "mem"], Some(&cursor), &Opener::default())
                .await
                .expect("subscribe the set on B");
            let replay = ready_now(&mut sub);
            for channel in ["cpu", "mem"] {
                let data = replay
                    .iter()
                    .filter(|e| e.event_type == channel)
                    .map(|e| e.data.clone());
                assert_eq!(
                    rounds_in_order(&what, data),
                    [round],
                    "{what}: {channel}'s write, once, at once"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_resumes_on_one_channel_shares_its_catch_ups() {
    let Some(redis) = redis() else {
        return;
    };
    let hub = |store| Hub::builder().store(store).build();
    let a = hub(store(&redis.url(), Retention::default()).await);
    let b = hub(store(&redis.url(), Retention::default()).await);
    let _watch = b.subscribe("storm", None).await.expect("subscribe on B");
    let seen = a
        .publish("storm", Event::text("seen"))
        .await
        .expect("publish");
    let missed = a
        .publish("storm", Event::text("missed"))
        .await
        .expect("publish");
    let mut admin = raw(&redis).await;
    let before = served(&mut admin, "xrange").await;
    // 500 clients come back to B at once, each with the id before the event it missed.
    let subs =
        futures_util::future::join_all((0..500).map(|_| b.subscribe("storm", Some(seen.as_str()))))
            .await;
    let after = served(&mut admin, "xrange").await;
    for sub in subs {
        let replay = ready_now(&mut sub.expect("subscribe"));
        let ids: Vec<&str> = replay.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(
            ids,
            [missed.as_str()],
            "every resume has what it missed, once"
        );
    }
    let catch_ups = after.calls - before.calls;
    assert!(
        (1..=10).contains(&catch_ups),
        "500 resumes shared their reads of Redis: {catch_ups} XRANGEs"
    );
}
