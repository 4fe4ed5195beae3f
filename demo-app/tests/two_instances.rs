//! Two demo-app instances on one Redis render the same pages: what is posted through one shows
//! on the pages the other renders, and live on them.

mod common;

use std::time::{Duration, Instant};

use common::{client, embedded_state, get_json, publish, run_to_exit, test_dir, Demo};
use testkit::{redis::RedisServer, redis_cluster::RedisCluster, sse_client::SseConnection};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_posted_through_a_shows_on_the_page_b_renders_and_live_on_it() {
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("two-instances");
    let store = redis.url();
    let args = ["--plain", "--store", store.as_str()];
    let a = Demo::start(&dir, testkit::free_port(), &args).await;
    let b = Demo::start(&dir, testkit::free_port(), &args).await;
    posted_through_a_shows_on_b(&a, &b).await;
}

/// The same story on a Redis Cluster: `--store redis-cluster://` with the seed nodes, in
/// another order on each instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_what_a_posts_shows_on_b() {
    let Some(cluster) = RedisCluster::start().expect("redis cluster starts") else {
        return;
    };
    let dir = test_dir("two-instances-cluster");
    let nodes: Vec<String> = cluster
        .ports()
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    let forward = format!("redis-cluster://{}", nodes.join(","));
    let reversed: Vec<String> = nodes.iter().rev().cloned().collect();
    let backward = format!("redis-cluster://{}", reversed.join(","));
    let a = Demo::start(
        &dir,
        testkit::free_port(),
        &["--plain", "--store", &forward],
    )
    .await;
    let b = Demo::start(
        &dir,
        testkit::free_port(),
        &["--plain", "--store", &backward],
    )
    .await;
    posted_through_a_shows_on_b(&a, &b).await;
}

/// A store URL of the wrong kind is refused at start-up, with a sentence saying which is which:
/// `redis://` on a cluster node (today it would acknowledge publishes and deliver nothing), and
/// `redis-cluster://` on a single Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_url_of_the_wrong_kind_is_refused_at_start_up() {
    let (Some(cluster), Some(single)) = (
        RedisCluster::start().expect("redis cluster starts"),
        RedisServer::start().expect("redis-server starts"),
    ) else {
        return;
    };
    let dir = test_dir("wrong-kind");
    let node = cluster.seeds()[0].clone();
    let (status, output) = run_to_exit(&dir, &["--plain", "--store", &node]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("is a node of a Redis Cluster"), "{output}");
    assert!(output.contains("redis-cluster://"), "{output}");
    let single_node = format!("redis-cluster://127.0.0.1:{}", single.port());
    let (status, output) = run_to_exit(&dir, &["--plain", "--store", &single_node]);
    assert!(!status.success(), "{output}");
    assert!(output.contains("is a single Redis"), "{output}");
    assert!(output.contains("redis://"), "{output}");
}

/// The same story on one instance with the in-memory store (it needs no Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_memory_store_the_page_shows_what_was_posted_and_what_follows() {
    let dir = test_dir("one-instance");
    let demo = Demo::start(&dir, testkit::free_port(), &["--plain"]).await;
    posted_through_a_shows_on_b(&demo, &demo).await;
}

/// Posts a notification through `a`; checks that `b` renders it, at its id, and that `b`'s stream
/// resumed from the rendered id delivers exactly the next post through `a`.
async fn posted_through_a_shows_on_b(a: &Demo, b: &Demo) {
    let http = client();
    let render = |demo: &Demo| {
        let request = http.get(demo.url("/notifications")).send();
        async move {
            let page = request.await.unwrap();
            assert_eq!(page.status(), 200);
            page.text().await.unwrap()
        }
    };
    // B serves the feed already (its side of the channel is live).
    let before = render(b).await;

    let first = format!("posted through A ({})", std::process::id());
    let body = serde_json::json!({"event": "notification", "data": {"text": first}});
    let first_id = publish(&http, a, "notifications", &body).await;
    let posted = Instant::now();

    // B renders the feed from the shared store: the text is on the page (once B's reader has
    // it: at most a moment after A's answer), and the page's state is at the id A answered.
    let html = loop {
        let html = render(b).await;
        if html.contains(&first) {
            break html;
        }
        assert!(
            posted.elapsed() < WAIT,
            "B's page lacks A's notification after {WAIT:?}:\n{html}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!(
        "B rendered A's notification {:?} after A answered",
        posted.elapsed()
    );
    assert!(!before.contains(&first));
    let state = embedded_state(&html);
    let feed = &state["channels"]["notifications"];
    assert_eq!(feed["id"], first_id.as_str(), "{state}");
    let items = feed["items"].as_array().unwrap();
    assert_eq!(items.last().unwrap()["id"], first_id.as_str(), "{state}");
    assert_eq!(items.last().unwrap()["data"]["text"], first.as_str());
    // Both instances answer the same state.
    let from_a = get_json(&http, &a.url("/api/state/notifications")).await;
    assert_eq!(from_a["channels"]["notifications"], *feed);

    // The page's stream on B, resumed from the rendered id, delivers the next post through A
    // and nothing before it.
    let rendered_at = feed["id"].as_str().unwrap();
    let url = b.url(&format!("/events/notifications?lastEventId={rendered_at}"));
    let mut stream = SseConnection::connect(&http, &url, None).await.unwrap();
    assert_eq!(stream.status(), 200);
    let second = "the next one, also through A";
    let body = serde_json::json!({"event": "notification", "data": {"text": second}});
    let second_id = publish(&http, a, "notifications", &body).await;
    let event = stream
        .next_event(WAIT)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("B's stream ended:\n{}", b.log()));
    assert_eq!(event.event_type, "notification");
    assert_eq!(event.last_event_id, second_id);
    assert_eq!(event.json::<serde_json::Value>().unwrap()["text"], second);
    stream
        .expect_no_event(Duration::from_millis(300))
        .await
        .unwrap();
}
