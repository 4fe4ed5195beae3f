//! Several channels on one stream, each resumed exactly, on every available store.

mod common;

use std::time::Duration;

use common::*;
use poem::{http::StatusCode, Route};
use poem_sse_ext::{
    http::StreamOptions,
    wire::{set_cursor, MAX_SET_CHANNELS},
    Event, EventId, Hub,
};

/// A hub serving single channels at `/events/:channel` and sets at `/events`.
async fn serve_sets(hub: &Hub) -> TestServer {
    let app = Route::new()
        .at("/events", hub.set_endpoint())
        .at("/events/:channel", hub.endpoint());
    TestServer::start_with_hub(app, Some(hub.clone())).await
}

/// `(type, data)` of `n` events.
async fn typed(conn: &mut SseConnection, n: usize) -> Vec<(String, String)> {
    conn.next_events(n, WAIT)
        .await
        .expect("events")
        .into_iter()
        .map(|e| (e.event_type, e.data))
        .collect()
}

fn pair(kind: &str, data: &str) -> (String, String) {
    (kind.to_owned(), data.to_owned())
}

async fn publish_named(hub: &Hub, channel: &str, name: &str, data: &str) -> EventId {
    let event = poem_sse_ext::Event::text(data).event(name).expect("name");
    hub.publish(channel, event).await.expect("publish")
}

#[tokio::test]
async fn each_event_names_its_channel_and_a_reconnect_resumes_every_channel_exactly() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let server = serve_sets(&hub).await;
        let url = server.url("/events?channels=cpu,mem,load");
        let client = http1();
        let mut page = connect(&client, &url, None).await;
        publish(&hub, "cpu", "c1").await;
        publish_named(&hub, "mem", "sample", "m1").await;
        assert_eq!(
            typed(&mut page, 2).await,
            [pair("cpu", "c1"), pair("mem:sample", "m1")],
            "{}",
            backend.name
        );
        let cursor = page.last_event_id().to_owned();
        assert!(cursor.starts_with("s1."), "{cursor}");
        drop(page);

        // Missed: 3 on cpu, none on mem, 2 on load.
        for data in ["c2", "c3", "c4"] {
            publish(&hub, "cpu", data).await;
        }
        publish(&hub, "load", "l1").await;
        publish(&hub, "load", "l2").await;
        let mut again = connect(&client, &url, Some(&cursor)).await;
        let mut got = typed(&mut again, 5).await;
        got.sort();
        assert_eq!(
            got,
            [
                pair("cpu", "c2"),
                pair("cpu", "c3"),
                pair("cpu", "c4"),
                pair("load", "l1"),
                pair("load", "l2")
            ],
            "{}",
            backend.name
        );
        assert!(again
            .expect_no_event(Duration::from_millis(200))
            .await
            .is_ok());
        publish(&hub, "mem", "m2").await;
        assert_eq!(
            typed(&mut again, 1).await,
            [pair("mem", "m2")],
            "{}",
            backend.name
        );
        assert_eq!(
            hub.metrics().total.open_streams,
            3,
            "one stream, counted on each channel"
        );
        assert_eq!(hub.open_streams(), 1, "counted once in the total");
    }
}

#[tokio::test]
async fn only_the_channel_whose_resume_point_is_gone_gets_a_reset_naming_it() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder().history(3));
        let server = serve_sets(&hub).await;
        let url = server.url("/events?channels=quiet,busy");
        let client = http1();
        let quiet = publish(&hub, "quiet", "q1").await;
        let busy = publish(&hub, "busy", "b1").await;
        let cursor = set_cursor(
            &["quiet", "busy"],
            &[Some(&EventId::new(quiet)), Some(&EventId::new(busy))],
        );
        for n in 2..=10 {
            publish(&hub, "busy", &format!("b{n}")).await;
        }
        publish(&hub, "quiet", "q2").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut conn = connect(&client, &url, Some(&cursor)).await;
        let events = conn.next_events(2, WAIT).await.expect("events");
        let reset = events
            .iter()
            .find(|e| e.event_type == "sse-reset")
            .unwrap_or_else(|| panic!("{}: a reset in {events:?}", backend.name));
        let data: serde_json::Value = reset.json().expect("JSON");
        assert_eq!(data["channel"], "busy", "{}", backend.name);
        assert_eq!(data["reason"], "evicted", "{}", backend.name);
        assert!(
            events
                .iter()
                .any(|e| e.event_type == "quiet" && e.data == "q2"),
            "{}: the quiet channel resumed exactly: {events:?}",
            backend.name
        );
        assert!(conn
            .expect_no_event(Duration::from_millis(200))
            .await
            .is_ok());
        publish(&hub, "busy", "b11").await;
        assert_eq!(typed(&mut conn, 1).await, [pair("busy", "b11")]);
    }
}

#[tokio::test]
async fn a_malformed_or_foreign_cursor_resets_each_channel_and_never_fails() {
    let hub = Hub::new();
    let server = serve_sets(&hub).await;
    let client = http1();
    let other_set = set_cursor(&["x", "y"], &[None, None]);
    for garbage in ["garbage", "s1.00000000.a.b", &other_set, &"9".repeat(5_000)] {
        let mut conn = connect(&client, &server.url("/events?channels=a,b"), Some(garbage)).await;
        let events = conn.next_events(2, WAIT).await.expect("two resets");
        let mut reset: Vec<String> = events
            .iter()
            .map(|e| {
                assert_eq!(e.event_type, "sse-reset");
                e.json::<serde_json::Value>().expect("JSON")["channel"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        reset.sort();
        assert_eq!(reset, ["a", "b"], "{garbage:?}");
    }
}

#[tokio::test]
async fn a_busy_channel_can_not_starve_a_quiet_one() {
    let hub = Hub::builder()
        .history(100_000)
        .max_chunk_bytes(4_096)
        .build();
    let first = publish(&hub, "busy", "busy-0").await;
    for n in 1..20_000 {
        publish(&hub, "busy", &format!("busy-{n}")).await;
    }
    // The busy channel has 19,999 events to replay; the quiet one publishes once.
    let quiet = hub.head("quiet").await.expect("head");
    let start = set_cursor(
        &["busy", "quiet"],
        &[Some(&EventId::new(first)), Some(&quiet)],
    );
    let mut set = hub
        .subscribe_set(&["busy", "quiet"], Some(&start), &Default::default())
        .await
        .expect("subscribe");
    publish(&hub, "quiet", "hello").await;
    let mut bytes_before_quiet = 0;
    let mut parser = testkit::Parser::new();
    'read: loop {
        let chunk = tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut set))
            .await
            .expect("a chunk")
            .expect("more");
        for event in parser.feed(&chunk) {
            if event.event_type == "quiet" {
                break 'read;
            }
        }
        bytes_before_quiet += chunk.len();
    }
    assert!(
        bytes_before_quiet < 3 * 4_096,
        "the quiet event waited behind {bytes_before_quiet} bytes of the busy channel"
    );
}

#[tokio::test]
async fn a_set_is_authorized_per_channel_and_bounded() {
    let hub = Hub::new();
    let app = Route::new().at(
        "/events",
        hub.set_endpoint()
            .options(StreamOptions::new().authorize(|_, channel| {
                if channel.starts_with("secret") {
                    Err(poem::Error::from_string("forbidden", StatusCode::FORBIDDEN))
                } else {
                    Ok(())
                }
            })),
    );
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let client = http1();
    let refused = client
        .get(server.url("/events?channels=news,secret.plans"))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);
    let message = refused.text().await.expect("body");
    assert!(message.contains("secret.plans"), "{message}");
    assert_eq!(hub.open_streams(), 0);

    let too_many: Vec<String> = (0..=MAX_SET_CHANNELS).map(|n| format!("c{n}")).collect();
    let url = server.url(&format!("/events?channels={}", too_many.join(",")));
    let refused = client.get(url).send().await.expect("request");
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.expect("body").contains("64"));
    let none = client
        .get(server.url("/events"))
        .send()
        .await
        .expect("request");
    assert_eq!(none.status(), 400);
}

#[tokio::test]
async fn a_channel_endpoint_mounted_without_its_parameter_says_so_and_opens_nothing() {
    let hub = Hub::new();
    // A route table mistake: the channel's endpoint where the set's belongs, or a misnamed
    // parameter. Before, either became a set request and a 400 about channels.
    let app = Route::new()
        .at("/events", hub.endpoint())
        .at("/feed/:name", hub.endpoint());
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let client = http1();
    for path in ["/events?channels=a,b", "/feed/news"] {
        let answer = client.get(server.url(path)).send().await.expect("request");
        assert_eq!(answer.status(), 500, "{path}");
        let message = answer.text().await.expect("body");
        assert!(message.contains("`channel`"), "{path}: {message}");
    }
    assert_eq!(hub.metrics().opened, 0);
    let named = Route::new().at(
        "/feed/:name",
        hub.endpoint().options(StreamOptions::new().param("name")),
    );
    let server = TestServer::start_with_hub(named, Some(hub.clone())).await;
    let mut feed = connect(&client, &server.url("/feed/news"), None).await;
    hub.publish("news", Event::text("hi"))
        .await
        .expect("publish");
    let event = feed.next_event(Duration::from_secs(5)).await.expect("read");
    assert_eq!(event.map(|e| e.data).as_deref(), Some("hi"));
}
