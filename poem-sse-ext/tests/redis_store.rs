//! The Redis Streams store, channel by channel: every instance resumes exactly from the same
//! stream ids, from a log it filled once, or says why not.
#![cfg(feature = "redis")]

mod redis_support;

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{future::join_all, FutureExt, StreamExt};
use poem_sse_ext::{
    store::{
        CursorItem, LogCursor, RedisStore, ReplayStore, Retention, StoreChannel, StoreError,
        StoreHealth,
    },
    wire::Reset,
    wire::ResetReason,
    Event, EventId,
};
use redis_support::*;

const WAIT: Duration = Duration::from_secs(5);

/// The next thing the cursor yields, within [`WAIT`].
async fn next_item(cursor: &mut LogCursor) -> CursorItem {
    tokio::time::timeout(WAIT, cursor.next())
        .await
        .expect("an item in time")
        .expect("the cursor is open")
}

/// Waits until the channel's log in this instance holds everything up to `head` (the reader
/// brings what was published after the channel's history was read).
async fn until_the_log_reaches(channel: &dyn StoreChannel, head: &EventId) {
    for _ in 0..200 {
        if channel.recent(0).await.map(|recent| recent.head).as_ref() == Ok(head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the log never reached {head}");
}

/// Subscribes after `from` and checks that the stream starts with a reset for `reason` that
/// continues from `head`, with nothing replayed.
async fn expect_reset(channel: &dyn StoreChannel, from: &str, reason: ResetReason, head: &EventId) {
    let mut sub = channel.subscribe(Some(from)).await.expect("subscribe");
    assert_eq!(
        sub.reset,
        Some(Reset {
            reason,
            resume_from: head.clone(),
        }),
        "resuming from {from:?}"
    );
    assert_eq!(sub.cursor.next().now_or_never(), None, "nothing replayed");
}

fn frames(events: &[(&EventId, &str)]) -> Bytes {
    events
        .iter()
        .map(|(id, data)| format!("id: {id}\ndata: {data}\n\n"))
        .collect::<String>()
        .into()
}

#[tokio::test]
async fn the_store_replays_exactly_and_signals_every_kind_of_reset() {
    let Some(redis) = redis() else { return };
    let instance = Arc::new(store(&redis.url(), Retention::default().max_events(5)).await);
    let feed = Arc::clone(&instance).channel("feed");
    assert_eq!(feed.head().await, Ok(EventId::new("0-0")));

    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            feed.append(&Event::text(n.to_string()))
                .await
                .expect("append"),
        );
    }
    // The missed events come from the channel's log, joined into one chunk.
    let mut sub = feed
        .subscribe(Some(ids[0].as_str()))
        .await
        .expect("subscribe");
    assert!(sub.reset.is_none());
    assert_eq!(
        next_item(&mut sub.cursor).await,
        CursorItem::Frames {
            chunk: frames(&[(&ids[1], "1"), (&ids[2], "2")]),
            count: 2,
            replayed: 2,
            lag: None,
        }
    );
    // From the beginning: everything, as nothing was trimmed yet.
    let mut all = feed.subscribe(Some("0-0")).await.expect("subscribe");
    assert!(all.reset.is_none());
    assert!(matches!(
        next_item(&mut all.cursor).await,
        CursorItem::Frames { count: 3, .. }
    ));

    for n in 3..12 {
        ids.push(
            feed.append(&Event::text(n.to_string()))
                .await
                .expect("append"),
        );
    }
    let head = ids.last().cloned().expect("ids");
    assert_eq!(feed.head().await.as_ref(), Ok(&head));
    until_the_log_reaches(&*feed, &head).await;

    // More than the retention after it: evicted, even though MAXLEN ~ kept the entries.
    expect_reset(&*feed, ids[1].as_str(), ResetReason::Evicted, &head).await;
    // Exactly the retention after it: replayed.
    let mut edge = feed
        .subscribe(Some(ids[6].as_str()))
        .await
        .expect("subscribe");
    assert!(edge.reset.is_none());
    assert!(matches!(
        next_item(&mut edge.cursor).await,
        CursorItem::Frames {
            count: 5,
            replayed: 5,
            ..
        }
    ));
    for garbage in ["garbage", "1-2-3", "-1", "18446744073709551616-0", ""] {
        expect_reset(&*feed, garbage, ResetReason::Unknown, &head).await;
    }
    let ahead = format!("{head}99");
    expect_reset(&*feed, &ahead, ResetReason::Epoch, &head).await;

    // Another instance reads the history once and draws the same lines.
    let other = Arc::new(store(&redis.url(), Retention::default().max_events(5)).await);
    let other_feed = other.channel("feed");
    let mut edge = other_feed
        .subscribe(Some(ids[6].as_str()))
        .await
        .expect("subscribe");
    assert!(edge.reset.is_none());
    assert!(matches!(
        next_item(&mut edge.cursor).await,
        CursorItem::Frames { count: 5, .. }
    ));
    expect_reset(&*other_feed, ids[5].as_str(), ResetReason::Evicted, &head).await;

    // Another prefix is another set of streams.
    let elsewhere = Arc::new(
        RedisStore::builder(redis.url())
            .prefix("other")
            .connect()
            .await
            .expect("connect"),
    );
    assert_eq!(
        elsewhere.channel("feed").head().await,
        Ok(EventId::new("0-0"))
    );
    assert_eq!(instance.stream_key("feed"), "sse:feed");
    assert_eq!(instance.health(), StoreHealth::Ok);
}

/// 48 clients resume on one channel at once, on an instance that did not follow it yet: one
/// read of the history serves them all, bounded by the retention's bytes however much Redis
/// holds, and each stream replays from the shared log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resumes_share_one_history_read_bounded_by_the_retention() {
    let Some(redis) = redis() else { return };
    let retention = Retention::default().max_bytes(64 << 10);
    let publisher = Arc::new(store(&redis.url(), retention).await);
    let feed = publisher.channel("feed");
    let payload = "x".repeat(1_000);
    let mut ids = Vec::new();
    for n in 0..500 {
        let event = Event::text(format!("{n} {payload}"));
        ids.push(feed.append(&event).await.expect("append"));
    }
    // About 500 KB in Redis, of which the retention keeps 64 KB.
    let instance = Arc::new(store(&redis.url(), retention).await);
    let resumed = instance.channel("feed");
    let mut admin = raw(&redis).await;
    let before = served(&mut admin, "xrevrange").await;
    let subs = join_all((0..48).map(|k| {
        let from = if k % 2 == 0 { &ids[10] } else { &ids[480] };
        resumed.subscribe(Some(from.as_str()))
    }))
    .await;
    let after = served(&mut admin, "xrevrange").await;

    for (k, sub) in subs.into_iter().enumerate() {
        let mut sub = sub.expect("subscribe");
        if k % 2 == 0 {
            let reset = sub.reset.map(|reset| reset.reason);
            assert_eq!(reset, Some(ResetReason::Evicted), "more than 64 KB ago");
        } else {
            assert_eq!(sub.reset, None);
            let Some(CursorItem::Frames { count, chunk, .. }) = sub.cursor.next().await else {
                panic!("a replay");
            };
            assert_eq!(count, 19, "the 19 missed events, joined into one chunk");
            assert!(chunk.starts_with(format!("id: {}\n", ids[481]).as_bytes()));
        }
    }
    let reads = after.calls - before.calls;
    assert!(
        (1..=3).contains(&reads),
        "{reads} history reads for 48 resumes"
    );
    let bytes = after.bytes_out - before.bytes_out;
    assert!(
        bytes < 160 << 10,
        "{bytes} bytes read for a 64 KB retention (500 KB in Redis)"
    );
}

#[tokio::test]
async fn the_age_bound_trims_without_new_events() {
    let Some(redis) = redis() else { return };
    let retention = Retention::default().max_age(Duration::from_millis(200));
    let feed = Arc::new(store(&redis.url(), retention).await).channel("feed");
    let first = feed.append(&Event::text("old")).await.expect("append");
    feed.append(&Event::text("old too")).await.expect("append");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut sub = feed
        .subscribe(Some(first.as_str()))
        .await
        .expect("subscribe");
    assert_eq!(
        sub.reset.map(|reset| reset.reason),
        Some(ResetReason::Evicted)
    );
    assert_eq!(sub.cursor.next().now_or_never(), None, "nothing replayed");
}

#[tokio::test]
async fn an_oversized_event_is_refused_before_it_reaches_redis() {
    let Some(redis) = redis() else { return };
    let feed =
        Arc::new(store(&redis.url(), Retention::default().max_bytes(100)).await).channel("feed");
    let refused = feed.append(&Event::text("x".repeat(100))).await;
    assert!(
        matches!(refused, Err(StoreError::TooLarge { limit: 100, .. })),
        "{refused:?}"
    );
    assert_eq!(feed.head().await, Ok(EventId::new("0-0")));
}

/// Without Redis, each operation fails with the kind of error that says what happened.
#[tokio::test]
async fn without_redis_every_operation_fails_with_a_connection_error() {
    let Some(mut redis) = redis() else { return };
    let feed = Arc::new(store(&redis.url(), Retention::default()).await).channel("feed");
    redis.stop();
    let appended = feed.append(&Event::text("x")).await;
    assert!(
        matches!(
            appended,
            Err(StoreError::Connection(_) | StoreError::Timeout { .. })
        ),
        "{appended:?}"
    );
    let subscribed = feed.subscribe(Some("1-0")).await.map(|sub| sub.reset);
    assert!(
        matches!(
            subscribed,
            Err(StoreError::Connection(_) | StoreError::Timeout { .. })
        ),
        "{subscribed:?}"
    );
}

/// A publisher that retries with the same idempotency key gets the first id back, whichever
/// instance it reaches, even when instances race: the event is stored once. The key is
/// forgotten after the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_stores_an_event_once_across_instances() {
    let Some(redis) = redis() else { return };
    let a = Arc::new(store(&redis.url(), Retention::default()).await).channel("orders");
    let b = Arc::new(store(&redis.url(), Retention::default()).await).channel("orders");
    let window = Duration::from_secs(60);
    let event = Event::text("order 42");
    let first = a
        .append_once("order-42", window, &event)
        .await
        .expect("append");
    assert!(!first.duplicate);
    let retried = b
        .append_once("order-42", window, &event)
        .await
        .expect("append");
    assert_eq!((&retried.id, retried.duplicate), (&first.id, true));

    let racing = join_all((0..20).map(|n| {
        let instance = if n % 2 == 0 { &a } else { &b };
        instance.append_once("order-43", window, &event)
    }))
    .await;
    let racing: Vec<_> = racing.into_iter().map(|r| r.expect("append")).collect();
    assert_eq!(racing.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(racing.iter().all(|r| r.id == racing[0].id));

    let short = Duration::from_millis(200);
    let once = a
        .append_once("retry-later", short, &event)
        .await
        .expect("append");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = b
        .append_once("retry-later", short, &event)
        .await
        .expect("append");
    assert!(!again.duplicate, "forgotten after the window");
    assert_ne!(again.id, once.id);

    let mut admin = raw(&redis).await;
    let stored: u64 = redis::cmd("XLEN")
        .arg("sse:orders")
        .query_async(&mut admin)
        .await
        .expect("XLEN");
    assert_eq!(stored, 4, "order-42, order-43 and retry-later twice");
    let kept_for: i64 = redis::cmd("PTTL")
        .arg("sse:orders:once:ids")
        .query_async(&mut admin)
        .await
        .expect("PTTL");
    assert!(kept_for > 0, "the keys expire with the window");
}

/// A channel is followed while streams read it and for the idle grace after: a client that
/// comes back within it resumes from the log this instance holds; after it, the log is dropped
/// (the hub may forget the channel) and the next stream reads the history again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_nobody_reads_is_unfollowed_after_the_idle_grace() {
    let Some(redis) = redis() else { return };
    let instance = Arc::new(
        RedisStore::builder(redis.url())
            .block(Duration::from_millis(100))
            .idle_grace(Duration::from_millis(300))
            .connect()
            .await
            .expect("connect"),
    );
    let feed = instance.channel("feed");
    let first = feed.append(&Event::text("1")).await.expect("append");
    feed.append(&Event::text("2")).await.expect("append");
    let mut admin = raw(&redis).await;
    let reads = |served: Served| served.calls;
    let before = reads(served(&mut admin, "xrevrange").await);

    let sub = feed
        .subscribe(Some(first.as_str()))
        .await
        .expect("subscribe");
    assert!(!feed.is_empty(), "followed, with events in the log");
    drop(sub);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sub = feed
        .subscribe(Some(first.as_str()))
        .await
        .expect("subscribe");
    assert_eq!(
        reads(served(&mut admin, "xrevrange").await) - before,
        1,
        "within the grace: from the log"
    );
    drop(sub);
    for _ in 0..100 {
        if feed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(feed.is_empty(), "unfollowed after the grace");
    let mut sub = feed
        .subscribe(Some(first.as_str()))
        .await
        .expect("subscribe");
    assert_eq!(reads(served(&mut admin, "xrevrange").await) - before, 2);
    assert!(matches!(
        next_item(&mut sub.cursor).await,
        CursorItem::Frames { count: 1, .. }
    ));
}
