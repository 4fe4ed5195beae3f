//! Durable streams on the Redis store: what "durable" promises beyond the conformance suite.
//! A stream survives the server (a new server on the same Redis serves the same bytes at the
//! same offsets, and remembers its producers), while the memory store forgets; a long-poll on
//! one instance wakes on an append through another; and an append that Redis does not answer
//! in time is a retryable `503` whose retry with the same producer headers stores it once.
//!
//! Needs `redis-server`; prints `skipped: ...` without it (a failure under `CI=true`).
#![cfg(all(feature = "durable-streams", feature = "redis"))]

mod common;
mod durable_support;

use std::time::{Duration, Instant};

use durable_support::*;
use poem_sse_ext::{durable::DurableStreams, store::RedisStore};
use reqwest::{Client, StatusCode};
use testkit::redis::RedisServer;

async fn store(redis: &RedisServer, timeout: Duration) -> RedisStore {
    RedisStore::builder(redis.url())
        .command_timeout(timeout)
        .connect()
        .await
        .expect("the store connects")
}

/// `POST body` as producer `p`, epoch 0, sequence `seq`.
async fn produce(client: &Client, url: &str, seq: u64, body: &'static str) -> reqwest::Response {
    client
        .post(url)
        .header("Content-Type", "text/plain")
        .header("Producer-Id", "p")
        .header("Producer-Epoch", "0")
        .header("Producer-Seq", seq.to_string())
        .body(body)
        .send()
        .await
        .expect("POST")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_redis_survives_the_server_with_its_bytes_offsets_and_producers() {
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let client = Client::new();
    let (hello_end, tail) = {
        let store = store(&redis, Duration::from_secs(2)).await;
        let streams = DurableStreams::builder().redis(&store).build();
        let server = serve(&streams).await;
        let url = server.url("/v1/stream/story/survives");
        let created = create(&client, &url, "text/plain", b"hello ").await;
        let hello_end = header(&created, "Stream-Next-Offset").expect("an offset");
        let appended = produce(&client, &url, 0, "world").await;
        let tail = header(&appended, "Stream-Next-Offset");
        let status = appended.status();
        let text = appended.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "new data from a producer: {text}");
        let tail = tail.expect("an offset");
        streams.shutdown();
        server.stop().await;
        (hello_end, tail)
    };

    // Another process's life: a new store, a new server, on another port.
    let store = store(&redis, Duration::from_secs(2)).await;
    let streams = DurableStreams::builder().redis(&store).build();
    let server = serve(&streams).await;
    let url = server.url("/v1/stream/story/survives");
    assert_eq!(read_all(&client, &url).await, b"hello world");
    let head = client.head(&url).send().await.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header(&head, "Stream-Next-Offset"), Some(tail.clone()));
    assert_eq!(header(&head, "Content-Type").as_deref(), Some("text/plain"));
    let rest = client
        .get(format!("{url}?offset={hello_end}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        rest.bytes().await.expect("body"),
        "world",
        "old offsets still address the same bytes"
    );
    let retried = produce(&client, &url, 0, "world").await;
    assert_eq!(
        retried.status(),
        StatusCode::NO_CONTENT,
        "the producer table survived: a retry is a duplicate"
    );
    assert_eq!(read_all(&client, &url).await, b"hello world");
    assert_eq!(
        produce(&client, &url, 1, "!").await.status(),
        StatusCode::OK
    );
    assert_eq!(read_all(&client, &url).await, b"hello world!");
    streams.shutdown();
    server.stop().await;
}

#[tokio::test]
async fn a_stream_in_memory_is_gone_after_a_restart_never_served_from_another_life() {
    let client = Client::new();
    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let url = server.url("/v1/stream/story/forgotten");
    create(&client, &url, "text/plain", b"from the first life").await;
    streams.shutdown();
    server.stop().await;
    drop(streams);

    let streams = DurableStreams::new();
    let server = serve(&streams).await;
    let url = server.url("/v1/stream/story/forgotten");
    let read = client
        .get(format!("{url}?offset=-1"))
        .send()
        .await
        .expect("GET");
    assert_eq!(read.status(), StatusCode::NOT_FOUND);
    let offset = "0000000000000000_0000000000000005";
    let resumed = client
        .get(format!("{url}?offset={offset}"))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        resumed.status(),
        StatusCode::NOT_FOUND,
        "an old offset finds nothing either"
    );
    streams.shutdown();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_on_one_instance_wakes_on_an_append_through_another() {
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let (store_a, store_b) = (
        store(&redis, Duration::from_secs(2)).await,
        store(&redis, Duration::from_secs(2)).await,
    );
    let timeout = Duration::from_secs(20);
    let a = DurableStreams::builder().redis(&store_a).build();
    let b = DurableStreams::builder()
        .redis(&store_b)
        .long_poll_timeout(timeout)
        .build();
    let (server_a, server_b) = (serve(&a).await, serve(&b).await);
    let client = Client::new();
    let url_a = server_a.url("/v1/stream/story/across");
    let url_b = server_b.url("/v1/stream/story/across");
    let created = create(&client, &url_a, "text/plain", b"first").await;
    let offset = header(&created, "Stream-Next-Offset").expect("an offset");
    // Read-your-writes across instances: B sees A's create at once.
    assert_eq!(read_all(&client, &url_b).await, b"first");

    let started = Instant::now();
    let poll = tokio::spawn({
        let client = client.clone();
        let url = format!("{url_b}?offset={offset}&live=long-poll");
        async move { client.get(url).send().await.expect("long-poll") }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let appended = append(&client, &url_a, "text/plain", "second").await;
    assert_eq!(appended.status(), StatusCode::NO_CONTENT);
    let answer = poll.await.expect("the long-poll task");
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "woken with data, not timed out"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "woken by the append, not by the {timeout:?} timeout: {:?}",
        started.elapsed()
    );
    assert_eq!(answer.bytes().await.expect("body"), "second");
    a.shutdown();
    b.shutdown();
    server_a.stop().await;
    server_b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_redis_does_not_answer_is_a_retryable_503_and_its_retry_is_stored_once() {
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let command_timeout = Duration::from_millis(500);
    let store = store(&redis, command_timeout).await;
    let streams = DurableStreams::builder().redis(&store).build();
    let server = serve(&streams).await;
    let client = Client::new();
    let url = server.url("/v1/stream/story/paused");
    create(&client, &url, "text/plain", b"").await;

    // Redis stops running scripts for 2 s, as a stalled or overloaded node would.
    let mut admin = redis::Client::open(redis.url())
        .expect("a URL")
        .get_multiplexed_async_connection()
        .await
        .expect("an admin connection");
    let pause = Duration::from_secs(2);
    let () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(pause.as_millis() as u64)
        .arg("WRITE")
        .query_async(&mut admin)
        .await
        .expect("CLIENT PAUSE");
    let paused_at = Instant::now();
    let refused = produce(&client, &url, 0, "once").await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        header(&refused, "Retry-After").is_some(),
        "a 503 says when to retry"
    );
    assert!(
        paused_at.elapsed() < pause,
        "answered within the command timeout, not after the pause: {:?}",
        paused_at.elapsed()
    );

    // After the pause, the producer retries the same request.
    tokio::time::sleep(pause.saturating_sub(paused_at.elapsed()) + Duration::from_millis(300))
        .await;
    let retried = produce(&client, &url, 0, "once").await;
    assert!(
        matches!(retried.status(), StatusCode::OK | StatusCode::NO_CONTENT),
        "the retry is stored (200) or answered as the duplicate of the first (204): {}",
        retried.status()
    );
    assert_eq!(
        read_all(&client, &url).await,
        b"once",
        "stored exactly once"
    );
    assert_eq!(
        produce(&client, &url, 1, " more").await.status(),
        StatusCode::OK
    );
    assert_eq!(read_all(&client, &url).await, b"once more");
    streams.shutdown();
    server.stop().await;
}
