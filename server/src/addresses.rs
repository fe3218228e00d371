//! Client addresses, and the limits per address: connections open at once and connects a minute.
//!
//! A connection's address is its peer's, unless the peer is one of `trusted_proxies`: then it is
//! the nearest `X-Forwarded-For` hop that is not a trusted proxy itself (read from the right, as
//! nginx's `real_ip_recursive`), so a client cannot pick its address by sending the header.
//! Addresses inside `trusted_proxies` are not limited: a proxy speaks for many clients, and a
//! local process is the operator's. IPv6 addresses are counted per /64, what one host or site
//! usually holds. An address's entry lives while it has connections or its connect budget is
//! refilling (at most a minute after its last connect), so the table follows the addresses in use.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use ipnet::IpNet;
use tokio::time::Instant;

use crate::config::Config;
use crate::rate::RateLimiter;

/// Why a connection from an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressRefusal {
    /// The address already holds `max_connections_per_ip` connections.
    TooManyConnections(usize),
    /// The address connected `max_connects_per_ip_per_minute` times in the last minute.
    TooManyConnects(u32),
}

struct Entry {
    open: usize,
    connects: RateLimiter,
}

pub struct AddressLimits {
    trusted: Vec<IpNet>,
    max_connections: usize,
    connects_per_minute: u32,
    table: DashMap<IpAddr, Entry>,
    refused_connections: AtomicU64,
    refused_connects: AtomicU64,
}

/// One connection counted against its address; released on drop.
pub struct AddressPermit {
    limits: Arc<AddressLimits>,
    key: IpAddr,
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        if let Some(mut e) = self.limits.table.get_mut(&self.key) {
            e.open = e.open.saturating_sub(1);
        }
    }
}

impl AddressLimits {
    pub fn new(config: &Config) -> Self {
        Self {
            trusted: config.trusted_proxies.clone(),
            max_connections: config.max_connections_per_ip,
            connects_per_minute: config.max_connects_per_ip_per_minute,
            table: DashMap::new(),
            refused_connections: AtomicU64::new(0),
            refused_connects: AtomicU64::new(0),
        }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer`, or when `peer` is a trusted proxy the nearest untrusted hop of
    /// `forwarded_for` (the `X-Forwarded-For` values in the order they came). A hop that is not an
    /// address ends the walk: the hop before it is the client.
    pub fn client_address<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.is_trusted(client) {
            return client;
        }
        for value in forwarded_for.rev() {
            for hop in value.rsplit(',') {
                let Some(ip) = parse_hop(hop.trim()) else {
                    return client;
                };
                client = ip.to_canonical();
                if !self.is_trusted(client) {
                    return client;
                }
            }
        }
        client
    }

    /// Counts a new connection from `address`: `None` when the address is not limited (a trusted
    /// proxy, or both limits off).
    pub fn admit(
        self: &Arc<Self>,
        address: IpAddr,
    ) -> Result<Option<AddressPermit>, AddressRefusal> {
        if self.is_trusted(address) || (self.max_connections == 0 && self.connects_per_minute == 0)
        {
            return Ok(None);
        }
        let key = key_of(address);
        let mut entry = self.table.entry(key).or_insert_with(|| Entry {
            open: 0,
            connects: RateLimiter::per_minute(self.connects_per_minute),
        });
        if self.max_connections > 0 && entry.open >= self.max_connections {
            self.refused_connections.fetch_add(1, Ordering::Relaxed);
            return Err(AddressRefusal::TooManyConnections(self.max_connections));
        }
        if !entry.connects.allow() {
            self.refused_connects.fetch_add(1, Ordering::Relaxed);
            return Err(AddressRefusal::TooManyConnects(self.connects_per_minute));
        }
        entry.open += 1;
        Ok(Some(AddressPermit {
            limits: Arc::clone(self),
            key,
        }))
    }

    /// Forgets addresses with no connection whose connect budget is whole again.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.table
            .retain(|_, e| e.open > 0 || !e.connects.is_full_at(now));
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.table.len()
    }

    /// Connections refused: (over the concurrent limit, over the connect rate).
    pub fn refusals(&self) -> (u64, u64) {
        (
            self.refused_connections.load(Ordering::Relaxed),
            self.refused_connects.load(Ordering::Relaxed),
        )
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// The unit counted: an IPv4 address, or an IPv6 /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(trusted: &[&str], max: usize, per_minute: u32) -> Arc<AddressLimits> {
        let config = Config {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            max_connections_per_ip: max,
            max_connects_per_ip_per_minute: per_minute,
            ..Config::default()
        };
        Arc::new(AddressLimits::new(&config))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let l = limits(&["10.0.0.0/8"], 0, 0);
        let xff = ["203.0.113.9, 198.51.100.7", "10.0.0.2"];
        // Read from the right: the proxy's own hop is skipped, the client's nearest hop is kept.
        assert_eq!(
            l.client_address(ip("10.0.0.1"), xff.into_iter()),
            ip("198.51.100.7")
        );
        assert_eq!(
            l.client_address(ip("203.0.113.1"), xff.into_iter()),
            ip("203.0.113.1")
        );
        assert_eq!(
            l.client_address(ip("10.0.0.1"), [].into_iter()),
            ip("10.0.0.1")
        );
        assert_eq!(
            l.client_address(ip("10.0.0.1"), ["junk, 10.0.0.3"].into_iter()),
            ip("10.0.0.3")
        );
        assert_eq!(
            l.client_address(ip("10.0.0.1"), ["[2001:db8::1]:443"].into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            l.client_address(ip("::ffff:203.0.113.4"), [].into_iter()),
            ip("203.0.113.4")
        );
    }

    #[test]
    fn concurrent_connections_per_address() {
        let l = limits(&["127.0.0.0/8"], 2, 0);
        let a = l.admit(ip("203.0.113.1")).unwrap();
        let _b = l.admit(ip("203.0.113.1")).unwrap();
        assert_eq!(
            l.admit(ip("203.0.113.1")).err(),
            Some(AddressRefusal::TooManyConnections(2))
        );
        assert!(l.admit(ip("203.0.113.2")).unwrap().is_some());
        drop(a);
        assert!(l.admit(ip("203.0.113.1")).is_ok());
        // A trusted address is not counted.
        assert!((0..10).all(|_| l.admit(ip("127.0.0.1")).unwrap().is_none()));
        // One IPv6 /64 is one address.
        let _c = l.admit(ip("2001:db8::1")).unwrap();
        let _d = l.admit(ip("2001:db8::2")).unwrap();
        assert!(l.admit(ip("2001:db8::3")).is_err());
        assert_eq!(l.refusals().0, 2);
    }

    #[test]
    fn connects_per_minute_and_sweep() {
        let l = limits(&[], 0, 3);
        for _ in 0..3 {
            drop(l.admit(ip("203.0.113.1")).unwrap());
        }
        assert_eq!(
            l.admit(ip("203.0.113.1")).err(),
            Some(AddressRefusal::TooManyConnects(3))
        );
        assert_eq!(l.refusals(), (0, 1));
        // Still refilling: kept; another address is on its own budget.
        assert!(l.admit(ip("203.0.113.2")).is_ok());
        l.sweep();
        assert_eq!(l.tracked(), 2);
        let off = limits(&[], 0, 0);
        assert!(off.admit(ip("203.0.113.1")).unwrap().is_none());
        assert_eq!(off.tracked(), 0);
    }
}
