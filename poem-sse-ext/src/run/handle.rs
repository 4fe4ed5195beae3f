//! [`RunHandle`]: the producer's side of a run, and the state a run shares with its registry.

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::Duration,
};

use tokio::{sync::Mutex, time::Instant};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use super::{
    end::{EndReason, RunEnd},
    error::RunError,
    id::RunId,
};
use crate::{
    hub::Hub,
    wire::{Event, EventId},
};

/// The bounds of every run, from the [`RunsBuilder`](super::RunsBuilder).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunLimits {
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
    pub(crate) ttl: Duration,
}

/// One run, shared by its handle, its supervisor task and the registry.
pub(crate) struct Run {
    pub(crate) id: RunId,
    pub(crate) channel: String,
    hub: Hub,
    limits: RunLimits,
    /// The id of the start event: followers resume after it. Set before the run's id is handed
    /// out, so every lookup that finds the run finds it set.
    pub(crate) start: OnceLock<EventId>,
    /// Cancelled when the producer must stop: a cancel, a passed bound, the end, or shutdown.
    stop: CancellationToken,
    /// Cancelled once the run has ended (after `ended` is set).
    ended_signal: CancellationToken,
    /// Held across every append and the end, so that the end is the last event the run stores
    /// and the bounds are counted in the order the events are stored.
    progress: Mutex<Progress>,
    /// Set once, under `progress`, when the run ends; read without a lock.
    ended: OnceLock<Ended>,
}

#[derive(Default)]
struct Progress {
    events: usize,
    bytes: usize,
}

/// How and when a run ended in this process.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub(crate) end: RunEnd,
    /// The end event's id; `None` when the store failed to take it (the run still takes no more
    /// events).
    pub(crate) id: Option<EventId>,
    pub(crate) at: Instant,
}

impl Run {
    /// A run that stops when `shutdown` is cancelled.
    pub(crate) fn new(hub: Hub, limits: RunLimits, shutdown: &CancellationToken) -> Self {
        let id = RunId::random();
        Self {
            channel: id.channel(),
            id,
            hub,
            limits,
            start: OnceLock::new(),
            stop: shutdown.child_token(),
            ended_signal: CancellationToken::new(),
            progress: Mutex::default(),
            ended: OnceLock::new(),
        }
    }

    pub(crate) fn ended(&self) -> Option<&Ended> {
        self.ended.get()
    }

    /// Completes once the run has ended.
    pub(crate) async fn wait_ended(&self) {
        self.ended_signal.cancelled().await;
    }

    /// Stores `event` unless the run ended or the event would pass a bound (then the run ends as
    /// failed, saying which).
    async fn append(&self, event: &Event) -> Result<EventId, RunError> {
        let mut progress = self.progress.lock().await;
        if let Some(ended) = self.ended.get() {
            return Err(RunError::Ended {
                reason: ended.end.reason,
            });
        }
        let RunLimits {
            max_events,
            max_bytes,
            ..
        } = self.limits;
        let size = event.encode().len();
        if progress.events >= max_events {
            let message = format!("the run passed its bound of {max_events} events");
            let _ = self.end_locked(EndReason::Failed, Some(message)).await;
            return Err(RunError::TooManyEvents { limit: max_events });
        }
        if progress.bytes.saturating_add(size) > max_bytes {
            let message = format!("the run passed its bound of {max_bytes} bytes of events");
            let _ = self.end_locked(EndReason::Failed, Some(message)).await;
            return Err(RunError::TooManyBytes { limit: max_bytes });
        }
        let id = self.hub.publish(&self.channel, event.clone()).await?;
        progress.events += 1;
        progress.bytes += size;
        Ok(id)
    }

    /// Ends the run with `reason` unless it has ended already.
    ///
    /// # Errors
    /// [`RunError::Ended`] with the earlier reason, or the store's failure to take the end event
    /// (the run is ended here all the same: it takes no more events).
    pub(crate) async fn end(
        &self,
        reason: EndReason,
        message: Option<String>,
    ) -> Result<EventId, RunError> {
        if reason == EndReason::Cancelled {
            // Before waiting for an append in flight: the producer stops as soon as it looks.
            self.stop.cancel();
        }
        let _progress = self.progress.lock().await;
        self.end_locked(reason, message).await
    }

    /// Takes note of an end another instance stored (a cancel there): the producer is told to
    /// stop, and the run takes no more events. Nothing is stored.
    pub(crate) async fn ended_elsewhere(&self, id: EventId, end: RunEnd) {
        let _progress = self.progress.lock().await;
        if self.ended.get().is_some() {
            return; // our own end, or one noted already
        }
        self.stop.cancel();
        let reason = end.reason;
        let _ = self.ended.set(Ended {
            end,
            id: Some(id),
            at: Instant::now(),
        });
        self.ended_signal.cancel();
        tracing::debug!(run = %self.id, %reason, "run ended by another instance");
    }

    async fn end_locked(
        &self,
        reason: EndReason,
        message: Option<String>,
    ) -> Result<EventId, RunError> {
        if let Some(ended) = self.ended.get() {
            return Err(RunError::Ended {
                reason: ended.end.reason,
            });
        }
        self.stop.cancel();
        let end = RunEnd::new(reason, message, self.limits.ttl);
        let stored = self.hub.publish(&self.channel, end.event()).await;
        let ended = Ended {
            end,
            id: stored.as_ref().ok().cloned(),
            at: Instant::now(),
        };
        // Only set here, under `progress`: never set before.
        let _ = self.ended.set(ended);
        self.ended_signal.cancel();
        tracing::debug!(run = %self.id, %reason, stored = stored.is_ok(), "run ended");
        Ok(stored?)
    }
}

/// The producer's side of a run: append its events, watch for a cancel, and finish it.
///
/// Move it into the task that produces the run (it outlives the request that started it). A
/// follower's disconnect never stops it; [`Runs::cancel`](super::Runs::cancel) does, and so do a
/// passed bound and the hub's shutdown: [`RunHandle::cancelled`] completes, and appends fail.
///
/// Dropping the handle without [`finish`](RunHandle::finish) or [`fail`](RunHandle::fail) (a
/// producer that panicked, say) ends the run as [`EndReason::Failed`], so that its followers are
/// not left waiting.
///
/// ```
/// use poem_sse_ext::{run::{EndReason, Runs}, Event};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), poem_sse_ext::run::RunError> {
/// let runs = Runs::new();
/// let run = runs.start().await?;
/// let id = run.id().clone();
/// let producer = tokio::spawn(async move {
///     for word in ["Hello", ",", " world"] {
///         tokio::select! {
///             _ = run.cancelled() => return,
///             appended = run.append(Event::text(word)) => if appended.is_err() { return },
///         }
///     }
///     let _ = run.finish(EndReason::Done).await;
/// });
/// let _ = producer.await;
/// let snapshot = runs.snapshot(id.as_str()).await?;
/// assert_eq!(snapshot.text(), "Hello, world");
/// assert_eq!(snapshot.end.map(|end| end.reason), Some(EndReason::Done));
/// # Ok(())
/// # }
/// ```
pub struct RunHandle {
    run: Arc<Run>,
    finished: bool,
}

impl RunHandle {
    pub(crate) fn new(run: Arc<Run>) -> Self {
        Self {
            run,
            finished: false,
        }
    }

    /// The run's id.
    pub fn id(&self) -> &RunId {
        &self.run.id
    }

    /// Appends `event` to the run and returns its id.
    ///
    /// # Errors
    /// [`RunError::Ended`] once the run has ended (it was cancelled, say);
    /// [`RunError::TooManyEvents`] or [`RunError::TooManyBytes`] when the event would pass a
    /// bound (the run then ends as failed); [`RunError::Publish`] for an event with an id, or a
    /// store failure (the run goes on: retry or fail it).
    pub async fn append(&self, event: Event) -> Result<EventId, RunError> {
        self.run.append(&event).await
    }

    /// Ends the run with `reason` (normally [`EndReason::Done`]): its followers receive the end
    /// event and their streams end.
    ///
    /// # Errors
    /// [`RunError::Ended`] when the run had ended already (a cancel came first, say; its reason
    /// stands), or the store's failure to take the end event.
    pub async fn finish(mut self, reason: EndReason) -> Result<EventId, RunError> {
        self.finished = true;
        self.run.end(reason, None).await
    }

    /// Ends the run as [`EndReason::Failed`], with `message` for its followers.
    ///
    /// # Errors
    /// As [`RunHandle::finish`].
    pub async fn fail(mut self, message: impl Into<String>) -> Result<EventId, RunError> {
        self.finished = true;
        self.run.end(EndReason::Failed, Some(message.into())).await
    }

    /// Completes when the producer must stop: the run was cancelled, passed a bound or ended, or
    /// the hub is shutting down. Select on it beside the producer's own work.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.run.stop.cancelled()
    }

    /// Whether the producer must stop (see [`RunHandle::cancelled`]).
    pub fn is_cancelled(&self) -> bool {
        self.run.stop.is_cancelled()
    }

    /// A token cancelled when the producer must stop, to hand to code that takes one.
    pub fn cancellation_token(&self) -> CancellationToken {
        self.run.stop.child_token()
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if self.finished || self.run.ended().is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let run = Arc::clone(&self.run);
        runtime.spawn(async move {
            let message = "the producer gave the run up without finishing it".to_owned();
            let _ = run.end(EndReason::Failed, Some(message)).await;
        });
    }
}

impl fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle")
            .field("id", &self.run.id)
            .field("cancelled", &self.is_cancelled())
            .field("ended", &self.run.ended().map(|e| e.end.reason))
            .finish()
    }
}
