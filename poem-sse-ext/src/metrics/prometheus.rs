//! Prometheus exposition of a [`Hub`]'s counters, with [`prometheus-client`] (feature
//! `prometheus`).
//!
//! [`HubCollector`] reads the hub's counters when it is scraped, and only then: publishing and
//! streaming cost nothing more than the relaxed atomics the hub keeps anyway. Serve it with
//! [`Hub::metrics_endpoint`], or register it in the application's own registry beside its other
//! metrics and serve that with [`MetricsEndpoint::new`]:
//!
//! ```
//! use poem::{Endpoint, Request, Route};
//! use poem_sse_ext::{metrics::prometheus::{HubCollector, MetricsEndpoint}, Event, Hub};
//! use prometheus_client::registry::Registry;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let hub = Hub::new();
//! let mut registry = Registry::default();
//! registry.register_collector(Box::new(HubCollector::new(&hub).top_channels(50)));
//! let app = Route::new()
//!     .at("/events/:channel", hub.endpoint())
//!     .at("/metrics", MetricsEndpoint::new(registry));
//!
//! hub.publish("prices", Event::text("1.08")).await?;
//! let scrape = app.call(Request::builder().uri_str("/metrics").finish()).await?;
//! let text = scrape.into_body().into_string().await?;
//! assert!(text.contains("sse_events_published_total 1\n"));
//! assert!(text.contains("sse_channel_events_published_total{channel=\"prices\"} 1\n"));
//! # Ok(())
//! # }
//! ```
//!
//! # Series
//!
//! Hub-wide (every series always present, so that `rate()` and `increase()` work from the first
//! scrape):
//!
//! | name | type | labels | what |
//! | --- | --- | --- | --- |
//! | `sse_streams_open` | gauge | | streams open now |
//! | `sse_streams_opened_total` | counter | | streams opened |
//! | `sse_streams_closed_total` | counter | `reason` | streams closed, per [`CloseReason`](crate::metrics::CloseReason) |
//! | `sse_streams_refused_total` | counter | `reason` | streams refused, per [`RefusalReason`](crate::hub::RefusalReason) (a reason appears once it happened) |
//! | `sse_events_published_total` | counter | | events published |
//! | `sse_events_delivered_total` | counter | | event frames handed to streams |
//! | `sse_events_replayed_total` | counter | | of those, history replayed on resume |
//! | `sse_resets_total` | counter | `reason` | `sse-reset` signals, per [`ResetReason`](crate::wire::ResetReason) |
//! | `sse_sent_bytes_total` | counter | | bytes of event frames handed to streams |
//! | `sse_delivery_lag_seconds` | histogram | | how long live events waited before a stream read them ([`crate::metrics::DeliveryLag`]) |
//! | `sse_channels` | gauge | | channels registered now |
//!
//! Per channel, for the [`HubCollector::top_channels`] channels with the most open streams (100
//! by default), so that the number of series stays bounded however many channels exist:
//! `sse_channel_streams_open`, `sse_channel_events_published_total`,
//! `sse_channel_events_delivered_total`, `sse_channel_events_replayed_total`,
//! `sse_channel_resets_total` (with `reason`) and `sse_channel_sent_bytes_total`, each labelled
//! `channel`. A channel's counters start again from zero when the hub forgets it (no stream, no
//! retained event) and registers it anew; Prometheus treats that as a counter reset.
//!
//! [`prometheus-client`]: https://docs.rs/prometheus-client

use std::sync::Arc;

use poem::{http::header, Endpoint, Request, Response};
use prometheus_client::{
    collector::Collector,
    encoding::{self, DescriptorEncoder, EncodeMetric, NoLabelSet},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::{Registry, Unit},
};

use crate::{
    hub::Hub,
    metrics::{ChannelMetrics, HubMetrics, LAG_BUCKETS},
};

/// The per-channel series [`HubCollector`] writes by default: for the 100 busiest channels.
pub const DEFAULT_TOP_CHANNELS: usize = 100;

impl Hub {
    /// A poem endpoint that answers a Prometheus scrape with this hub's metrics alone (see
    /// [`crate::metrics::prometheus`]): mount it with `Route::new().at("/metrics", hub.metrics_endpoint())`.
    #[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
    pub fn metrics_endpoint(&self) -> MetricsEndpoint {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HubCollector::new(self)));
        MetricsEndpoint::new(registry)
    }
}

/// A [`Collector`] that reads a [`Hub`]'s counters at scrape time.
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
#[derive(Debug, Clone)]
pub struct HubCollector {
    hub: Hub,
    top_channels: usize,
}

impl HubCollector {
    /// Collects `hub`'s metrics, with per-channel series for its [`DEFAULT_TOP_CHANNELS`]
    /// busiest channels.
    pub fn new(hub: &Hub) -> Self {
        Self {
            hub: hub.clone(),
            top_channels: DEFAULT_TOP_CHANNELS,
        }
    }

    /// Writes per-channel series for the `n` channels with the most open streams (ties broken by
    /// name); `0` writes none. Every series costs the Prometheus server memory: keep `n` to what
    /// a dashboard shows.
    #[must_use]
    pub fn top_channels(mut self, n: usize) -> Self {
        self.top_channels = n;
        self
    }
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let metrics = self.hub.metrics();
        encode_hub(&mut encoder, &metrics, self.hub.channel_count())?;
        encode_channels(&mut encoder, &busiest(&metrics, self.top_channels))
    }
}

/// A poem endpoint that answers a scrape with a [`Registry`]: the OpenMetrics text format when
/// the scraper asks for it (`Accept: application/openmetrics-text`, as Prometheus does), the
/// Prometheus text format 0.0.4 otherwise.
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
#[derive(Debug, Clone)]
pub struct MetricsEndpoint {
    registry: Arc<Registry>,
}

impl MetricsEndpoint {
    /// Serves `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry: Arc::new(registry),
        }
    }
}

impl Endpoint for MetricsEndpoint {
    type Output = Response;

    /// # Errors
    /// `405` with `Allow: GET` for any other method (mount it as it is, not inside `get()`).
    /// Otherwise none in practice: encoding into a `String` does not fail; if a collector fails,
    /// the answer is `500`.
    async fn call(&self, req: Request) -> poem::Result<Response> {
        crate::http::endpoint::only(&req, poem::http::Method::GET, "a scrape answers GET")?;
        let openmetrics = req
            .header(header::ACCEPT)
            .is_some_and(|accept| accept.contains("application/openmetrics-text"));
        let mut body = String::with_capacity(4096);
        let (encoded, content_type) = if openmetrics {
            (
                encoding::text::encode(&mut body, &self.registry),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        } else {
            (
                encoding::prometheus_text::encode(&mut body, &self.registry),
                encoding::prometheus_text::CONTENT_TYPE,
            )
        };
        encoded.map_err(|_| {
            poem::Error::from_string(
                "a metrics collector failed to encode",
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        })?;
        Ok(Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "no-store")
            .body(body))
    }
}

fn encode_hub(
    encoder: &mut DescriptorEncoder,
    metrics: &HubMetrics,
    channels: usize,
) -> Result<(), std::fmt::Error> {
    let total = &metrics.total;
    gauge(
        encoder,
        "sse_streams_open",
        "Streams open now",
        total.open_streams,
    )?;
    counter(
        encoder,
        "sse_streams_opened",
        "Streams opened",
        None,
        metrics.opened,
    )?;
    let closed: Vec<(&str, u64)> = metrics
        .closed_by_reason
        .iter()
        .map(|(reason, n)| (reason.as_str(), n))
        .collect();
    by_reason(
        encoder,
        "sse_streams_closed",
        "Streams closed, by reason",
        &closed,
    )?;
    // A refusal reason appears once it happened, as before the counts were typed.
    let refused: Vec<(&str, u64)> = metrics
        .refused_by_reason
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(reason, n)| (reason.as_str(), n))
        .collect();
    by_reason(
        encoder,
        "sse_streams_refused",
        "Streams refused, by reason",
        &refused,
    )?;
    counter(
        encoder,
        "sse_events_published",
        "Events published",
        None,
        total.published,
    )?;
    counter(
        encoder,
        "sse_events_delivered",
        "Event frames handed to streams, replayed and live",
        None,
        total.delivered,
    )?;
    counter(
        encoder,
        "sse_events_replayed",
        "Event frames replayed from history on resume",
        None,
        total.replayed,
    )?;
    let resets: Vec<(&str, u64)> = total
        .resets_by_reason
        .iter()
        .map(|(reason, n)| (reason.as_str(), n))
        .collect();
    by_reason(
        encoder,
        "sse_resets",
        "sse-reset signals sent, by reason",
        &resets,
    )?;
    counter(
        encoder,
        "sse_sent",
        "Bytes of event frames handed to streams",
        Some(&Unit::Bytes),
        total.bytes_sent,
    )?;
    lag_histogram(encoder, metrics)?;
    gauge(encoder, "sse_channels", "Channels registered now", channels)
}

fn encode_channels(
    encoder: &mut DescriptorEncoder,
    channels: &[(&str, &ChannelMetrics)],
) -> Result<(), std::fmt::Error> {
    type Field = fn(&ChannelMetrics) -> u64;
    let counters: [(&str, &str, Option<&Unit>, Field); 4] = [
        (
            "sse_channel_events_published",
            "Events published on the channel",
            None,
            |c| c.published,
        ),
        (
            "sse_channel_events_delivered",
            "Event frames of the channel handed to streams",
            None,
            |c| c.delivered,
        ),
        (
            "sse_channel_events_replayed",
            "Event frames of the channel replayed from history",
            None,
            |c| c.replayed,
        ),
        (
            "sse_channel_sent",
            "Bytes of the channel's event frames handed to streams",
            Some(&Unit::Bytes),
            |c| c.bytes_sent,
        ),
    ];
    let help = "Streams open now on the channel (the busiest channels only)";
    let mut family =
        encoder.encode_descriptor("sse_channel_streams_open", help, None, MetricType::Gauge)?;
    for (name, channel) in channels {
        let labels = [("channel", *name)];
        ConstGauge::new(channel.open_streams as u64).encode(family.encode_family(&labels)?)?;
    }
    for (metric, help, unit, field) in counters {
        let mut family = encoder.encode_descriptor(metric, help, unit, MetricType::Counter)?;
        for (name, channel) in channels {
            let labels = [("channel", *name)];
            ConstCounter::new(field(channel)).encode(family.encode_family(&labels)?)?;
        }
    }
    let help = "sse-reset signals sent on the channel, by reason";
    let mut family =
        encoder.encode_descriptor("sse_channel_resets", help, None, MetricType::Counter)?;
    for (name, channel) in channels {
        for (reason, n) in channel.resets_by_reason.iter() {
            let labels = [("channel", *name), ("reason", reason.as_str())];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// The `n` channels with the most open streams, by name.
fn busiest(metrics: &HubMetrics, n: usize) -> Vec<(&str, &ChannelMetrics)> {
    let mut channels: Vec<(&str, &ChannelMetrics)> = metrics
        .channels
        .iter()
        .map(|(name, channel)| (name.as_str(), channel))
        .collect();
    let order = |a: &(&str, &ChannelMetrics), b: &(&str, &ChannelMetrics)| {
        b.1.open_streams.cmp(&a.1.open_streams).then(a.0.cmp(b.0))
    };
    if channels.len() > n {
        if n == 0 {
            return Vec::new();
        }
        // Linear: a scrape of a hub with a million channels sorts only the `n` it keeps.
        channels.select_nth_unstable_by(n - 1, order);
        channels.truncate(n);
    }
    channels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    channels
}

fn lag_histogram(
    encoder: &mut DescriptorEncoder,
    metrics: &HubMetrics,
) -> Result<(), std::fmt::Error> {
    let lag = &metrics.delivery_lag;
    // The encoder takes each bucket's own count and accumulates them itself.
    let mut buckets = Vec::with_capacity(LAG_BUCKETS.len() + 1);
    let mut below = 0;
    for (bound, within) in LAG_BUCKETS.iter().zip(&lag.within) {
        buckets.push((bound.as_secs_f64(), within.saturating_sub(below)));
        below = *within;
    }
    buckets.push((f64::INFINITY, lag.count.saturating_sub(below)));
    let help = "How long live events waited in the log before a stream read them (once per chunk)";
    encoder
        .encode_descriptor(
            "sse_delivery_lag",
            help,
            Some(&Unit::Seconds),
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(lag.sum_micros as f64 / 1e6, lag.count, &buckets, None)
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: usize,
) -> Result<(), std::fmt::Error> {
    let metric = ConstGauge::new(value as u64);
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = ConstCounter::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

fn by_reason(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (reason, n) in counts {
        let labels = [("reason", *reason)];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(open_streams: usize) -> ChannelMetrics {
        ChannelMetrics {
            open_streams,
            ..ChannelMetrics::default()
        }
    }

    #[test]
    fn only_the_busiest_channels_get_series() {
        let mut metrics = HubMetrics::default();
        for (name, open) in [("a", 1), ("b", 5), ("c", 3), ("d", 5), ("e", 0)] {
            metrics.channels.insert(name.into(), channel(open));
        }
        let names = |n| -> Vec<&str> { busiest(&metrics, n).into_iter().map(|c| c.0).collect() };
        assert_eq!(names(3), ["b", "c", "d"]);
        assert_eq!(names(2), ["b", "d"]);
        assert_eq!(names(9), ["a", "b", "c", "d", "e"]);
        assert!(names(0).is_empty());
    }

    #[test]
    fn writes_a_complete_exposition() {
        let hub = Hub::new();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(HubCollector::new(&hub)));
        let mut text = String::new();
        assert!(encoding::text::encode(&mut text, &registry).is_ok());
        for line in [
            "sse_streams_closed_total{reason=\"client_gone\"} 0",
            "sse_resets_total{reason=\"evicted\"} 0",
            "sse_delivery_lag_seconds_bucket{le=\"+Inf\"} 0",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
    }
}
