//! Whether the store can serve: its readers' connections and its command connection.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::Duration,
};

use tokio::time::Instant;

use super::lock;
use crate::store::StoreHealth;

/// What [`RedisStore::health`](crate::store::ReplayStore::health) reports from.
#[derive(Debug)]
pub(super) struct Health {
    /// Per reader group: why it has no working connection, if it has none.
    readers_down: Mutex<Vec<Option<Down>>>,
    /// How long a reader may be without its node before health says so (zero on one node; on
    /// a cluster it covers a reader's re-routing after `MOVED` or a failover already decided).
    grace: Duration,
    /// Why the last command failed, while commands fail.
    commands_down: Mutex<Option<String>>,
    /// Fast path for the common case: set after `commands_down` is written, cleared by the
    /// next success (which then clears `commands_down`).
    commands_failing: AtomicBool,
}

impl Health {
    /// A store of `groups` readers that has not reached Redis yet (degraded at once, whatever
    /// the grace).
    pub(super) fn connecting(groups: usize, grace: Duration) -> Self {
        let connecting = Down {
            reason: "connecting to Redis".to_owned(),
            since: None,
        };
        Self {
            readers_down: Mutex::new(vec![Some(connecting); groups]),
            grace,
            commands_down: Mutex::new(None),
            commands_failing: AtomicBool::new(false),
        }
    }

    pub(super) fn status(&self) -> StoreHealth {
        let overdue = lock(&self.readers_down).iter().flatten().find_map(|down| {
            down.since
                .is_none_or(|since| since.elapsed() >= self.grace)
                .then(|| down.reason.clone())
        });
        if let Some(reason) = overdue {
            return StoreHealth::Degraded(reason);
        }
        if self.commands_failing() {
            if let Some(reason) = lock(&self.commands_down).clone() {
                return StoreHealth::Degraded(reason);
            }
        }
        StoreHealth::Ok
    }

    pub(super) fn commands_failing(&self) -> bool {
        self.commands_failing.load(Ordering::Acquire)
    }

    pub(super) fn commands_ok(&self) {
        if self.commands_failing.swap(false, Ordering::AcqRel) {
            *lock(&self.commands_down) = None;
        }
    }

    pub(super) fn commands_failed(&self, reason: &str) {
        *lock(&self.commands_down) = Some(reason.to_owned());
        self.commands_failing.store(true, Ordering::Release);
    }

    /// Records whether reader `group` has a working connection (`None`) or why not. A reader
    /// that stays down keeps the time it went down, so that the grace runs from then.
    pub(super) fn set_reader_down(&self, group: usize, reason: Option<String>) {
        let mut readers = lock(&self.readers_down);
        let Some(down) = readers.get_mut(group) else {
            return;
        };
        match (down.as_mut(), reason) {
            (Some(_), None) => {
                tracing::info!(group, "redis store: reader connected");
                *down = None;
            }
            (Some(was), Some(reason)) => was.reason = reason,
            (None, Some(reason)) => {
                tracing::warn!(group, reason, "redis store: reader lost its connection");
                *down = Some(Down {
                    reason,
                    since: Some(Instant::now()),
                });
            }
            (None, None) => {}
        }
    }
}

/// Why a reader has no working connection, and since when (`None`: it never had one).
#[derive(Debug, Clone)]
struct Down {
    reason: String,
    since: Option<Instant>,
}
