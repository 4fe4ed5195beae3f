//! The copyable example (`poem-sse-ext/examples/dashboard.rs`) as a newcomer runs it: its page
//! in Chromium rendered from the store, a note published through its API appearing live (as
//! text), and Ctrl-C (SIGINT) ending it at once.
//!
//! `cargo test --workspace` builds the example beside the tests; the test runs that binary.

mod common;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{client, test_dir, webdriver::Chromium};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

/// `target/<profile>/examples/dashboard`, beside this test's own `deps/` directory.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    profile_dir.join("examples/dashboard")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_example_renders_at_an_id_and_streams_live() {
    let Some(chromium) = Chromium::find().await else {
        return;
    };
    let binary = example_binary();
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p poem-sse-ext --example dashboard`",
        binary.display()
    );
    let dir = test_dir("example-dashboard");
    let mut child = Command::new(&binary)
        .env("DASHBOARD_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the example");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("its first line");
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let http = client();
    let publish = |text: &'static str| {
        let http = http.clone();
        let url = format!("{base}/api/notes");
        async move {
            let answer = http.post(url).json(&json!({ "text": text })).send().await;
            let answer = answer.expect("publish");
            assert_eq!(answer.status(), 200, "publish {text}");
        }
    };
    publish("rendered").await;

    let browser = chromium.start(&dir.join("profile")).await;
    browser.open(&base).await;
    let first = browser
        .eval("[...document.querySelectorAll('#notes li')].map(li => li.textContent)")
        .await;
    assert_eq!(
        first,
        json!(["rendered"]),
        "the page is rendered from the store"
    );
    browser
        .wait_for(
            "the stream live",
            "document.getElementById('status').textContent === 'live'",
            WAIT,
        )
        .await;
    publish("live <b>one</b>").await;
    browser
        .wait_for(
            "the live note, as text",
            "[...document.querySelectorAll('#notes li')].map(li => li.textContent).join('|') === 'rendered|live <b>one</b>'",
            WAIT,
        )
        .await;
    let bold = browser
        .eval("document.querySelectorAll('#notes b').length")
        .await;
    assert_eq!(bold, json!(0), "a note is text, never markup");

    // SIGINT, as Ctrl-C sends: the hub ends its open stream, and the server exits at once.
    let started = Instant::now();
    let pid = child.id().to_string();
    let signalled = Command::new("kill").args(["-INT", &pid]).status();
    assert!(signalled.is_ok_and(|s| s.success()), "kill -INT");
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "still running 3 s after SIGINT"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    let _ = browser.close().await;
}
