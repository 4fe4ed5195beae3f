//! Admission a native `EventSource` survives, and authorization for a stream's whole life.

mod common;

use std::{
    net::IpAddr,
    time::{Duration, SystemTime},
};

use common::*;
use poem::{http::StatusCode, Error, Request, Route};
use poem_sse_ext::http::StreamOptions;
use poem_sse_ext::{hub::Grant, store::BoxFuture, wire::BUSY_EVENT, wire::REAUTH_EVENT, Hub};

/// A client whose connections come from `127.0.0.<last>`.
fn client_from(last: u8) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(0)
        .local_address(IpAddr::from([127, 0, 0, last]))
        .build()
        .expect("client")
}

/// Reads a soft refusal: a `200` event stream with a retry hint and `sse-busy`, then its end.
async fn expect_soft_refusal(conn: &mut SseConnection, reason: &str) -> u64 {
    assert_eq!(
        conn.status(),
        200,
        "a native EventSource only retries after a 200"
    );
    assert_eq!(conn.header("content-type"), Some("text/event-stream"));
    let busy = conn
        .next_event(WAIT)
        .await
        .expect("busy event")
        .expect("an event");
    assert_eq!(busy.event_type, BUSY_EVENT);
    let data: serde_json::Value = busy.json().expect("JSON");
    assert_eq!(data["reason"], reason);
    conn.wait_for_end(WAIT).await.expect("the refusal ends");
    let retry = conn.retry().expect("a retry hint");
    assert_eq!(data["retry_ms"], retry);
    retry
}

#[tokio::test]
async fn a_stream_refused_at_a_cap_is_a_soft_refusal_with_a_long_jittered_retry() {
    let hub = Hub::builder()
        .max_streams(1)
        .refusal_retry(Duration::from_secs(10), Duration::from_secs(5))
        .build();
    let server = serve(&hub).await;
    let client = http1();
    let _held = connect(&client, &server.url("/events/a"), None).await;
    let mut refused = SseConnection::connect(&client, &server.url("/events/a"), None)
        .await
        .expect("connect");
    let retry = expect_soft_refusal(&mut refused, "max_streams").await;
    assert!((10_000..=15_000).contains(&retry), "retry {retry} ms");
    assert_eq!(hub.metrics().refused_by_reason.max_streams, 1);
    assert_eq!(hub.open_streams(), 1, "the refused one is not counted");
}

#[tokio::test]
async fn per_client_cap_counts_each_address_and_ignores_forwarded_headers_of_strangers() {
    let hub = Hub::builder().max_streams_per_client(2).build();
    let server = serve(&hub).await;
    let url = server.url("/events/a");
    let alice = client_from(1);
    let _first = connect(&alice, &url, None).await;
    let _second = connect(&alice, &url, None).await;
    // A spoofed X-Forwarded-For from a peer that is not a trusted proxy changes nothing.
    let spoofed = alice
        .get(&url)
        .header("x-forwarded-for", "10.9.8.7")
        .send()
        .await
        .expect("request");
    assert_eq!(spoofed.status(), 200);
    let body = spoofed.text().await.expect("body");
    assert!(body.contains("max_streams_per_client"), "{body}");
    // Another address is not affected.
    let _other = connect(&client_from(2), &url, None).await;
    assert_eq!(hub.open_streams(), 3);
}

#[tokio::test]
async fn trusted_proxies_forward_the_client_address() {
    let hub = Hub::builder().max_streams_per_client(1).build();
    let app = Route::new().at(
        "/events/:channel",
        hub.endpoint()
            .options(StreamOptions::new().trusted_proxies([IpAddr::from([127, 0, 0, 1])])),
    );
    let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
    let url = server.url("/events/a");
    let proxy = client_from(1);
    let forwarded = |client: &'static str| {
        proxy
            .get(&url)
            .header("accept", "text/event-stream")
            .header("x-forwarded-for", client)
            .send()
    };
    let first = forwarded("10.0.0.1").await.expect("request");
    let second = forwarded("10.0.0.2").await.expect("request");
    assert!(
        first.headers().get("x-accel-buffering").is_some(),
        "a stream"
    );
    assert!(
        second.headers().get("x-accel-buffering").is_some(),
        "another client"
    );
    let third = forwarded("10.0.0.1").await.expect("request");
    let body = third.text().await.expect("body");
    assert!(body.contains("max_streams_per_client"), "{body}");
    drop((first, second));
}

#[tokio::test]
async fn a_tight_reconnect_loop_is_rate_limited_with_growing_hints_and_others_are_not() {
    let hub = Hub::builder()
        .connect_rate(5, 0.5)
        .refusal_retry(Duration::from_secs(1), Duration::ZERO)
        .build();
    let server = serve(&hub).await;
    let url = server.url("/events/a");
    let looping = client_from(1);
    let mut hints = Vec::new();
    for _ in 0..8 {
        let mut conn = SseConnection::connect(&looping, &url, None)
            .await
            .expect("connect");
        assert_eq!(conn.status(), 200);
        if let Ok(Some(event)) = conn.next_event(Duration::from_millis(100)).await {
            assert_eq!(event.event_type, BUSY_EVENT);
            hints.push(conn.retry().expect("retry"));
        }
    }
    assert_eq!(
        hints,
        [1_000, 2_000, 4_000],
        "refused after the burst of 5, backing off"
    );
    // A second client on another loopback address connects at once.
    let mut other = connect(&client_from(2), &url, None).await;
    assert!(other
        .expect_no_event(Duration::from_millis(100))
        .await
        .is_ok());
    assert_eq!(hub.metrics().refused_by_reason.rate_limited, 3);
    assert_eq!(hub.metrics().refused, 3);
}

#[tokio::test]
async fn across_lifetime_ends_a_reconnecting_client_gets_every_event_once_in_order() {
    for backend in backends().await {
        let hub = backend.hub(
            Hub::builder()
                .max_stream_lifetime(Duration::from_millis(300))
                .retry(Duration::from_millis(10))
                .retry_jitter(Duration::ZERO),
        );
        let server = serve(&hub).await;
        let url = server.url("/events/feed");
        let mut last_id = Some(hub.head("feed").await.expect("head").to_string());
        let publisher = {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 0..100 {
                    publish(&hub, "feed", &n.to_string()).await;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        let client = http1();
        let mut seen = Vec::new();
        let mut ends = 0;
        while seen.len() < 100 {
            assert!(
                ends < 50,
                "{}: {} events after {ends} streams",
                backend.name,
                seen.len()
            );
            let mut conn = connect(&client, &url, last_id.as_deref()).await;
            loop {
                match conn.next_event(WAIT).await {
                    Ok(Some(event)) => seen.push(event.data),
                    Ok(None) => break,
                    Err(err) => panic!("{}: after {} events: {err}", backend.name, seen.len()),
                }
            }
            assert!(
                conn.is_ended(),
                "{}: the lifetime ends the stream",
                backend.name
            );
            assert!(
                conn.retry().is_some(),
                "{}: with a retry hint",
                backend.name
            );
            last_id = Some(conn.last_event_id().to_owned());
            ends += 1;
        }
        publisher.await.expect("publisher");
        let expected: Vec<String> = (0..100).map(|n| n.to_string()).collect();
        assert_eq!(seen, expected, "{}", backend.name);
        assert!(ends >= 3, "{}: {ends} lifetime ends", backend.name);
    }
}

/// Grants `x-user` until `x-expires-ms` milliseconds from now; refuses without `x-user`.
fn session<'a>(req: &'a Request, _channel: &'a str) -> BoxFuture<'a, poem::Result<Grant>> {
    Box::pin(async move {
        let user = req
            .header("x-user")
            .ok_or_else(|| Error::from_string("sign in first", StatusCode::UNAUTHORIZED))?;
        let mut grant = Grant::new(user);
        if let Some(ms) = req.header("x-expires-ms").and_then(|ms| ms.parse().ok()) {
            grant = grant.expires_at(SystemTime::now() + Duration::from_millis(ms));
        }
        Ok(grant)
    })
}

fn authorized(hub: &Hub) -> Route {
    Route::new().at(
        "/events/:channel",
        hub.endpoint()
            .options(StreamOptions::new().authorize_with(session)),
    )
}

async fn connect_as(
    url: &str,
    user: &str,
    expires_ms: u64,
    last_id: Option<&str>,
) -> SseConnection {
    let client = reqwest::Client::builder()
        .http1_only()
        .default_headers(
            [
                ("x-user", user.to_owned()),
                ("x-expires-ms", expires_ms.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.parse().expect("name"), v.parse().expect("value")))
            .collect(),
        )
        .build()
        .expect("client");
    connect(&client, url, last_id).await
}

#[tokio::test]
async fn an_expired_grant_ends_the_stream_with_reauth_and_a_renewed_one_resumes_exactly() {
    for backend in backends().await {
        let hub = backend.hub(Hub::builder());
        let server = TestServer::start_with_hub(authorized(&hub), Some(hub.clone())).await;
        let url = server.url("/events/inbox");
        let mut conn = connect_as(&url, "alice", 400, None).await;
        publish(&hub, "inbox", "one").await;
        assert_eq!(data_of(&mut conn, 1).await, ["one"], "{}", backend.name);
        let reauth = conn
            .next_event(WAIT)
            .await
            .expect("reauth")
            .expect("an event");
        assert_eq!(reauth.event_type, REAUTH_EVENT, "{}", backend.name);
        let data: serde_json::Value = reauth.json().expect("JSON");
        assert_eq!(
            data["resume_from"],
            conn.last_event_id(),
            "{}",
            backend.name
        );
        conn.wait_for_end(WAIT).await.expect("the stream ends");
        assert!(conn.retry().is_some());

        // Published while the page renewed its session: the reconnect gets exactly that.
        publish(&hub, "inbox", "two").await;
        let last = conn.last_event_id().to_owned();
        let mut renewed = connect_as(&url, "alice", 60_000, Some(&last)).await;
        assert_eq!(data_of(&mut renewed, 1).await, ["two"], "{}", backend.name);
        assert!(renewed
            .expect_no_event(Duration::from_millis(200))
            .await
            .is_ok());

        // Without credentials the reconnect is refused with a message (which closes a native
        // EventSource on purpose).
        let refused = http1().get(&url).send().await.expect("request");
        assert_eq!(refused.status(), 401);
        assert_eq!(refused.text().await.expect("body"), "sign in first");
    }
}

#[tokio::test]
async fn revoking_a_principal_ends_its_streams_only() {
    let hub = Hub::builder().build();
    let server = TestServer::start_with_hub(authorized(&hub), Some(hub.clone())).await;
    let url = server.url("/events/news");
    let mut alice = connect_as(&url, "alice", 60_000, None).await;
    let mut alice_too = connect_as(&url, "alice", 60_000, None).await;
    let mut bob = connect_as(&url, "bob", 60_000, None).await;
    assert_eq!(hub.revoke("alice"), 2);
    for conn in [&mut alice, &mut alice_too] {
        let event = conn
            .next_event(WAIT)
            .await
            .expect("reauth")
            .expect("an event");
        assert_eq!(event.event_type, REAUTH_EVENT);
        conn.wait_for_end(WAIT).await.expect("ends");
    }
    publish(&hub, "news", "still here").await;
    assert_eq!(data_of(&mut bob, 1).await, ["still here"]);
    // A new stream of alice (authorized afresh) is not affected by the earlier revocation.
    let mut again = connect_as(&url, "alice", 60_000, None).await;
    publish(&hub, "news", "again").await;
    assert_eq!(data_of(&mut again, 1).await, ["again"]);
}

#[tokio::test]
async fn per_principal_cap() {
    let hub = Hub::builder().max_streams_per_principal(1).build();
    let server = TestServer::start_with_hub(authorized(&hub), Some(hub.clone())).await;
    let url = server.url("/events/news");
    let _alice = connect_as(&url, "alice", 60_000, None).await;
    let mut second = connect_as(&url, "alice", 60_000, None).await;
    expect_soft_refusal(&mut second, "max_streams_per_principal").await;
    let _bob = connect_as(&url, "bob", 60_000, None).await;
}
