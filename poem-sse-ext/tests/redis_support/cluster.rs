//! What the cluster stories share: raw connections to one node, and what a client holds once
//! it applies its resets, compared with what Redis holds.

use std::time::Duration;

use redis::AsyncConnectionConfig;
use testkit::{redis_cluster::RedisCluster, ParsedEvent};

use super::{master_of, RESET};

/// A raw connection to the node at `port` whose replies may take `timeout` (the node may be
/// frozen on purpose).
pub async fn node(port: u16, timeout: Duration) -> redis::aio::MultiplexedConnection {
    let config = AsyncConnectionConfig::new().set_response_timeout(Some(timeout));
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect")
}

pub fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// What a client holds after applying `events` the way the reset tells it to: an `sse-reset`
/// says "what you have after `resume_from` is not Redis's" (it drops those), then the stream
/// goes on after it. Returns the (id, data) it holds, and the resets it got.
pub fn apply(events: &[ParsedEvent]) -> (Vec<(String, String)>, Vec<serde_json::Value>) {
    let mut held: Vec<(String, String)> = Vec::new();
    let mut resets = Vec::new();
    for event in events {
        if event.event_type == RESET {
            let body: serde_json::Value = event.json().expect("reset json");
            let from = body["resume_from"]
                .as_str()
                .expect("resume_from")
                .to_owned();
            held.retain(|(id, _)| stream_id(id) <= stream_id(&from));
            resets.push(body);
        } else {
            held.push((event.last_event_id.clone(), event.data.clone()));
        }
    }
    (held, resets)
}

fn stream_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').expect("a stream id");
    (ms.parse().expect("ms"), seq.parse().expect("seq"))
}

/// The (id, data) of every entry of `key`, read from the master that owns it now.
pub async fn redis_truth(cluster: &RedisCluster, key: &str) -> Vec<(String, String)> {
    let mut master = redis::Client::open(master_of(&cluster.seeds()[0], key).await)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query_async(&mut master)
        .await
        .expect("XRANGE");
    entries
        .into_iter()
        .map(|(id, fields)| {
            let frame = &fields[0].1;
            let data = frame
                .trim_end()
                .strip_prefix("data: ")
                .unwrap_or(frame)
                .to_owned();
            (id, data)
        })
        .collect()
}
