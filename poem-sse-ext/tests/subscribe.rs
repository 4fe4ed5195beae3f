//! The hub without HTTP, on every available store: a Rust caller subscribes, reads ready frames
//! from one cursor into the shared log, and sees every gap as a counted reset.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{FutureExt, StreamExt};
use poem_sse_ext::{wire::ResetReason, Hub, Subscriber};
use testkit::{ParsedEvent, Parser};

/// Reads chunks from `sub` until `n` events have been parsed; returns them and the chunk count.
async fn read_events(sub: &mut Subscriber, n: usize) -> (Vec<ParsedEvent>, usize) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    let mut chunks = 0;
    while events.len() < n {
        let chunk = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("a chunk within the wait")
            .expect("the subscriber goes on");
        chunks += 1;
        events.extend(parser.feed(&chunk));
    }
    (events, chunks)
}

#[tokio::test]
async fn a_rust_caller_reads_a_channel_without_http_and_resumes_exactly() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let mut live = hub.subscribe("feed", None).await.expect("subscribe");
        let first = publish(&hub, "feed", "one").await;
        publish(&hub, "feed", "two").await;
        let (events, _) = read_events(&mut live, 2).await;
        let data: Vec<_> = events.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["one", "two"], "{}", backend.name);

        let mut resumed = hub.subscribe("feed", Some(&first)).await.expect("resume");
        assert!(resumed.pending_reset().is_none(), "{}", backend.name);
        let (events, _) = read_events(&mut resumed, 1).await;
        assert_eq!(events[0].data, "two", "{}", backend.name);
        assert_eq!(hub.open_streams(), 2);
        drop((live, resumed));
        assert_eq!(hub.open_streams(), 0, "dropping a subscriber closes it");
    }
}

#[tokio::test]
async fn a_resume_replays_from_the_shared_log_in_chunks_joined_up_to_the_cap() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().max_chunk_bytes(200));
        let first = publish(&hub, "feed", "event-00").await;
        for n in 1..20 {
            publish(&hub, "feed", &format!("event-{n:02}")).await;
        }
        let mut sub = hub.subscribe("feed", Some(&first)).await.expect("resume");
        let (events, chunks) = read_events(&mut sub, 19).await;
        let data: Vec<_> = events.iter().map(|e| e.data.clone()).collect();
        let expected: Vec<_> = (1..20).map(|n| format!("event-{n:02}")).collect();
        assert_eq!(data, expected, "{}", backend.name);
        let frame_len = events[0].last_event_id.len() + "id: \ndata: event-00\n\n".len();
        let per_chunk = 200 / frame_len;
        assert!(
            chunks <= 19usize.div_ceil(per_chunk) + 1 && chunks < 19,
            "{}: 19 frames of {frame_len} bytes came in {chunks} chunks (cap 200 bytes)",
            backend.name
        );
        let metrics = hub.metrics();
        assert_eq!(metrics.total.replayed, 19, "{}", backend.name);
        assert_eq!(metrics.total.delivered, 19, "{}", backend.name);
    }
}

#[tokio::test]
async fn a_reader_that_falls_behind_gets_one_reset_counted_as_a_reset() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(5));
        let mut slow = hub.subscribe("feed", None).await.expect("subscribe");
        let mut last = String::new();
        for n in 0..20 {
            last = publish(&hub, "feed", &format!("event-{n}")).await;
        }
        // The log may take a moment to see the last entries (Redis: its reader task).
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (events, _) = read_events(&mut slow, 1).await;
        assert_eq!(events[0].event_type, "sse-reset", "{}", backend.name);
        let reset: serde_json::Value = events[0].json().expect("reset data is JSON");
        assert_eq!(
            reset["reason"],
            ResetReason::Evicted.as_str(),
            "{}",
            backend.name
        );
        assert_eq!(reset["resume_from"], last.as_str(), "{}", backend.name);
        let metrics = hub.metrics();
        assert_eq!(metrics.total.resets, 1, "{}", backend.name);
        assert_eq!(
            metrics.total.delivered, 0,
            "a reset is not an event: {}",
            backend.name
        );

        publish(&hub, "feed", "after").await;
        let (events, _) = read_events(&mut slow, 1).await;
        assert_eq!(events[0].data, "after", "continues live: {}", backend.name);
    }
}

#[tokio::test]
async fn made_up_channels_cost_nothing_once_their_streams_close() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().max_channels(100));
        publish(&hub, "notifications", "kept").await;
        // An anonymous client opens and closes streams on 1,000 made-up names: ten times the cap.
        for n in 0..1_000 {
            let mut sub = hub
                .subscribe(&format!("made-up-{n}"), Some("garbage"))
                .await
                .unwrap_or_else(|err| panic!("{}: stream {n} refused: {err}", backend.name));
            let (reset, _) = read_events(&mut sub, 1).await;
            assert_eq!(reset[0].event_type, "sse-reset");
            drop(sub);
        }
        assert_eq!(hub.channel_count(), 1, "{}", backend.name);
        // The app's own channel kept its event, and new channels still open.
        let recent = hub.recent("notifications", 10).await.expect("recent");
        assert_eq!(recent.events.len(), 1, "{}", backend.name);
        assert!(hub.subscribe("brand-new", None).await.is_ok());
        // Counters of forgotten channels stay in the totals.
        assert!(hub.metrics().total.resets >= 1_000, "{}", backend.name);
    }
}

#[tokio::test]
async fn a_full_registry_makes_room_from_channels_nobody_uses() {
    let hub = Hub::builder()
        .max_channels(2)
        .history_age(Duration::from_millis(50))
        .build();
    publish(&hub, "a", "expires").await;
    publish(&hub, "b", "expires").await;
    assert!(
        hub.subscribe("c", None).await.is_err(),
        "full of channels holding events"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Their events aged out: the registry forgets them when it needs the room.
    assert!(hub.subscribe("c", None).await.is_ok());
}

#[tokio::test]
async fn a_retried_publish_with_the_same_idempotency_key_is_stored_once() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let mut reader = hub.subscribe("orders", None).await.expect("subscribe");
        let event = || poem_sse_ext::Event::text("paid");
        let first = hub.publish_once("orders", "order-42", event()).await;
        let first = first.unwrap_or_else(|err| panic!("{}: {err}", backend.name));
        // Retries, also concurrent ones, return the first id and store nothing.
        let retries = futures_util::future::join_all(
            (0..10).map(|_| hub.publish_once("orders", "order-42", event())),
        )
        .await;
        for retry in retries {
            let retry = retry.unwrap_or_else(|err| panic!("{}: {err}", backend.name));
            assert_eq!((retry.id, retry.duplicate), (first.id.clone(), true));
        }
        let other = hub.publish_once("orders", "order-43", event()).await;
        assert!(other.is_ok_and(|o| !o.duplicate), "{}", backend.name);
        let (events, _) = read_events(&mut reader, 2).await;
        assert_eq!(
            events[0].last_event_id,
            first.id.as_str(),
            "{}",
            backend.name
        );
        if let Some(chunk) = reader.next().now_or_never() {
            panic!("{}: one event per key, got {chunk:?}", backend.name);
        }
        assert_eq!(hub.metrics().total.published, 2, "{}", backend.name);
        assert!(matches!(
            hub.publish_once("orders", "", event()).await,
            Err(poem_sse_ext::PublishError::InvalidIdempotencyKey)
        ));
    }
}
