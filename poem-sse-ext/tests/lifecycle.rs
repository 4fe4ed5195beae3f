//! Opening and closing streams: caps, counts, shutdown, refusals.

mod common;

use std::time::{Duration, Instant};

use common::*;
use poem::{http::StatusCode, Route};
use poem_sse_ext::http::StreamOptions;
use poem_sse_ext::{Event, Hub};

/// Caps answer a soft refusal by default (tests/admission.rs); for fetch-based clients an
/// endpoint can answer `503` instead.
#[tokio::test]
async fn caps_answer_503_with_a_jittered_retry_after_and_free_up_on_close() {
    let hub = Hub::builder()
        .max_streams(3)
        .max_streams_per_channel(2)
        .refusal_retry(Duration::from_secs(2), Duration::from_secs(3))
        .heartbeat(Duration::from_millis(200))
        .build();
    let app = Route::new().at(
        "/events/:channel",
        hub.endpoint()
            .options(StreamOptions::new().refuse_with_status()),
    );
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let client = http1();
    let a1 = connect(&client, &server.url("/events/a"), None).await;
    let _a2 = connect(&client, &server.url("/events/a"), None).await;

    let refused = SseConnection::connect(&client, &server.url("/events/a"), None)
        .await
        .expect("response");
    assert_eq!(
        refused.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "per-channel cap"
    );
    let retry_after: u64 = refused
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((2..=5).contains(&retry_after), "{retry_after}");

    let _b1 = connect(&client, &server.url("/events/b"), None).await;
    let refused = SseConnection::connect(&client, &server.url("/events/b"), None)
        .await
        .expect("response");
    assert_eq!(
        refused.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "total cap"
    );
    assert_eq!(hub.metrics().refused, 2);

    drop(a1);
    wait_until(|| hub.metrics().total.open_streams == 2).await;
    let again = connect(&client, &server.url("/events/a"), None).await;
    assert_eq!(again.status(), 200, "a closed stream frees its place");
    server.stop().await;
}

#[tokio::test]
async fn metrics_count_streams_events_and_drop_disconnected_clients_promptly() {
    // The heartbeat bounds how long an HTTP/1.1 server takes to notice a vanished client.
    let hub = Hub::builder().heartbeat(Duration::from_millis(200)).build();
    let server = serve(&hub).await;
    let client = http1();
    let old = publish(&hub, "m", "old").await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(connect(&client, &server.url("/events/m"), Some(&old)).await);
    }
    let mut h2_stream = connect(&h2c(), &server.url("/events/m"), None).await;
    publish(&hub, "m", "new").await;
    for conn in &mut streams {
        assert_eq!(data_of(conn, 1).await, ["new"]);
    }
    assert_eq!(data_of(&mut h2_stream, 1).await, ["new"]);

    let metrics = hub.metrics();
    assert_eq!(metrics.total.open_streams, 4);
    assert_eq!(metrics.channels["m"].open_streams, 4);
    assert_eq!(metrics.total.published, 2);
    assert_eq!(metrics.total.delivered, 4);
    assert_eq!(metrics.total.replayed, 0);
    assert!(metrics.total.bytes_sent > 4 * "data: new\n\n".len() as u64);

    let gone = Instant::now();
    streams.truncate(1);
    drop(h2_stream);
    wait_until(|| hub.metrics().total.open_streams == 1).await;
    assert!(
        gone.elapsed() < Duration::from_secs(2),
        "took {:?}",
        gone.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn replayed_and_reset_are_counted() {
    let hub = Hub::builder().history(1).build();
    let server = serve(&hub).await;
    let client = http1();
    let first = publish(&hub, "r", "1").await;
    let second = publish(&hub, "r", "2").await;
    publish(&hub, "r", "3").await;
    let mut resumed = connect(&client, &server.url("/events/r"), Some(&second)).await;
    assert_eq!(data_of(&mut resumed, 1).await, ["3"]);
    let mut reset = connect(&client, &server.url("/events/r"), Some(&first)).await;
    assert_eq!(
        reset
            .next_event(WAIT)
            .await
            .ok()
            .flatten()
            .map(|e| e.event_type),
        Some("sse-reset".into())
    );
    let metrics = hub.metrics().channels["r"].clone();
    assert_eq!(
        (metrics.replayed, metrics.resets, metrics.delivered),
        (1, 1, 1)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_a_thousand_open_streams_at_once() {
    let hub = Hub::builder()
        .max_streams(2_000)
        .shutdown_event(Event::text("bye").event("shutdown").expect("name"))
        .expect("no id")
        .build();
    let server = serve(&hub).await;
    let client = http1();
    let mut streams = Vec::new();
    for n in 0..1_000 {
        streams.push(connect(&client, &server.url(&format!("/events/c{}", n % 10)), None).await);
    }
    assert_eq!(hub.metrics().total.open_streams, 1_000);

    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let farewell = conn.next_event(Duration::from_secs(10)).await;
                let ended = conn.wait_for_end(Duration::from_secs(10)).await;
                (farewell.ok().flatten(), ended.is_ok(), conn.retry())
            })
        })
        .collect();
    let elapsed = server.stop().await;
    assert!(
        elapsed < Duration::from_secs(3),
        "server exit took {elapsed:?}"
    );
    for reader in readers {
        let (farewell, ended, retry) = reader.await.expect("reader");
        let farewell = farewell.expect("the shutdown event");
        assert_eq!(
            (farewell.event_type.as_str(), farewell.data.as_str()),
            ("shutdown", "bye")
        );
        assert!(ended, "the stream ended cleanly");
        assert!(
            retry.is_some_and(|ms| (3_000..=5_000).contains(&ms)),
            "{retry:?}"
        );
    }
    assert_eq!(hub.metrics().total.open_streams, 0);
    assert!(hub.publish("c0", Event::text("late")).await.is_err());
}

#[tokio::test]
async fn invalid_channels_are_404_with_a_message_and_authorization_is_enforced_before_replay() {
    let hub = Hub::new();
    let app = Route::new().at(
        "/events/:channel",
        hub.endpoint()
            .options(StreamOptions::new().authorize(|req, channel| {
                if channel.starts_with("public") || req.header("authorization") == Some("Bearer ok")
                {
                    Ok(())
                } else {
                    Err(poem::Error::from_string(
                        "not your channel",
                        StatusCode::FORBIDDEN,
                    ))
                }
            })),
    );
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let client = http1();
    for bad in ["a%20b", "%C3%A4", &"x".repeat(65), "a.b:c"] {
        let response = client
            .get(server.url(&format!("/events/{bad}")))
            .header("authorization", "Bearer ok")
            .send()
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{bad}");
        let text = response.text().await.unwrap_or_default();
        assert!(text.contains("invalid channel name"), "{text}");
    }
    let secret = publish(&hub, "private", "secret").await;
    let _ = secret;
    let denied = client
        .get(server.url("/events/private?lastEventId=x"))
        .send()
        .await
        .expect("response");
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    assert!(!denied.text().await.unwrap_or_default().contains("secret"));
    server.stop().await;
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "condition not met within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
