//! What the Redis tests share: a throwaway server, stores that notice a lost Redis quickly, and
//! a raw connection to act as another program (or to read Redis's own counters).
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

#[cfg(feature = "redis-cluster")]
pub mod cluster;

use poem_sse_ext::store::{RedisStore, RedisStoreBuilder, Retention};
use testkit::redis::RedisServer;

/// Where a story runs: one `redis-server`, or (feature `redis-cluster`) a Redis Cluster.
pub enum Target {
    Single(RedisServer),
    /// A cluster, and the key prefix of this story's stores (a shared cluster serves several
    /// stories at once).
    #[cfg(feature = "redis-cluster")]
    Cluster(std::sync::Arc<testkit::redis_cluster::RedisCluster>, String),
}

/// Every target available: a fresh `redis-server`, and a cluster shared with the other stories
/// of this binary (so a story on it must only touch its own keys).
pub fn targets() -> Vec<Target> {
    #[allow(unused_mut)] // only extended with the cluster feature
    let mut targets: Vec<Target> = redis().into_iter().map(Target::Single).collect();
    #[cfg(feature = "redis-cluster")]
    targets.extend(cluster(testkit::redis_cluster::RedisCluster::shared()));
    targets
}

/// [`targets`], with a cluster of the story's own: for stories that cut connections or flush.
pub fn own_targets() -> Vec<Target> {
    #[allow(unused_mut)] // only extended with the cluster feature
    let mut targets: Vec<Target> = redis().into_iter().map(Target::Single).collect();
    #[cfg(feature = "redis-cluster")]
    targets.extend(cluster(
        testkit::redis_cluster::RedisCluster::start().map(|c| c.map(std::sync::Arc::new)),
    ));
    targets
}

#[cfg(feature = "redis-cluster")]
fn cluster(
    started: std::io::Result<Option<std::sync::Arc<testkit::redis_cluster::RedisCluster>>>,
) -> Option<Target> {
    static PREFIXES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let cluster = started.expect("redis cluster starts")?;
    let n = PREFIXES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Some(Target::Cluster(cluster, format!("story{n}")))
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Single(_) => "redis",
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(..) => "redis-cluster",
        }
    }

    /// A builder for a store here (on a cluster, under this story's prefix).
    pub fn builder(&self) -> RedisStoreBuilder {
        match self {
            Self::Single(server) => RedisStore::builder(server.url()),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(cluster, prefix) => {
                RedisStore::cluster_builder(cluster.seeds()).prefix(prefix.as_str())
            }
        }
    }

    /// A store here that notices a lost Redis quickly.
    pub async fn store(&self, retention: Retention) -> RedisStore {
        quick(self.builder().retention(retention))
            .connect()
            .await
            .expect("connect to redis")
    }

    /// A raw connection to the node that holds `key` (on a cluster, the master of its slot), as
    /// another program writing there would use.
    pub async fn node_of(&self, key: &str) -> redis::aio::MultiplexedConnection {
        let url = match self {
            Self::Single(server) => {
                let _ = key; // one node holds every key
                server.url()
            }
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(cluster, _) => master_of(&cluster.seeds()[0], key).await,
        };
        redis::Client::open(url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connect")
    }

    /// Kills every Redis process of the target.
    pub fn stop(&mut self) {
        match self {
            Self::Single(server) => server.stop(),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(cluster, _) => {
                let cluster = std::sync::Arc::get_mut(cluster).expect("a cluster of its own");
                for port in cluster.ports() {
                    cluster.kill(port);
                }
            }
        }
    }
}

/// `redis://` of the master that owns `key`'s slot, asked of the node at `seed`.
#[cfg(feature = "redis-cluster")]
pub async fn master_of(seed: &str, key: &str) -> String {
    let mut any = redis::Client::open(seed)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query_async(&mut any)
        .await
        .expect("CLUSTER KEYSLOT");
    let ranges: Vec<(i64, i64, (String, i64))> = {
        let value: redis::Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut any)
            .await
            .expect("CLUSTER SLOTS");
        let redis::Value::Array(ranges) = value else {
            panic!("CLUSTER SLOTS: {value:?}")
        };
        ranges
            .into_iter()
            .filter_map(|range| {
                let redis::Value::Array(parts) = range else {
                    return None;
                };
                let mut parts = parts.into_iter();
                let start: i64 = redis::from_redis_value(parts.next()?).ok()?;
                let end: i64 = redis::from_redis_value(parts.next()?).ok()?;
                let redis::Value::Array(master) = parts.next()? else {
                    return None;
                };
                let mut master = master.into_iter();
                let host: String = redis::from_redis_value(master.next()?).ok()?;
                let port: i64 = redis::from_redis_value(master.next()?).ok()?;
                Some((start, end, (host, port)))
            })
            .collect()
    };
    let (_, _, (host, port)) = ranges
        .into_iter()
        .find(|(start, end, _)| (*start..=*end).contains(&slot))
        .expect("a master for the slot");
    format!("redis://{host}:{port}")
}

/// The settings that make a store notice a lost Redis quickly.
pub fn quick(builder: RedisStoreBuilder) -> RedisStoreBuilder {
    builder
        .block(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
}

/// The reset event's type.
pub const RESET: &str = "sse-reset";

/// A fresh `redis-server`, or `None` (the test is skipped) when it is not installed.
pub fn redis() -> Option<RedisServer> {
    RedisServer::start().expect("redis-server starts")
}

/// A store on `url` that notices a lost Redis quickly.
pub async fn store(url: &str, retention: Retention) -> RedisStore {
    quick(RedisStore::builder(url).retention(retention))
        .connect()
        .await
        .expect("connect to redis")
}

/// Waits (up to 5 s) until `done`.
pub async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A raw connection to `redis`, as another program writing there would use.
pub async fn raw(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

/// A pipeline that starts by cutting every other client's connection (the stores' among them).
pub fn kill_other_clients() -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .ignore();
    pipe
}

/// What Redis has done so far, from `INFO`: calls of one command, and bytes sent to clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    pub calls: u64,
    pub bytes_out: u64,
}

/// [`Served`] for `command` (lowercase, as `INFO commandstats` names it: `xrevrange`).
pub async fn served(admin: &mut redis::aio::MultiplexedConnection, command: &str) -> Served {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .arg("stats")
        .query_async(admin)
        .await
        .expect("INFO");
    let field = |line_prefix: &str, end: char| {
        info.lines()
            .find_map(|line| line.strip_prefix(line_prefix))
            .and_then(|rest| rest.split(end).next())
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    Served {
        calls: field(&format!("cmdstat_{command}:calls="), ','),
        bytes_out: field("total_net_output_bytes:", '\r'),
    }
}
