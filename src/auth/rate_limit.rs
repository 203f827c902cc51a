//! Rate limiting per client IP (BEHAVIOR.md §3.5): two tiers (auth and
//! standard), each a GCRA token bucket per IP with capacity `burst` and one
//! token every `1 / per_second` seconds. Buckets of one IP live on one shard
//! ([`crate::shard::placement::client_owner`]), so limits hold for the whole
//! process, not per shard; [`Buckets`] is that shard-local table.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy: then
//! `X-Forwarded-For` is read right to left, skipping unparsable and trusted
//! entries; the first remaining address is the client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// A CIDR block such as `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid CIDR {0:?} (expected e.g. 10.0.0.0/8 or ::1/128)")]
pub struct CidrError(String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let err = || CidrError(s.to_string());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| err())?,
                p.parse::<u8>().map_err(|_| err())?,
            ),
            None => {
                let a = s.parse::<IpAddr>().map_err(|_| err())?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(err());
        }
        Ok(Self { network: addr, prefix })
    }
}

fn to_bits(ip: IpAddr) -> (u128, u8) {
    match ip {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    }
}

impl Cidr {
    /// Whether `ip` lies in this block (same address family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, width) = to_bits(self.network);
        let (addr, addr_width) = to_bits(ip);
        if width != addr_width {
            return false;
        }
        let host_bits = u32::from(width - self.prefix);
        let mask = if host_bits >= 128 { 0 } else { u128::MAX << host_bits };
        (net & mask) == (addr & mask)
    }
}

/// The client address of a request (see the module doc).
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&http::HeaderValue>, trusted: &[Cidr]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(value) = forwarded_for.and_then(|v| v.to_str().ok()) else {
        return peer;
    };
    value
        .rsplit(',')
        .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// The rate-limit tier of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Registration, login, logout, refresh.
    Auth,
    /// Devices, keys, messages, gateway.
    Standard,
}

/// One tier's rate: a token every `interval`, at most `burst` stored.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    interval: Duration,
    burst: u32,
}

impl Rate {
    /// `per_second` tokens a second (0 counts as 1), capacity `burst` (≥ 1).
    pub fn new(per_second: u32, burst: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: burst.max(1),
        }
    }

    fn tolerance(&self) -> Duration {
        self.interval * (self.burst - 1)
    }
}

/// A refused request: the whole seconds until the next token (rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// The buckets of the client IPs one shard owns.
pub struct Buckets {
    auth: Rate,
    standard: Rate,
    /// Theoretical arrival time per (IP, tier), GCRA's whole state.
    tat: HashMap<(IpAddr, Tier), Instant>,
    clients_max: usize,
}

impl Buckets {
    /// Empty buckets with the two tiers' rates, remembering at most
    /// `clients_max` (IP, tier) pairs.
    pub fn new(auth: Rate, standard: Rate, clients_max: usize) -> Self {
        Self {
            auth,
            standard,
            tat: HashMap::new(),
            clients_max: clients_max.max(1),
        }
    }

    /// Takes one token of `tier` for `ip` at `now`, or says how long to wait.
    pub fn check(&mut self, ip: IpAddr, tier: Tier, now: Instant) -> Result<(), RetryAfter> {
        let rate = match tier {
            Tier::Auth => self.auth,
            Tier::Standard => self.standard,
        };
        let tat = self.tat.get(&(ip, tier)).copied().unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > rate.tolerance() {
            return Err(RetryAfter((ahead - rate.tolerance()).as_secs()));
        }
        if self.tat.len() >= self.clients_max && !self.tat.contains_key(&(ip, tier)) {
            self.forget_idle(now);
        }
        self.tat.insert((ip, tier), tat + rate.interval);
        Ok(())
    }

    /// Drops clients whose bucket has refilled (they look new anyway); if
    /// none has, drops an arbitrary one so the table stays bounded.
    fn forget_idle(&mut self, now: Instant) {
        self.tat.retain(|_, tat| *tat > now);
        if self.tat.len() >= self.clients_max {
            if let Some(key) = self.tat.keys().next().copied() {
                self.tat.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_membership_is_exact() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        let one: Cidr = "127.0.0.1/32".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")));
        assert!(!one.contains(ip("127.0.0.2")));
        assert!(!one.contains(ip("::1")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        assert!("1.2.3.4/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }

    #[test]
    fn forwarded_for_is_read_right_to_left() {
        let trusted: Vec<Cidr> = vec!["127.0.0.1/32".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
        let h = |s: &str| http::HeaderValue::from_str(s).unwrap();
        let peer = ip("127.0.0.1");
        assert_eq!(client_ip(ip("8.8.8.8"), Some(&h("1.1.1.1")), &trusted), ip("8.8.8.8"));
        assert_eq!(client_ip(peer, Some(&h("1.1.1.1")), &trusted), ip("1.1.1.1"));
        assert_eq!(
            client_ip(peer, Some(&h("9.9.9.9, 1.1.1.1, 2.2.2.2")), &trusted),
            ip("2.2.2.2")
        );
        assert_eq!(
            client_ip(peer, Some(&h("2.2.2.2, junk, 10.1.1.1")), &trusted),
            ip("2.2.2.2")
        );
        assert_eq!(client_ip(peer, Some(&h("10.1.1.1")), &trusted), peer);
        assert_eq!(client_ip(peer, None, &trusted), peer);
    }

    #[test]
    fn bucket_allows_burst_then_refuses_then_refills() {
        let mut b = Buckets::new(Rate::new(1, 2), Rate::new(1, 2), 10);
        let t0 = Instant::now();
        let a = ip("1.1.1.1");
        assert!(b.check(a, Tier::Standard, t0).is_ok());
        assert!(b.check(a, Tier::Standard, t0).is_ok());
        assert_eq!(b.check(a, Tier::Standard, t0), Err(RetryAfter(1)));
        assert!(b.check(a, Tier::Auth, t0).is_ok(), "tiers are independent");
        assert!(
            b.check(ip("2.2.2.2"), Tier::Standard, t0).is_ok(),
            "clients are independent"
        );
        assert!(b.check(a, Tier::Standard, t0 + Duration::from_millis(1100)).is_ok());
    }

    #[test]
    fn table_stays_bounded() {
        let mut b = Buckets::new(Rate::new(1, 5), Rate::new(1, 5), 3);
        let t0 = Instant::now();
        for i in 0..10u8 {
            assert!(b.check(IpAddr::from([1, 1, 1, i]), Tier::Auth, t0).is_ok());
        }
        assert!(b.tat.len() <= 3);
    }
}
