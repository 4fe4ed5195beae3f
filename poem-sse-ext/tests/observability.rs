//! What an operator scrapes: the Prometheus exposition, read back with an independent parser.
//! (What an operator reads in the logs: tests/stream_logs.rs.)
#![cfg(feature = "prometheus")]

mod common;

use std::time::Duration;

use common::*;
use poem::Route;
use poem_sse_ext::Hub;

mod scrape {
    use super::*;
    use prometheus_parse::{Sample, Scrape, Value};

    /// Scrapes `url` as Prometheus does without OpenMetrics, and parses it.
    async fn scrape(url: &str) -> Scrape {
        let response = reqwest::get(url).await.expect("scrape");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().ok();
        assert_eq!(
            content_type,
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = response.text().await.expect("body");
        Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("parses")
    }

    fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<&Sample> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .collect();
        match found.as_slice() {
            [sample] => match &sample.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                other => panic!("{metric}: not a number: {other:?}"),
            },
            other => panic!("{metric}{labels:?}: {} samples", other.len()),
        }
    }

    /// A reader that missed events, one with a stale id, one that resumes, one refused, one
    /// gone: the scrape says each of these, hub-wide and for the channel.
    #[tokio::test]
    async fn a_scrape_counts_streams_resets_refusals_and_lag() {
        let hub = Hub::builder()
            .history(2)
            .max_streams(3)
            .heartbeat(Duration::from_millis(100))
            .build();
        let app = Route::new()
            .at("/events/:channel", hub.endpoint())
            .at("/metrics", hub.metrics_endpoint());
        let server = TestServer::start_with_hub(app, Some(hub.clone())).await;
        let url = server.url("/events/news");
        let mut ids = Vec::new();
        for n in 1..=4 {
            ids.push(publish(&hub, "news", &n.to_string()).await); // history 2: 1 and 2 evicted
        }

        let client = http1();
        let mut behind = connect(&client, &url, Some(&ids[0])).await;
        let mut stale = connect(&client, &url, Some("from-another-life")).await;
        let mut resuming = connect(&client, &url, Some(&ids[1])).await;
        let busy = connect(&client, &url, None).await; // over max_streams: a soft refusal
        assert_eq!(busy.header("content-type"), Some("text/event-stream"));
        drop(busy);
        let reset = behind.next_events(1, WAIT).await.expect("reset");
        assert_eq!(reset[0].event_type, "sse-reset");
        let reset = stale.next_events(1, WAIT).await.expect("reset");
        assert_eq!(reset[0].event_type, "sse-reset");
        assert_eq!(data_of(&mut resuming, 2).await, ["3", "4"]);
        publish(&hub, "news", "5").await;
        for reader in [&mut behind, &mut stale, &mut resuming] {
            assert_eq!(data_of(reader, 1).await, ["5"]);
        }
        drop(stale);
        wait_until(|| hub.open_streams() == 2).await;

        let m = scrape(&server.url("/metrics")).await;
        assert_eq!(value(&m, "sse_streams_open", &[]), 2.0);
        assert_eq!(value(&m, "sse_streams_opened_total", &[]), 3.0);
        let closed = |reason| value(&m, "sse_streams_closed_total", &[("reason", reason)]);
        assert_eq!(closed("client_gone"), 1.0);
        assert_eq!(closed("lifetime"), 0.0);
        let refused = value(
            &m,
            "sse_streams_refused_total",
            &[("reason", "max_streams")],
        );
        assert_eq!(refused, 1.0);
        assert_eq!(value(&m, "sse_events_published_total", &[]), 5.0);
        // Replayed "3" and "4" to one reader, then "5" live to three.
        assert_eq!(value(&m, "sse_events_delivered_total", &[]), 5.0);
        assert_eq!(value(&m, "sse_events_replayed_total", &[]), 2.0);
        let resets = |reason| value(&m, "sse_resets_total", &[("reason", reason)]);
        assert_eq!(
            (resets("evicted"), resets("unknown"), resets("epoch")),
            (1.0, 1.0, 0.0)
        );
        assert!(value(&m, "sse_sent_bytes_total", &[]) > 0.0);
        assert_eq!(value(&m, "sse_channels", &[]), 1.0);

        let news = [("channel", "news")];
        assert_eq!(value(&m, "sse_channel_streams_open", &news), 2.0);
        assert_eq!(value(&m, "sse_channel_events_published_total", &news), 5.0);
        let channel_resets = value(
            &m,
            "sse_channel_resets_total",
            &[("channel", "news"), ("reason", "evicted")],
        );
        assert_eq!(channel_resets, 1.0);

        // The live "5" was read once by each reader: three observations, each well under 5 s.
        let lag = m
            .samples
            .iter()
            .find(|s| s.metric == "sse_delivery_lag_seconds")
            .map(|s| s.value.clone());
        let Some(Value::Histogram(buckets)) = lag else {
            panic!("no delivery lag histogram: {lag:?}");
        };
        let within = |le: f64| buckets.iter().find(|b| b.less_than == le).map(|b| b.count);
        assert_eq!(within(f64::INFINITY), Some(3.0));
        assert_eq!(within(5.0), Some(3.0));
        server.stop().await;
    }

    /// Prometheus asks for OpenMetrics; the answer is complete (it ends with `# EOF`).
    #[tokio::test]
    async fn openmetrics_when_asked() {
        let hub = Hub::new();
        let app = Route::new().at("/metrics", hub.metrics_endpoint());
        let server = TestServer::start(app).await;
        let response = reqwest::Client::new()
            .get(server.url("/metrics"))
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .send()
            .await
            .expect("scrape");
        let content_type = response.headers()["content-type"]
            .to_str()
            .ok()
            .map(str::to_owned);
        let text = response.text().await.expect("body");
        assert_eq!(
            content_type.as_deref(),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("\nsse_streams_opened_total 0\n"), "{text}");
    }
}

/// Polls `condition` until it holds, for at most [`WAIT`].
async fn wait_until(mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
