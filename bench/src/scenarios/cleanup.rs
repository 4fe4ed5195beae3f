//! Scenario 8: clients vanish; the time until the server's metrics stop counting them.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::runner::{channels, Outcome, Session};
use super::scale::Scale;
use crate::net::HttpVersion;
use crate::server::open_streams;
use crate::streams::StreamPlan;

/// How long the server may keep counting streams whose clients are gone.
const LIMIT: Duration = Duration::from_secs(60);

pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    let (value, note) = forget_time(s, scale, &mut out.errors).await?;
    out.push("cleanup", "cleanup_time", value, "s", true, note);
    Ok(())
}

/// Seconds until `open_streams` is back to its earlier value after the clients vanished
/// (`None`: not measurable), and a note. A server that never forgets is also an error.
async fn forget_time(
    s: &Session,
    scale: &Scale,
    errors: &mut Vec<String>,
) -> Result<(Option<f64>, String)> {
    let target = &s.target;
    let Some(base) = open_streams(target).await? else {
        return Ok((None, "no stream metrics endpoint".into()));
    };
    let set = s
        .hold(StreamPlan::new(
            scale.cleanup_streams,
            channels("gone", 10),
            HttpVersion::H1,
        ))
        .await;
    let connected = set.live.connected.load(Ordering::Relaxed) as u64;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut counted = 0;
    while Instant::now() < deadline {
        counted = open_streams(target).await?.unwrap_or(0);
        if counted >= base + connected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if counted < base + connected {
        set.stop().await;
        return Ok((
            None,
            format!("metrics counted only {counted} of {connected} open streams"),
        ));
    }
    // The clients vanish: their sockets close without a goodbye on the HTTP level.
    let t0 = Instant::now();
    set.stop().await;
    loop {
        let now = open_streams(target).await?.unwrap_or(0);
        if now <= base {
            return Ok((
                Some(t0.elapsed().as_secs_f64()),
                format!("{connected} streams closed by the client (FIN)"),
            ));
        }
        if t0.elapsed() > LIMIT {
            errors.push(format!(
                "cleanup: metrics still count {now} streams after {} s",
                LIMIT.as_secs()
            ));
            return Ok((
                Some(LIMIT.as_secs_f64()),
                format!("still counting {now} after {} s", LIMIT.as_secs()),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
