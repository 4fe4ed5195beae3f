//! Node's `eventsource` package (5.x, WHATWG-compliant: what a browser does, outside one)
//! against a hub: it resumes exactly after the server restarts over a store that survives, sees
//! `sse-reset` when the store did not survive, honours the hub's `retry:`, and a finished run's
//! `204` stops it for good.
//!
//! Needs `node` and `npm ci` in `tests/node` (CI runs it); prints `skipped: ...` without them,
//! and fails under `CI=true`.

mod common;

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use poem::Route;
use poem_sse_ext::{
    run::{EndReason, Runs},
    store::{MemoryStore, ReplayStore, Retention, StoreChannel},
    Event, Hub,
};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader, Lines},
    process::{Child, ChildStdout, Command},
};

/// The hub's reconnection hint: far from `eventsource`'s own default (3 s), so that a client
/// that ignored it would be seen.
const RETRY: Duration = Duration::from_millis(300);

/// A store that outlives the hubs on it, as a Redis store outlives a server process: every hub
/// built on a clone of it reads and writes the same channel logs.
#[derive(Clone)]
struct Durable {
    inner: Arc<MemoryStore>,
    channels: Arc<Mutex<HashMap<String, Arc<dyn StoreChannel>>>>,
}

impl ReplayStore for Durable {
    fn channel(self: Arc<Self>, name: &str) -> Arc<dyn StoreChannel> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        let channel = channels
            .entry(name.to_owned())
            .or_insert_with(|| Arc::clone(&self.inner).channel(name));
        Arc::clone(channel)
    }
}

fn hub_on(store: Option<&Durable>) -> Hub {
    let builder = Hub::builder()
        .retry(RETRY)
        .retry_jitter(Duration::ZERO)
        .heartbeat(Duration::from_millis(200));
    match store {
        Some(store) => builder.store(store.clone()).build(),
        None => builder.build(),
    }
}

/// `node follow.mjs <url>`, and its report lines.
struct Follower {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Follower {
    /// `None` (after printing why) when node or the installed package is missing.
    fn start(url: &str) -> Option<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node");
        let node = std::process::Command::new("node").arg("--version").output();
        let missing = if !node.is_ok_and(|out| out.status.success()) {
            Some("node is not installed".to_owned())
        } else if !dir.join("node_modules/eventsource").is_dir() {
            Some(format!("run `npm ci` in {}", dir.display()))
        } else {
            None
        };
        if let Some(why) = missing {
            assert!(!testkit::in_ci(), "CI must run this test: {why}");
            println!("skipped: {why}");
            return None;
        }
        let mut child = Command::new("node")
            .arg("follow.mjs")
            .arg(url)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("node starts: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("stdout"));
        Some(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next report line.
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line()).await;
        match line {
            Ok(Ok(Some(line))) => {
                println!("node: {line}"); // shown when the test fails
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
            }
            other => panic!("no report from node: {other:?}"),
        }
    }

    /// Skips report lines up to the first of `kind` (and `type`, for events); returns it and
    /// the lines skipped.
    async fn until(&mut self, kind: &str, event_type: Option<&str>) -> (Value, Vec<Value>) {
        let mut skipped = Vec::new();
        loop {
            let line = self.next().await;
            let matches = line["kind"] == kind && event_type.is_none_or(|t| line["type"] == t);
            if matches {
                return (line, skipped);
            }
            skipped.push(line);
        }
    }
}

fn event(line: &Value) -> (&str, &str, &str) {
    (
        line["type"].as_str().unwrap_or_default(),
        line["data"].as_str().unwrap_or_default(),
        line["lastEventId"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn node_eventsource_resumes_across_restarts_resets_honours_retry_and_stops_on_204() {
    let store = Durable {
        inner: Arc::new(MemoryStore::new(Retention::default())),
        channels: Arc::default(),
    };
    let hub = hub_on(Some(&store));
    let server = serve(&hub).await;
    let addr = server.addr.to_string();
    let first = publish(&hub, "news", "1").await;
    let second = publish(&hub, "news", "2").await;

    // A page rendered at "1" starts there with `?lastEventId=`.
    let url = server.url(&format!("/events/news?lastEventId={first}"));
    let Some(mut node) = Follower::start(&url) else {
        return;
    };
    node.until("open", None).await;
    let (line, _) = node.until("event", None).await;
    assert_eq!(event(&line), ("message", "2", second.as_str()));
    let third = publish(&hub, "news", "3").await;
    let (line, _) = node.until("event", None).await;
    assert_eq!(event(&line), ("message", "3", third.as_str()));

    // The server restarts; its store survives. While it is down, "4" is published elsewhere.
    server.stop().await;
    let (down, _) = node.until("error", None).await;
    let hub = hub_on(Some(&store));
    let fourth = publish(&hub, "news", "4").await;
    tokio::time::sleep(RETRY * 3).await; // node retries every RETRY meanwhile, and fails
    let server = TestServer::start_on(
        &addr,
        Route::new().at("/events/:channel", hub.endpoint()),
        Some(hub.clone()),
    )
    .await;
    let (up, failed) = node.until("open", None).await;
    // Each failed attempt came RETRY after the one before, not 3 s (eventsource's default).
    let attempts: Vec<u64> = std::iter::once(&down)
        .chain(failed.iter().filter(|l| l["kind"] == "error"))
        .chain(std::iter::once(&up))
        .filter_map(|line| line["t"].as_u64())
        .collect();
    assert!(
        attempts.len() >= 3,
        "node retried while the server was down: {failed:?}"
    );
    for pair in attempts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (250..1_500).contains(&gap),
            "retry after {gap} ms: {attempts:?}"
        );
    }
    // Exactly what it missed: "4", not "3" again.
    let (line, _) = node.until("event", None).await;
    assert_eq!(event(&line), ("message", "4", fourth.as_str()));

    // The server restarts on a store that did not survive (a new epoch): an sse-reset.
    server.stop().await;
    let hub = hub_on(None);
    let head = publish(&hub, "news", "fresh").await;
    let server = TestServer::start_on(
        &addr,
        Route::new().at("/events/:channel", hub.endpoint()),
        Some(hub.clone()),
    )
    .await;
    let (line, _) = node.until("event", Some("sse-reset")).await;
    let (_, data, id) = event(&line);
    assert_eq!(
        id,
        head.as_str(),
        "the reset's id is where the stream continues"
    );
    let data: Value = serde_json::from_str(data).unwrap_or_default();
    assert_eq!(data["reason"], "epoch");
    assert_eq!(data["resume_from"], head.as_str());

    server.stop().await;
    drop(node);

    // A run's stream is finite: the follower reads a token, then the run ends while it follows.
    // The stream ends after `sse-end`; the source reconnects with the end's id, gets `204` and
    // closes for good.
    let runs = Runs::builder()
        .hub(Hub::builder().retry(RETRY).retry_jitter(Duration::ZERO))
        .build();
    let run = runs
        .start()
        .await
        .unwrap_or_else(|e| panic!("start a run: {e}"));
    let token = run
        .append(Event::text("token"))
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    let server = TestServer::start_with_hub(
        Route::new().at("/runs/:id/events", runs.endpoint()),
        Some(runs.hub().clone()),
    )
    .await;
    let url = server.url(&format!("/runs/{}/events", run.id()));
    let mut node = Follower::start(&url).unwrap_or_else(|| panic!("node ran a moment ago"));
    let (line, _) = node.until("event", None).await;
    assert_eq!(
        event(&line),
        ("message", "token", token.to_string().as_str())
    );
    let end = run
        .finish(EndReason::Done)
        .await
        .unwrap_or_else(|e| panic!("finish: {e}"));
    let (line, _) = node.until("event", None).await;
    let (kind, data, id) = event(&line);
    assert_eq!((kind, id), ("sse-end", end.to_string().as_str()));
    let data: Value = serde_json::from_str(data).unwrap_or_default();
    assert_eq!(data["reason"], "done");
    let (closed, before) = node.until("closed", None).await;
    let last_error = before.iter().rev().find(|l| l["kind"] == "error");
    assert_eq!(
        last_error.map(|l| &l["code"]),
        Some(&Value::from(204)),
        "{before:?}"
    );
    assert_eq!(closed["kind"], "closed");
    let status = tokio::time::timeout(Duration::from_secs(5), node.child.wait()).await;
    assert!(
        matches!(status, Ok(Ok(s)) if s.success()),
        "node exits: {status:?}"
    );
    server.stop().await;
}
