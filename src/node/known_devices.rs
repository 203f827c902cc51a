//! The device ids a shard has seen messages stored for. A device id never
//! names a user and is never reused after its device is deleted, so a
//! message target found here needs no legacy resolution (BEHAVIOR.md §17.2:
//! a target that names a user reaches the user's primary device) before its
//! append: the store's answer for it is the same either way. Bounded by two
//! generations of at most `max` ids each.

use std::collections::HashSet;

use uuid::Uuid;

/// See the module documentation.
pub struct KnownDevices {
    hot: HashSet<Uuid>,
    cold: HashSet<Uuid>,
    max: usize,
}

impl KnownDevices {
    /// An empty set keeping about `max` ids (at most twice that).
    pub fn new(max: usize) -> Self {
        Self {
            hot: HashSet::new(),
            cold: HashSet::new(),
            max: max.max(1),
        }
    }

    /// Whether `id` is known to be a device.
    pub fn contains(&mut self, id: &Uuid) -> bool {
        if self.hot.contains(id) {
            return true;
        }
        if self.cold.remove(id) {
            self.insert(*id);
            return true;
        }
        false
    }

    /// Records that `id` is a device.
    pub fn insert(&mut self, id: Uuid) {
        if self.hot.len() >= self.max && !self.hot.contains(&id) {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.insert(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an id stays known while it is used, and the set stays bounded.
    #[test]
    fn keeps_used_ids_within_two_generations() {
        let mut known = KnownDevices::new(2);
        let (a, b, c, d) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        known.insert(a);
        known.insert(b);
        known.insert(c);
        assert!(known.contains(&a), "in the cold generation, and moved back");
        known.insert(d);
        assert!(known.contains(&a));
        assert!(!known.contains(&b), "left after two rotations");
        assert!(known.hot.len() + known.cold.len() <= 4);
    }
}
