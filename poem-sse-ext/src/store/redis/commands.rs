//! The command connection (publish, history reads, checks): every command within the command
//! timeout, failures as [`StoreError`] kinds, and the store's health kept up to date.

use std::{future::Future, sync::Arc, time::Duration};

use ::redis::{aio::ConnectionManager, Cmd, RedisError, RedisResult};

use super::{error::store_error, health::Health};
use crate::store::StoreError;

/// A clonable handle on the store's command connection (a [`ConnectionManager`], which
/// reconnects by itself).
#[derive(Clone)]
pub(super) struct Commands {
    connection: ConnectionManager,
    timeout: Duration,
    health: Arc<Health>,
}

impl Commands {
    pub(super) fn new(
        connection: ConnectionManager,
        timeout: Duration,
        health: Arc<Health>,
    ) -> Self {
        Self {
            connection,
            timeout,
            health,
        }
    }

    /// A connection to send one command or pipeline on.
    pub(super) fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    /// Runs `op` (`operation`, on `key` if it is about one key) within the command timeout.
    ///
    /// # Errors
    /// [`StoreError::Timeout`] (the outcome is unknown), [`StoreError::Connection`],
    /// [`StoreError::WrongKeyType`] or [`StoreError::Backend`]. A timeout or a connection failure
    /// marks the store degraded until a command succeeds again.
    pub(super) async fn run<T>(
        &self,
        operation: &'static str,
        key: Option<&str>,
        op: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let failure = match tokio::time::timeout(self.timeout, op).await {
            Ok(Ok(value)) => {
                self.health.commands_ok();
                return Ok(value);
            }
            Ok(Err(err)) => store_error(&err, key, operation, self.timeout),
            Err(_) => StoreError::Timeout {
                operation,
                timeout: self.timeout,
            },
        };
        Err(self.failed(failure))
    }

    /// `err`, from a reply of `operation` on `key`, as a [`StoreError`] (as [`Self::run`] maps
    /// the errors of the command itself).
    pub(super) fn error(
        &self,
        err: &RedisError,
        key: Option<&str>,
        operation: &'static str,
    ) -> StoreError {
        self.failed(store_error(err, key, operation, self.timeout))
    }

    /// Marks the store degraded if `failure` says Redis is out of reach.
    fn failed(&self, failure: StoreError) -> StoreError {
        if matches!(
            failure,
            StoreError::Timeout { .. } | StoreError::Connection(_)
        ) {
            self.health.commands_failed(&failure.to_string());
        }
        failure
    }

    /// Sends `PING`; `Err` says why there was no answer within the command timeout.
    pub(super) async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection();
        let ping = Cmd::new().arg("PING").clone();
        match tokio::time::timeout(self.timeout, connection.send_packed_command(&ping)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Tells health that commands work again, if they do (the reader calls it while publishes
    /// fail, so that health recovers without waiting for the next publish).
    pub(super) async fn recheck(&self) {
        if self.health.commands_failing() && self.ping().await.is_ok() {
            self.health.commands_ok();
        }
    }
}
