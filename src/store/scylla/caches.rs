//! What the ScyllaDB store remembers between calls so the send and ack
//! paths read little: devices known to exist (with whether they have a push
//! token), mailbox buckets whose row is written, wake-up pushes scheduled,
//! acks since a mailbox's floor moved. Each is a map of two generations: at
//! its bound the young one becomes the old one, so memory stays bounded and
//! what is used stays. This process's own changes update them;
//! docs/ARCHITECTURE.md says what that means for several nodes. The device
//! cache also follows deletions made through other nodes ([`DeviceCache`]):
//! their events drop the device, and while events may be missed it is not
//! used at all.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use uuid::Uuid;

use super::positions::bucket_at_millis;
use crate::limits;
use crate::util::time::now_millis;

/// A map of two generations.
pub struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    max: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Generations<K, V> {
    /// At most about `2 * max` entries.
    pub fn new(max: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            max: max.max(1),
        }
    }

    /// The value of `key`, kept young.
    pub fn get(&mut self, key: &K) -> Option<V> {
        if let Some(v) = self.young.get(key) {
            return Some(v.clone());
        }
        let v = self.old.remove(key)?;
        self.insert(key.clone(), v.clone());
        Some(v)
    }

    /// Sets `key`.
    pub fn insert(&mut self, key: K, value: V) {
        self.old.remove(&key);
        self.young.insert(key, value);
        if self.young.len() >= self.max {
            self.old = std::mem::take(&mut self.young);
        }
    }

    /// Forgets `key`.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// A device as the send path needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownDevice {
    /// Whether it has a push token (wake-ups are scheduled for it).
    pub has_token: bool,
}

/// Devices known to exist, and whether that knowledge may be used.
///
/// A read of the store that found devices fills the cache only if no
/// deletion elsewhere and no change of trust happened while it ran (the
/// epoch did not move), so a device forgotten meanwhile is not put back.
pub struct DeviceCache {
    /// The devices, by id.
    pub map: Mutex<Generations<Uuid, KnownDevice>>,
    /// `false` while deletions made elsewhere may be missed: then every
    /// question reads the store.
    trusted: AtomicBool,
    /// Moves (under the map's lock) whenever an entry may have gone stale.
    epoch: AtomicU64,
}

impl DeviceCache {
    fn new(max: usize) -> Self {
        Self {
            map: Mutex::new(Generations::new(max)),
            trusted: AtomicBool::new(true),
            epoch: AtomicU64::new(0),
        }
    }

    /// Where a read of the store starts: `None` while the cache is not
    /// trusted (nothing is answered from it, nor filled).
    pub fn read_start(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::Acquire);
        self.trusted.load(Ordering::Acquire).then_some(epoch)
    }

    /// Whether a read that began at `start` may fill the map (call with the
    /// map locked).
    pub fn may_fill(&self, start: Option<u64>) -> bool {
        start.is_some_and(|epoch| self.epoch.load(Ordering::Acquire) == epoch)
    }

    /// Drops device `id`: it was deleted.
    pub fn forget(&self, id: &Uuid) {
        let mut map = lock(&self.map);
        map.remove(id);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Trusts the cache again (empty) or stops trusting it.
    pub fn trust(&self, trusted: bool) {
        let mut map = lock(&self.map);
        *map = Generations::new(map.max);
        self.trusted.store(trusted, Ordering::Release);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// The store's caches.
pub struct Caches {
    /// Devices known to exist.
    pub devices: DeviceCache,
    /// (device, bucket) pairs whose bucket row (and activity row) is written.
    pub buckets: Mutex<Generations<(Uuid, i64), ()>>,
    /// Devices with a wake-up push scheduled by this process, by due time.
    pub pushes: Mutex<Generations<Uuid, u64>>,
    /// Messages acked per device since its floor last moved.
    pub acks: Mutex<Generations<Uuid, usize>>,
}

impl Caches {
    /// Empty caches.
    pub fn new() -> Self {
        let max = limits::SCYLLA_CACHE_ENTRIES_MAX;
        Self {
            devices: DeviceCache::new(max),
            buckets: Mutex::new(Generations::new(max)),
            pushes: Mutex::new(Generations::new(max)),
            acks: Mutex::new(Generations::new(max)),
        }
    }
}

impl Caches {
    /// Whether what other nodes may change (devices, their mailboxes'
    /// buckets, their wake-ups) may be answered from these caches.
    pub fn trusted(&self) -> bool {
        self.devices.read_start().is_some()
    }

    /// Trusts the caches again (empty) or stops trusting them.
    pub fn trust(&self, trusted: bool) {
        self.devices.trust(trusted);
        lock(&self.buckets).clear();
        lock(&self.pushes).clear();
    }

    /// Drops what is cached of `device` that another node may have changed:
    /// the device, its mailbox's recent buckets (the ones new appends
    /// write), its scheduled wake-up.
    pub fn forget_device(&self, device: Uuid) {
        self.devices.forget(&device);
        let now = bucket_at_millis(now_millis());
        let mut buckets = lock(&self.buckets);
        for bucket in now - 2..=now + 1 {
            buckets.remove(&(device, bucket));
        }
        drop(buckets);
        lock(&self.pushes).remove(&device);
    }
}

/// Locks a cache (a poisoned lock still holds a usable map).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_keep_what_is_used() {
        let mut g = Generations::new(2);
        g.insert(1, "a");
        g.insert(2, "b"); // young full: becomes old
        g.insert(3, "c");
        assert_eq!(g.get(&1), Some("a"), "promoted from the old generation");
        g.insert(4, "d"); // young {3, 1} full again... then {4}
        g.insert(5, "e");
        assert_eq!(g.get(&2), None, "dropped with its generation");
        assert_eq!(g.remove(&5), Some("e"));
    }
}
