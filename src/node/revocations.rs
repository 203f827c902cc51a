//! Refusing access tokens after a password change, an account deletion or
//! a device deletion, without a store read per request.
//!
//! An access token carries its account's token generation and user-scope
//! generation ([`crate::auth::tokens`]); the store keeps each account's
//! current ones and logs every change ([`crate::store::RevocationLog`]). A
//! revocation matters only for as long as a token issued before it can
//! live — the token lifetime plus the verifier's leeway and a margin for
//! clocks ([`keep_ms`]) — so this process keeps just the recent ones, in a
//! small map from account or device to its [`Floors`]:
//!
//! - [`Revocations`] (in [`super::App`], shared by every shard) holds the
//!   map as an immutable snapshot behind a mutex, and a version number.
//!   [`Revocations::apply`] is the one way revocations enter it: the
//!   decisions taken on this node, the periodic re-read of the store's log
//!   (`crate::cleanup::revocations`), the load at start, and — with
//!   several relay nodes — the cross-node event of a decision taken
//!   elsewhere. It merges, drops entries older than [`keep_ms`], publishes
//!   a new snapshot and bumps the version.
//! - [`RevocationView`] (in [`super::ShardLocal`], one per shard) caches
//!   the snapshot. A check loads the version (one atomic read of a line
//!   that is written only when a revocation arrives, so it stays shared in
//!   every core's cache) and takes the mutex only when it moved; with no
//!   recent revocation the map is empty and the check ends there.
//!
//! A token is refused when its account's floor refuses its generation,
//! when it is user-scoped and below its account's user-scope floor, or
//! when it is device-scoped and its device was deleted.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::auth::tokens::{Principal, EXP_LEEWAY_SECS};
use crate::limits;
use crate::store::{Revocation, Revoked, TokenFloor};

/// What is refused of one account's or one device's tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Floors {
    /// The account's floor (a device's is `Deleted` or none).
    tokens: Option<TokenFloor>,
    /// The account's user-scope floor (0: none).
    user_scope: u32,
    /// When the latest of them was decided, ms.
    at_ms: i64,
}

impl Floors {
    const NONE: Self = Self {
        tokens: None,
        user_scope: 0,
        at_ms: i64::MIN,
    };

    /// These floors with `revoked` taken in (the stricter one wins).
    fn with(self, revoked: Revoked, at_ms: i64) -> Self {
        let stricter = |floor: TokenFloor| Some(self.tokens.map_or(floor, |f| f.max(floor)));
        let (tokens, user_scope) = match revoked {
            Revoked::Account(_, floor) => (stricter(floor), self.user_scope),
            Revoked::Device(_) => (stricter(TokenFloor::Deleted), self.user_scope),
            Revoked::UserScope(_, generation) => (self.tokens, self.user_scope.max(generation)),
        };
        Self {
            tokens,
            user_scope,
            at_ms: self.at_ms.max(at_ms),
        }
    }

    /// Whether an account's token at `generation` (and, when user-scoped,
    /// `user_scope`) passes them.
    fn admit_account(&self, generation: u32, user_scoped: Option<u32>) -> bool {
        self.tokens.is_none_or(|f| f.admits(generation)) && user_scoped.is_none_or(|g| g >= self.user_scope)
    }
}

/// Recent revocations by account or device.
type FloorMap = HashMap<Uuid, Floors>;

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
    floors: Mutex<Arc<FloorMap>>,
    keep_ms: i64,
}

impl Revocations {
    /// An empty map keeping revocations for `keep_ms` ([`keep_ms`]).
    pub fn new(keep_ms: i64) -> Self {
        Self {
            version: AtomicU64::new(0),
            floors: Mutex::new(Arc::new(FloorMap::new())),
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
        let changes = fresh.clone().any(|r| {
            let floors = current.get(&r.revoked.subject()).copied().unwrap_or(Floors::NONE);
            let merged = floors.with(r.revoked, r.at_ms);
            (merged.tokens, merged.user_scope) != (floors.tokens, floors.user_scope)
        });
        if !changes && current.values().all(|f| f.at_ms >= oldest) {
            return;
        }
        let mut next: FloorMap = current
            .iter()
            .filter(|(_, f)| f.at_ms >= oldest)
            .map(|(k, v)| (*k, *v))
            .collect();
        for r in fresh {
            let entry = next.entry(r.revoked.subject()).or_insert(Floors::NONE);
            *entry = entry.with(r.revoked, r.at_ms);
        }
        *current = Arc::new(next);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot.
    fn snapshot(&self) -> Arc<FloorMap> {
        self.floors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One shard's cached snapshot of [`Revocations`].
#[derive(Default)]
pub struct RevocationView {
    seen: Cell<u64>,
    floors: RefCell<Arc<FloorMap>>,
}

impl RevocationView {
    /// Whether a token naming `principal` is still accepted.
    pub fn admits(&self, shared: &Revocations, principal: &Principal) -> bool {
        let version = shared.version.load(Ordering::Acquire);
        if version != self.seen.get() {
            *self.floors.borrow_mut() = shared.snapshot();
            self.seen.set(version);
        }
        let floors = self.floors.borrow();
        if floors.is_empty() {
            return true;
        }
        let user_scoped = principal.device_id.is_none().then_some(principal.user_scope);
        let account = floors.get(&principal.user_id);
        let device_gone = principal
            .device_id
            .and_then(|d| floors.get(&d))
            .is_some_and(|f| f.tokens == Some(TokenFloor::Deleted));
        account.is_none_or(|f| f.admit_account(principal.generation, user_scoped)) && !device_gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revocation(user: Uuid, floor: TokenFloor, at_ms: i64) -> Revocation {
        Revocation {
            revoked: Revoked::Account(user, floor),
            at_ms,
        }
    }

    fn token(user: Uuid, device: Option<Uuid>, generation: u32, user_scope: u32) -> Principal {
        Principal {
            user_id: user,
            device_id: device,
            generation,
            user_scope,
        }
    }

    fn admits(view: &RevocationView, shared: &Revocations, user: Uuid, generation: u32) -> bool {
        view.admits(shared, &token(user, None, generation, 0))
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
        assert!(admits(&view, &shared, changed, 0));
        shared.apply(&[revocation(changed, TokenFloor::Generation(2), 10_000)], 10_000);
        assert!(!admits(&view, &shared, changed, 1), "the view sees the new snapshot");
        assert!(admits(&view, &shared, changed, 2));
        assert!(admits(&view, &shared, other, 0));
        shared.apply(
            &[
                revocation(deleted, TokenFloor::Deleted, 10_100),
                revocation(changed, TokenFloor::Generation(1), 10_200),
            ],
            10_200,
        );
        assert!(!admits(&view, &shared, deleted, u32::MAX));
        assert!(!admits(&view, &shared, changed, 1), "an older floor never lowers it");
        let version = shared.version.load(Ordering::Acquire);
        shared.apply(&[revocation(changed, TokenFloor::Generation(2), 10_000)], 10_300);
        assert_eq!(
            shared.version.load(Ordering::Acquire),
            version,
            "nothing new: no new snapshot"
        );
        shared.apply(&[], 11_150);
        assert!(admits(&view, &shared, deleted, 0), "aged out");
        assert!(
            !admits(&view, &shared, changed, 1),
            "kept as long as its latest revocation"
        );
        shared.apply(&[revocation(other, TokenFloor::Deleted, 1)], 11_150);
        assert!(
            admits(&view, &shared, other, 0),
            "a revocation older than the keep time is moot"
        );
        shared.apply(&[], 20_000);
        assert!(shared.snapshot().is_empty());
    }

    fn principal(user: Uuid, device: Option<Uuid>, user_scope: u32) -> Principal {
        Principal {
            user_id: user,
            device_id: device,
            generation: 0,
            user_scope,
        }
    }

    /// Goal: a device deletion refuses every token of that device (and
    /// only of that device), and the account's user-scoped tokens issued
    /// below the new user-scope generation, while the other devices'
    /// tokens and user-scoped tokens issued after it stay accepted; a
    /// later password change of the same account keeps both floors.
    #[test]
    fn device_deletions_refuse_the_device_and_older_user_tokens() {
        let shared = Revocations::new(60_000);
        let view = RevocationView::default();
        let (user, stolen, kept) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let deletion = crate::store::DeviceDeletion {
            user_scope_generation: 1,
            at_ms: 10_000,
        };
        shared.apply(&deletion.revocations(user, stolen), 10_000);
        assert!(!view.admits(&shared, &principal(user, Some(stolen), 0)));
        assert!(view.admits(&shared, &principal(user, Some(kept), 0)));
        assert!(
            !view.admits(&shared, &principal(user, None, 0)),
            "user token from before"
        );
        assert!(view.admits(&shared, &principal(user, None, 1)), "user token from after");
        let change = Revocation {
            revoked: Revoked::Account(user, TokenFloor::Generation(1)),
            at_ms: 10_500,
        };
        shared.apply(&[change], 10_500);
        let renewed = Principal {
            generation: 1,
            ..principal(user, None, 0)
        };
        assert!(!view.admits(&shared, &renewed), "the user-scope floor stays");
        assert!(view.admits(
            &shared,
            &Principal {
                user_scope: 1,
                ..renewed
            }
        ));
        assert!(!view.admits(&shared, &principal(user, Some(kept), 0)), "generation 0");
    }
}
