//! [`RevocationLog`] on ScyllaDB: the `revocations` time index (one
//! partition per hour of decision time; a row per revocation, its id the
//! account and its floor), read from a time on by every relay node.
//!
//! A revocation is written *before* the compare-and-set that decides it
//! (a password change, a deletion), so a crash between the two cannot
//! leave a decision that the log lacks. An entry therefore counts only
//! once the account's row shows it — a generation at least the entry's,
//! or the deletion marker, or no row at all — and the read leaves out
//! those that do not (a decision that failed, or has not landed yet: the
//! nodes' re-reads overlap by a minute, so they see it once it lands).

use std::collections::HashMap;

use futures_util::future::try_join_all;
use uuid::Uuid;

use super::account_rows::Account;
use super::cql::Part;
use super::time_index::{Entry, TimeIndexes, REVOCATIONS};
use super::{Inner, ScyllaStore};
use crate::store::{Revocation, RevocationLog, StoreError, StoreFuture, TokenFloor};

/// An entry's id: the account, then the floor (`0` and the generation,
/// big-endian, or `1` for a deletion), so that within one millisecond an
/// account's stricter revocation sorts last.
fn entry_id(user: Uuid, floor: TokenFloor) -> Vec<u8> {
    let mut id = user.as_bytes().to_vec();
    match floor {
        TokenFloor::Generation(generation) => {
            id.push(0);
            id.extend_from_slice(&generation.to_be_bytes());
        }
        TokenFloor::Deleted => id.extend_from_slice(&[1, 0, 0, 0, 0]),
    }
    id
}

/// The revocation of an entry, if it is one.
fn revocation_of((at_ms, id): Entry) -> Option<Revocation> {
    let user = Uuid::from_slice(id.get(..16)?).ok()?;
    let generation = u32::from_be_bytes(id.get(17..21)?.try_into().ok()?);
    let floor = match id.get(16)? {
        0 => TokenFloor::Generation(generation),
        1 => TokenFloor::Deleted,
        _ => return None,
    };
    Some(Revocation {
        user_id: user,
        floor,
        at_ms,
    })
}

/// Whether the account's row (`None`: no row) shows the revocation.
fn decided(floor: TokenFloor, account: Option<&Account>) -> bool {
    match (account, floor) {
        (None, _) => true,
        (Some(a), _) if a.deleted_at_ms.is_some() => true,
        (Some(a), TokenFloor::Generation(generation)) => a.generation() >= generation,
        (Some(_), TokenFloor::Deleted) => false,
    }
}

impl Inner {
    /// The log entry of a revocation, for a batch.
    pub(super) async fn revocation_part(&self, user: Uuid, floor: TokenFloor, at_ms: i64) -> Result<Part, StoreError> {
        let alive = at_ms.div_euclid(1000).saturating_add(self.options.ttl_secs);
        self.indexes
            .part(&self.cql, REVOCATIONS, at_ms, entry_id(user, floor), alive)
            .await
    }

    /// The removal of a revocation's log entry, for a batch.
    pub(super) fn revocation_remove_part(user: Uuid, floor: TokenFloor, at_ms: i64) -> Part {
        TimeIndexes::remove_part(REVOCATIONS, at_ms, entry_id(user, floor))
    }

    /// Logs a revocation.
    pub(super) async fn log_revocation(&self, user: Uuid, floor: TokenFloor, at_ms: i64) -> Result<(), StoreError> {
        let (stmt, values) = self.revocation_part(user, floor, at_ms).await?;
        self.cql.exec(stmt, values).await.map(drop)
    }

    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let entries = self.indexes.since(&self.cql, REVOCATIONS, since_ms).await?;
        let logged: Vec<Revocation> = entries.into_iter().filter_map(revocation_of).collect();
        let mut users: Vec<Uuid> = logged.iter().map(|r| r.user_id).collect();
        users.sort_unstable();
        users.dedup();
        let reads = users
            .into_iter()
            .map(|user| async move { Ok::<_, StoreError>((user, self.account(user).await?)) });
        let accounts: HashMap<Uuid, Option<Account>> = try_join_all(reads).await?.into_iter().collect();
        Ok(logged
            .into_iter()
            .filter(|r| decided(r.floor, accounts.get(&r.user_id).and_then(Option::as_ref)))
            .collect())
    }

    async fn purge_revocations(&self, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, REVOCATIONS, before_ms.saturating_sub(1), limit)
            .await?;
        let removals = due
            .iter()
            .map(|(at, id)| self.indexes.remove(&self.cql, REVOCATIONS, *at, id.clone()));
        try_join_all(removals).await?;
        Ok(due.len())
    }
}

impl RevocationLog for ScyllaStore {
    fn revocations_since(&self, since_ms: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.call(move |s| async move { s.revocations_since(since_ms).await })
    }

    fn purge_revocations(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.purge_revocations(before_ms, limit).await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an entry's id round-trips its account and floor, and within
    /// one millisecond an account's stricter floor sorts last.
    #[test]
    fn entry_ids_carry_the_floor_and_sort_by_strictness() {
        let user = Uuid::now_v7();
        for floor in [
            TokenFloor::Generation(0),
            TokenFloor::Generation(7),
            TokenFloor::Deleted,
        ] {
            let back = revocation_of((5, entry_id(user, floor))).unwrap();
            assert_eq!((back.user_id, back.floor, back.at_ms), (user, floor, 5));
        }
        assert!(entry_id(user, TokenFloor::Generation(1)) < entry_id(user, TokenFloor::Generation(2)));
        assert!(entry_id(user, TokenFloor::Generation(u32::MAX)) < entry_id(user, TokenFloor::Deleted));
        assert_eq!(revocation_of((5, vec![1, 2, 3])), None);
    }
}
