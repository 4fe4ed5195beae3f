//! A Rust client as Rust users write one: `reqwest-eventsource` against a hub's endpoint. It
//! resumes exactly after the stream ends, sees the `sse-reset` of a resume point from another
//! epoch, and the `sse-busy` of a refusal; a `404` stops it. The recipe is in the crate docs
//! (`poem_sse_ext::guide::clients`).

mod common;

use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use poem_sse_ext::Hub;
use reqwest_eventsource::{retry::Constant, Error, Event, EventSource};

/// What the client saw, in order: `open`, `<type>:<data>@<id>`, `ended`, or the error.
async fn read(source: &mut EventSource, until: impl Fn(&[String]) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    let reading = async {
        while let Some(item) = source.next().await {
            seen.push(match item {
                Ok(Event::Open) => "open".to_owned(),
                Ok(Event::Message(m)) => format!("{}:{}@{}", m.event, m.data, m.id),
                Err(Error::StreamEnded) => "ended".to_owned(),
                Err(Error::InvalidStatusCode(status, _)) => format!("status {}", status.as_u16()),
                Err(other) => format!("error {other}"),
            });
            if until(&seen) {
                break;
            }
        }
    };
    let finished = tokio::time::timeout(WAIT, reading).await.is_ok();
    assert!(
        finished,
        "the client did not get there in time; it saw {seen:?}"
    );
    seen
}

/// An `EventSource` for `url` that first connects after `last_id` (as a page that rendered its
/// state at that id would), and reconnects after `retry`.
///
/// The first resume point goes in the `lastEventId` query parameter, not in a `Last-Event-ID`
/// header on the request: `reqwest-eventsource` adds its own header on every reconnect, and a
/// header set on the request would be sent too, first, and win.
fn source(url: &str, last_id: Option<&str>, retry: Duration) -> EventSource {
    let mut request = reqwest012::Client::new().get(url);
    if let Some(id) = last_id {
        request = request.query(&[("lastEventId", id)]);
    }
    let mut source = EventSource::new(request).unwrap_or_else(|e| panic!("{e}"));
    source.set_retry_policy(Box::new(Constant::new(retry, None)));
    source
}

#[tokio::test]
async fn resumes_exactly_after_the_stream_ends() {
    // The stream ends after its lifetime: the client reconnects with the last id it saw.
    let hub = Hub::builder()
        .max_stream_lifetime(Duration::from_millis(400))
        .max_stream_lifetime_jitter(0.0)
        .build();
    let server = serve(&hub).await;
    let url = server.url("/events/orders");
    let first = publish(&hub, "orders", "1").await;
    let second = publish(&hub, "orders", "2").await;

    let mut client = source(&url, Some(&first), Duration::from_millis(100));
    let seen = read(&mut client, |seen| seen.len() == 2).await;
    assert_eq!(seen, ["open", format!("message:2@{second}").as_str()]);
    let seen = read(&mut client, |seen| {
        seen.last().is_some_and(|s| s == "ended")
    })
    .await;
    assert_eq!(seen, ["ended"]);
    // Published while the client is away: the reconnect replays exactly this.
    let third = publish(&hub, "orders", "3").await;
    let seen = read(&mut client, |seen| seen.len() == 2).await;
    assert_eq!(seen, ["open", format!("message:3@{third}").as_str()]);
    server.stop().await;
}

#[tokio::test]
async fn a_resume_point_from_another_epoch_is_an_sse_reset_then_live_events() {
    // The id a client kept from before a restart (another hub: another epoch of the store).
    let before = Hub::new();
    let stale = publish(&before, "orders", "old").await;
    let hub = Hub::new();
    let head = publish(&hub, "orders", "1").await;
    let server = serve(&hub).await;

    let mut client = source(
        &server.url("/events/orders"),
        Some(&stale),
        Duration::from_millis(100),
    );
    let seen = read(&mut client, |seen| seen.len() == 2).await;
    let reset = format!(r#"sse-reset:{{"reason":"epoch","resume_from":"{head}"}}@{head}"#);
    assert_eq!(seen, ["open", reset.as_str()]);
    // The client refreshes its state (rendered at `head`) and goes on live from there.
    let next = publish(&hub, "orders", "2").await;
    let seen = read(&mut client, |seen| !seen.is_empty()).await;
    assert_eq!(seen, [format!("message:2@{next}")]);
    server.stop().await;
}

#[tokio::test]
async fn a_busy_server_says_so_and_the_client_comes_back_by_itself() {
    let hub = Hub::builder()
        .max_streams(1)
        .refusal_retry(Duration::from_millis(100), Duration::ZERO)
        .heartbeat(Duration::from_millis(50)) // notices the holder's close at once
        .build();
    let server = serve(&hub).await;
    let url = server.url("/events/orders");
    let holder = connect(&http1(), &url, None).await;

    let mut client = source(&url, None, Duration::from_millis(100));
    let busy = r#"sse-busy:{"reason":"max_streams","retry_ms":100}@"#;
    let seen = read(&mut client, |seen| seen.len() == 3).await;
    assert_eq!(seen, ["open", busy, "ended"]);
    drop(holder); // a place frees up: a later attempt gets the stream
    wait_until(|| hub.open_streams() == 0).await;
    let seen = read(&mut client, |seen| {
        seen.last().is_some_and(|s| s == "open") && hub.open_streams() == 1
    })
    .await;
    assert!(
        seen.iter()
            .all(|s| s == "open" || s == busy || s == "ended"),
        "{seen:?}"
    );
    let event = publish(&hub, "orders", "1").await;
    let seen = read(&mut client, |seen| !seen.is_empty()).await;
    assert_eq!(seen, [format!("message:1@{event}")]);
    server.stop().await;
}

#[tokio::test]
async fn a_status_other_than_200_stops_the_client() {
    let hub = Hub::new();
    let server = serve(&hub).await;
    let mut client = source(
        &server.url("/events/not..valid!"),
        None,
        Duration::from_millis(50),
    );
    let seen = read(&mut client, |seen| !seen.is_empty()).await;
    assert_eq!(seen, ["status 404"]);
    let after = tokio::time::timeout(Duration::from_millis(300), client.next()).await;
    assert!(
        matches!(after, Ok(None)),
        "the client stopped for good: {after:?}"
    );
    server.stop().await;
}

async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "not in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What Rust users must know: `reqwest-eventsource` learns the reconnection time only from a
/// `retry:` field in a block that also carries data (its parser drops data-less blocks before
/// it reads their `retry:`), and the hub sends its hint alone, as WHATWG allows. So a Rust
/// client sets its retry policy itself (see the `clients` docs); this test notices if that
/// ever changes.
#[tokio::test]
async fn reqwest_eventsource_does_not_take_the_hubs_retry_hint() {
    let hub = Hub::builder()
        .retry(Duration::from_millis(50))
        .retry_jitter(Duration::ZERO)
        .max_stream_lifetime(Duration::from_millis(200))
        .max_stream_lifetime_jitter(0.0)
        .build();
    let server = serve(&hub).await;
    let mut client = EventSource::get(server.url("/events/orders"));
    // Its default policy waits 300 ms first; a client that took the 50 ms hint would be back
    // 50 ms after the stream's 200 ms lifetime.
    let started = tokio::time::Instant::now();
    read(&mut client, |seen| {
        seen.iter().filter(|s| *s == "open").count() == 2
    })
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200 + 290),
        "reconnected after {elapsed:?}: the hint is taken now; update the clients docs"
    );
    server.stop().await;
}
