//! The data the demo publishes: figures of the machine, and the hub's own metrics.
//!
//! Each source is a task that publishes once a second until the hub shuts down.

pub mod hub;
pub mod rate;
pub mod stamped;
pub mod system;

use std::time::Duration;

use poem_sse_ext::{Event, Hub, PublishError};
use tokio::time::{interval, MissedTickBehavior};

use self::stamped::Stamped;

/// Starts every source.
pub fn spawn(hub: &Hub) {
    tokio::spawn(run_system(hub.clone()));
    tokio::spawn(hub::run(hub.clone()));
}

/// Publishes one `sample` event per figure of the machine every second, with the time it was
/// taken.
async fn run_system(hub: Hub) {
    let stop = hub.shutdown_token();
    let mut sampler = system::Sampler::default();
    let mut tick = every_second();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        for (figure, sample) in sampler.sample() {
            let channel = figure.channel();
            let sample = Stamped::now(sample);
            if let Err(err) = publish_json(&hub, channel, "sample", &sample).await {
                tracing::warn!(channel, %err, "publishing a sample failed");
            }
        }
    }
}

/// A timer that ticks once a second and, when a tick is late, waits a full second after it.
fn every_second() -> tokio::time::Interval {
    let mut tick = interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tick
}

/// Publishes `data` as JSON in an event called `event`.
async fn publish_json(
    hub: &Hub,
    channel: &str,
    event: &str,
    data: &impl serde::Serialize,
) -> Result<(), PublishError> {
    hub.publish(channel, Event::json(data)?.event(event)?)
        .await
        .map(drop)
}
