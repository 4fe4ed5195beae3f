//! The hub's own metrics, published on the [`CHANNEL`] channel every second for the `/hub` page.

use poem_sse_ext::Hub;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{every_second, publish_json};

/// The channel the hub's metrics are published on, as `metrics` events of [`HubSample`]s.
pub const CHANNEL: &str = "hub";

/// The event name of a [`HubSample`].
pub const EVENT: &str = "metrics";

/// One second of the hub's metrics, as published and as the `/hub` page reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HubSample {
    /// Open streams, over all channels.
    pub open_streams: usize,
    /// Events published per second since the last sample (this channel's own not counted).
    pub events_per_sec: f64,
    /// Events published since the hub started.
    pub published: u64,
    /// Event frames handed to clients.
    pub delivered: u64,
    /// Of `delivered`, frames that were history when their stream subscribed.
    pub replayed: u64,
    /// Reset signals sent.
    pub resets: u64,
    /// Streams refused since the hub started.
    pub rejected: u64,
    /// Bytes of event frames handed to clients.
    pub bytes_sent: u64,
    /// The channels, by name.
    pub channels: Vec<ChannelRow>,
}

/// One channel's row of the `/hub` page's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRow {
    /// The channel.
    pub name: String,
    /// Streams open on it.
    pub open_streams: usize,
    /// Events published on it.
    pub published: u64,
    /// The id of its newest event, when it could be read.
    pub head: Option<String>,
}

/// Publishes a [`HubSample`] every second, and logs a summary every minute.
pub async fn run(hub: Hub) {
    let stop = hub.shutdown_token();
    let mut tick = every_second();
    let mut last: Option<(Instant, u64)> = None;
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let metrics = hub.metrics();
        // The hub channel's own events are not counted in the rate it reports.
        let own = metrics.channels.get(CHANNEL).map_or(0, |c| c.published);
        let published = metrics.total.published.saturating_sub(own);
        let now = Instant::now();
        let per_second = last.map_or(0.0, |(at, before)| {
            published.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64()
        });
        last = Some((now, published));
        let mut channels = Vec::with_capacity(metrics.channels.len());
        for (name, channel) in &metrics.channels {
            let head = hub.head(name).await.map(|id| id.to_string()).ok();
            channels.push(ChannelRow {
                name: name.clone(),
                open_streams: channel.open_streams,
                published: channel.published,
                head,
            });
        }
        let total = &metrics.total;
        let sample = HubSample {
            open_streams: total.open_streams,
            events_per_sec: (per_second * 10.0).round() / 10.0,
            published: total.published,
            delivered: total.delivered,
            replayed: total.replayed,
            resets: total.resets,
            rejected: metrics.rejected,
            bytes_sent: total.bytes_sent,
            channels,
        };
        if let Err(err) = publish_json(&hub, CHANNEL, EVENT, &sample).await {
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
