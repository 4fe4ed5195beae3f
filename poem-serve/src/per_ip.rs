//! A cap on the connections one client address holds open.
//!
//! Every connection costs a file descriptor and some memory until it ends, and the deadlines
//! only bound how long a stalled one lasts: a single client opening thousands at once can still
//! exhaust the server's descriptors for everyone. With a cap per address, it exhausts its own
//! share. A connection over the cap is closed at once, before the TLS handshake, and counted.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

/// The open connections of each client address, and the cap.
#[derive(Debug)]
pub(crate) struct PerIpLimit {
    max: usize,
    /// Addresses with at least one open connection; an address is removed with its last one,
    /// so the map is as large as the set of connected clients.
    open: Mutex<HashMap<IpAddr, usize>>,
    refused: AtomicU64,
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

    /// A place for a new connection from `ip`, or `None` (counted and logged at debug level)
    /// when `ip` already holds the maximum.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        // An IPv4 client reaching an IPv6 socket appears as ::ffff:a.b.c.d: the same client.
        let ip = ip.to_canonical();
        {
            let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            let count = open.entry(ip).or_insert(0);
            if *count < self.max {
                *count += 1;
                return Some(IpSlot {
                    limit: Arc::clone(self),
                    ip,
                });
            }
        }
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(
            remote = %ip,
            max = self.max,
            refused_in_total = refused,
            "connection closed: too many open from this address"
        );
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
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn an_address_gets_its_share_and_its_places_back() {
        let limit = PerIpLimit::new(2);
        let a = IpAddr::from(Ipv4Addr::new(127, 0, 0, 1));
        let b = IpAddr::from(Ipv4Addr::new(127, 0, 0, 2));
        let first = limit.admit(a).unwrap();
        let _second = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        assert!(
            limit.admit(b).is_some(),
            "another address has its own share"
        );
        assert_eq!(limit.refused(), 1);
        drop(first);
        assert!(limit.admit(a).is_some());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_client() {
        let limit = PerIpLimit::new(1);
        let _v4 = limit.admit(Ipv4Addr::new(10, 0, 0, 1).into()).unwrap();
        let mapped = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped();
        assert!(limit.admit(mapped.into()).is_none());
        assert!(limit.admit(Ipv6Addr::LOCALHOST.into()).is_some());
    }

    #[test]
    fn addresses_without_connections_are_forgotten() {
        let limit = PerIpLimit::new(4);
        let slots: Vec<_> = (0..100u8)
            .filter_map(|n| limit.admit(Ipv4Addr::new(10, 0, 0, n).into()))
            .collect();
        assert_eq!(limit.open.lock().unwrap().len(), 100);
        drop(slots);
        assert!(limit.open.lock().unwrap().is_empty());
    }
}
