//! The public Durable Streams conformance suite (`@durable-streams/server-conformance-tests`,
//! run by vitest in `tests/durable`) against `DurableStreams` mounted at `/v1/stream` on a
//! server of this test's own: every core test of the suite must pass.
//!
//! Needs `node` and `npm ci` in `tests/durable` (CI runs it); prints `skipped: ...` without
//! them, and fails under `CI=true`.
#![cfg(feature = "durable-streams")]

mod common;
#[cfg(feature = "redis")]
mod durable_support;

use std::{collections::BTreeMap, path::PathBuf, process::Stdio, time::Duration};

use common::TestServer;
use poem::Route;
use poem_sse_ext::durable::DurableStreams;
use serde_json::Value;

/// The server's long-poll timeout, as the suite is told (Electric's harness uses 500 ms).
const LONG_POLL: Duration = Duration::from_millis(500);

/// The folder with the suite's package.json, or `None` (after one `skipped:` line).
pub fn node_folder() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/durable");
    let node = std::process::Command::new("node").arg("--version").output();
    let missing = if !node.is_ok_and(|out| out.status.success()) {
        Some("node is not installed".to_owned())
    } else if !dir.join("node_modules/vitest").is_dir() {
        Some(format!("run `npm ci` in {}", dir.display()))
    } else {
        None
    };
    match missing {
        Some(why) => {
            assert!(!testkit::in_ci(), "CI must run this test: {why}");
            println!("skipped: {why}");
            None
        }
        None => Some(dir),
    }
}

/// Runs `file` with vitest against `base_url`; returns the JSON report.
async fn vitest(dir: &PathBuf, file: &str, base_url: &str) -> (bool, Value) {
    let report =
        std::env::temp_dir().join(format!("durable-vitest-{}-{file}.json", std::process::id()));
    let status = tokio::process::Command::new("node")
        .arg("node_modules/vitest/vitest.mjs")
        .arg("run")
        .arg("--reporter=default")
        .arg("--reporter=json")
        .arg(format!("--outputFile.json={}", report.display()))
        .env("DURABLE_STREAMS_URL", base_url)
        .env(
            "DURABLE_STREAMS_LONG_POLL_MS",
            LONG_POLL.as_millis().to_string(),
        )
        .env("DURABLE_STREAMS_TEST", file)
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .status();
    let status = tokio::time::timeout(Duration::from_secs(600), status)
        .await
        .unwrap_or_else(|_| panic!("vitest ran over 10 minutes"))
        .unwrap_or_else(|e| panic!("node starts: {e}"));
    let text = std::fs::read_to_string(&report)
        .unwrap_or_else(|e| panic!("vitest report {}: {e}", report.display()));
    let _ = std::fs::remove_file(&report);
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("vitest report: {e}"));
    (status.success(), json)
}

/// Passed and failed tests per top-level section of the suite, and the failures' names.
fn by_section(report: &Value) -> (BTreeMap<String, (usize, usize)>, Vec<String>) {
    let mut sections = BTreeMap::new();
    let mut failures = Vec::new();
    let files = report["testResults"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for test in files.iter().flat_map(|f| {
        f["assertionResults"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }) {
        let section = test["ancestorTitles"][0]
            .as_str()
            .unwrap_or("(top)")
            .to_owned();
        let entry = sections.entry(section.clone()).or_insert((0, 0));
        match test["status"].as_str() {
            Some("passed") => entry.0 += 1,
            Some("failed") => {
                entry.1 += 1;
                failures.push(format!(
                    "{section} > {}",
                    test["title"].as_str().unwrap_or("?")
                ));
            }
            _ => {}
        }
    }
    (sections, failures)
}

/// Runs the suite against `base_url` and asserts that every core test passes.
async fn the_suite_passes_at(dir: &PathBuf, base_url: &str, label: &str) {
    let (ok, report) = vitest(dir, "conformance.test.mjs", base_url).await;
    let (sections, failures) = by_section(&report);
    let (passed, failed): (usize, usize) = sections
        .values()
        .fold((0, 0), |(p, f), (a, b)| (p + a, f + b));
    for (section, (p, f)) in &sections {
        println!("{label}: {section}: {p} passed, {f} failed");
    }
    println!("conformance ({label}): {passed} passed, {failed} failed");
    assert!(
        failures.is_empty(),
        "failed conformance tests ({label}):\n{}",
        failures.join("\n")
    );
    assert!(ok, "vitest failed (see its output above)");
    assert!(
        passed >= 332,
        "the suite's 332 core tests run and pass ({label}); {passed} passed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_conformance_suite_passes() {
    let Some(dir) = node_folder() else { return };
    let streams = DurableStreams::builder()
        .long_poll_timeout(LONG_POLL)
        .build();
    let server = TestServer::start(Route::new().nest("/v1/stream", streams.endpoint())).await;
    the_suite_passes_at(&dir, &server.url(""), "memory").await;
    streams.shutdown();
    server.stop().await;
}

/// A server on `store`'s Redis, as the suite is told to expect.
#[cfg(feature = "redis")]
async fn on_redis(store: &poem_sse_ext::store::RedisStore) -> (DurableStreams, TestServer) {
    let streams = DurableStreams::builder()
        .long_poll_timeout(LONG_POLL)
        .redis(store)
        .build();
    let server = TestServer::start(Route::new().nest("/v1/stream", streams.endpoint())).await;
    (streams, server)
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_conformance_suite_passes_on_redis() {
    let Some(dir) = node_folder() else { return };
    let Some(redis) = testkit::redis::RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let store = poem_sse_ext::store::RedisStore::builder(redis.url())
        .connect()
        .await
        .expect("the store connects");
    let (streams, server) = on_redis(&store).await;
    the_suite_passes_at(&dir, &server.url(""), "redis").await;
    streams.shutdown();
    server.stop().await;
}

/// Two instances on one Redis behind a proxy that alternates per request: every write goes
/// through one instance and the next read through the other, so every test of the suite is
/// also a test of read-your-writes and of live reads woken across instances.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_conformance_suite_passes_on_two_instances_sharing_redis() {
    let Some(dir) = node_folder() else { return };
    let Some(redis) = testkit::redis::RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let connect = || async {
        poem_sse_ext::store::RedisStore::builder(redis.url())
            .connect()
            .await
            .expect("the store connects")
    };
    let (store_a, store_b) = (connect().await, connect().await);
    let (a, server_a) = on_redis(&store_a).await;
    let (b, server_b) = on_redis(&store_b).await;
    let proxy = std::sync::Arc::new(durable_support::proxy::Alternating::new(vec![
        format!("http://{}", server_a.addr),
        format!("http://{}", server_b.addr),
    ]));
    let front = TestServer::start(std::sync::Arc::clone(&proxy)).await;
    the_suite_passes_at(&dir, &front.url(""), "two instances on redis").await;
    assert!(
        proxy.forwarded() > 332,
        "the suite's requests went through the proxy"
    );
    a.shutdown();
    b.shutdown();
    front.stop().await;
    server_a.stop().await;
    server_b.stop().await;
}

#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_conformance_suite_passes_on_a_redis_cluster() {
    let Some(dir) = node_folder() else { return };
    let Some(cluster) =
        testkit::redis_cluster::RedisCluster::start().expect("the redis cluster starts")
    else {
        return;
    };
    let store = poem_sse_ext::store::RedisStore::cluster_builder(cluster.seeds())
        .connect()
        .await
        .expect("the cluster store connects");
    let (streams, server) = on_redis(&store).await;
    the_suite_passes_at(&dir, &server.url(""), "redis cluster").await;
    streams.shutdown();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocols_own_client_creates_appends_follows_and_sees_the_close() {
    let Some(dir) = node_folder() else { return };
    let streams = DurableStreams::builder()
        .long_poll_timeout(LONG_POLL)
        .build();
    let server = TestServer::start(Route::new().nest("/v1/stream", streams.endpoint())).await;
    let (ok, report) = vitest(&dir, "client.test.mjs", &server.url("")).await;
    let (sections, failures) = by_section(&report);
    streams.shutdown();
    server.stop().await;
    assert!(
        failures.is_empty(),
        "failed client tests:\n{}",
        failures.join("\n")
    );
    assert!(ok, "vitest failed (see its output above)");
    assert_eq!(
        sections.values().map(|(p, _)| p).sum::<usize>(),
        2,
        "both client stories ran"
    );
}
