//! Runs the real `demo-app` binary for the tests, on a loopback port, in a directory of its own
//! (where it generates its development certificate).

#![allow(dead_code)] // Each test file uses a different part.

pub mod webdriver;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

/// A running demo-app.
pub struct Demo {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its working directory.
    pub dir: PathBuf,
    /// `https://127.0.0.1:PORT` or `http://...` with `--plain`.
    pub base: String,
    args: Vec<String>,
    /// The `/healthz` status that means "started".
    ready: u16,
}

/// A fresh working directory for one test.
pub fn test_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("demo-app-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the test directory");
    dir
}

/// A client that trusts the development certificate (it is self-signed) and never waits long.
/// `GET url`, answered with JSON.
pub async fn get_json(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = client.get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("building the HTTP client")
}

impl Demo {
    /// Starts demo-app in `dir` on `port` with `args` and waits until `/healthz` answers 200.
    pub async fn start(dir: &Path, port: u16, args: &[&str]) -> Demo {
        Self::start_until(dir, port, args, 200).await
    }

    /// Starts demo-app like [`Demo::start`], but waits until `/healthz` answers `503` (a store
    /// that can not be reached).
    pub async fn start_degraded(dir: &Path, port: u16, args: &[&str]) -> Demo {
        Self::start_until(dir, port, args, 503).await
    }

    async fn start_until(dir: &Path, port: u16, args: &[&str], ready: u16) -> Demo {
        let plain = args.contains(&"--plain");
        let scheme = if plain { "http" } else { "https" };
        let mut demo = Demo {
            child: None,
            port,
            dir: dir.to_owned(),
            base: format!("{scheme}://127.0.0.1:{port}"),
            args: args.iter().map(|a| a.to_string()).collect(),
            ready,
        };
        demo.spawn().await;
        demo
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join(format!("demo-{}.log", self.port)))
            .expect("creating the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
            .current_dir(&self.dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .args(&self.args)
            .env("RUST_LOG", "info,poem_sse_ext=debug,poem_serve=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting demo-app");
        self.child = Some(child);
        let client = client();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let health = client.get(self.url("/healthz")).send().await;
            if health.is_ok_and(|r| r.status() == self.ready) {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "demo-app exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "demo-app /healthz not {} after 15 s:\n{}",
                self.ready,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("demo-{}.log", self.port)))
            .unwrap_or_default()
    }

    /// Sends SIGTERM and waits (at most 10 s) for the process to exit: its status and how long it
    /// took.
    pub async fn stop(&mut self) -> (ExitStatus, Duration) {
        let mut child = self.child.take().expect("demo-app is running");
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM failed");
        loop {
            if let Some(status) = child.try_wait().expect("waiting for demo-app") {
                return (status, started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                panic!("demo-app still running 10 s after SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Kills the process (SIGKILL: no graceful shutdown, open responses cut) and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("demo-app is running");
        child.kill().expect("killing demo-app");
        child.wait().expect("reaping demo-app");
    }

    /// Stops the server and starts it again on the same port, with the same arguments.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    /// Starts the server again after [`Demo::stop`], on the same port, with the same arguments.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "demo-app is still running");
        self.spawn().await;
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs demo-app with `args`, which must make it exit within 10 s (start-up errors): its status
/// and stderr.
pub fn run_to_exit(dir: &Path, args: &[&str]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-app"))
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running demo-app");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for demo-app") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("demo-app {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}

/// The state a page embeds (`<script type="application/json" id="state">`), parsed.
pub fn embedded_state(html: &str) -> serde_json::Value {
    let start = html
        .find(r#"id="state">"#)
        .map(|at| at + r#"id="state">"#.len())
        .unwrap_or_else(|| panic!("no embedded state in the page:\n{html}"));
    let len = html[start..]
        .find("</script>")
        .unwrap_or_else(|| panic!("the embedded state does not end"));
    serde_json::from_str(&html[start..start + len])
        .unwrap_or_else(|err| panic!("the embedded state is not JSON ({err})"))
}

/// `POST /api/channels/{channel}/events` with a JSON body: the id the server answered `201` with.
pub async fn publish(
    client: &reqwest::Client,
    demo: &Demo,
    channel: &str,
    body: &serde_json::Value,
) -> String {
    publish_with(client, demo, channel, body, None).await
}

/// The publish token of the tests that start the demo with `--publish-token`.
pub const PUBLISH_TOKEN: &str = "test-publish-token";

/// [`publish`] as a server-side publisher does: with `Authorization: Bearer <token>` (the one
/// way, besides its owner's session, to publish to a private `user.<name>` channel).
pub async fn publish_with(
    client: &reqwest::Client,
    demo: &Demo,
    channel: &str,
    body: &serde_json::Value,
    token: Option<&str>,
) -> String {
    let url = demo.url(&format!("/api/channels/{channel}/events"));
    let mut request = client.post(&url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("POST {url}: {err}"));
    assert_eq!(response.status(), 201, "POST {url} {body}");
    let answer: serde_json::Value = response
        .json()
        .await
        .unwrap_or_else(|err| panic!("POST {url}: the answer is not JSON ({err})"));
    answer["id"]
        .as_str()
        .unwrap_or_else(|| panic!("POST {url}: no id in {answer}"))
        .to_owned()
}
