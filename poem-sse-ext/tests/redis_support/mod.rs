//! What the Redis tests share: a throwaway server, stores that notice a lost Redis quickly, and
//! a raw connection to act as another program (or to read Redis's own counters).
#![allow(dead_code)] // each test binary uses a different part

use std::time::Duration;

use poem_sse_ext::store::{RedisStore, Retention};
use testkit::redis::RedisServer;

/// The reset event's type.
pub const RESET: &str = "sse-reset";

/// A fresh `redis-server`, or `None` (the test is skipped) when it is not installed.
pub fn redis() -> Option<RedisServer> {
    RedisServer::start().expect("redis-server starts")
}

/// A store on `url` that notices a lost Redis quickly.
pub async fn store(url: &str, retention: Retention) -> RedisStore {
    RedisStore::builder(url)
        .retention(retention)
        .block(Duration::from_millis(500))
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(200))
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200))
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
