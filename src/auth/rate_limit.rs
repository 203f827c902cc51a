//! Rate limiting per client IP (BEHAVIOR.md §3.5): three tiers (auth,
//! standard, and the username lookup of its own), each a GCRA token bucket per IP with capacity `burst` and one
//! token every `1 / per_second` seconds. [`Buckets`] is one table for the
//! whole process, shared by every shard without a lock: a bucket's whole
//! state is one atomic number, so the check and the take are one
//! compare-and-swap, and the limits hold for the process, not per shard.
//!
//! The client IP is the TCP peer, unless the peer is a trusted proxy: then
//! `X-Forwarded-For` is read right to left, skipping unparsable and trusted
//! entries; the first remaining address is the client.

use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::limits;
use crate::util::cidr::Cidr;

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
    /// `GET /v1/usernames/{username}`: slow, so that walking the namespace
    /// is.
    Lookup,
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

/// The rate of each tier.
#[derive(Debug, Clone, Copy)]
pub struct TierRates {
    /// [`Tier::Auth`].
    pub auth: Rate,
    /// [`Tier::Standard`].
    pub standard: Rate,
    /// [`Tier::Lookup`].
    pub lookup: Rate,
}

/// A refused request: the whole seconds until the next token (rounded down).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// One (client IP, tier) pair: its key (0 = free) and GCRA's whole state,
/// the theoretical arrival time in ns since the table's epoch.
#[derive(Default)]
struct Slot {
    key: AtomicU64,
    tat: AtomicU64,
}

/// The buckets of every client IP, shared by all shards: a fixed table of
/// atomics, so a shard takes a token with one compare-and-swap and no hop
/// (GCRA's whole state is one number). A pair lives in one of the [`limits::RATE_LIMIT_PROBE_SLOTS`]
/// slots after its hashed home slot. When all of them are taken by other
/// pairs, the one whose bucket is fullest is reused: a refilled bucket is
/// the same as a new one, so only a table full of busy clients forgets
/// state, as the bound on remembered clients must.
pub struct Buckets {
    rates: TierRates,
    slots: Box<[Slot]>,
    hasher: RandomState,
    epoch: Instant,
}

impl Buckets {
    /// Empty buckets with the tiers' rates, remembering about
    /// `clients_max` (IP, tier) pairs.
    pub fn new(rates: TierRates, clients_max: usize) -> Self {
        let size = (clients_max.max(limits::RATE_LIMIT_PROBE_SLOTS) * 2).next_power_of_two();
        // SAFETY: a `Slot` is two atomics, for which all zeros is valid (a
        // free slot). A zeroed allocation is fresh memory the OS zeroes, so
        // pages count towards RSS only once clients use them.
        let slots = unsafe { Box::<[Slot]>::new_zeroed_slice(size).assume_init() };
        Self {
            rates,
            slots,
            hasher: RandomState::new(),
            epoch: Instant::now(),
        }
    }

    /// Takes one token of `tier` for `ip` at `now`, or says how long to wait.
    pub fn check(&self, ip: IpAddr, tier: Tier, now: Instant) -> Result<(), RetryAfter> {
        let rate = match tier {
            Tier::Auth => self.rates.auth,
            Tier::Standard => self.rates.standard,
            Tier::Lookup => self.rates.lookup,
        };
        let now = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        take(self.slot(ip, tier), rate, now)
    }

    /// The slot of (`ip`, `tier`): its own, a free one, or a reused one.
    fn slot(&self, ip: IpAddr, tier: Tier) -> &Slot {
        let key = self.hasher.hash_one((ip, tier)) | 1;
        let mask = self.slots.len() - 1;
        let home = key as usize & mask;
        let window = || (0..limits::RATE_LIMIT_PROBE_SLOTS).filter_map(|i| self.slots.get((home + i) & mask));
        for slot in window() {
            // Read first: a compare-exchange takes the cache line even when
            // it fails, and most requests find their own slot.
            let found = match slot.key.load(Ordering::Acquire) {
                0 => slot.key.compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire),
                found => Err(found),
            };
            if found.is_ok() || found == Err(key) {
                return slot;
            }
        }
        let fullest = window()
            .min_by_key(|slot| slot.tat.load(Ordering::Relaxed))
            .unwrap_or(&self.slots[home]);
        fullest.key.store(key, Ordering::Release);
        fullest.tat.store(0, Ordering::Release);
        fullest
    }
}

/// GCRA on one slot at `now` (ns): the request conforms if the theoretical
/// arrival time is at most `tolerance` ahead; it then moves one interval on.
fn take(slot: &Slot, rate: Rate, now: u64) -> Result<(), RetryAfter> {
    let interval = u64::try_from(rate.interval.as_nanos()).unwrap_or(u64::MAX);
    let tolerance = u64::try_from(rate.tolerance().as_nanos()).unwrap_or(u64::MAX);
    let mut tat = slot.tat.load(Ordering::Acquire);
    loop {
        let from = tat.max(now);
        let ahead = from - now;
        if ahead > tolerance {
            return Err(RetryAfter((ahead - tolerance) / 1_000_000_000));
        }
        match slot
            .tat
            .compare_exchange_weak(tat, from.saturating_add(interval), Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Ok(()),
            Err(current) => tat = current,
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

    /// Every tier at `per_second`, `burst`.
    fn same(per_second: u32, burst: u32) -> TierRates {
        let rate = Rate::new(per_second, burst);
        TierRates {
            auth: rate,
            standard: rate,
            lookup: rate,
        }
    }

    #[test]
    fn bucket_allows_burst_then_refuses_then_refills() {
        let b = Buckets::new(same(1, 2), 10);
        let t0 = Instant::now();
        let a = ip("1.1.1.1");
        assert!(b.check(a, Tier::Standard, t0).is_ok());
        assert!(b.check(a, Tier::Standard, t0).is_ok());
        assert_eq!(b.check(a, Tier::Standard, t0), Err(RetryAfter(1)));
        assert!(b.check(a, Tier::Auth, t0).is_ok(), "tiers are independent");
        assert!(b.check(a, Tier::Lookup, t0).is_ok(), "tiers are independent");
        assert!(
            b.check(ip("2.2.2.2"), Tier::Standard, t0).is_ok(),
            "clients are independent"
        );
        assert!(b.check(a, Tier::Standard, t0 + Duration::from_millis(1100)).is_ok());
    }

    /// Goal: the table has a fixed size; when every slot near a client's
    /// is taken by a busy client, the fullest bucket's slot is reused.
    #[test]
    fn table_stays_bounded_and_reuses_the_fullest_bucket() {
        let b = Buckets::new(same(1, 5), 3);
        let size = b.slots.len();
        let t0 = Instant::now();
        for i in 0..=255u8 {
            assert!(b.check(IpAddr::from([1, 1, 1, i]), Tier::Auth, t0).is_ok());
        }
        assert_eq!(b.slots.len(), size);
        assert!(b.slots.iter().all(|s| s.key.load(Ordering::Relaxed) != 0), "all taken");
        let busy = ip("9.9.9.9");
        for _ in 0..5 {
            assert!(b.check(busy, Tier::Auth, t0).is_ok());
        }
        assert!(b.check(busy, Tier::Auth, t0).is_err(), "its own slot holds its state");
    }

    /// Goal: two shards taking tokens of one client at once never take more
    /// than the burst between them.
    #[test]
    fn concurrent_takers_share_one_bucket() {
        let b = std::sync::Arc::new(Buckets::new(same(1, 1000), 100));
        let t0 = Instant::now();
        let taken: usize = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    (0..600)
                        .filter(|_| b.check(ip("7.7.7.7"), Tier::Standard, t0).is_ok())
                        .count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(taken, 1000);
    }
}
