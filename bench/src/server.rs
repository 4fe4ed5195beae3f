//! Starting and stopping the servers under test.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};

use crate::net::{Conn, HttpVersion, Target};

/// One server of the comparison, as listed in the servers file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerSpec {
    /// Name in the report (`poem-sse-ext`, `poem SSE`, `axum Sse`, `FastAPI + sse-starlette`).
    pub name: String,
    /// The product under test (ratios are product / peer).
    #[serde(default)]
    pub product: bool,
    /// Command and arguments; `{addr}` is replaced by `127.0.0.1:PORT`.
    pub cmd: Vec<String>,
    /// How to reach HTTP/2: `h2c` on the same server, `tls` with `tls_cmd`, or `none`.
    #[serde(default = "default_h2")]
    pub h2: String,
    /// Command for the TLS variant (HTTP/2 over TLS), when `h2` is `tls`.
    #[serde(default)]
    pub tls_cmd: Option<Vec<String>>,
    /// Working directory (default: the current one).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Version text for the report.
    #[serde(default)]
    pub version: String,
    /// The only scenarios that mean something for this server (a reference that serves no
    /// events measures `idle` alone); the others are not run and read n/a. Default: all.
    #[serde(default)]
    pub scenarios: Option<Vec<String>>,
}

impl ServerSpec {
    /// A server started with `cmd` (`{addr}` in it replaced by its address), reached over h2c
    /// on that address, with no TLS variant: what the benchmark binaries and tests start
    /// without a servers file.
    pub fn h2c(name: &str, cmd: Vec<String>) -> Self {
        Self {
            name: name.into(),
            product: false,
            cmd,
            h2: default_h2(),
            tls_cmd: None,
            cwd: None,
            version: String::new(),
            scenarios: None,
        }
    }
}

fn default_h2() -> String {
    "h2c".into()
}

/// A started server.
pub struct Running {
    pub pid: u32,
    pub base: String,
    child: tokio::process::Child,
}

/// Where and how servers start.
#[derive(Clone)]
pub struct Launcher {
    /// CPU the server is pinned to with `taskset` (none: not pinned).
    pub pin: Option<usize>,
    pub log_dir: PathBuf,
}

impl Launcher {
    /// Starts `spec` (its TLS variant when `tls`) on a free port and waits for `/healthz`.
    pub async fn start(&self, spec: &ServerSpec, tls: bool) -> Result<Running> {
        let port = free_port()?;
        let addr = format!("127.0.0.1:{port}");
        let cmd = if tls {
            spec.tls_cmd
                .as_ref()
                .ok_or_else(|| anyhow!("{} has no TLS command", spec.name))?
        } else {
            &spec.cmd
        };
        let mut argv: Vec<String> = cmd.iter().map(|a| a.replace("{addr}", &addr)).collect();
        if argv.is_empty() {
            bail!("{}: empty command", spec.name);
        }
        if let Some(cpu) = self.pin {
            argv.splice(
                0..0,
                ["taskset".to_owned(), "-c".to_owned(), cpu.to_string()],
            );
        }
        std::fs::create_dir_all(&self.log_dir)?;
        let log_name = format!(
            "{}{}.log",
            spec.name.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            if tls { "-tls" } else { "" }
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(log_name))?;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(dir) = &spec.cwd {
            command.current_dir(dir);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("start {}", argv.join(" ")))?;
        let pid = child
            .id()
            .ok_or_else(|| anyhow!("{} exited at once", spec.name))?;
        let base = format!("{}://{addr}", if tls { "https" } else { "http" });
        let target = Target::parse(&base, None, 0)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "{} exited during start-up ({status}); see its log in {}",
                    spec.name,
                    self.log_dir.display()
                );
            }
            if health(&target).await {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                bail!("{} did not answer /healthz within 60 s", spec.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Running { pid, base, child })
    }
}

impl Running {
    /// Sends SIGTERM and waits up to `limit` for the process to exit; kills it after that.
    /// Returns how long the exit took (`None` if it had to be killed). A later [`stop`]
    /// finds the process gone and does nothing.
    ///
    /// [`stop`]: Running::stop
    pub async fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let start = Instant::now();
        // `id()` is `None` once the child has been reaped: its pid may belong to another
        // process by then, so no signal goes out.
        if let Some(pid) = self.child.id() {
            // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(_) => Some(start.elapsed()),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        }
    }

    /// Stops the server after a scenario that does not measure shutdown: SIGKILL, so that no
    /// run waits on a peer's graceful-shutdown grace period.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Whether `GET /healthz` answers 200.
pub async fn health(target: &Target) -> bool {
    get_json(target, "/healthz")
        .await
        .is_ok_and(|(s, _)| s == 200)
}

/// `GET path` on a fresh HTTP/1.1 connection: status and body.
pub async fn get_json(target: &Target, path: &str) -> Result<(u16, Bytes)> {
    let fut = async {
        let mut conn = Conn::open(target, None, HttpVersion::H1).await?;
        let req = target
            .request("GET", path, false)
            .body(Full::new(Bytes::new()))?;
        let resp = conn.send(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>((status, body))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .map_err(|_| anyhow!("GET {path} timed out"))?
}

/// The `open_streams` figure of `GET /api/hub/metrics`, if the server has that endpoint.
pub async fn open_streams(target: &Target) -> Result<Option<u64>> {
    let (status, body) = get_json(target, "/api/hub/metrics").await?;
    if status == 404 {
        return Ok(None);
    }
    if status != 200 {
        bail!("/api/hub/metrics answered {status}");
    }
    let v: serde_json::Value = serde_json::from_slice(&body).context("metrics are not JSON")?;
    v.get("open_streams")
        .and_then(serde_json::Value::as_u64)
        .map(Some)
        .ok_or_else(|| anyhow!("metrics have no numeric open_streams: {v}"))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Reads the servers file.
pub fn load_specs(path: &Path) -> Result<Vec<ServerSpec>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}
