//! Caps on the connections one client address holds at once, for the listeners that take
//! connections from anyone: HTTPS (`http_conn`) and TURN over TCP/TLS (`turn::transport`).
//!
//! A [`PerAddress`] book counts open connections per address; [`PerAddress::take`] hands
//! out an [`AddressSlot`] that gives its place back when dropped, so a slot that lives as
//! long as its connection cannot leak. An IPv4-mapped IPv6 address counts as its IPv4
//! address, and an IPv6 address by its /64: one host commonly holds a whole /64, and would
//! otherwise get a fresh cap per address it picks. Addresses in the exempt ranges (trusted
//! reverse proxies, which carry many clients) are never capped.
//!
//! Plain std types and no I/O: the HTTPS runtime and the relay's own thread share nothing
//! through it, each listener owns its book.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipnet::IpNet;

pub struct PerAddress {
    limit: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerAddress {
    pub fn new(limit: usize, exempt: Vec<IpNet>) -> Arc<Self> {
        Arc::new(Self { limit, exempt, open: Mutex::default() })
    }

    /// A slot for one more connection from `ip`, or None when it already holds `limit`.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = ip.to_canonical();
        if self.exempt.iter().any(|net| net.contains(&ip)) {
            return Some(AddressSlot { book: Arc::clone(self), key: None });
        }
        let key = address_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot { book: Arc::clone(self), key: Some(key) })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Connections `ip` holds now (0 for an exempt address).
    #[cfg(test)]
    pub fn open(&self, ip: IpAddr) -> usize {
        let key = address_key(ip.to_canonical());
        self.open.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied().unwrap_or(0)
    }

    fn give_back(&self, key: IpAddr) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

/// The address a connection is counted under: IPv4 as is, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// One connection's place in a [`PerAddress`] book, given back on drop.
pub struct AddressSlot {
    book: Arc<PerAddress>,
    key: Option<IpAddr>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.book.give_back(key);
        }
    }
}

/// Lets a refusal be logged at most once per `every`, with how many were not logged since:
/// a flood of refused connections must not become a flood of journal lines.
pub struct LogEvery {
    every: Duration,
    last: Mutex<Option<Instant>>,
    quiet: AtomicU64,
}

impl LogEvery {
    pub fn new(every: Duration) -> Self {
        Self { every, last: Mutex::new(None), quiet: AtomicU64::new(0) }
    }

    /// Some(refusals not logged since the last line) when this one should be logged.
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            self.quiet.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.quiet.swap(0, Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_gets_limit_slots_and_a_dropped_slot_frees_its_place() {
        let book = PerAddress::new(2, Vec::new());
        let a = book.take(ip("192.0.2.1")).unwrap();
        let _b = book.take(ip("192.0.2.1")).unwrap();
        assert!(book.take(ip("192.0.2.1")).is_none());
        assert!(book.take(ip("192.0.2.2")).is_some(), "another address has its own count");
        drop(a);
        assert_eq!(book.open(ip("192.0.2.1")), 1);
        assert!(book.take(ip("192.0.2.1")).is_some());
    }

    #[test]
    fn mapped_ipv4_counts_as_ipv4_and_ipv6_counts_by_its_64() {
        let book = PerAddress::new(2, Vec::new());
        let _a = book.take(ip("192.0.2.1")).unwrap();
        let _b = book.take(ip("::ffff:192.0.2.1")).unwrap();
        assert!(book.take(ip("192.0.2.1")).is_none());
        let _c = book.take(ip("2001:db8:1:2::1")).unwrap();
        let _d = book.take(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert!(book.take(ip("2001:db8:1:2::77")).is_none(), "same /64");
        assert!(book.take(ip("2001:db8:1:3::1")).is_some(), "another /64");
    }

    #[test]
    fn exempt_ranges_are_never_capped_and_counted() {
        let book = PerAddress::new(1, vec!["127.0.0.1/32".parse().unwrap()]);
        let slots: Vec<_> = (0..5).map(|_| book.take(ip("127.0.0.1")).unwrap()).collect();
        assert_eq!(book.open(ip("127.0.0.1")), 0);
        drop(slots);
        assert_eq!(book.open(ip("127.0.0.1")), 0);
        let _x = book.take(ip("127.0.0.2")).unwrap();
        assert!(book.take(ip("127.0.0.2")).is_none());
    }

    #[test]
    fn log_every_lets_one_line_through_per_period_and_counts_the_rest() {
        let log = LogEvery::new(Duration::from_secs(3600));
        assert_eq!(log.check(), Some(0));
        assert_eq!(log.check(), None);
        assert_eq!(log.check(), None);
        *log.last.lock().unwrap() = Some(Instant::now() - Duration::from_secs(3601));
        assert_eq!(log.check(), Some(2));
    }
}
