//! A run of the demo is a Durable Stream too: the AI SDK's transport
//! (`@durable-streams/aisdk-transport`, in `tests/runs`) starts a generation on instance A and
//! follows it through instance B; B is killed (SIGKILL) and restarted mid-generation while A
//! keeps serving. The transport must get every token exactly once, in order, then the end, and
//! that text must be the one the run's own snapshot says it produced.
//!
//! Needs `redis-server`, `node` and `npm ci` in `tests/runs` (CI runs it); prints one
//! `skipped: ...` line without them, and fails under `CI=true`.

mod common;

use std::{path::PathBuf, process::Stdio, time::Duration};

use common::{client, embedded_state, test_dir, Demo};
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
    } else if !dir.join("node_modules/@durable-streams/aisdk-transport").is_dir() {
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
                result = Some(serde_json::from_str::<serde_json::Value>(json).expect("JSON"));
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
    let messages: Vec<serde_json::Value> = whole.json().await.unwrap();
    let replayed: String = messages
        .iter()
        .filter_map(|m| m["delta"].as_str())
        .collect();
    assert_eq!(messages.len(), TOKENS + 4);
    assert_eq!(replayed, text);
}
