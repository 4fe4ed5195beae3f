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
    let mut sampler = system::Sampler::default();
    tokio::spawn(run_system(hub.clone(), move || sampler.sample()));
    tokio::spawn(hub::run(hub.clone()));
}

/// Publishes one `sample` event per figure of the machine every second, with the time it was
/// taken.
///
/// Reading the figures is blocking file IO (`/proc`, `/sys`): 0.6–0.9 ms a second on the
/// development machine, most of it one file per interface and counter for the network. On a
/// runtime worker that stalled every stream the worker serves for as long, once a second; it
/// runs on tokio's blocking pool instead, and `read` travels there and back.
async fn run_system<R>(hub: Hub, mut read: R)
where
    R: FnMut() -> Vec<(system::Figure, system::Sample)> + Send + 'static,
{
    let stop = hub.shutdown_token();
    let mut tick = every_second();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let reading = tokio::task::spawn_blocking(move || {
            let samples = read();
            (read, samples)
        });
        let samples;
        (read, samples) = match reading.await {
            Ok(reading) => reading,
            Err(err) => {
                tracing::warn!(%err, "reading the machine's figures failed: no more samples");
                return;
            }
        };
        for (figure, sample) in samples {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_machine_is_read_off_the_runtime_and_every_figure_published() {
        let hub = Hub::new();
        let runtime_thread = std::thread::current().id();
        let (read_on, mut reads) = tokio::sync::mpsc::unbounded_channel();
        let source = tokio::spawn(run_system(hub.clone(), move || {
            let _ = read_on.send(std::thread::current().id());
            let sample = system::Sample {
                v: vec![1.0],
                text: "1".to_owned(),
            };
            vec![(system::Figure::Cpu, sample)]
        }));
        let thread = reads.recv().await.expect("a reading");
        assert_ne!(thread, runtime_thread, "read on the runtime's thread");
        let channel = system::Figure::Cpu.channel();
        let published = async {
            while hub.recent(channel, 1).await.map(|r| r.events.len()).ok() != Some(1) {
                tokio::task::yield_now().await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), published)
            .await
            .expect("the sample is published");
        source.abort();
    }
}
