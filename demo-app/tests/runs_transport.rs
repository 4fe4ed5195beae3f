//! A run of the demo is a Durable Stream too: the AI SDK's transport
//! (`@durable-streams/aisdk-transport`, in `tests/runs`) starts a generation on instance A and
//! follows it through instance B; B is killed (SIGKILL) and restarted mid-generation while A
//! keeps serving. The transport must get every token exactly once, in order, then the end, and
//! that text must be the one the run's own snapshot says it produced.
//!
//! Needs `redis-server`, `node` and `npm ci` in `tests/runs` (CI runs it); prints one
//! `skipped: ...` line without them, and fails under `CI=true`. The stream's messages, done and
//! cancelled, are checked over plain HTTP without them.

#[path = "../src/babble.rs"]
#[allow(dead_code)]
mod babble;
mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use common::{client, embedded_state, test_dir, Demo};
use serde_json::{json, Value};
use testkit::redis::RedisServer;
use tokio::io::{AsyncBufReadExt, BufReader};

const TOKENS: usize = 200;
const RATE: u32 = 40;
const KILL_AFTER: usize = 50;

/// The folder of the Node test, or `None` after one `skipped:` line.
fn node_folder() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/runs");
    let node = std::process::Command::new("node").arg("--version").output();
    let missing = if !node.is_ok_and(|out| out.status.success()) {
        Some("node is not installed".to_owned())
    } else if !dir
        .join("node_modules/@durable-streams/aisdk-transport")
        .is_dir()
    {
        Some(format!("run `npm ci` in {}", dir.display()))
    } else {
        None
    };
    match missing {
        Some(why) => {
            assert!(!testkit::in_ci(), "CI must run this test: {why}");
            eprintln!("skipped: {why}");
            None
        }
        None => Some(dir),
    }
}

/// Starts a run with `body`: its id and the stream URL the answer names.
async fn start(demo: &Demo, body: Value) -> (String, String) {
    let answer = client()
        .post(demo.url("/api/runs"))
        .json(&body)
        .send()
        .await
        .expect("POST /api/runs");
    assert_eq!(answer.status(), 201);
    let created: Value = answer.json().await.expect("JSON");
    let id = created["id"].as_str().expect("an id").to_owned();
    assert_eq!(created["streamUrl"], format!("/v1/stream/runs/{id}"));
    (id.clone(), format!("/v1/stream/runs/{id}"))
}

/// The stream's messages once it is closed (long-polls until then).
async fn closed_messages(demo: &Demo, path: &str) -> Vec<Value> {
    let http = client();
    let (mut messages, mut offset) = (Vec::new(), "-1".to_owned());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        assert!(std::time::Instant::now() < deadline, "{path} not closed");
        let url = demo.url(&format!("{path}?offset={offset}&live=long-poll"));
        let answer = http.get(&url).send().await.expect("GET the stream");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        let headers = answer.headers().clone();
        offset = headers["stream-next-offset"].to_str().unwrap().to_owned();
        if answer.status() == 200 {
            let batch: Vec<Value> = answer.json().await.expect("JSON messages");
            messages.extend(batch);
        }
        if headers.get("stream-closed").is_some_and(|v| v == "true") {
            return messages;
        }
    }
}

#[tokio::test]
async fn a_run_is_a_durable_stream_of_ai_sdk_chunks_closed_at_its_end() {
    let dir = test_dir("runs-stream");
    let demo = Demo::start(&dir, testkit::free_port(), &["--plain"]).await;

    // An AI SDK chat request: its last user message is the prompt.
    let chat = json!({
        "id": "chat-1", "trigger": "submit-message", "messageId": null,
        "messages": [
            { "id": "m1", "role": "user", "parts": [{ "type": "text", "text": "a harbor" }] },
            { "id": "m2", "role": "assistant", "parts": [{ "type": "text", "text": "..." }] },
            { "id": "m3", "role": "user", "parts": [{ "type": "text", "text": "a lighthouse" }] },
        ],
        "tokens": 12, "rate": 200,
    });
    let (id, path) = start(&demo, chat).await;
    let messages = closed_messages(&demo, &path).await;
    let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(types.len(), 12 + 4, "{messages:?}");
    assert_eq!(types[..2], ["start", "text-start"]);
    assert_eq!(types[2..14], ["text-delta"; 12]);
    assert_eq!(types[14..], ["text-end", "finish"]);
    assert_eq!(messages[0]["messageId"], id);
    let text: String = messages
        .iter()
        .filter_map(|m| m["delta"].as_str())
        .collect();
    let expected: String = babble::tokens("a lighthouse").take(12).collect();
    assert_eq!(text, expected);

    // Cancelled: what was written, an abort, the close.
    let (id, path) = start(&demo, json!({ "tokens": 1000, "rate": 20 })).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancel = client()
        .post(demo.url(&format!("/api/runs/{id}/cancel")))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    let messages = closed_messages(&demo, &path).await;
    assert_eq!(messages.last().unwrap(), &json!({ "type": "abort" }));
    assert!(messages.len() < 1000, "stopped early");
    assert!(messages[2..messages.len() - 1]
        .iter()
        .all(|m| m["type"] == "text-delta"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ai_sdk_transport_follows_a_run_across_a_restart_of_its_instance() {
    let Some(node_dir) = node_folder() else {
        return;
    };
    let Some(redis) = RedisServer::start().expect("redis-server starts") else {
        return;
    };
    let dir = test_dir("runs-transport");
    let store = redis.url();
    let args = ["--plain", "--store", store.as_str()];
    let a = Demo::start(&dir, testkit::free_port(), &args).await;
    let mut b = Demo::start(&dir, testkit::free_port(), &args).await;

    let mut node = tokio::process::Command::new("node")
        // Run as a script, node:test reports in-process: the control lines come at once.
        .arg("follow.test.mjs")
        .env("A_URL", a.url(""))
        .env("B_URL", b.url(""))
        .env("TOKENS", TOKENS.to_string())
        .env("RATE", RATE.to_string())
        .env("KILL_AFTER", KILL_AFTER.to_string())
        .current_dir(&node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(node.stdout.take().expect("node's stdout")).lines();
    let mut output = String::new();
    let mut result = None;
    let mut killed = false;
    let follow = async {
        while let Some(line) = lines.next_line().await.expect("node's output") {
            output.push_str(&line);
            output.push('\n');
            let ctl = line.trim_start();
            if ctl == "CTL kill" {
                b.kill();
                killed = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
                b.start_again().await;
            } else if let Some(json) = ctl.strip_prefix("CTL result ") {
                result = Some(serde_json::from_str::<Value>(json).expect("JSON"));
            }
        }
        node.wait().await.expect("node exits")
    };
    let status = tokio::time::timeout(Duration::from_secs(60), follow)
        .await
        .expect("the Node test ends within 60 s");
    assert!(status.success(), "the Node test failed:\n{output}");
    assert!(killed, "B was killed mid-generation:\n{output}");
    let result = result.unwrap_or_else(|| panic!("no result line:\n{output}"));
    assert_eq!(result["deltas"], TOKENS, "{output}");
    println!("the balancer's log: {}", result["log"]);

    // The text the transport assembled is the text the run says it produced.
    let run = result["run"].as_str().expect("the run's id");
    let http = client();
    let page = http
        .get(a.url(&format!("/generate/{run}")))
        .send()
        .await
        .unwrap();
    let state = embedded_state(&page.text().await.unwrap());
    assert_eq!(state["run"]["end"]["reason"], "done", "{state}");
    let text = state["run"]["text"].as_str().expect("the run's text");
    assert_eq!(result["text"], text);

    // Restarted B serves the whole stream from Redis, closed.
    let whole = http
        .get(b.url(&format!("/v1/stream/runs/{run}?offset=-1")))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.headers()["stream-closed"], "true");
    let messages: Vec<Value> = whole.json().await.unwrap();
    let replayed: String = messages
        .iter()
        .filter_map(|m| m["delta"].as_str())
        .collect();
    assert_eq!(messages.len(), TOKENS + 4);
    assert_eq!(replayed, text);
}
