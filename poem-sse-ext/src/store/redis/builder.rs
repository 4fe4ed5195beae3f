//! [`RedisStoreBuilder`]: the URL, prefix, retention and timing of a [`RedisStore`].

use std::{fmt, sync::Arc, time::Duration};

use ::redis::{
    aio::{ConnectionManager, ConnectionManagerConfig},
    Client,
};

use super::{
    commands::{Commands, Connection},
    health::Health,
    keys::KeyScheme,
    reader::{ReaderSettings, ReaderTask},
    shared::Shared,
    topology::Source,
    RedisStore,
};
use crate::store::Retention;

/// How long a cluster store's reader may be without the master of its slots before the store
/// reports itself degraded: long enough for re-routing after a reshard, shorter than a
/// failover.
#[cfg(feature = "redis-cluster")]
const CLUSTER_READER_GRACE: Duration = Duration::from_secs(1);

/// Why a [`RedisStore`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisStoreError {
    /// The URL is not a Redis URL (`redis://host:port[/db]`, `rediss://`, `unix://`).
    #[error("invalid Redis URL: {0}")]
    InvalidUrl(String),
    /// [`RedisStoreBuilder::connect`] could not reach Redis.
    #[error("Redis can not be reached: {0}")]
    Unreachable(String),
    /// The store was built outside a tokio runtime; its reader task needs one.
    #[error("a RedisStore must be built inside a tokio runtime (it spawns its reader task)")]
    NoRuntime,
    /// A single-node store was pointed at a node of a Redis Cluster: it would acknowledge
    /// publishes on channels it can never read (`CROSSSLOT`).
    #[error(
        "{0} is a node of a Redis Cluster (cluster_enabled:1), not a single Redis: use \
         RedisStore::cluster_builder (redis-cluster://HOST:PORT,... in the demo)"
    )]
    ClusterNode(String),
    /// A cluster store was pointed at a Redis that is not part of a cluster.
    #[error(
        "{0} is a single Redis (cluster_enabled:0), not a node of a Redis Cluster: use \
         RedisStore::builder (redis://HOST:PORT in the demo)"
    )]
    NotAClusterNode(String),
}

/// What a builder connects to.
#[derive(Clone)]
enum Target {
    Single(String),
    #[cfg(feature = "redis-cluster")]
    Cluster(Vec<String>),
}

/// Configures and connects a [`RedisStore`]; made by [`RedisStore::builder`].
///
/// ```
/// use std::time::Duration;
/// use poem_sse_ext::store::{RedisStore, RedisStoreError, ReplayStore, Retention, StoreHealth};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let builder = RedisStore::builder("redis://127.0.0.1:1") // nothing listens there
///     .prefix("myapp:sse")
///     .retention(Retention::default().max_events(500))
///     .command_timeout(Duration::from_millis(500))
///     .connect_timeout(Duration::from_millis(200))
///     .reconnect_backoff(Duration::from_millis(50), Duration::from_secs(2));
///
/// // `connect` waits for Redis and fails when it does not answer...
/// assert!(matches!(builder.clone().connect().await, Err(RedisStoreError::Unreachable(_))));
/// // ... `connect_lazy` starts anyway, degraded until Redis answers.
/// let store = builder.connect_lazy().expect("a valid URL");
/// assert!(matches!(store.health(), StoreHealth::Degraded(_)));
/// assert_eq!(store.stream_key("prices"), "myapp:sse:prices");
///
/// assert!(matches!(
///     RedisStore::builder("http://example.com").connect_lazy(),
///     Err(RedisStoreError::InvalidUrl(_))
/// ));
/// # }
/// ```
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    retention: Retention,
    command_timeout: Duration,
    connect_timeout: Duration,
    block: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    idle_grace: Duration,
    #[cfg(feature = "redis-cluster")]
    unreachable_grace: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls().iter().map(|url| redacted(url)).collect();
        f.debug_struct("RedisStoreBuilder")
            .field("url", &urls.join(","))
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl RedisStoreBuilder {
    pub(super) fn new(url: String) -> Self {
        Self::with_target(Target::Single(url))
    }

    #[cfg(feature = "redis-cluster")]
    pub(super) fn cluster(seeds: Vec<String>) -> Self {
        Self::with_target(Target::Cluster(seeds))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            prefix: "sse".to_owned(),
            retention: Retention::default(),
            command_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            block: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            idle_grace: Duration::from_secs(30),
            #[cfg(feature = "redis-cluster")]
            unreachable_grace: CLUSTER_READER_GRACE,
        }
    }

    /// The prefix of the stream keys: channel `c` is stored at `<prefix>:<c>` (default `sse`;
    /// on a cluster `<prefix>:{<bucket tag>}:<c>`, and the prefix must not hold `{` or `}`,
    /// which would change the key's slot).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How much history each channel keeps (default [`Retention::default`]). Use the same value
    /// on every instance.
    pub fn retention(mut self, retention: Retention) -> Self {
        self.retention = retention;
        self
    }

    /// How long a command (publish, history read) may take before it fails with
    /// [`StoreError::Timeout`](crate::store::StoreError::Timeout) (default 2 s). A publish that
    /// times out may still have been stored.
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long one attempt to open a connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The `BLOCK` time of the reader's `XREAD` (default 5 s): how often an idle reader goes
    /// back to Redis. Delivery latency does not depend on it.
    pub fn block(mut self, block: Duration) -> Self {
        self.block = block.max(Duration::from_millis(1));
        self
    }

    /// The delays between reconnection attempts: from `min`, doubling, up to `max`, with jitter
    /// (default 50 ms to 2 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min.max(Duration::from_millis(1));
        self.backoff_max = max.max(self.backoff_min);
        self
    }

    /// How long the reader keeps following a channel after its last stream here ended
    /// (default 30 s), so that clients that reconnect at once resume from the log this process
    /// holds instead of reading the history from Redis again.
    pub fn idle_grace(mut self, grace: Duration) -> Self {
        self.idle_grace = grace;
        self
    }

    /// On a cluster: how long a reader may be without a reachable master for its slots before
    /// [`ReplayStore::health`](crate::store::ReplayStore::health) reports the store degraded,
    /// naming the node (default 1 s: a reader re-routes after a reshard well within it, a
    /// failover usually takes longer). On one node, health reports a lost Redis at once.
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn unreachable_grace(mut self, grace: Duration) -> Self {
        self.unreachable_grace = grace;
        self
    }

    /// Connects and waits until Redis answers, then starts the reader task. Checks that the
    /// node is what the builder expects: a single Redis for [`RedisStore::builder`], a cluster
    /// node for `RedisStore::cluster_builder`.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`], [`RedisStoreError::Unreachable`] when Redis does not
    /// answer within the command timeout, [`RedisStoreError::ClusterNode`] or
    /// [`RedisStoreError::NotAClusterNode`] when the node is of the other kind, or
    /// [`RedisStoreError::NoRuntime`].
    pub async fn connect(self) -> Result<RedisStore, RedisStoreError> {
        self.verify_kind().await?;
        let store = self.connect_lazy()?;
        match store.shared.commands.ping().await {
            Ok(()) => Ok(store),
            Err(reason) => Err(RedisStoreError::Unreachable(reason)),
        }
    }

    /// Asks the first node that answers (`INFO cluster`) whether it runs in cluster mode, and
    /// refuses a node of the other kind than the builder's: for an app that starts with
    /// [`connect_lazy`](Self::connect_lazy) and still wants a misconfiguration refused at
    /// start-up. [`connect`](Self::connect) does it too. Nodes that do not answer are not an
    /// error here (the store reports them through its health).
    ///
    /// # Errors
    /// [`RedisStoreError::ClusterNode`] or [`RedisStoreError::NotAClusterNode`].
    pub async fn verify_kind(&self) -> Result<(), RedisStoreError> {
        let want_cluster = !matches!(self.target, Target::Single(_));
        for url in self.urls() {
            let Ok(client) = Client::open(url.as_str()) else {
                continue;
            };
            let config = ::redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(self.connect_timeout))
                .set_response_timeout(Some(self.command_timeout));
            let Ok(mut connection) = client
                .get_multiplexed_async_connection_with_config(&config)
                .await
            else {
                continue;
            };
            let Ok(info) = ::redis::cmd("INFO")
                .arg("cluster")
                .query_async::<String>(&mut connection)
                .await
            else {
                continue;
            };
            let is_cluster = info.lines().any(|line| line.trim() == "cluster_enabled:1");
            return match (want_cluster, is_cluster) {
                (false, true) => Err(RedisStoreError::ClusterNode(redacted(url))),
                (true, false) => Err(RedisStoreError::NotAClusterNode(redacted(url))),
                _ => Ok(()),
            };
        }
        Ok(())
    }

    fn urls(&self) -> &[String] {
        match &self.target {
            Target::Single(url) => std::slice::from_ref(url),
            #[cfg(feature = "redis-cluster")]
            Target::Cluster(seeds) => seeds,
        }
    }

    /// Starts the store without waiting for Redis: it reports
    /// [`StoreHealth::Degraded`](crate::store::StoreHealth::Degraded) and refuses publishes until
    /// Redis answers. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`RedisStoreError::InvalidUrl`] or [`RedisStoreError::NoRuntime`].
    pub fn connect_lazy(self) -> Result<RedisStore, RedisStoreError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisStoreError::NoRuntime)?;
        let (keys, connection, source, grace) = match &self.target {
            Target::Single(url) => {
                let invalid = |err: ::redis::RedisError| {
                    RedisStoreError::InvalidUrl(format!("{}: {err}", redacted(url)))
                };
                let client = Client::open(url.as_str()).map_err(invalid)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(self.command_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(self.backoff_min)
                    .set_max_delay(self.backoff_max);
                let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
                    .map_err(invalid)?;
                let keys = KeyScheme::Single {
                    prefix: self.prefix.clone(),
                };
                (
                    keys,
                    Connection::Single(connection),
                    Source::Single(client),
                    Duration::ZERO,
                )
            }
            #[cfg(feature = "redis-cluster")]
            Target::Cluster(seeds) => self.cluster_parts(seeds)?,
        };
        let health = Arc::new(Health::connecting(keys.groups(), grace));
        let commands = Commands::new(connection, self.command_timeout, Arc::clone(&health));
        let shared = Arc::new(Shared::new(keys, self.retention, commands, health));
        let settings = ReaderSettings {
            command_timeout: self.command_timeout,
            connect_timeout: self.connect_timeout,
            block: self.block,
            backoff_min: self.backoff_min,
            backoff_max: self.backoff_max,
            idle_grace: self.idle_grace,
        };
        let reader = Arc::new(ReaderTask::spawn(&runtime, &shared, &source, &settings));
        Ok(RedisStore {
            shared,
            reader,
            source,
        })
    }

    /// The cluster client and the settings its readers connect with.
    #[cfg(feature = "redis-cluster")]
    fn cluster_parts(
        &self,
        seeds: &[String],
    ) -> Result<(KeyScheme, Connection, Source, Duration), RedisStoreError> {
        use ::redis::{cluster::ClusterConfig, IntoConnectionInfo};
        let invalid = |err: ::redis::RedisError| {
            let seeds: Vec<String> = seeds.iter().map(|seed| redacted(seed)).collect();
            RedisStoreError::InvalidUrl(format!("{}: {err}", seeds.join(",")))
        };
        if self.prefix.contains(['{', '}']) {
            return Err(RedisStoreError::InvalidUrl(format!(
                "the prefix {:?} holds a brace, which would move every key of the cluster store \
                 to one slot",
                self.prefix
            )));
        }
        let first = seeds.first().ok_or_else(|| {
            RedisStoreError::InvalidUrl("a cluster store needs at least one seed node".to_owned())
        })?;
        let seed = first.as_str().into_connection_info().map_err(invalid)?;
        let client = ::redis::cluster::ClusterClient::builder(seeds.iter().map(String::as_str))
            .min_retry_wait(u64::try_from(self.backoff_min.as_millis()).unwrap_or(u64::MAX))
            .max_retry_wait(u64::try_from(self.backoff_max.as_millis()).unwrap_or(u64::MAX))
            .build()
            .map_err(invalid)?;
        let config = ClusterConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_response_timeout(self.command_timeout);
        let connection = client.get_pending_async_connection_with_config(config);
        let keys = KeyScheme::Cluster {
            prefix: self.prefix.clone(),
        };
        Ok((
            keys,
            Connection::Cluster(connection),
            Source::Cluster(seed),
            self.unreachable_grace,
        ))
    }
}

/// `url` without its credentials (`redis://user:password@host` → `redis://***@host`), for
/// messages and debug output.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_and_errors_hide_the_password() {
        let builder = RedisStore::builder("redis://user:secret@127.0.0.1:6379/0");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("redis://***@127.0.0.1:6379/0"), "{shown}");
        assert_eq!(
            redacted("rediss://:pw@host:1"),
            "rediss://***@host:1".to_owned()
        );
        assert_eq!(redacted("redis://host:1"), "redis://host:1".to_owned());
    }
}
