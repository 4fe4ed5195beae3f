//! The task that watches a run: its time limit, an end stored by another instance, and its time
//! to live, after which the run is forgotten.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use futures_util::StreamExt;

use super::{
    end::{end_of_terminal_frame, EndReason, RunEnd},
    handle::Run,
    RunsInner,
};
use crate::hub::Hub;

/// Watches `run` until it is forgotten: ends it as failed when it runs past the time limit,
/// notes an end stored by another instance sharing the store, and forgets the run its time to
/// live after it ended. Holds the registry weakly, and ends with it.
pub(super) async fn watch(runs: Weak<RunsInner>, run: Arc<Run>) {
    let Some((alive, limit, ttl, foreign)) = runs.upgrade().map(|inner| {
        let foreign = inner
            .shared_store
            .then(|| foreign_end(inner.hub.clone(), Arc::clone(&run)));
        (
            inner.alive.clone(),
            inner.max_duration,
            inner.limits.ttl,
            foreign,
        )
    }) else {
        return;
    };
    let over_time = async {
        match limit {
            Some(limit) => tokio::time::sleep(limit).await,
            None => std::future::pending().await,
        }
    };
    let elsewhere = async {
        match foreign {
            Some(watching) => watching.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = run.wait_ended() => {}
        () = over_time => {
            let limit = limit.unwrap_or_default();
            let message = format!("the run passed its time limit of {limit:?}");
            let _ = run.end(EndReason::Failed, Some(message)).await;
        }
        () = elsewhere => {}
        () = alive.cancelled() => return,
    }
    tokio::select! {
        () = tokio::time::sleep(ttl) => {}
        () = alive.cancelled() => return,
    }
    if let Some(inner) = runs.upgrade() {
        inner.retire(&run).await;
    }
}

/// Completes once `run`'s log holds an end this process did not write, after noting it on the
/// run. Reads the log as a follower does; a store that fails is asked again every second.
async fn foreign_end(hub: Hub, run: Arc<Run>) {
    let Some(start) = run.start.get().cloned() else {
        return std::future::pending().await;
    };
    loop {
        let mut log = match hub.subscribe(&run.channel, Some(start.as_str())).await {
            Ok(log) => log,
            Err(err) => {
                tracing::debug!(run = %run.id, %err, "run watcher can not read the log yet");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(chunk) = log.next().await {
            let Some(end) = end_of_terminal_frame(&chunk) else {
                continue;
            };
            // Our own end too: then the run has ended already, and nothing changes.
            if let Some((id, end)) = RunEnd::from_terminal_frame(&chunk[..end]) {
                run.ended_elsewhere(id, end).await;
            }
            return;
        }
        if hub.is_shutting_down() {
            // Nothing more to read; the watcher ends with the registry.
            return std::future::pending().await;
        }
        // The stream ended on purpose (its lifetime): read again.
    }
}
