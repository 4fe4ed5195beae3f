//! Instances on one Redis, and Redis failing under open streams: streams stay open, resume
//! exactly, and every event Redis lost is announced with one reset, counted as a reset.
#![cfg(feature = "redis")]

mod common;
mod redis_support;

use std::{sync::Arc, time::Duration};

use common::*;
use poem_sse_ext::{
    store::{RedisStore, ReplayStore, Retention, StoreError, StoreHealth},
    wire::BUSY_EVENT,
    Event, Hub, SubscribeError,
};
use redis_support::*;

/// Two hubs on one Redis stand for two instances behind a load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_deliver_each_others_events_and_resume_across() {
    let Some(redis) = redis() else { return };
    let a = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let b = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let (server_a, server_b) = (serve(&a).await, serve(&b).await);
    let client = http1();
    let mut on_a = connect(&client, &server_a.url("/events/room"), None).await;
    let mut on_b = connect(&client, &server_b.url("/events/room"), None).await;
    // Several clients of one instance share its one reader.
    let mut also_on_b = connect(&client, &server_b.url("/events/room"), None).await;

    let mut sent = Vec::new();
    for n in 0..20 {
        let hub = if n % 2 == 0 { &a } else { &b };
        sent.push(publish(hub, "room", &format!("m{n}")).await);
    }
    let expected: Vec<String> = (0..20).map(|n| format!("m{n}")).collect();
    for conn in [&mut on_a, &mut on_b, &mut also_on_b] {
        let events = conn.next_events(20, WAIT).await.expect("events");
        let data: Vec<String> = events.iter().map(|event| event.data.clone()).collect();
        assert_eq!(data, expected);
        let ids: Vec<String> = events
            .iter()
            .map(|event| event.last_event_id.clone())
            .collect();
        assert_eq!(ids, sent, "every instance sends the same ids");
    }

    // A client of A that saw m9 reconnects to B: exactly m10.. follow.
    drop(on_a);
    let mut moved = connect(&client, &server_b.url("/events/room"), Some(&sent[9])).await;
    assert_eq!(data_of(&mut moved, 10).await, expected[10..]);
    publish(&a, "room", "after").await;
    assert_eq!(data_of(&mut moved, 1).await, ["after"]);
    moved
        .expect_no_event(Duration::from_millis(200))
        .await
        .expect("no duplicates");
    server_a.stop().await;
    server_b.stop().await;
}

/// A stream of several channels read on A continues on B from its set cursor: each channel gives
/// exactly what it missed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_of_channels_resumed_on_another_instance_continues_exactly() {
    let Some(redis) = redis() else { return };
    let a = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let b = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let serve_sets = |hub: &Hub| {
        let app = poem::Route::new().at("/events", hub.set_endpoint());
        TestServer::start_with_hub(app, Some(hub.clone()))
    };
    let (server_a, server_b) = (serve_sets(&a).await, serve_sets(&b).await);
    let client = http1();
    let mut on_a = connect(&client, &server_a.url("/events?channels=cpu,mem"), None).await;
    publish(&b, "cpu", "c1").await;
    publish(&a, "mem", "m1").await;
    let seen = on_a.next_events(2, WAIT).await.expect("events");
    let mut data: Vec<String> = seen.iter().map(|e| e.data.clone()).collect();
    data.sort();
    assert_eq!(data, ["c1", "m1"]);
    let cursor = on_a.last_event_id().to_owned();
    drop(on_a);

    publish(&a, "cpu", "c2").await;
    publish(&b, "cpu", "c3").await;
    let mut on_b = connect(
        &client,
        &server_b.url("/events?channels=cpu,mem"),
        Some(&cursor),
    )
    .await;
    let resumed = on_b.next_events(2, WAIT).await.expect("events");
    let got: Vec<(String, String)> = resumed
        .iter()
        .map(|e| (e.event_type.clone(), e.data.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("cpu".to_owned(), "c2".to_owned()),
            ("cpu".to_owned(), "c3".to_owned())
        ]
    );
    on_b.expect_no_event(Duration::from_millis(200))
        .await
        .expect("nothing twice, no reset");
    publish(&a, "mem", "m2").await;
    assert_eq!(data_of(&mut on_b, 1).await, ["m2"]);
    server_a.stop().await;
    server_b.stop().await;
}

/// Redis dies during a stream: publishing fails, the stream stays open with heartbeats, health is
/// degraded; when Redis is back, delivery resumes, and what was published meanwhile arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_during_a_stream_is_survived() {
    let Some(mut redis) = redis() else { return };
    let hub = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .heartbeat(Duration::from_millis(200))
        .build();
    // A second instance publishes while the first one's reader is still reconnecting.
    let other = Arc::new(store(&redis.url(), Retention::default()).await).channel("feed");
    let server = serve(&hub).await;
    let mut conn = connect(&http1(), &server.url("/events/feed"), None).await;
    publish(&hub, "feed", "before").await;
    assert_eq!(data_of(&mut conn, 1).await, ["before"]);

    redis.stop();
    let refused = hub.publish("feed", Event::text("lost?")).await;
    assert!(
        refused.is_err(),
        "publishing without Redis is an error: {refused:?}"
    );
    until("health is degraded", || {
        matches!(hub.health(), StoreHealth::Degraded(_))
    })
    .await;
    let comments = conn.comments();
    conn.expect_no_event(Duration::from_millis(600))
        .await
        .expect("stream stays open");
    assert!(
        conn.comments() > comments,
        "heartbeats keep flowing while Redis is down"
    );
    assert!(!conn.is_ended());

    redis.restart().expect("redis restarts");
    // Published as soon as Redis answers, possibly before this instance's reader is back.
    let mut published = Vec::new();
    for n in 0..5 {
        for _ in 0..100 {
            if let Ok(id) = other.append(&Event::text(format!("after-{n}"))).await {
                published.push(id);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(published.len(), 5, "Redis is back");
    // Redis lost its data (no persistence): the stream says so, then delivers every event of
    // the new stream.
    let reset = conn.next_event(WAIT).await.expect("event").expect("open");
    assert_eq!(reset.event_type, RESET);
    let body: serde_json::Value = reset.json().expect("json");
    assert_eq!(body["reason"], "epoch");
    let data = data_of(&mut conn, 5).await;
    assert_eq!(
        data,
        (0..5).map(|n| format!("after-{n}")).collect::<Vec<_>>()
    );
    until("health is ok", || hub.health() == StoreHealth::Ok).await;
    publish(&hub, "feed", "live").await;
    assert_eq!(data_of(&mut conn, 1).await, ["live"]);
    // The loss is counted as what it is: one reset, and seven events.
    let feed = hub.metrics().channels["feed"].clone();
    assert_eq!((feed.resets, feed.delivered), (1, 7));
    server.stop().await;
}

/// Redis loses a stream while streams read it (here: `FLUSHALL`, with the reader's connection
/// cut so that it looks at once): each stream gets one `epoch` reset, counted as a reset and not
/// as an event, then every event of the new stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_flushed_while_open_gives_an_epoch_reset_then_the_new_stream() {
    let Some(redis) = redis() else { return };
    let hub = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let server = serve(&hub).await;
    let client = http1();
    let mut first = connect(&client, &server.url("/events/feed"), None).await;
    let mut second = connect(&client, &server.url("/events/feed"), None).await;
    publish(&hub, "feed", "before").await;
    assert_eq!(data_of(&mut first, 1).await, ["before"]);
    assert_eq!(data_of(&mut second, 1).await, ["before"]);

    let mut admin = raw(&redis).await;
    let mut pipe = kill_other_clients();
    pipe.cmd("FLUSHALL").ignore();
    for n in 0..3 {
        pipe.cmd("XADD")
            .arg("sse:feed")
            .arg("*")
            .arg("f")
            .arg(format!("data: new-{n}\n\n"))
            .ignore();
    }
    pipe.exec_async(&mut admin).await.expect("flush");
    for conn in [&mut first, &mut second] {
        let reset = conn.next_event(WAIT).await.expect("event").expect("open");
        assert_eq!(reset.event_type, RESET);
        let body: serde_json::Value = reset.json().expect("json");
        assert_eq!(body["reason"], "epoch");
        assert_eq!(data_of(conn, 3).await, ["new-0", "new-1", "new-2"]);
    }
    let feed = hub.metrics().channels["feed"].clone();
    assert_eq!((feed.resets, feed.delivered), (2, 8));
    server.stop().await;
}

/// The reader falls behind Redis's own trimming (here: it is cut off while another instance
/// publishes more than the retention): its streams get an `evicted` reset, not a silent gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_trimmed_before_the_reader_could_read_them_give_a_reset() {
    let Some(redis) = redis() else { return };
    let retention = Retention::default().max_events(10);
    let hub = Hub::builder()
        .store(store(&redis.url(), retention).await)
        .build();
    let other = Arc::new(store(&redis.url(), retention).await).channel("feed");
    let server = serve(&hub).await;
    let mut conn = connect(&http1(), &server.url("/events/feed"), None).await;
    other.append(&Event::text("first")).await.expect("append");
    assert_eq!(data_of(&mut conn, 1).await, ["first"]);

    // Cut every connection (the reader's among them), and publish far more than the retention
    // before the reader is back.
    let mut admin = raw(&redis).await;
    let mut pipe = kill_other_clients();
    for n in 0..400 {
        pipe.cmd("XADD")
            .arg("sse:feed")
            .arg("MAXLEN")
            .arg(10)
            .arg("*")
            .arg("f")
            .arg(format!("data: burst-{n}\n\n"))
            .ignore();
    }
    pipe.exec_async(&mut admin).await.expect("burst");
    let mut seen = Vec::new();
    let reset = loop {
        let event = conn.next_event(WAIT).await.expect("event").expect("open");
        if event.event_type == RESET {
            break event;
        }
        seen.push(event.data);
    };
    let body: serde_json::Value = reset.json().expect("json");
    assert_eq!(body["reason"], "evicted", "after {seen:?}");
    assert!(seen.len() < 399, "{seen:?}");
    // The cut also broke `other`'s connection: its first publish may fail, then it reconnects.
    let mut appended = false;
    for _ in 0..50 {
        if other.append(&Event::text("after")).await.is_ok() {
            appended = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(appended, "publishing works again");
    loop {
        let event = conn.next_event(WAIT).await.expect("event").expect("open");
        assert_ne!(event.event_type, RESET, "one reset only");
        seen.push(event.data);
        if seen.last().is_some_and(|data| data == "after") {
            break;
        }
    }
    // The gap is counted as a reset, not as an event delivered.
    let feed = hub.metrics().channels["feed"].clone();
    assert_eq!((feed.resets, feed.delivered), (1, 1 + seen.len() as u64));
    server.stop().await;
}

/// The reader blocks in one XREAD over the followed channels; a channel subscribed meanwhile is
/// added at once (the blocked XREAD is interrupted), not when the block times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newly_subscribed_channel_is_live_at_once_while_the_reader_blocks() {
    let Some(redis) = redis() else { return };
    let store = RedisStore::builder(redis.url())
        .block(Duration::from_secs(30))
        .connect()
        .await
        .expect("connect");
    let hub = Hub::builder().store(store).build();
    let server = serve(&hub).await;
    let client = http1();
    let mut first = connect(&client, &server.url("/events/first"), None).await;
    publish(&hub, "first", "1").await;
    assert_eq!(data_of(&mut first, 1).await, ["1"]);
    // The reader now blocks for up to 30 s on `first` alone.
    for n in 0..5 {
        let channel = format!("later-{n}");
        let mut later = connect(&client, &server.url(&format!("/events/{channel}")), None).await;
        let started = std::time::Instant::now();
        publish(&hub, &channel, "x").await;
        let event = later
            .next_event(Duration::from_secs(2))
            .await
            .expect("delivered well before the block times out")
            .expect("open");
        assert_eq!(event.data, "x");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    server.stop().await;
}

/// The reader loses its connection while another instance keeps publishing (within the
/// retention): when it is back, it continues from the last id it read, and the stream gets every
/// missed event, in order, without a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_published_while_the_reader_was_cut_off_arrive_after_it_reconnects() {
    let Some(redis) = redis() else { return };
    let hub = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let server = serve(&hub).await;
    let mut conn = connect(&http1(), &server.url("/events/feed"), None).await;
    publish(&hub, "feed", "first").await;
    assert_eq!(data_of(&mut conn, 1).await, ["first"]);

    // Another instance (here: raw XADDs, as a RedisStore writes them) publishes right after every
    // connection of this one was cut.
    let mut admin = raw(&redis).await;
    let mut pipe = kill_other_clients();
    for n in 0..20 {
        pipe.cmd("XADD")
            .arg("sse:feed")
            .arg("*")
            .arg("f")
            .arg(format!("data: missed-{n}\n\n"))
            .ignore();
    }
    pipe.exec_async(&mut admin)
        .await
        .expect("publish while cut off");
    let events = conn.next_events(20, WAIT).await.expect("the missed events");
    assert!(events.iter().all(|event| event.event_type != RESET));
    let data: Vec<String> = events.into_iter().map(|event| event.data).collect();
    assert_eq!(
        data,
        (0..20).map(|n| format!("missed-{n}")).collect::<Vec<_>>()
    );
    conn.expect_no_event(Duration::from_millis(200))
        .await
        .expect("no duplicates");
    let feed = hub.metrics().channels["feed"].clone();
    assert_eq!((feed.resets, feed.delivered), (0, 21));
    server.stop().await;
}

/// A key of the store's holding another type (`SET sse:bad x`) breaks only its own channel:
/// the others keep delivering promptly and health stays ok; publishing or subscribing there fails
/// with a clear error; once the key is removed the channel works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_the_wrong_type_breaks_only_its_own_channel() {
    let Some(redis) = redis() else { return };
    let hub = Hub::builder()
        .store(store(&redis.url(), Retention::default()).await)
        .build();
    let other = Arc::new(store(&redis.url(), Retention::default()).await);
    let other_bad = Arc::clone(&other).channel("bad");
    let server = serve(&hub).await;
    let client = http1();
    let mut good = connect(&client, &server.url("/events/good"), None).await;
    let mut bad = connect(&client, &server.url("/events/bad"), None).await;
    publish(&hub, "good", "g0").await;
    publish(&hub, "bad", "b0").await;
    assert_eq!(data_of(&mut good, 1).await, ["g0"]);
    assert_eq!(data_of(&mut bad, 1).await, ["b0"]);

    let mut admin = raw(&redis).await;
    redis::cmd("DEL")
        .arg("sse:bad")
        .exec_async(&mut admin)
        .await
        .expect("DEL");
    redis::cmd("SET")
        .arg("sse:bad")
        .arg("x")
        .exec_async(&mut admin)
        .await
        .expect("SET");

    // Publishing there fails with a store error naming the key and the problem, and nothing
    // else.
    let wrong_type = |err: StoreError| match err {
        StoreError::WrongKeyType { key, detail } => {
            assert_eq!(key, "sse:bad");
            assert!(detail.contains("not a stream"), "{detail}");
        }
        other => panic!("expected WrongKeyType, got {other:?}"),
    };
    wrong_type(
        other_bad
            .append(&Event::text("nope"))
            .await
            .expect_err("refused"),
    );
    assert!(hub.publish("bad", Event::text("nope")).await.is_err());
    // So does subscribing, on an instance that did not follow the channel yet...
    wrong_type(other_bad.subscribe(None).await.expect_err("refused"));

    // The good channel keeps delivering promptly, again and again.
    for n in 1..=10 {
        let data = format!("g{n}");
        publish(&hub, "good", &data).await;
        let event = good
            .next_event(Duration::from_secs(1))
            .await
            .expect("delivered within 1 s despite the bad key")
            .expect("open");
        assert_eq!(event.data, data);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hub.health(), StoreHealth::Ok);
    assert_eq!(other.health(), StoreHealth::Ok);
    // ... and on the instance that follows it: the hub says which key, and a browser is told
    // to come back later (a soft refusal: an EventSource only retries after a 200).
    match hub.subscribe("bad", None).await {
        Err(SubscribeError::Store(err)) => wrong_type(err),
        Err(err) => panic!("expected a store error, got {err:?}"),
        Ok(_) => panic!("expected a store error, got a stream"),
    }
    let mut refused = connect(&client, &server.url("/events/bad"), None).await;
    let busy = refused
        .next_event(WAIT)
        .await
        .expect("an event")
        .expect("open");
    assert_eq!(busy.event_type, BUSY_EVENT);
    assert_eq!(
        busy.json::<serde_json::Value>().expect("json")["reason"],
        "store"
    );
    refused.wait_for_end(WAIT).await.expect("the refusal ends");
    assert!(
        !bad.is_ended(),
        "the open stream of the bad channel stays open"
    );

    // Repaired: the channel works again, for its open stream and for new ones.
    redis::cmd("DEL")
        .arg("sse:bad")
        .exec_async(&mut admin)
        .await
        .expect("DEL");
    publish(&hub, "bad", "b1").await;
    loop {
        let event = bad.next_event(WAIT).await.expect("event").expect("open");
        if event.event_type == RESET {
            continue;
        }
        assert_eq!(event.data, "b1");
        break;
    }
    // The reader took the key back before it read `b1`: new streams are accepted again.
    let mut again = connect(&client, &server.url("/events/bad"), None).await;
    publish(&hub, "bad", "b2").await;
    assert_eq!(data_of(&mut again, 1).await, ["b2"]);
    assert_eq!(data_of(&mut bad, 1).await, ["b2"]);
    publish(&hub, "good", "g-last").await;
    assert_eq!(data_of(&mut good, 1).await, ["g-last"]);
    assert_eq!(hub.health(), StoreHealth::Ok);
    server.stop().await;
}
