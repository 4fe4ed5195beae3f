//! Graceful shutdown runs the hooks first, so open streams end themselves at once.

mod common;

use std::time::{Duration, Instant};

use poem_serve::StreamServer;
use poem_sse_ext::{Event, Hub};

#[tokio::test]
async fn shutdown_ends_open_streams_at_once() {
    let hub = Hub::new();
    let server = StreamServer::bind("127.0.0.1:0").await.unwrap();
    let running = common::serve_hub(server, &hub);
    let addr = running.addr;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let mut streams = Vec::new();
    for client in [&h2, &h2, &h1, &h1] {
        let url = format!("http://{addr}/events/a");
        streams.push(
            testkit::SseConnection::connect(client, &url, None)
                .await
                .unwrap(),
        );
    }
    hub.publish("a", Event::text("x")).await.unwrap();
    for stream in &mut streams {
        stream.next_event(Duration::from_secs(5)).await.unwrap();
    }

    let started = Instant::now();
    running.stop().await;
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    for stream in &mut streams {
        stream.wait_for_end(Duration::from_secs(1)).await.unwrap();
    }
    assert!(hub.is_shutting_down());
}

#[tokio::test]
async fn hooks_run_in_order_before_connections_are_closed() {
    let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let hub = Hub::new();
    let (first, second) = (order.clone(), order.clone());
    let server = StreamServer::bind("127.0.0.1:0")
        .await
        .unwrap()
        .on_shutdown(move || first.lock().unwrap().push("first"))
        .on_shutdown(move || second.lock().unwrap().push("second"));
    let running = common::serve_hub(server, &hub);
    running.stop().await;
    assert_eq!(*order.lock().unwrap(), ["first", "second"]);
}
