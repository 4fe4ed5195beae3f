//! Scenario 7: SIGTERM with open streams; the time until the process exits.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Result;

use super::runner::{channels, Outcome, Session};
use super::scale::Scale;
use crate::net::HttpVersion;
use crate::streams::StreamPlan;

pub(super) async fn measure(s: &mut Session, scale: &Scale, out: &mut Outcome) -> Result<()> {
    let limit = scale.shutdown_limit;
    let n = scale.shutdown_streams;
    let set = s
        .hold(StreamPlan::new(n, channels("down", 10), HttpVersion::H1))
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let connected = set.live.connected.load(Ordering::Relaxed);
    let took = s.server.terminate(limit).await;
    // Give the streams a moment to see their end.
    set.wait_until(Duration::from_secs(1), |l| {
        l.ended.load(Ordering::Relaxed) >= connected
    })
    .await;
    let ended = set.live.ended.load(Ordering::Relaxed);
    set.stop().await;
    let note = match took {
        Some(_) => format!("{connected} streams open; {ended} ended cleanly by the server"),
        None => format!(
            "{connected} streams open; still running after {} s, killed",
            limit.as_secs()
        ),
    };
    let value = Some(took.unwrap_or(limit).as_secs_f64());
    out.push("shutdown", "exit_time", value, "s", true, note);
    Ok(())
}
