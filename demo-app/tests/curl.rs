//! Every documented answer of `POST /api/channels/{channel}/events` reads as it is documented
//! with the `curl` of Debian 12 (7.88) over HTTP/2 and TLS, the demo's default: that curl took
//! an answer sent before the server had read the request body (and the stream reset after it)
//! for a framing error (`curl: (92) Stream error in the HTTP/2 framing layer`) most of the time.
//!
//! Runs `/usr/bin/curl` (or `curl` on `PATH`) against the real binary on loopback, each answer
//! twenty times; without curl, one `skipped:` line (a failure under `CI=true`).

mod common;

use std::{path::Path, process::Command};

use common::{test_dir, Demo};
use testkit::free_port;

const TRIES: usize = 20;
const TOKEN: &str = "s3cret";

/// curl's path, or `None` after the `skipped:` line (a panic under `CI=true`).
fn curl() -> Option<&'static str> {
    for candidate in ["/usr/bin/curl", "curl"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(candidate);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "curl is not installed (required under CI=true)"
    );
    println!("skipped: curl is not installed");
    None
}

/// One documented answer: the request that gets it, and what the answer says.
struct Case {
    what: &'static str,
    channel: String,
    headers: Vec<&'static str>,
    /// The body, written to a file curl sends.
    body: String,
    status: u16,
    says: &'static str,
}

fn cases() -> Vec<Case> {
    let json = r#"{"event": "notification", "data": {"text": "hello"}}"#.to_owned();
    let token = "authorization: Bearer s3cret";
    let case = |what, channel: &str, headers: Vec<&'static str>, body: &str, status, says| Case {
        what,
        channel: channel.to_owned(),
        headers,
        body: body.to_owned(),
        status,
        says,
    };
    vec![
        case(
            "published",
            "notifications",
            vec!["content-type: application/json", token],
            &json,
            201,
            r#""duplicate":false"#,
        ),
        case(
            "no token",
            "notifications",
            vec!["content-type: application/json"],
            &json,
            401,
            "bearer token",
        ),
        case(
            "private, no session",
            "user.bob",
            vec!["content-type: application/json"],
            &json,
            401,
            "not signed in",
        ),
        case(
            "another origin",
            "notifications",
            vec![
                "content-type: application/json",
                "origin: https://evil.example",
                token,
            ],
            &json,
            403,
            "--allow-origin https://evil.example",
        ),
        case(
            "invalid channel",
            &"a".repeat(65),
            vec!["content-type: application/json", token],
            &json,
            404,
            "invalid channel name",
        ),
        case(
            "not JSON",
            "notifications",
            vec!["content-type: text/plain", token],
            &json,
            415,
            "Content-Type: application/json",
        ),
        case(
            "bad body",
            "notifications",
            vec!["content-type: application/json", token],
            r#"{"data": "#,
            400,
            "must be JSON",
        ),
        case(
            "bad event name",
            "notifications",
            vec!["content-type: application/json", token],
            r#"{"event": "a\nb", "data": 1}"#,
            400,
            "event",
        ),
        case(
            "too large",
            "notifications",
            vec!["content-type: application/json", token],
            &format!(r#"{{"data": "{}"}}"#, "x".repeat(70_000)),
            413,
            "larger than the limit",
        ),
    ]
}

/// Runs curl once: its exit status, the answer's status and protocol, and the body.
fn run(curl: &str, url: &str, case: &Case, body: &Path) -> (Option<i32>, String, String) {
    let mut cmd = Command::new(curl);
    cmd.args([
        "--http2",
        "--insecure",
        "--silent",
        "--show-error",
        "--max-time",
        "10",
    ])
    .args([
        "--output",
        "-",
        "--write-out",
        "\n%{http_code} %{http_version}",
    ])
    .args(["--request", "POST", "--data-binary"])
    .arg(format!("@{}", body.display()));
    for header in &case.headers {
        cmd.args(["--header", header]);
    }
    let out = cmd
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("running curl: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        status.to_owned(),
        format!("{answer}{stderr}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_publish_answer_reads_with_curl_over_http2() {
    let Some(curl) = curl() else {
        return;
    };
    let dir = test_dir("curl");
    let demo = Demo::start(&dir, free_port(), &["--publish-token", TOKEN]).await;
    let mut failures = Vec::new();
    for (n, case) in cases().iter().enumerate() {
        let body = dir.join(format!("body-{n}.json"));
        std::fs::write(&body, &case.body).unwrap_or_else(|e| panic!("{}: {e}", body.display()));
        let url = demo.url(&format!("/api/channels/{}/events", case.channel));
        let curl = curl.to_owned();
        let expected = format!("{} 2", case.status);
        let mut bad = 0;
        let mut example = String::new();
        for _ in 0..TRIES {
            let (code, status, text) = run(&curl, &url, case, &body);
            if code != Some(0) || status != expected || !text.contains(case.says) {
                bad += 1;
                example = format!("exit {code:?}, `{status}`: {}", text.trim());
            }
        }
        if bad > 0 {
            failures.push(format!(
                "{} (expected `{expected}` saying {:?}): {bad} of {TRIES} tries failed, e.g. {example}",
                case.what, case.says
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "answers curl could not read:\n{}",
        failures.join("\n")
    );
}
