//! The data the demo publishes: figures of the machine, and the hub's own metrics.
//!
//! Each source is a task that publishes once a second until the hub shuts down.

pub mod system;

use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::{interval, Instant, MissedTickBehavior};

use crate::{live::Live, widgets};

/// Starts every source.
pub fn spawn(live: &Live) {
    tokio::spawn(run_system(live.clone()));
    tokio::spawn(run_hub_metrics(live.clone()));
}

/// Publishes one sample per dashboard channel every second.
async fn run_system(live: Live) {
    let stop = live.hub().shutdown_token();
    let mut sampler = system::Sampler::default();
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        for (channel, sample) in sampler.sample() {
            let data = json!(sample);
            if let Err(err) = live.publish(channel, Some("sample"), &data).await {
                tracing::warn!(channel, %err, "publishing a sample failed");
            }
        }
    }
}

/// Publishes the hub's metrics (with events per second and each channel's head id) every
/// second, and logs a summary every minute.
async fn run_hub_metrics(live: Live) {
    let stop = live.hub().shutdown_token();
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last: Option<(Instant, u64)> = None;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let hub = live.hub();
        let metrics = hub.metrics();
        // The hub channel's own events are not counted in the rate it reports.
        let own = metrics
            .channels
            .get(widgets::HUB)
            .map_or(0, |c| c.published);
        let published = metrics.total.published.saturating_sub(own);
        let now = Instant::now();
        let per_second = last.map_or(0.0, |(at, before)| {
            published.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()
        });
        last = Some((now, published));
        let mut channels = Vec::with_capacity(metrics.channels.len());
        for (name, channel) in &metrics.channels {
            let head = hub.head(name).await.map(|id| id.to_string()).ok();
            channels.push(json!({
                "name": name,
                "open_streams": channel.open_streams,
                "published": channel.published,
                "replayed": channel.replayed,
                "resets": channel.resets,
                "head": head,
            }));
        }
        let total = &metrics.total;
        let data: Value = json!({
            "open_streams": total.open_streams,
            "events_per_sec": (per_second * 10.0).round() / 10.0,
            "published": total.published,
            "delivered": total.delivered,
            "replayed": total.replayed,
            "resets": total.resets,
            "rejected": metrics.rejected,
            "bytes_sent": total.bytes_sent,
            "channels": channels,
        });
        if let Err(err) = live.publish(widgets::HUB, Some("metrics"), &data).await {
            tracing::warn!(%err, "publishing hub metrics failed");
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            tracing::info!(
                open_streams = total.open_streams,
                published = total.published,
                delivered = total.delivered,
                replayed = total.replayed,
                resets = total.resets,
                rejected = metrics.rejected,
                "hub summary"
            );
        }
    }
}
