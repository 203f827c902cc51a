//! Refusing access tokens after a password change or a deletion, without
//! a store read per request.
//!
//! An access token carries its account's token generation
//! ([`crate::auth::tokens`]); the store keeps each account's current one
//! and logs every change ([`crate::store::RevocationLog`]). A revocation
//! matters only for as long as a token issued before it can live — the
//! token lifetime plus the verifier's leeway and a margin for clocks
//! ([`keep_ms`]) — so this process keeps just the recent ones, in a small
//! map from account to [`TokenFloor`]:
//!
//! - [`Revocations`] (in [`super::App`], shared by every shard) holds the
//!   map as an immutable snapshot behind a mutex, and a version number.
//!   [`Revocations::apply`] is the one way revocations enter it: the
//!   password change or deletion decided on this node, the periodic
//!   re-read of the store's log (`crate::cleanup::revocations`), the load
//!   at start, and — with several relay nodes — the cross-node event of a
//!   decision taken elsewhere. It merges, drops entries older than
//!   [`keep_ms`], publishes a new snapshot and bumps the version.
//! - [`RevocationView`] (in [`super::ShardLocal`], one per shard) caches
//!   the snapshot. A check loads the version (one atomic read of a line
//!   that is written only when a revocation arrives, so it stays shared in
//!   every core's cache) and takes the mutex only when it moved; with no
//!   recent revocation the map is empty and the check ends there.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::auth::tokens::EXP_LEEWAY_SECS;
use crate::limits;
use crate::store::{Revocation, TokenFloor};

/// Recent revocations: the floor of each account and when it was set (ms).
type Floors = HashMap<Uuid, (TokenFloor, i64)>;

/// How long a revocation is kept, ms, for access tokens living
/// `token_ttl_secs`: after that every token it refuses has expired.
pub fn keep_ms(token_ttl_secs: u64) -> i64 {
    let secs = token_ttl_secs
        .saturating_add(EXP_LEEWAY_SECS)
        .saturating_add(limits::AUTH_REVOCATION_MARGIN_SECS);
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// The process's recent revocations (see the module documentation).
pub struct Revocations {
    version: AtomicU64,
    floors: Mutex<Arc<Floors>>,
    keep_ms: i64,
}

impl Revocations {
    /// An empty map keeping revocations for `keep_ms` ([`keep_ms`]).
    pub fn new(keep_ms: i64) -> Self {
        Self {
            version: AtomicU64::new(0),
            floors: Mutex::new(Arc::new(Floors::new())),
            keep_ms,
        }
    }

    /// Takes in `revocations` (the stricter floor wins; applying one twice
    /// changes nothing) and drops those older than the keep time at
    /// `now_ms`. The one update path of the map.
    pub fn apply(&self, revocations: &[Revocation], now_ms: i64) {
        let oldest = now_ms.saturating_sub(self.keep_ms);
        let mut current = self.floors.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = revocations.iter().filter(|r| r.at_ms >= oldest);
        let changes = fresh.clone().any(|r| match current.get(&r.user_id) {
            Some((floor, _)) => floor.max(r.floor) != *floor,
            None => true,
        });
        if !changes && current.values().all(|(_, at)| *at >= oldest) {
            return;
        }
        let mut next: Floors = current
            .iter()
            .filter(|(_, (_, at))| *at >= oldest)
            .map(|(k, v)| (*k, *v))
            .collect();
        for r in fresh {
            let entry = next.entry(r.user_id).or_insert((r.floor, r.at_ms));
            *entry = (entry.0.max(r.floor), entry.1.max(r.at_ms));
        }
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot.
    fn snapshot(&self) -> Arc<Floors> {
        self.floors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One shard's cached snapshot of [`Revocations`].
#[derive(Default)]
pub struct RevocationView {
    seen: Cell<u64>,
    floors: RefCell<Arc<Floors>>,
}

impl RevocationView {
    /// Whether a token of `user` issued at `generation` is still accepted.
    pub fn admits(&self, shared: &Revocations, user: Uuid, generation: u32) -> bool {
        let version = shared.version.load(Ordering::Acquire);
        if version != self.seen.get() {
            *self.floors.borrow_mut() = shared.snapshot();
            self.seen.set(version);
        }
        let floors = self.floors.borrow();
        floors.is_empty() || floors.get(&user).is_none_or(|(floor, _)| floor.admits(generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(user: Uuid, floor: TokenFloor, at_ms: i64) -> Revocation {
        Revocation {
            user_id: user,
            floor,
            at_ms,
        }
    }

    /// Goal: a view refuses exactly the tokens below an account's floor
    /// (all of a deleted account's), sees a revocation applied after it
    /// cached a snapshot, keeps the stricter of two floors whatever their
    /// order (and the later time), and forgets a revocation once it is
    /// older than the keep time.
    #[test]
    fn floors_refuse_old_generations_until_they_age_out() {
        let shared = Revocations::new(1_000);
        let view = RevocationView::default();
        let (changed, deleted, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(view.admits(&shared, changed, 0));
        shared.apply(&[revocation(changed, TokenFloor::Generation(2), 10_000)], 10_000);
        assert!(!view.admits(&shared, changed, 1), "the view sees the new snapshot");
        assert!(view.admits(&shared, changed, 2));
        assert!(view.admits(&shared, other, 0));
        shared.apply(
            &[
                revocation(deleted, TokenFloor::Deleted, 10_100),
                revocation(changed, TokenFloor::Generation(1), 10_200),
            ],
            10_200,
        );
        assert!(!view.admits(&shared, deleted, u32::MAX));
        assert!(!view.admits(&shared, changed, 1), "an older floor never lowers it");
        let version = shared.version.load(Ordering::Acquire);
        shared.apply(&[revocation(changed, TokenFloor::Generation(2), 10_000)], 10_300);
        assert_eq!(
            shared.version.load(Ordering::Acquire),
            version,
            "nothing new: no new snapshot"
        );
        shared.apply(&[], 11_150);
        assert!(view.admits(&shared, deleted, 0), "aged out");
        assert!(
            !view.admits(&shared, changed, 1),
            "kept as long as its latest revocation"
        );
        shared.apply(&[revocation(other, TokenFloor::Deleted, 1)], 11_150);
        assert!(
            view.admits(&shared, other, 0),
            "a revocation older than the keep time is moot"
        );
        shared.apply(&[], 20_000);
        assert!(shared.snapshot().is_empty());
    }
}
