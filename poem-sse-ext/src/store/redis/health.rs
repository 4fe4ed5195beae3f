//! Whether the store can serve: its reader's connection and its command connection.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex,
};

use super::lock;
use crate::store::StoreHealth;

/// What [`RedisStore::health`](crate::store::ReplayStore::health) reports from.
#[derive(Debug)]
pub(super) struct Health {
    /// Why the reader has no working connection, if it has none.
    reader_down: Mutex<Option<String>>,
    /// Why the last command failed, while commands fail.
    commands_down: Mutex<Option<String>>,
    /// Fast path for the common case: set after `commands_down` is written, cleared by the
    /// next success (which then clears `commands_down`).
    commands_failing: AtomicBool,
}

impl Health {
    /// A store that has not reached Redis yet.
    pub(super) fn connecting() -> Self {
        Self {
            reader_down: Mutex::new(Some("connecting to Redis".to_owned())),
            commands_down: Mutex::new(None),
            commands_failing: AtomicBool::new(false),
        }
    }

    pub(super) fn status(&self) -> StoreHealth {
        if let Some(reason) = lock(&self.reader_down).clone() {
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

    pub(super) fn set_reader_down(&self, reason: Option<String>) {
        let mut down = lock(&self.reader_down);
        if down.is_some() && reason.is_none() {
            tracing::info!("redis store: reader connected");
        } else if down.is_none() {
            if let Some(reason) = &reason {
                tracing::warn!(reason, "redis store: reader lost its connection");
            }
        }
        *down = reason;
    }
}
