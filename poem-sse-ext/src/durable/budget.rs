//! The caps that keep one client from exhausting the server: streams and bytes, overall and per
//! client, and a write rate per client. A full budget refuses the write that would overflow it;
//! nothing stored is ever dropped to make room (that is what "durable" promises).
//!
//! Lock order: a stream's lock, then this budget's; never the other way round.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

/// Who is charged: the client's IP address (`None` when the transport has none, such as a Unix
/// socket; such clients share one account).
pub(crate) type ClientKey = Option<IpAddr>;

/// The caps (see the builder's setters for each default).
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    pub(crate) max_streams: usize,
    pub(crate) max_streams_per_client: usize,
    pub(crate) max_stream_bytes: u64,
    pub(crate) max_total_bytes: u64,
    pub(crate) max_bytes_per_client: u64,
    pub(crate) max_append_bytes: usize,
    pub(crate) writes_per_second_per_client: Option<u32>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams: 100_000,
            max_streams_per_client: 10_000,
            max_stream_bytes: 64 << 20,
            max_total_bytes: 1 << 30,
            max_bytes_per_client: 256 << 20,
            max_append_bytes: 16 << 20,
            writes_per_second_per_client: None,
        }
    }
}

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("the server holds its maximum of {0} streams: delete streams or try later")]
    Streams(usize),
    #[error("this client owns its maximum of {0} streams: delete some of them first")]
    ClientStreams(usize),
    #[error("this stream would exceed its maximum of {0} bytes: start a new stream")]
    StreamBytes(u64),
    #[error("the server's storage budget of {0} bytes is full: retry after streams are deleted")]
    TotalBytes(u64),
    #[error("this client's storage budget of {0} bytes is full: delete some of its streams first")]
    ClientBytes(u64),
    #[error("too many writes from this client: at most {0} per second")]
    Rate(u32),
    #[error("this stream has its maximum of {0} producer ids: reuse an id (bump its epoch)")]
    Producers(usize),
}

#[derive(Debug, Default)]
struct Account {
    streams: usize,
    bytes: u64,
    window: Option<Instant>,
    writes: u32,
}

impl Account {
    fn idle(&self) -> bool {
        self.streams == 0
            && self.bytes == 0
            && self
                .window
                .is_none_or(|w| w.elapsed() > Duration::from_secs(1))
    }
}

#[derive(Debug, Default)]
struct Usage {
    streams: usize,
    bytes: u64,
    clients: HashMap<ClientKey, Account>,
}

/// The server-wide and per-client usage against [`Limits`].
#[derive(Debug, Default)]
pub(crate) struct Budget {
    pub(crate) limits: Limits,
    usage: Mutex<Usage>,
}

impl Budget {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            usage: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Usage> {
        self.usage.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one write against the client's rate.
    pub(crate) fn write(&self, client: ClientKey) -> Result<(), Refusal> {
        let Some(rate) = self.limits.writes_per_second_per_client else {
            return Ok(());
        };
        let mut usage = self.lock();
        // Rate windows of clients that hold nothing are dropped once there are many, so that
        // clients from many addresses can not grow this table without bound.
        if usage.clients.len() > 10_000 {
            usage.clients.retain(|_, account| !account.idle());
        }
        let account = usage.clients.entry(client).or_default();
        let now = Instant::now();
        match account.window {
            Some(start) if now.duration_since(start) < Duration::from_secs(1) => {
                if account.writes >= rate {
                    return Err(Refusal::Rate(rate));
                }
                account.writes += 1;
            }
            _ => {
                account.window = Some(now);
                account.writes = 1;
            }
        }
        Ok(())
    }

    /// Takes a stream slot for `client`.
    pub(crate) fn open_stream(&self, client: ClientKey) -> Result<(), Refusal> {
        let limits = &self.limits;
        let mut usage = self.lock();
        if usage.streams >= limits.max_streams {
            return Err(Refusal::Streams(limits.max_streams));
        }
        let account = usage.clients.entry(client).or_default();
        if account.streams >= limits.max_streams_per_client {
            return Err(Refusal::ClientStreams(limits.max_streams_per_client));
        }
        account.streams += 1;
        usage.streams += 1;
        Ok(())
    }

    /// Gives a stream slot back.
    pub(crate) fn close_stream(&self, client: ClientKey) {
        let mut usage = self.lock();
        usage.streams = usage.streams.saturating_sub(1);
        if let Some(account) = usage.clients.get_mut(&client) {
            account.streams = account.streams.saturating_sub(1);
            if account.idle() {
                usage.clients.remove(&client);
            }
        }
    }

    /// Charges `bytes` to `client` (the stream's own cap is checked by the caller).
    pub(crate) fn charge(&self, client: ClientKey, bytes: u64) -> Result<(), Refusal> {
        let limits = &self.limits;
        let mut usage = self.lock();
        if usage.bytes.saturating_add(bytes) > limits.max_total_bytes {
            return Err(Refusal::TotalBytes(limits.max_total_bytes));
        }
        let account = usage.clients.entry(client).or_default();
        if account.bytes.saturating_add(bytes) > limits.max_bytes_per_client {
            return Err(Refusal::ClientBytes(limits.max_bytes_per_client));
        }
        account.bytes += bytes;
        usage.bytes += bytes;
        Ok(())
    }

    /// Gives back what [`charge`](Self::charge) took.
    pub(crate) fn refund(&self, client: ClientKey, bytes: u64) {
        let mut usage = self.lock();
        usage.bytes = usage.bytes.saturating_sub(bytes);
        if let Some(account) = usage.clients.get_mut(&client) {
            account.bytes = account.bytes.saturating_sub(bytes);
            if account.idle() {
                usage.clients.remove(&client);
            }
        }
    }

    /// Bytes and streams in use (for tests and metrics).
    pub(crate) fn usage(&self) -> (usize, u64) {
        let usage = self.lock();
        (usage.streams, usage.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_greedy_client_is_refused_and_others_are_not() {
        let budget = Budget::new(Limits {
            max_streams: 3,
            max_streams_per_client: 2,
            max_bytes_per_client: 10,
            max_total_bytes: 15,
            ..Limits::default()
        });
        let (greedy, polite) = (
            Some(IpAddr::from([10, 0, 0, 1])),
            Some(IpAddr::from([10, 0, 0, 2])),
        );
        budget.open_stream(greedy).unwrap();
        budget.open_stream(greedy).unwrap();
        assert_eq!(budget.open_stream(greedy), Err(Refusal::ClientStreams(2)));
        budget.open_stream(polite).unwrap();
        assert_eq!(budget.open_stream(polite), Err(Refusal::Streams(3)));
        budget.charge(greedy, 10).unwrap();
        assert_eq!(budget.charge(greedy, 1), Err(Refusal::ClientBytes(10)));
        budget.charge(polite, 5).unwrap();
        assert_eq!(budget.charge(polite, 1), Err(Refusal::TotalBytes(15)));
        budget.refund(greedy, 10);
        budget.close_stream(greedy);
        budget.close_stream(greedy);
        budget.charge(polite, 1).unwrap();
        assert_eq!(budget.usage(), (1, 6));
    }

    #[test]
    fn the_write_rate_is_per_client() {
        let budget = Budget::new(Limits {
            writes_per_second_per_client: Some(2),
            ..Limits::default()
        });
        let (a, b) = (Some(IpAddr::from([10, 0, 0, 1])), None);
        budget.write(a).unwrap();
        budget.write(a).unwrap();
        assert_eq!(budget.write(a), Err(Refusal::Rate(2)));
        budget.write(b).unwrap();
    }
}
