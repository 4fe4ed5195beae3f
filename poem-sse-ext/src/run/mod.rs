//! Runs: finite streams with a beginning, an end, and a producer that outlives the request that
//! started it (an LLM's answer, a build log, an export's progress).
//!
//! A run is a channel of a hub of its own (`run.<id>`, the id 128 random bits) whose log keeps
//! the whole run: any number of followers read it from the start, from any id, or from where a
//! server-rendered page left it, and reconnect exactly after a reload or a network failure. The
//! producer ends it with [`END_EVENT`] (`done`, `cancelled` or `failed`); a follower's stream ends
//! after it, and a follower that reconnects with its id gets `204 No Content`, which closes a
//! native `EventSource` for good. A follower that disconnects never stops the producer; only
//! [`Runs::cancel`] (or a passed bound, or shutdown) does.
//!
//! ```
//! use std::time::Duration;
//! use poem::{get, post, Route};
//! use poem_sse_ext::{run::{EndReason, Runs}, Event};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), poem_sse_ext::run::RunError> {
//! let runs = Runs::builder()
//!     .max_runs(100)                   // held at once, running or readable
//!     .max_events(5_000)               // per run; the next append fails the run
//!     .ttl(Duration::from_secs(600))   // readable this long after the end
//!     .build();
//! let app = Route::new()
//!     .at("/runs/:id/events", runs.endpoint())
//!     .at("/api/runs/:id/cancel", runs.cancel_endpoint());
//!
//! // In the handler that starts a run: hand the producer its handle, answer with the id.
//! let run = runs.start().await?;
//! let id = run.id().clone();
//! tokio::spawn(async move {
//!     for n in 0..3 {
//!         tokio::select! {
//!             _ = run.cancelled() => return, // Stop was pressed: the run already says so
//!             _ = tokio::time::sleep(Duration::from_millis(10)) => {}
//!         }
//!         if run.append(Event::text(format!("token {n} "))).await.is_err() {
//!             return;
//!         }
//!     }
//!     let _ = run.finish(EndReason::Done).await;
//! });
//! # let _ = app;
//! # tokio::time::sleep(Duration::from_millis(100)).await;
//! # let snapshot = runs.snapshot(id.as_str()).await?;
//! # assert_eq!(snapshot.text(), "token 0 token 1 token 2 ");
//! # Ok(())
//! # }
//! ```
//!
//! Every instance sharing a store ([`RunsBuilder::store`]) can serve a run: that it exists,
//! whether it ended and why, and until when it stays readable are all in its log. A cancel on any
//! instance stops the producer where it runs: with a store given to the builder, each running
//! run's watcher reads the run's log (one open stream of the runs' hub per running run).

mod builder;
mod end;
mod endpoint;
mod error;
mod follow;
mod handle;
mod id;
mod registry;
mod store;
mod watch;

use std::{fmt, sync::Arc, time::Duration};

use tokio_util::sync::{CancellationToken, DropGuard};

pub use self::{
    builder::RunsBuilder,
    end::{EndReason, RunEnd, END_EVENT, MAX_END_MESSAGE_LEN, START_EVENT},
    endpoint::{RunCancelEndpoint, RunEndpoint},
    error::RunError,
    follow::{Follow, RunFollower, RunSnapshot},
    handle::RunHandle,
    id::{RunId, RUN_CHANNEL_PREFIX},
};
use self::{
    handle::{Run, RunLimits},
    registry::Registry,
    store::RetiredFlags,
};
use crate::hub::Hub;

/// What the builder settles besides the hub.
pub(crate) struct Settings {
    pub(crate) limits: RunLimits,
    pub(crate) max_runs: usize,
    pub(crate) max_duration: Option<Duration>,
    pub(crate) shared_store: bool,
}

/// The runs of an app: start them, follow them, cancel them. Cheap to clone (an `Arc`).
///
/// Built by [`Runs::builder`]; see the [module documentation](self) for an example.
#[derive(Clone)]
pub struct Runs {
    inner: Arc<RunsInner>,
}

pub(crate) struct RunsInner {
    hub: Hub,
    registry: Registry,
    flags: Arc<RetiredFlags>,
    limits: RunLimits,
    max_duration: Option<Duration>,
    /// Whether other instances may share the store (one was given to the builder): then each
    /// run's watcher reads its log for an end stored elsewhere (a cancel on another instance).
    shared_store: bool,
    /// Cancelled when the last `Runs` is dropped: ends the tasks that watch the runs.
    alive: CancellationToken,
    _alive: DropGuard,
}

impl Runs {
    pub(crate) fn from_parts(hub: Hub, flags: Arc<RetiredFlags>, settings: Settings) -> Self {
        let alive = CancellationToken::new();
        Self {
            inner: Arc::new(RunsInner {
                hub,
                registry: Registry::new(settings.max_runs),
                flags,
                limits: settings.limits,
                max_duration: settings.max_duration,
                shared_store: settings.shared_store,
                _alive: alive.clone().drop_guard(),
                alive,
            }),
        }
    }

    /// Starts a run: stores its start event and returns the producer's handle. Its followers'
    /// route is the run's id ([`RunHandle::id`]) in the path of [`Runs::endpoint`].
    ///
    /// Each run is watched by a task until its time to live is over: it ends a run that passes
    /// [`RunsBuilder::max_duration`] and forgets the run after [`RunsBuilder::ttl`].
    ///
    /// # Errors
    /// [`RunError::TooManyRuns`] when [`RunsBuilder::max_runs`] runs are running; a store failure
    /// or shutdown ([`RunError::Publish`]).
    pub async fn start(&self) -> Result<RunHandle, RunError> {
        let inner = &self.inner;
        let run = Arc::new(Run::new(
            inner.hub.clone(),
            inner.limits,
            &inner.hub.shutdown_token(),
        ));
        if let Some(evicted) = inner.registry.admit(&run)? {
            tracing::debug!(run = %evicted.id, "run forgotten early to make room");
            inner.drop_log(&evicted).await;
        }
        match inner.hub.publish(&run.channel, end::start_event()).await {
            Ok(id) => {
                let _ = run.start.set(id);
            }
            Err(err) => {
                inner.retire(&run).await;
                return Err(err.into());
            }
        }
        tokio::spawn(watch::watch(Arc::downgrade(&self.inner), Arc::clone(&run)));
        tracing::debug!(run = %run.id, "run started");
        Ok(RunHandle::new(run))
    }

    /// Cancels run `id`: its producer is told to stop at once ([`RunHandle::cancelled`]
    /// completes), and the run ends with [`EndReason::Cancelled`]. Returns how the run ended:
    /// `Cancelled`, or the reason it had ended with before.
    ///
    /// A run produced on another instance sharing the store is cancelled through the store: its
    /// end goes into the run's log, and the producing instance, which reads the log of each of its
    /// running runs, tells its producer (within milliseconds). An event or two that producer
    /// stores meanwhile land after the end, and no follower receives them.
    ///
    /// # Errors
    /// [`RunError::NotFound`] for an unknown or expired run; a store failure.
    pub async fn cancel(&self, id: &str) -> Result<EndReason, RunError> {
        let run_id = RunId::parse(id).ok_or_else(|| RunError::not_found(id))?;
        let Some(run) = self.inner.registry.get(&run_id) else {
            return self.cancel_elsewhere(&run_id).await;
        };
        if run.ended().is_some_and(|ended| ended.end.is_expired()) {
            return Err(RunError::not_found(id));
        }
        tracing::debug!(run = %run.id, "run cancelled");
        match run.end(EndReason::Cancelled, None).await {
            Ok(_) => Ok(EndReason::Cancelled),
            Err(RunError::Ended { reason }) => Ok(reason),
            Err(err) => Err(err),
        }
    }

    /// Cancels a run this process does not hold (its producer runs on another instance sharing
    /// the store): its end goes into its log, which its followers and its producer's instance read.
    async fn cancel_elsewhere(&self, id: &RunId) -> Result<EndReason, RunError> {
        let record = self.read(id).await?;
        if let Some((_, end)) = record.end {
            return Ok(end.reason);
        }
        let end = RunEnd::new(EndReason::Cancelled, None, self.inner.limits.ttl);
        self.inner.hub.publish(&id.channel(), end.event()).await?;
        tracing::debug!(run = %id, "run cancelled through the store");
        Ok(EndReason::Cancelled)
    }

    /// The hub whose channels hold the runs (for its metrics, say).
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// Runs held by this process: running, or ended and still readable.
    pub fn len(&self) -> usize {
        self.inner.registry.len()
    }

    /// Whether this process holds no run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs of this process still running.
    pub fn running(&self) -> usize {
        self.inner.registry.running()
    }

    /// Tells every producer to stop and ends every follower's stream (with a retry hint); new
    /// runs and followers are refused. Call it when shutdown begins, or use
    /// [`RunsBuilder::shutdown_with`].
    pub fn shutdown(&self) {
        self.inner.hub.shutdown();
    }

    /// Shuts down when `token` is cancelled (while the runs exist).
    fn shut_down_with(&self, token: CancellationToken) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("RunsBuilder::shutdown_with needs a tokio runtime; not linked");
            return;
        };
        let hub = self.inner.hub.clone();
        let alive = self.inner.alive.clone();
        runtime.spawn(async move {
            tokio::select! {
                () = token.cancelled() => hub.shutdown(),
                () = alive.cancelled() => {}
            }
        });
    }
}

impl RunsInner {
    /// Forgets `run`: it leaves the registry, and the hub forgets its channel (now, or when its
    /// last follower leaves), which frees this process's copy of its log.
    async fn retire(&self, run: &Arc<Run>) {
        if self.registry.remove(run) {
            self.drop_log(run).await;
            tracing::debug!(run = %run.id, "run forgotten");
        }
    }

    /// Lets the hub forget the channel of `run`, which has left the registry.
    async fn drop_log(&self, run: &Run) {
        self.forget_channel(&run.channel).await;
    }

    /// Lets the hub forget `channel` (its run expired, or there is none): at once if nothing
    /// uses it, else when its last stream closes.
    async fn forget_channel(&self, channel: &str) {
        if self.flags.retire(channel) {
            // Reading the head lets the hub forget the channel if nothing uses it any more.
            let _ = self.hub.head(channel).await;
        }
    }
}

impl fmt::Debug for Runs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runs")
            .field("held", &self.len())
            .field("limits", &self.inner.limits)
            .field("max_duration", &self.inner.max_duration)
            .field("hub", &self.inner.hub)
            .finish()
    }
}
