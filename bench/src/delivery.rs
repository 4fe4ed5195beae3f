//! One delivery round against streams already held open: publish a plan, wait until every
//! stream should hold its events, then close the streams and judge what each received.
//!
//! `sse-bench run` and the load scenario are this round; the storm scenario closes its
//! resumed streams with [`close`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::integrity::Integrity;
use crate::net::Target;
use crate::publish::{publish, PublishPlan, PublishReport};
use crate::streams::StreamSet;

/// What the streams of a round received, judged against what was published.
pub struct Delivered {
    pub integrity: Integrity,
    /// Publish→receive latency in µs of the events with a sequence number.
    pub latency: Histogram<u64>,
    /// The first few errors the streams hit.
    pub stream_errors: Vec<String>,
}

/// Publishes `plan` on the channels `set` subscribes to (stream `i` on channel
/// `i % channels`), then waits up to `drain` until the streams counted every event they should
/// have. Latencies recorded before the round are discarded.
pub async fn publish_and_drain(
    set: &StreamSet,
    target: &Arc<Target>,
    plan: &PublishPlan,
    drain: Duration,
) -> PublishReport {
    set.live.take_latency();
    let report = publish(target, plan, &CancellationToken::new()).await;
    let channels = report.published.len().max(1);
    let expected: u64 = (0..set.len())
        .map(|i| report.published[i % channels].len() as u64)
        .sum();
    set.wait_until(drain, |l| l.events.load(Ordering::Relaxed) >= expected)
        .await;
    report
}

/// Closes every stream of `set` and checks them against `published` (per channel, the
/// sequence numbers really posted).
pub async fn close(set: StreamSet, published: &[Vec<u64>]) -> Delivered {
    let stream_errors = set.live.errors();
    let live = set.live.clone();
    let reports = set.stop().await;
    // Streams hand their last latencies over when they stop.
    let latency = live.take_latency();
    Delivered {
        integrity: Integrity::check(&reports, published),
        latency,
        stream_errors,
    }
}
