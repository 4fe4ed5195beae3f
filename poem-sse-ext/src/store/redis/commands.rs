//! The command connection (publish, history reads, checks): every command within the command
//! timeout, failures as [`StoreError`] kinds, and the store's health kept up to date.
//!
//! On one node it is a [`ConnectionManager`]; on a cluster, redis-rs's cluster connection, which
//! routes each command by its key and follows `MOVED`/`ASK` (and retries `TRYAGAIN` and
//! `CLUSTERDOWN`) by itself. Everything above this file sends the same commands either way.

use std::{future::Future, sync::Arc, time::Duration};

use ::redis::{
    aio::{ConnectionLike, ConnectionManager},
    Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};

use super::{error::store_error, health::Health};
use crate::store::StoreError;

/// The connection commands go through: to one node, or to a cluster.
#[derive(Clone)]
pub(crate) enum Connection {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(::redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// A clonable handle on the store's command connection (which reconnects by itself).
#[derive(Clone)]
pub(crate) struct Commands {
    connection: Connection,
    timeout: Duration,
    health: Arc<Health>,
}

impl Commands {
    pub(super) fn new(connection: Connection, timeout: Duration, health: Arc<Health>) -> Self {
        Self {
            connection,
            timeout,
            health,
        }
    }

    /// How long a command may take.
    #[cfg(feature = "redis-cluster")]
    pub(super) fn timeout(&self) -> std::time::Duration {
        self.timeout
    }

    /// A connection to send one command or pipeline on.
    pub(crate) fn connection(&self) -> Connection {
        self.connection.clone()
    }

    /// Runs `op` (`operation`, on `key` if it is about one key) within the command timeout.
    ///
    /// # Errors
    /// [`StoreError::Timeout`] (the outcome is unknown), [`StoreError::Connection`],
    /// [`StoreError::WrongKeyType`] or [`StoreError::Backend`]. A timeout or a connection failure
    /// marks the store degraded until a command succeeds again.
    pub(crate) async fn run<T>(
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
        match tokio::time::timeout(self.timeout, ping.query_async::<Value>(&mut connection)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Ends a blocked `XREAD` of client `client_id`, on the node at `node` (`host:port`; on one
    /// node, the node). `Ok(true)` if it was blocked.
    pub(super) async fn unblock(&self, node: Option<&str>, client_id: i64) -> RedisResult<bool> {
        let mut unblock = Cmd::new();
        unblock.arg("CLIENT").arg("UNBLOCK").arg(client_id);
        match (&mut self.connection(), node) {
            #[cfg(feature = "redis-cluster")]
            (Connection::Cluster(connection), Some(node)) => {
                use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let (host, port) = node
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                    .ok_or_else(|| super::reply::protocol_error("a node address"))?;
                let routing =
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
                let unblocked = connection.route_command(unblock, routing).await?;
                Ok(matches!(unblocked, Value::Int(1)))
            }
            (connection, _) => Ok(unblock.query_async::<i64>(connection).await? == 1),
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
