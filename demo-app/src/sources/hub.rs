//! The hub's own metrics for the `/hub` page, published every second: the totals on [`CHANNEL`],
//! the busiest channels on [`TOP_CHANNEL`].
//!
//! What is published and rendered is bounded whatever the number of channels: the totals, and
//! [`TOP_ROWS`] rows of the channels with the most open streams (then the most events), with a
//! count of the rest. Only the shown rows' head ids are read from the store; a channel nobody
//! watches costs one entry of the counter snapshot ([`Hub::metrics`]) and no store call.

use std::{
    cmp::Reverse,
    time::{Duration, Instant},
};

use poem_sse_ext::{metrics::ChannelMetrics, Hub};
use serde::{Deserialize, Serialize};

use crate::session::is_private;

use super::{every_second, publish_json, rate::SlidingRate, stamped::Stamped};

/// The window [`HubSample::events_per_sec`] is averaged over.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// The channel the totals are published on, as [`HubSample`]s in `metrics` events (each
/// [`Stamped`] with the time it was taken).
pub const CHANNEL: &str = "hub";

/// The event name of a [`HubSample`].
pub const EVENT: &str = "metrics";

/// The channel the busiest channels are published on, as [`TopChannels`] in `channels` events.
pub const TOP_CHANNEL: &str = "hub.top";

/// The event name of a [`TopChannels`].
pub const TOP_EVENT: &str = "channels";

/// Rows of [`TopChannels`]: the most channels shown, however many there are.
pub const TOP_ROWS: usize = 20;

/// One second of the hub's totals, as published and as the `/hub` page reads it back.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HubSample {
    /// Open streams, over all channels.
    pub open_streams: usize,
    /// Events published per second over the last [`RATE_WINDOW`] (the hub page's own not
    /// counted).
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
    /// Channels the hub holds now.
    pub channels: usize,
}

/// The busiest channels, as published and as the `/hub` page reads it back.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TopChannels {
    /// At most [`TOP_ROWS`] public channels (never a private `user.<name>`), the most open
    /// streams first, then the most events published.
    pub rows: Vec<ChannelRow>,
    /// Public channels not shown.
    pub more: usize,
}

/// One channel's row of the `/hub` page's table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
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

/// Publishes a [`HubSample`] and [`TopChannels`] every second, and logs a summary every minute.
pub async fn run(hub: Hub) {
    let stop = hub.shutdown_token();
    let mut tick = every_second();
    let mut rate = SlidingRate::new(RATE_WINDOW);
    let mut ticks = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let metrics = hub.metrics();
        // The hub page's own events are not counted in the rate it reports.
        let own: u64 = [CHANNEL, TOP_CHANNEL]
            .iter()
            .filter_map(|name| metrics.channels.get(*name))
            .map(|c| c.published)
            .sum();
        let published = metrics.total.published.saturating_sub(own);
        rate.record(Instant::now(), published);
        let per_second = rate.per_second();
        let total = metrics.total;
        let sample = HubSample {
            open_streams: total.open_streams,
            events_per_sec: (per_second * 10.0).round() / 10.0,
            published: total.published,
            delivered: total.delivered,
            replayed: total.replayed,
            resets: total.resets,
            rejected: metrics.refused,
            bytes_sent: total.bytes_sent,
            channels: metrics.channels.len(),
        };
        // Everyone reads this channel: a private channel's name says who signed in, so none is
        // listed (they count in `channels` alone).
        let listed = metrics
            .channels
            .into_iter()
            .filter(|(name, _)| !is_private(name));
        let (busiest, more) = busiest(listed.collect(), TOP_ROWS);
        let mut rows = Vec::with_capacity(busiest.len());
        for (name, channel) in busiest {
            let head = hub.head(&name).await.map(|id| id.to_string()).ok();
            rows.push(ChannelRow {
                name,
                open_streams: channel.open_streams,
                published: channel.published,
                head,
            });
        }
        if let Err(err) = publish_json(&hub, CHANNEL, EVENT, &Stamped::now(&sample)).await {
            tracing::warn!(%err, "publishing hub metrics failed");
        }
        let top = TopChannels { rows, more };
        if let Err(err) = publish_json(&hub, TOP_CHANNEL, TOP_EVENT, &top).await {
            tracing::warn!(%err, "publishing the busiest channels failed");
        }
        ticks += 1;
        if ticks.is_multiple_of(60) {
            tracing::info!(
                open_streams = total.open_streams,
                published = total.published,
                delivered = total.delivered,
                replayed = total.replayed,
                resets = total.resets,
                rejected = metrics.refused,
                channels = sample.channels,
                "hub summary"
            );
        }
    }
}

/// The `n` channels with the most open streams, then the most events published, then by name;
/// and how many others there are. Linear in the number of channels, without sorting them all.
fn busiest(
    mut channels: Vec<(String, ChannelMetrics)>,
    n: usize,
) -> (Vec<(String, ChannelMetrics)>, usize) {
    let order = |(a, x): &(String, ChannelMetrics), (b, y): &(String, ChannelMetrics)| {
        (Reverse(x.open_streams), Reverse(x.published), a).cmp(&(
            Reverse(y.open_streams),
            Reverse(y.published),
            b,
        ))
    };
    let more = channels.len().saturating_sub(n);
    if more > 0 {
        channels.select_nth_unstable_by(n, order);
        channels.truncate(n);
    }
    channels.sort_unstable_by(order);
    (channels, more)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str, open_streams: usize, published: u64) -> (String, ChannelMetrics) {
        let mut metrics = ChannelMetrics::default();
        metrics.open_streams = open_streams;
        metrics.published = published;
        (name.to_owned(), metrics)
    }

    #[test]
    fn the_busiest_channels_come_first_and_the_rest_are_counted() {
        let mut all: Vec<_> = (0..1_000)
            .map(|i| channel(&format!("c{i}"), 0, 1))
            .collect();
        all.push(channel("watched", 3, 0));
        all.push(channel("loud", 0, 500));
        all.push(channel("watched-more", 9, 0));
        let (top, more) = busiest(all, 3);
        let names: Vec<&str> = top.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["watched-more", "watched", "loud"]);
        assert_eq!(more, 1_000);
        let (top, more) = busiest(vec![channel("b", 0, 0), channel("a", 0, 0)], 3);
        assert_eq!((top[0].0.as_str(), top[1].0.as_str(), more), ("a", "b", 0));
    }
}
