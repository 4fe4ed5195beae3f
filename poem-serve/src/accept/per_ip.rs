//! Per-address admission: a cap on the connections one client address holds open.
//!
//! Every connection costs a file descriptor and some memory until it ends, and the deadlines
//! only bound how long a stalled one lasts: a single client opening thousands at once can still
//! exhaust the server's descriptors for everyone. With a cap per address, it exhausts its own
//! share. A connection over the cap is closed at once, before the TLS handshake, and counted.
//!
//! An address at its cap is usually refused again and again (a client that retries, many
//! clients behind one NAT): all of that is one episode, which lasts until the address has gone
//! [`QUIET`] without a refusal. Its first refusal is a warning that names the address and the
//! cap, so an operator sees it; the rest are at debug level, so a retrying client can not flood
//! the log.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use super::backoff::QUIET;

/// The open connections of each client address, and the cap.
#[derive(Debug)]
pub(crate) struct PerIpLimit {
    max: usize,
    /// Addresses with at least one open connection; an address is removed with its last one,
    /// so the map is as large as the set of connected clients.
    open: Mutex<HashMap<IpAddr, Share>>,
    refused: AtomicU64,
}

/// One address's open connections, and when it was last refused.
#[derive(Debug, Default)]
struct Share {
    open: usize,
    /// The last refusal of the current episode; a refusal [`QUIET`] after it starts a new one.
    last_refused: Option<Instant>,
}

/// A connection's place in its address's share; gives it back when dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    limit: Arc<PerIpLimit>,
    ip: IpAddr,
}

impl PerIpLimit {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
        })
    }

    /// A place for a new connection from `ip` accepted at `now`, or `None` when `ip` already
    /// holds the maximum: counted, and logged (a warning when it begins an episode, debug level
    /// otherwise).
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Option<IpSlot> {
        // An IPv4 client reaching an IPv6 socket appears as ::ffff:a.b.c.d: the same client.
        let ip = ip.to_canonical();
        let begins_episode = {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let share = open.entry(ip).or_default();
            if share.open < self.max {
                share.open += 1;
                return Some(IpSlot {
                    limit: Arc::clone(self),
                    ip,
                });
            }
            let begins = share
                .last_refused
                .is_none_or(|last| now.saturating_duration_since(last) >= QUIET);
            share.last_refused = Some(now);
            begins
        };
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        if begins_episode {
            tracing::warn!(
                remote = %ip,
                max = self.max,
                "closing new connections from this address: it holds max_connections_per_ip \
                 open; further refusals are logged at debug level until it goes 5 s without one"
            );
        } else {
            tracing::debug!(
                remote = %ip,
                max = self.max,
                refused_in_total = refused,
                "connection closed: too many open from this address"
            );
        }
        None
    }

    /// Connections refused so far.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.limit.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(share) = open.get_mut(&self.ip) {
            share.open -= 1;
            if share.open == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::{Ipv4Addr, Ipv6Addr},
        time::Duration,
    };

    use super::*;
    use crate::test_log::logged;

    #[test]
    fn an_address_gets_its_share_and_its_places_back() {
        let limit = PerIpLimit::new(2);
        let now = Instant::now();
        let a = IpAddr::from(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::from(Ipv4Addr::new(127, 0, 0, 2));
        let first = limit.admit(a, now).unwrap();
        let _second = limit.admit(a, now).unwrap();
        assert!(limit.admit(a, now).is_none());
        assert!(
            limit.admit(b, now).is_some(),
            "another address has its own share"
        );
        assert_eq!(limit.refused(), 1);
        drop(first);
        assert!(limit.admit(a, now).is_some());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_client() {
        let limit = PerIpLimit::new(1);
        let now = Instant::now();
        let _v4 = limit.admit(Ipv4Addr::new(10, 0, 0, 1).into(), now).unwrap();
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped();
        assert!(limit.admit(mapped.into(), now).is_none());
        assert!(limit.admit(Ipv6Addr::LOCALHOST.into(), now).is_some());
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let limit = PerIpLimit::new(4);
        let slots: Vec<_> = (0..100u8)
            .filter_map(|n| limit.admit(Ipv4Addr::new(10, 0, 0, n).into(), Instant::now()))
            .collect();
        assert_eq!(limit.open.lock().unwrap().len(), 100);
        drop(slots);
        assert!(limit.open.lock().unwrap().is_empty());
    }

    /// An address refused again and again is one warning, naming it and the cap; after it has
    /// gone quiet, a new refusal warns again, and another address warns for itself.
    #[test]
    fn an_episode_of_refusals_is_one_warning_naming_the_address_and_the_cap() {
        let limit = PerIpLimit::new(2);
        let crowded = IpAddr::from(Ipv4Addr::new(192, 0, 2, 7));
        let start = Instant::now();
        let _held = [limit.admit(crowded, start), limit.admit(crowded, start)];
        let lines = logged(|| {
            for n in 0..300u32 {
                let now = start + Duration::from_millis(10) * n;
                assert!(limit.admit(crowded, now).is_none());
            }
        });
        let warnings: Vec<_> = lines.iter().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{lines:#?}");
        assert!(
            warnings[0].contains("remote=192.0.2.7") && warnings[0].contains("max=2"),
            "{}",
            warnings[0]
        );
        assert_eq!(lines.len(), 300, "the other refusals are at debug level");
        assert!(lines[1..].iter().all(|l| l.contains("DEBUG")), "{lines:#?}");
        assert_eq!(limit.refused(), 300);

        let last = start + Duration::from_millis(10) * 299;
        let other = IpAddr::from(Ipv4Addr::new(192, 0, 2, 8));
        let _other_held = [limit.admit(other, last), limit.admit(other, last)];
        let lines = logged(|| {
            assert!(limit
                .admit(crowded, last + QUIET - Duration::from_millis(1))
                .is_none());
            assert!(limit.admit(other, last).is_none());
            assert!(limit.admit(crowded, last + QUIET * 2).is_none());
        });
        let warned: Vec<_> = lines.iter().map(|l| l.contains("WARN")).collect();
        assert_eq!(warned, [false, true, true], "{lines:#?}");
        assert!(lines[1].contains("remote=192.0.2.8"), "{}", lines[1]);
    }
}
