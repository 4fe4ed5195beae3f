//! What goes over the wire: headers, retry hints, heartbeats, flushing, exact data.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::StreamExt;
use poem::{middleware::Compression, EndpointExt, Route};
use poem_sse_ext::{Event, Hub};

#[tokio::test]
async fn http1_headers() {
    let hub = Hub::new();
    let server = serve(&hub).await;
    let conn = connect(&http1(), &server.url("/events/a"), None).await;
    assert_eq!(conn.version(), reqwest::Version::HTTP_11);
    assert_eq!(conn.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.header("cache-control"), Some("no-cache"));
    assert_eq!(conn.header("x-accel-buffering"), Some("no"));
    assert_eq!(conn.header("connection"), Some("keep-alive"));
    assert_eq!(conn.header("content-encoding"), None);
    server.stop().await;
}

#[tokio::test]
async fn http2_headers_have_no_connection_header() {
    let hub = Hub::new();
    let server = serve(&hub).await;
    let client = h2c();
    let mut conn = connect(&client, &server.url("/events/a"), None).await;
    assert_eq!(conn.version(), reqwest::Version::HTTP_2);
    assert_eq!(conn.header("content-type"), Some("text/event-stream"));
    assert_eq!(conn.header("cache-control"), Some("no-cache"));
    assert_eq!(conn.header("x-accel-buffering"), Some("no"));
    assert_eq!(conn.header("connection"), None, "RFC 9113 8.2.2");
    publish(&hub, "a", "over h2").await;
    assert_eq!(data_of(&mut conn, 1).await, ["over h2"]);
    server.stop().await;
}

#[tokio::test]
async fn every_stream_starts_with_a_jittered_retry_hint() {
    let hub = Hub::builder()
        .retry(Duration::from_millis(1_000))
        .retry_jitter(Duration::from_millis(1_000))
        .build();
    let server = serve(&hub).await;
    let client = h2c();
    let mut hints = Vec::new();
    for _ in 0..30 {
        let mut conn = connect(&client, &server.url("/events/a"), None).await;
        // The hint is the first thing on the stream, before any event.
        let _ = conn.expect_no_event(Duration::from_millis(20)).await;
        hints.push(conn.retry().expect("a retry hint"));
    }
    assert!(
        hints.iter().all(|ms| (1_000..=2_000).contains(ms)),
        "{hints:?}"
    );
    hints.sort_unstable();
    hints.dedup();
    assert!(
        hints.len() > 10,
        "30 streams share only {} retry values",
        hints.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn heartbeat_comes_after_idle_intervals_and_waits_while_events_flow() {
    let hub = Hub::builder().heartbeat(Duration::from_millis(300)).build();
    let server = serve(&hub).await;
    let mut conn = connect(&http1(), &server.url("/events/a"), None).await;

    conn.expect_no_event(Duration::from_millis(1_000))
        .await
        .expect("idle");
    let idle = conn.comments();
    assert!(
        (2..=4).contains(&idle),
        "{idle} heartbeats in 1 s at 300 ms"
    );

    // Events every 100 ms keep the stream busy: the idle timer restarts on each.
    for n in 0..10 {
        publish(&hub, "a", &n.to_string()).await;
        assert_eq!(data_of(&mut conn, 1).await, [n.to_string()]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(conn.comments(), idle, "no heartbeat while events flow");
    server.stop().await;
}

#[tokio::test]
async fn each_event_is_flushed_when_published() {
    let hub = Hub::new();
    let server = serve(&hub).await;
    let mut conn = connect(&http1(), &server.url("/events/a"), None).await;
    for n in 0..5 {
        let sent = Instant::now();
        publish(&hub, "a", &n.to_string()).await;
        assert_eq!(data_of(&mut conn, 1).await, [n.to_string()]);
        assert!(
            sent.elapsed() < Duration::from_millis(500),
            "event {n} was held back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// An app that wraps everything in poem's `Compression` still gets each event to the client as it
/// is published (async-compression >= 0.4.31 flushes whenever the body has nothing more ready).
#[tokio::test]
async fn events_pass_through_compression_unbuffered() {
    let hub = Hub::new();
    let app = Route::new()
        .at("/events/:channel", hub.endpoint())
        .with(Compression::new());
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let response = http1()
        .get(server.url("/events/a"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let encoding = response
        .headers()
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = response.bytes_stream();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    for n in 0..3 {
        publish(&hub, "a", &format!("compressed {n}")).await;
        let wanted = format!("data: compressed {n}\n\n");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let text = match encoding.as_deref() {
                Some("gzip") => String::from_utf8_lossy(decoder.get_ref()).into_owned(),
                _ => panic!("expected gzip under Compression, got {encoding:?}"),
            };
            if text.contains(&wanted) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "event {n} stuck in the compressor; got {text:?}"
            );
            if let Ok(Some(Ok(chunk))) = tokio::time::timeout(left, body.next()).await {
                use std::io::Write;
                decoder.write_all(&chunk).expect("gzip");
                decoder.flush().expect("gzip");
            }
        }
    }
    server.stop().await;
}

/// Strings that break naive encoders arrive exactly as published, through a real server.
#[tokio::test]
async fn awkward_data_arrives_exactly() {
    let hub = Hub::new();
    let server = serve(&hub).await;
    let mut conn = connect(&h2c(), &server.url("/events/a"), None).await;
    let cases = [
        "",
        " leading space",
        "  two",
        "trailing\n",
        "\n",
        "\r",
        "\r\n",
        "a\rb\nc\r\nd",
        "data: forged\n\nevent: x",
        "id: 1",
        ":comment",
        "\u{feff}bom",
        "nul\0inside",
        "ünïcødé ✓ 🚀",
        "\n\n\n",
    ];
    for data in cases {
        hub.publish("a", Event::text(data)).await.expect("publish");
    }
    let got = data_of(&mut conn, cases.len()).await;
    // Line breaks arrive as LF, as EventSource normalizes them; everything else byte for byte.
    let expected: Vec<String> = cases
        .iter()
        .map(|d| d.replace("\r\n", "\n").replace('\r', "\n"))
        .collect();
    assert_eq!(got, expected);
    server.stop().await;
}

/// `SseResponse` over a stream of the app's own: retry hint first, events as they come,
/// heartbeats only when idle, ended by the shutdown token.
#[tokio::test]
async fn own_stream_response_has_the_same_guarantees() {
    use poem::{handler, Request};
    use poem_sse_ext::http::SseResponse;
    use tokio_util::sync::CancellationToken;

    let token = CancellationToken::new();
    let (tx, rx) = tokio::sync::broadcast::channel::<String>(16);
    let app = {
        let token = token.clone();
        let tx = tx.clone();
        #[handler]
        fn events(
            req: &Request,
            data: poem::web::Data<&(CancellationToken, tokio::sync::broadcast::Sender<String>)>,
        ) -> SseResponse<impl futures_util::Stream<Item = Event> + Send> {
            let (token, tx) = data.0;
            let events = tokio_stream::wrappers::BroadcastStream::new(tx.subscribe())
                .filter_map(|item| async move { item.ok().map(Event::text) });
            SseResponse::new(events)
                .heartbeat(Duration::from_millis(250))
                .retry(Duration::from_millis(500), Duration::from_millis(500))
                .http_version(req.version())
                .shutdown(token.clone())
        }
        Route::new()
            .at("/own", events)
            .with(poem::middleware::AddData::new((token, tx)))
    };
    drop(rx);
    let server = TestServer::start(app).await;
    let mut conn = connect(&http1(), &server.url("/own"), None).await;
    assert_eq!(conn.header("connection"), Some("keep-alive"));
    conn.expect_no_event(Duration::from_millis(600))
        .await
        .expect("idle");
    assert!(conn.retry().is_some_and(|ms| (500..=1_000).contains(&ms)));
    assert!(conn.comments() >= 2, "heartbeats while idle");
    let _ = tx.send("mine\nmultiline".into());
    assert_eq!(data_of(&mut conn, 1).await, ["mine\nmultiline"]);
    token.cancel();
    conn.wait_for_end(WAIT).await.expect("ended by the token");
    server.stop().await;
}
