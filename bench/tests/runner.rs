//! The scenario frame: whatever a measurement does, the server it ran against is gone after.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use bench::scenarios::{Ctx, Scale};
use bench::server::{health, Launcher, ServerSpec};

fn ctx(name: &str) -> Ctx {
    let log_dir: PathBuf =
        std::env::temp_dir().join(format!("bench-runner-{name}-{}", std::process::id()));
    Ctx {
        launcher: Launcher { pin: None, log_dir },
        scale: Scale::smoke(),
    }
}

fn peer_poem() -> ServerSpec {
    ServerSpec::h2c(
        "poem SSE",
        [env!("CARGO_BIN_EXE_peer-poem"), "--listen", "{addr}"]
            .map(String::from)
            .to_vec(),
    )
}

/// Whether the process is gone (reaped: its /proc entry is removed).
fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test]
async fn the_server_is_stopped_when_the_measurement_fails() {
    let ctx = ctx("fails");
    let mut pid = 0;
    let result: anyhow::Result<()> = ctx
        .with_server(&peer_poem(), false, async |s| {
            pid = s.server.pid;
            if !health(&s.target).await {
                bail!("the server did not answer /healthz");
            }
            bail!("the measurement failed")
        })
        .await;
    let err = result.expect_err("the measurement's error comes back");
    assert_eq!(err.to_string(), "the measurement failed");
    assert!(pid != 0 && gone(pid), "server {pid} still runs");
    let _ = std::fs::remove_dir_all(&ctx.launcher.log_dir);
}

#[tokio::test]
async fn a_measurement_may_terminate_the_server_itself() {
    let ctx = ctx("terminates");
    let mut pid = 0;
    let took = ctx
        .with_server(&peer_poem(), false, async |s| {
            pid = s.server.pid;
            Ok(s.server.terminate(Duration::from_secs(10)).await)
        })
        .await
        .unwrap_or_else(|e| panic!("measurement: {e:#}"));
    assert!(took.is_some(), "an idle peer exits on SIGTERM");
    assert!(gone(pid), "server {pid} still runs");
    let _ = std::fs::remove_dir_all(&ctx.launcher.log_dir);
}
