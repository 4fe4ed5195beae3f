//! What the two Rust peer servers share: the command line, the channel registry (one tokio
//! broadcast channel per SSE channel, the way both frameworks' docs suggest), and the publish
//! API's validation, so that the peers differ only in their SSE response type.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use tokio::sync::broadcast;

/// Events a lagging subscriber may fall behind before the broadcast channel drops them for it.
pub const BROADCAST_CAPACITY: usize = 1024;

/// How long a peer waits for open connections after SIGTERM before it exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One published event.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub event: Option<String>,
    pub data: String,
}

/// Command line of a peer: `--listen ADDR [--plain] [--heartbeat 15s] [--publish-token T]`.
#[derive(Debug, Clone)]
pub struct PeerArgs {
    pub listen: SocketAddr,
    pub heartbeat: Duration,
    pub token: Option<String>,
}

impl PeerArgs {
    pub fn from_env() -> Result<Self> {
        let mut args = PeerArgs {
            listen: "127.0.0.1:8080".parse()?,
            heartbeat: Duration::from_secs(15),
            token: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            let mut value = |name: &str| it.next().ok_or_else(|| anyhow!("{name} needs a value"));
            match a.as_str() {
                "--listen" => args.listen = value("--listen")?.parse()?,
                "--heartbeat" => args.heartbeat = parse_duration(&value("--heartbeat")?)?,
                "--publish-token" => args.token = Some(value("--publish-token")?),
                // Peers always serve cleartext HTTP/1.1 and h2c; accepted for symmetry.
                "--plain" => {}
                "--history" | "--retry" => {
                    value(&a)?;
                }
                other => bail!("unknown argument {other}"),
            }
        }
        Ok(args)
    }
}

/// Parses `500ms`, `1s`, `15s`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| anyhow!("bad duration {s}"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" | "" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => bail!("bad duration unit in {s}"),
    })
}

/// Channels by name, created on first use.
#[derive(Default, Clone)]
pub struct Registry {
    channels: Arc<Mutex<HashMap<String, Arc<Channel>>>>,
}

pub struct Channel {
    /// The id counter and the sender behind one lock, so ids go out in order.
    tx: Mutex<(u64, broadcast::Sender<Arc<Message>>)>,
}

/// A publish request that the API refuses.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

impl Registry {
    pub fn channel(&self, name: &str) -> Arc<Channel> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Channel {
                    tx: Mutex::new((0, broadcast::channel(BROADCAST_CAPACITY).0)),
                })
            })
            .clone()
    }

    pub fn subscribe(&self, name: &str) -> broadcast::Receiver<Arc<Message>> {
        let ch = self.channel(name);
        let tx = ch.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.1.subscribe()
    }

    /// Validates and publishes a request body; returns the new event's id.
    pub fn publish(
        &self,
        name: &str,
        authorization: Option<&str>,
        token: Option<&str>,
        body: &[u8],
    ) -> Result<u64, ApiError> {
        if let Some(token) = token {
            if authorization != Some(format!("Bearer {token}").as_str()) {
                return Err(ApiError::new(401, "missing or wrong bearer token"));
            }
        }
        if !valid_channel(name) {
            return Err(ApiError::new(
                400,
                "channel names match [A-Za-z0-9_.-]{1,64}",
            ));
        }
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(400, format!("body is not JSON: {e}")))?;
        let event = match v.get("event") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.contains(['\r', '\n']) => Some(s.clone()),
            Some(_) => {
                return Err(ApiError::new(
                    400,
                    "event must be a string without CR or LF",
                ))
            }
        };
        let data = match v.get("data") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Err(ApiError::new(400, "data is required")),
        };
        let ch = self.channel(name);
        let mut tx = ch.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.0 += 1;
        let id = tx.0;
        // No subscriber is not an error: the event is simply not delivered to anyone.
        let _ = tx.1.send(Arc::new(Message { id, event, data }));
        Ok(id)
    }
}

pub fn valid_channel(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

/// Resolves when SIGTERM or Ctrl-C arrives.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
