//! Headless Chromium over WebDriver for every browser test: Chromium and chromedriver found on
//! `PATH` (or one `skipped:` line, a failure under `CI=true`), chromedriver on a free loopback
//! port, a session with the flags every test uses, bounded waits, and everything ended on drop.
//!
//! One browser at a time per test binary (the machine may have two cores): [`Chromium::find`]
//! waits for the turn, and the test holds it until it drops the [`Chromium`].
//!
//! ```ignore
//! let Some(chromium) = Chromium::find().await else {
//!     return; // skipped
//! };
//! let browser = chromium.start(&dir.join("profile")).await;
//! browser.open(&demo.url("/")).await;
//! browser.wait_for("the page live", "window.sseStatus && sseStatus().length", WAIT).await;
//! ```

use std::{
    io::{Read, Write},
    net::TcpStream,
    ops::Deref,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{error::CmdError, Client, ClientBuilder};
use serde_json::{json, Value};
use tokio::sync::{Mutex, MutexGuard};

/// The turn to run a browser, one test at a time.
static ONE_BROWSER: Mutex<()> = Mutex::const_new(());

/// What [`Browser::wait_for`] shows of the page when it times out: the widgets' own report.
const SSE_STATUS: &str = "window.sseStatus ? window.sseStatus() : null";

/// Chromium and its chromedriver, and this test's turn to run a browser (until dropped).
pub struct Chromium {
    browser: PathBuf,
    driver: PathBuf,
    _turn: MutexGuard<'static, ()>,
}

impl Chromium {
    /// Finds Chromium and chromedriver on `PATH`, then waits for the turn to run a browser.
    /// When one is missing: `None`, after the line `skipped: chromium or chromedriver is not
    /// installed` (a panic under `CI=true`).
    pub async fn find() -> Option<Chromium> {
        let (browser, driver) = testkit::chromium()?;
        let turn = ONE_BROWSER.lock().await;
        Some(Chromium {
            browser,
            driver,
            _turn: turn,
        })
    }

    /// A new browser: chromedriver on a free loopback port and a session on it, with its
    /// profile in `profile`, accepting the demo's self-signed certificate.
    pub async fn start(&self, profile: &Path) -> Browser {
        let driver = Driver::start(&self.driver).await;
        let mut caps = serde_json::Map::new();
        caps.insert("acceptInsecureCerts".into(), json!(true));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": self.browser,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--ignore-certificate-errors", "--disable-dev-shm-usage",
                    format!("--user-data-dir={}", profile.display()),
                    "--window-size=1280,900",
                ],
            }),
        );
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{}", driver.port);
        let client = tokio::time::timeout(Duration::from_secs(30), builder.connect(&url))
            .await
            .unwrap_or_else(|_| panic!("chromium did not start within 30 s"))
            .unwrap_or_else(|err| panic!("starting a WebDriver session: {err}"));
        let session = client
            .session_id()
            .await
            .unwrap_or_else(|err| panic!("the WebDriver session's id: {err}"))
            .unwrap_or_else(|| panic!("a WebDriver session without an id"));
        Browser {
            client: Some(client),
            session,
            driver,
        }
    }
}

/// chromedriver on a free loopback port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    async fn start(driver: &Path) -> Driver {
        let port = testkit::free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("starting chromedriver: {err}"));
        // Killed (on drop) if it does not listen in time.
        let driver = Driver { child, port };
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
        driver
    }

    /// Ends the session `id` (Chromium quits), waiting at most 10 s: without it, chromedriver
    /// killed with a session open leaves Chromium running. Blocking, for drop (also in a panic).
    fn end_session(&self, id: &str) {
        let request = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        );
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
        if stream.write_all(request.as_bytes()).is_err() {
            return;
        }
        // chromedriver answers once Chromium has quit (and keeps the connection open).
        let mut answer = Vec::new();
        let mut chunk = [0; 1024];
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session on its own chromedriver: the [`Client`] (which it dereferences to) and
/// bounded helpers. Dropped without [`Browser::close`] (a failed test), it still ends the
/// session and kills chromedriver.
pub struct Browser {
    /// `None` once closed.
    client: Option<Client>,
    session: String,
    driver: Driver,
}

impl Deref for Browser {
    type Target = Client;

    fn deref(&self) -> &Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| panic!("the browser is closed"))
    }
}

impl Browser {
    /// Navigates to `url` (absolute).
    pub async fn open(&self, url: &str) {
        self.goto(url)
            .await
            .unwrap_or_else(|err| panic!("opening {url}: {err}"));
    }

    /// Navigates to the page `url` and waits, at most `timeout`, until it has widgets and every
    /// one's stream is open.
    pub async fn open_live(&self, url: &str, timeout: Duration) {
        self.open(url).await;
        let live = "window.sseStatus && sseStatus().length > 0 && sseStatus().every(s => s.state === 'open')";
        self.wait_for(&format!("{url} live"), live, timeout).await;
    }

    /// Runs the JS statements `script` (which see `args` as `arguments`): what it returns.
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.execute(script, args)
            .await
            .unwrap_or_else(|err| panic!("running {script}: {err}"))
    }

    /// The value of the JS expression `expr`.
    pub async fn eval(&self, expr: &str) -> Value {
        self.execute(&format!("return {expr};"), vec![])
            .await
            .unwrap_or_else(|err| panic!("evaluating {expr}: {err}"))
    }

    /// What every widget of the page says about itself (`sseStatus()`, which must exist).
    pub async fn sse_status(&self) -> Vec<Value> {
        let value = self.eval("window.sseStatus()").await;
        value.as_array().cloned().unwrap_or_default()
    }

    /// Evaluates `expr` (a JS expression) until it is truthy, at most `timeout`; returns its
    /// value. On timeout, panics with the last value and the widgets' `sseStatus()`, if any.
    pub async fn wait_for(&self, what: &str, expr: &str, timeout: Duration) -> Value {
        self.wait_for_reporting(what, expr, SSE_STATUS, timeout)
            .await
    }

    /// Like [`Browser::wait_for`]; on timeout the panic shows the value of `report` (what the
    /// page says about itself).
    pub async fn wait_for_reporting(
        &self,
        what: &str,
        expr: &str,
        report: &str,
        timeout: Duration,
    ) -> Value {
        let script = format!("return {expr};");
        let started = Instant::now();
        let mut last = Value::Null;
        while started.elapsed() < timeout {
            last = self.execute(&script, vec![]).await.unwrap_or(Value::Null);
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
        let page = self
            .execute(&format!("return {report};"), vec![])
            .await
            .unwrap_or(Value::Null);
        panic!(
            "timed out after {timeout:?} waiting for {what} (last value {last}); page: {page:#}"
        );
    }

    /// A screenshot of the viewport, checked to be a PNG (`what` names it in the failure).
    pub async fn screenshot_png(&self, what: &str) -> Vec<u8> {
        let png = self
            .screenshot()
            .await
            .unwrap_or_else(|err| panic!("screenshot of {what}: {err}"));
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot of {what}");
        png
    }

    /// Ends the session (Chromium quits), then chromedriver.
    pub async fn close(mut self) -> Result<(), CmdError> {
        match self.client.take() {
            Some(client) => client.close().await,
            None => Ok(()),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.driver.end_session(&self.session);
            drop(client);
        }
    }
}
