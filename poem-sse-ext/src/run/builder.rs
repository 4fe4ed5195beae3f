//! [`RunsBuilder`]: the bounds of runs, their store, and how their followers' streams behave.

use std::{fmt, sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use super::{end::MAX_END_MESSAGE_LEN, handle::RunLimits, store::RetiringStore, Runs, Settings};
use crate::{
    hub::builder::HubBuilder,
    store::{MemoryStore, ReplayStore, Retention},
};

/// Room in a run's log for the `id:` line the store adds to each event, in bytes (a Redis stream
/// id is at most 41 characters).
const ID_LINE_MAX: usize = 64;
/// Room for the start and end events, besides the run's own (a message may grow sixfold when
/// escaped as JSON).
const SIGNALS_MAX: usize = 2 * (6 * MAX_END_MESSAGE_LEN + 256);

impl Runs {
    /// A builder with the defaults: at most 1,000 runs held, 10,000 events and 4 MiB per run,
    /// one hour of running time, readable for 10 minutes after the end, in memory.
    pub fn builder() -> RunsBuilder {
        RunsBuilder::default()
    }

    /// Runs with the default settings.
    pub fn new() -> Self {
        Self::builder().build()
    }
}

impl Default for Runs {
    fn default() -> Self {
        Self::new()
    }
}

/// Configures [`Runs`].
#[must_use = "a builder does nothing until `build` is called"]
pub struct RunsBuilder {
    hub: HubBuilder,
    store: Option<Arc<dyn ReplayStore>>,
    max_runs: usize,
    max_events: usize,
    max_bytes: usize,
    max_duration: Option<Duration>,
    ttl: Duration,
    shutdown: Option<CancellationToken>,
}

impl Default for RunsBuilder {
    fn default() -> Self {
        Self {
            hub: HubBuilder::default(),
            store: None,
            max_runs: 1_000,
            max_events: 10_000,
            max_bytes: 4 << 20,
            max_duration: Some(Duration::from_secs(3_600)),
            ttl: Duration::from_secs(600),
            shutdown: None,
        }
    }
}

impl RunsBuilder {
    /// Most runs held at once, running or ended and still readable (default 1,000). In memory,
    /// the runs' events take at most `max_runs` times [`RunsBuilder::max_bytes`] (plus the `id:`
    /// lines and each run's start and end). When it is
    /// reached, the run that ended first is forgotten early to make room; when all are running,
    /// [`Runs::start`] fails with [`RunError::TooManyRuns`](super::RunError::TooManyRuns).
    pub fn max_runs(mut self, n: usize) -> Self {
        self.max_runs = n.max(1);
        self
    }

    /// Most events a run may hold (default 10,000). The append past it ends the run as
    /// [`Failed`](super::EndReason::Failed), with a message naming the bound.
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n.max(1);
        self
    }

    /// Most bytes of encoded events a run may hold (default 4 MiB), counted without the `id:`
    /// lines the store adds. The append past it ends the run as failed.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n.max(1);
        self
    }

    /// Longest a run may run (default 1 hour); then it ends as failed. `None`: no limit.
    pub fn max_duration(mut self, limit: Option<Duration>) -> Self {
        self.max_duration = limit;
        self
    }

    /// How long an ended run stays readable (default 10 minutes): afterwards its routes answer
    /// `404`, and this process forgets it.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// How the followers' streams behave: heartbeat, retry hint, stream caps, lifetime (see
    /// [`HubBuilder`]). Its history bounds and budget, store and channel cap are replaced by the
    /// runs' own.
    pub fn hub(mut self, hub: HubBuilder) -> Self {
        self.hub = hub;
        self
    }

    /// Keeps the runs in `store` instead of in memory: a store shared by several instances (Redis
    /// Streams) lets a follower read a run on any of them. Give it [`RunsBuilder::retention`],
    /// and a key prefix of its own.
    pub fn store(mut self, store: impl ReplayStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Shuts the runs down when `token` is cancelled (pass the app hub's
    /// [`Hub::shutdown_token`](crate::Hub::shutdown_token)): producers are told to stop and followers' streams end, so that
    /// graceful shutdown does not wait for them. Needs a tokio runtime at [`RunsBuilder::build`].
    pub fn shutdown_with(mut self, token: CancellationToken) -> Self {
        self.shutdown = Some(token);
        self
    }

    /// What the runs' store must retain: a whole run, its start and end, for its running time and
    /// its time to live.
    pub fn retention(&self) -> Retention {
        let events = self.max_events.saturating_add(2);
        let age = self
            .max_duration
            .unwrap_or(Duration::MAX)
            .saturating_add(self.ttl)
            .saturating_add(Duration::from_secs(60));
        Retention::default()
            .max_events(events)
            .max_bytes(
                self.max_bytes
                    .saturating_add(events.saturating_mul(ID_LINE_MAX))
                    .saturating_add(SIGNALS_MAX),
            )
            .max_age(age)
    }

    /// Builds the runs and their hub.
    pub fn build(self) -> Runs {
        let retention = self.retention();
        let shared_store = self.store.is_some();
        // Every run held may be whole at once: the store-wide budget is their sum, so that it
        // never evicts part of a run (the runs' own bounds are what bound their memory).
        let budget = retention.max_bytes.saturating_mul(self.max_runs);
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new(retention).history_budget(budget)));
        let store = RetiringStore::new(store);
        let flags = store.flags();
        // A run is one channel; followers of runs held by other instances may add some.
        let channels = self.max_runs.saturating_mul(2).saturating_add(64);
        let hub = self
            .hub
            .history(retention.max_events)
            .history_bytes(retention.max_bytes)
            .history_age(retention.max_age)
            .max_channels(channels)
            .store(store)
            .build();
        let limits = RunLimits {
            max_events: self.max_events,
            max_bytes: self.max_bytes,
            ttl: self.ttl,
        };
        let settings = Settings {
            limits,
            max_runs: self.max_runs,
            max_duration: self.max_duration,
            shared_store,
        };
        let runs = Runs::from_parts(hub, flags, settings);
        if let Some(token) = self.shutdown {
            runs.shut_down_with(token);
        }
        runs
    }
}

impl fmt::Debug for RunsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunsBuilder")
            .field("hub", &self.hub)
            .field("custom_store", &self.store.is_some())
            .field("max_runs", &self.max_runs)
            .field("max_events", &self.max_events)
            .field("max_bytes", &self.max_bytes)
            .field("max_duration", &self.max_duration)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}
