//! Two demo-app instances on one Redis behave as one: 100 clients on instance A; 1,000 events
//! published alternately through A and B; A is killed with SIGKILL midway and its clients
//! reconnect to B with their last id. Every client ends with all 1,000 events exactly once, in
//! order.

mod common;

use std::time::{Duration, Instant};

use common::{test_dir, Demo};
use testkit::{redis::RedisServer, sse_client::SseConnection};

const CLIENTS: usize = 100;
const EVENTS: usize = 1_000;
const CHANNEL: &str = "scale";

/// A client for long-lived streams: no overall timeout (each read has its own).
fn stream_client() -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("building the HTTP client")
}

async fn publish(client: &reqwest::Client, demo: &Demo, n: usize) {
    let response = client
        .post(demo.url(&format!("/api/channels/{CHANNEL}/events")))
        .json(&serde_json::json!({ "data": n.to_string() }))
        .send()
        .await
        .unwrap_or_else(|err| panic!("publishing {n} through port {}: {err}", demo.port));
    assert_eq!(response.status(), 201, "publishing {n}");
}

/// Follows the channel on A, then on B after A dies, until it has every event.
async fn follow(client: reqwest::Client, b: String, mut conn: SseConnection) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut data = Vec::with_capacity(EVENTS);
    let mut last_id: Option<String> = None;
    let mut moved = false;
    while data.len() < EVENTS {
        assert!(
            Instant::now() < deadline,
            "only {} events after 60 s",
            data.len()
        );
        match conn.next_event(Duration::from_secs(10)).await {
            Ok(Some(event)) => {
                assert_ne!(
                    event.event_type,
                    "sse-reset",
                    "after {} events: {}",
                    data.len(),
                    event.data
                );
                data.push(event.data);
                last_id = Some(event.last_event_id);
            }
            Err(err) if err.is_timeout() => panic!("no event for 10 s after {}", data.len()),
            Ok(None) | Err(_) if !moved => {
                // A is gone: reconnect to B with the last id, as EventSource does.
                moved = true;
                conn = SseConnection::connect(&client, &b, last_id.as_deref())
                    .await
                    .expect("reconnecting to B");
                assert_eq!(conn.status(), 200);
            }
            other => panic!("B's stream failed after {} events: {other:?}", data.len()),
        }
    }
    conn.expect_no_event(Duration::from_millis(300))
        .await
        .expect("nothing after the last event");
    assert!(moved, "every client was on A, which died");
    data
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_of_a_killed_instance_resume_on_the_other_with_every_event_once() {
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("scale-out");
    let store = redis.url();
    let args = ["--plain", "--store", store.as_str(), "--history", "2000"];
    let a = Demo::start(&dir, testkit::free_port(), &args).await;
    let b = Demo::start(&dir, testkit::free_port(), &args).await;
    let a_url = a.url(&format!("/events/{CHANNEL}"));
    let b_url = b.url(&format!("/events/{CHANNEL}"));

    let client = stream_client();
    let mut followers = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let conn = SseConnection::connect(&client, &a_url, None)
            .await
            .expect("connecting to A");
        assert_eq!(conn.status(), 200);
        followers.push(tokio::spawn(follow(client.clone(), b_url.clone(), conn)));
    }

    let publisher = reqwest::Client::new();
    let mut a = Some(a);
    for n in 0..EVENTS {
        if n == EVENTS / 2 {
            // SIGKILL (Demo's drop kills the process and reaps it): no graceful shutdown.
            drop(a.take());
        }
        match (&a, n % 2) {
            (Some(a), 0) => publish(&publisher, a, n).await,
            _ => publish(&publisher, &b, n).await,
        }
    }

    let expected: Vec<String> = (0..EVENTS).map(|n| n.to_string()).collect();
    for (k, follower) in followers.into_iter().enumerate() {
        let data = tokio::time::timeout(Duration::from_secs(90), follower)
            .await
            .unwrap_or_else(|_| panic!("client {k} did not finish"))
            .unwrap_or_else(|err| panic!("client {k} failed: {err}\n--- B's log ---\n{}", b.log()));
        assert_eq!(data, expected, "client {k}");
    }
}

/// With Redis down, the instance stays up: `/healthz` answers 503 with the reason, publishing
/// answers 503; when Redis is back, both recover.
#[tokio::test]
async fn healthz_reports_a_lost_redis_and_its_return() {
    let Some(mut redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("redis-health");
    let store = redis.url();
    let demo = Demo::start(
        &dir,
        testkit::free_port(),
        &["--plain", "--store", store.as_str()],
    )
    .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let health = |client: reqwest::Client, url: String| async move {
        let response = client.get(url).send().await.expect("healthz answers");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    };

    redis.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, reason) = loop {
        let (status, reason) = health(client.clone(), demo.url("/healthz")).await;
        if status == 503 || Instant::now() > deadline {
            break (status, reason);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("store degraded"), "{reason}");
    let refused = client
        .post(demo.url(&format!("/api/channels/{CHANNEL}/events")))
        .json(&serde_json::json!({ "data": "lost?" }))
        .send()
        .await
        .expect("publish answers");
    assert_eq!(
        refused.status(),
        503,
        "publishing without Redis is an error"
    );
    assert!(
        refused.headers().contains_key("retry-after"),
        "a 503 says when to retry"
    );

    redis.restart().expect("redis restarts");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, reason) = health(client.clone(), demo.url("/healthz")).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status} {reason}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    publish(&client, &demo, 1).await;
}
