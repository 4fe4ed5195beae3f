//! Where a reader connects: the one node, or on a cluster the master that owns its bucket's
//! slot now (asked of the cluster with `CLUSTER SLOTS` each time the reader connects, so that a
//! reader follows failovers and reshards).

use ::redis::{Client, RedisError, RedisResult};

use super::commands::Commands;

/// How a reader finds its node.
#[derive(Clone)]
pub(crate) enum Source {
    /// One node: every reader connects to it.
    Single(Client),
    /// A cluster: a reader connects to the master of its bucket's slot, with the settings
    /// (credentials, protocol) of the first seed.
    #[cfg(feature = "redis-cluster")]
    Cluster(::redis::ConnectionInfo),
}

impl Source {
    /// A client for the node that serves `group`, and that node's address on a cluster.
    pub(super) async fn client_for(
        &self,
        commands: &Commands,
        group: usize,
    ) -> RedisResult<(Client, Option<String>)> {
        #[cfg(not(feature = "redis-cluster"))]
        let _ = (commands, group);
        match self {
            Self::Single(client) => Ok((client.clone(), None)),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(seed) => {
                let slot = super::keys::bucket_slot(group);
                let (host, port) = cluster::master_of(commands, slot).await?;
                let node = format!("{host}:{port}");
                let info = seed
                    .clone()
                    .set_addr(::redis::ConnectionAddr::Tcp(host, port));
                Ok((Client::open(info)?, Some(node)))
            }
        }
    }

    /// Why reader `group` has no connection, for health: it could not connect (to `node`).
    pub(super) fn unreachable(&self, group: usize, node: Option<&str>, err: &RedisError) -> String {
        #[cfg(not(feature = "redis-cluster"))]
        let _ = (group, node);
        match self {
            Self::Single(_) => format!("redis unreachable: {err}"),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => format!(
                "no reachable master for slot {} (bucket {group}){}: {err}",
                super::keys::bucket_slot(group),
                at(node)
            ),
        }
    }

    /// Why reader `group` has no connection, for health: it lost the one it had (to `node`).
    pub(super) fn lost(&self, group: usize, node: Option<&str>, err: &RedisError) -> String {
        #[cfg(not(feature = "redis-cluster"))]
        let _ = (group, node);
        match self {
            Self::Single(_) => format!("redis connection lost: {err}"),
            #[cfg(feature = "redis-cluster")]
            Self::Cluster(_) => format!(
                "the reader of slot {} (bucket {group}) lost its master{}: {err}",
                super::keys::bucket_slot(group),
                at(node)
            ),
        }
    }
}

#[cfg(feature = "redis-cluster")]
fn at(node: Option<&str>) -> String {
    node.map(|node| format!(" at {node}")).unwrap_or_default()
}

#[cfg(feature = "redis-cluster")]
mod cluster {
    use ::redis::{Cmd, RedisResult, Value};

    use super::super::{commands::Commands, reply::protocol_error};

    /// The address of the master that owns `slot`, as the cluster (some node of it) says now.
    pub(super) async fn master_of(commands: &Commands, slot: u16) -> RedisResult<(String, u16)> {
        let mut connection = commands.connection();
        let mut slots = Cmd::new();
        slots.arg("CLUSTER").arg("SLOTS");
        let query = slots.query_async::<Value>(&mut connection);
        let reply = tokio::time::timeout(commands.timeout(), query)
            .await
            .map_err(|_| {
                ::redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "CLUSTER SLOTS did not answer in time",
                ))
            })??;
        owner(&reply, slot).ok_or_else(|| protocol_error("a master for every slot (CLUSTER SLOTS)"))
    }

    /// The master of `slot` in a `CLUSTER SLOTS` reply: `[[start, end, [host, port, ..], ..], ..]`.
    pub(super) fn owner(reply: &Value, slot: u16) -> Option<(String, u16)> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        ranges.iter().find_map(|range| {
            let Value::Array(parts) = range else {
                return None;
            };
            let [Value::Int(start), Value::Int(end), Value::Array(master), ..] = parts.as_slice()
            else {
                return None;
            };
            if !(*start..=*end).contains(&i64::from(slot)) {
                return None;
            }
            let [host, Value::Int(port), ..] = master.as_slice() else {
                return None;
            };
            let host = match host {
                Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
                Value::SimpleString(text) => text.clone(),
                _ => return None,
            };
            Some((host, u16::try_from(*port).ok()?)).filter(|(host, _)| !host.is_empty())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn bulk(text: &str) -> Value {
            Value::BulkString(text.as_bytes().to_vec())
        }

        #[test]
        fn the_owner_of_a_slot_is_found_in_the_cluster_slots_reply() {
            let range = |start, end, port| {
                Value::Array(vec![
                    Value::Int(start),
                    Value::Int(end),
                    Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]),
                    Value::Array(vec![bulk("127.0.0.1"), Value::Int(port + 100), bulk("r")]),
                ])
            };
            let reply = Value::Array(vec![range(0, 5460, 7000), range(5461, 16383, 7001)]);
            assert_eq!(owner(&reply, 0), Some(("127.0.0.1".into(), 7000)));
            assert_eq!(owner(&reply, 5461), Some(("127.0.0.1".into(), 7001)));
            let partial = Value::Array(vec![range(0, 5460, 7000)]);
            assert_eq!(owner(&partial, 9000), None);
        }
    }
}
