//! The publisher: POSTs events at a fixed offered rate, each carrying its channel, a
//! per-channel sequence number and the send timestamp.
//!
//! Post number `n` goes to channel `n % channels` and is due at `start + n / rate`. Each
//! channel is served by exactly one worker connection, which posts its events one after the
//! other, so the server sees every channel's events in sequence order (a reorder seen by a
//! subscriber is then the server's doing, not the publisher's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio_util::sync::CancellationToken;

use crate::clock::now_us;
use crate::net::{Conn, HttpVersion, Target};

/// A post later than this after its due time counts as late.
const LATE: Duration = Duration::from_millis(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct PublishPlan {
    pub channels: Vec<String>,
    /// Offered posts per second over all channels.
    pub rate: f64,
    /// How many posts to offer in all.
    pub total: u64,
    /// First sequence number per channel.
    pub first_seq: Vec<u64>,
    /// Worker connections (at most one per channel).
    pub workers: usize,
}

impl PublishPlan {
    /// `events_per_channel` events on each channel at `rate` posts/s in all.
    pub fn per_channel(channels: Vec<String>, events_per_channel: u64, rate: f64) -> Self {
        let n = channels.len() as u64;
        Self {
            first_seq: vec![0; channels.len()],
            workers: channels.len().clamp(1, 8),
            channels,
            rate,
            total: events_per_channel * n,
        }
    }

    /// The plan's duration at its offered rate.
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.total as f64 / self.rate.max(1e-9))
    }
}

/// What the publisher did.
#[derive(Debug, Default, Clone)]
pub struct PublishReport {
    pub offered: u64,
    pub ok: u64,
    pub failed: u64,
    pub late: u64,
    pub elapsed: Duration,
    /// Per channel: the sequence numbers that were posted successfully.
    pub published: Vec<Vec<u64>>,
    /// Per channel: the id the server gave the last event.
    pub last_id: Vec<Option<String>>,
    pub errors: Vec<String>,
}

impl PublishReport {
    /// Successful posts per second, over the time publishing took.
    pub fn achieved_rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `plan` to the end (or until `cancel`).
pub async fn publish(
    target: &Arc<Target>,
    plan: &PublishPlan,
    cancel: &CancellationToken,
) -> PublishReport {
    let start = Instant::now();
    let channels = plan.channels.len().max(1);
    let workers = plan.workers.clamp(1, channels);
    let mut handles = Vec::new();
    for w in 0..workers {
        let target = target.clone();
        let plan = plan.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            worker(w, workers, &target, &plan, start, &cancel).await
        }));
    }
    let mut report = PublishReport {
        published: vec![Vec::new(); channels],
        last_id: vec![None; channels],
        ..Default::default()
    };
    for h in handles {
        match h.await {
            Ok(r) => {
                report.offered += r.offered;
                report.ok += r.ok;
                report.failed += r.failed;
                report.late += r.late;
                for (c, seqs) in r.published.into_iter().enumerate() {
                    if !seqs.is_empty() {
                        report.published[c] = seqs;
                        report.last_id[c] = r.last_id[c].clone();
                    }
                }
                report.errors.extend(r.errors);
            }
            Err(e) => report.errors.push(format!("publisher task failed: {e}")),
        }
    }
    report.errors.truncate(8);
    report.elapsed = start.elapsed();
    report
}

async fn worker(
    w: usize,
    workers: usize,
    target: &Target,
    plan: &PublishPlan,
    start: Instant,
    cancel: &CancellationToken,
) -> PublishReport {
    let channels = plan.channels.len().max(1);
    let mut rep = PublishReport {
        published: vec![Vec::new(); channels],
        last_id: vec![None; channels],
        ..Default::default()
    };
    let mut conn: Option<Conn> = None;
    for n in 0..plan.total {
        let c = (n % channels as u64) as usize;
        if c % workers != w {
            continue;
        }
        let due = start + Duration::from_secs_f64(n as f64 / plan.rate.max(1e-9));
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(due.into()) => {}
        }
        if Instant::now() > due + LATE {
            rep.late += 1;
        }
        rep.offered += 1;
        let seq = plan.first_seq.get(c).copied().unwrap_or(0) + n / channels as u64;
        match post_once(target, &mut conn, &plan.channels[c], c, seq).await {
            Ok(id) => {
                rep.ok += 1;
                rep.published[c].push(seq);
                rep.last_id[c] = Some(id);
            }
            Err(e) => {
                rep.failed += 1;
                conn = None;
                if rep.errors.len() < 4 {
                    rep.errors.push(format!("{e:#}"));
                }
            }
        }
    }
    rep
}

/// Posts one event; returns the id the server answered with.
pub async fn post_once(
    target: &Target,
    conn: &mut Option<Conn>,
    channel: &str,
    c: usize,
    seq: u64,
) -> Result<String> {
    if conn.as_ref().is_none_or(Conn::is_closed) {
        *conn = Some(Conn::open(target, None, HttpVersion::H1).await?);
    }
    let Some(open) = conn.as_mut() else {
        bail!("no connection");
    };
    let inner = format!(r#"{{"c":{c},"seq":{seq},"ts":{}}}"#, now_us());
    let body = serde_json::to_vec(&serde_json::json!({ "data": inner }))?;
    let mut req = target
        .request("POST", &format!("/api/channels/{channel}/events"), false)
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = &target.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Full::new(Bytes::from(body)))?;
    let fut = async {
        let resp = open.send(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if status != http::StatusCode::CREATED {
            bail!(
                "publish answered {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            );
        }
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| anyhow!("publish answer is not JSON ({e})"))?;
        match v.get("id") {
            Some(serde_json::Value::String(s)) => Ok(s.clone()),
            Some(other) => Ok(other.to_string()),
            None => bail!("publish answer has no id: {v}"),
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .map_err(|_| anyhow!("publish timed out"))?
}
