//! Headless Chromium over WebDriver for the security and auth browser tests (a small copy of
//! what `browser.rs` uses; one browser at a time per test binary).

#![allow(dead_code)]

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use futures_util::FutureExt;
use serde_json::{json, Value};
use testkit::free_port;

/// chromedriver on a free loopback port, killed on drop.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub async fn start(driver: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}"));
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "chromedriver not listening after 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, port }
    }

    pub async fn browser(&self, chromium: &Path, profile: &Path) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--ignore-certificate-errors", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{}", self.port);
        tokio::time::timeout(Duration::from_secs(30), builder.connect(&url))
            .await
            .unwrap_or_else(|_| panic!("chromium did not start within 30 s"))
            .unwrap_or_else(|e| panic!("starting a WebDriver session: {e}"))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `story` with a new browser session (its profile in `profile`) and ends the session after
/// it, also when the story panics: chromedriver, killed with a session open, leaves Chromium
/// running.
pub async fn with_browser<Story, Fut>(
    driver: &Driver,
    chromium: &Path,
    profile: &Path,
    story: Story,
) where
    Story: FnOnce(Client) -> Fut,
    Fut: Future<Output = ()>,
{
    let browser = driver.browser(chromium, profile).await;
    let outcome = AssertUnwindSafe(story(browser.clone()))
        .catch_unwind()
        .await;
    let _ = browser.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Evaluates `expr` (a JS expression) until it is truthy, at most `timeout`; returns its value.
pub async fn wait_for(browser: &Client, what: &str, expr: &str, timeout: Duration) -> Value {
    wait_for_reporting(browser, what, expr, "null", timeout).await
}

/// Like [`wait_for`]; on timeout the panic also shows the value of `report` (what the page says
/// about itself).
pub async fn wait_for_reporting(
    browser: &Client,
    what: &str,
    expr: &str,
    report: &str,
    timeout: Duration,
) -> Value {
    let script = format!("return {expr};");
    let started = Instant::now();
    let mut last = Value::Null;
    while started.elapsed() < timeout {
        last = browser
            .execute(&script, vec![])
            .await
            .unwrap_or(Value::Null);
        let truthy = match &last {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Array(a) => !a.is_empty(),
            _ => true,
        };
        if truthy {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = browser
        .execute(&format!("return {report};"), vec![])
        .await
        .unwrap_or(Value::Null);
    panic!("timed out after {timeout:?} waiting for {what} (last value {last}); page: {page:#}");
}

/// The value of a JS expression.
pub async fn eval(browser: &Client, expr: &str) -> Value {
    browser
        .execute(&format!("return {expr};"), vec![])
        .await
        .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
}
