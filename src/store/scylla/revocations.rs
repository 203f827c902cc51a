//! [`RevocationLog`] on ScyllaDB: the `revocations` time index (one
//! partition per hour of decision time; a row per revocation, its id the
//! subject — account or device — and what is revoked), read from a time on
//! by every relay node.
//!
//! A revocation is written *before* the decision it logs (the
//! compare-and-set of a password change or an account deletion, a device
//! deletion), so a crash between the two cannot leave a decision that the
//! log lacks. An entry therefore counts only once the store shows the
//! decision — for an account's entry, a generation at least the entry's,
//! or the deletion marker, or no row at all; for a device's, no device row
//! — and the read leaves out those that do not (a decision that failed, or
//! has not landed yet: the nodes' re-reads overlap by a minute, so they see
//! it once it lands).

use std::collections::HashMap;

use futures_util::future::try_join_all;
use uuid::Uuid;

use super::account_rows::Account;
use super::cql::Part;
use super::time_index::{Entry, TimeIndexes, REVOCATIONS};
use super::{Inner, ScyllaStore};
use crate::store::{Revocation, RevocationLog, Revoked, StoreError, StoreFuture, TokenFloor};

/// An entry's id: the subject, a kind byte and a generation, big-endian
/// (`0` and the generation for a password change, `1` for an account's
/// deletion, `2` and the user-scope generation for a device deletion's
/// floor of user-scoped tokens, `3` for a deleted device), so that within
/// one millisecond an account's stricter revocation of a kind sorts last.
fn entry_id(revoked: Revoked) -> Vec<u8> {
    let (kind, generation) = match revoked {
        Revoked::Account(_, TokenFloor::Generation(generation)) => (0, generation),
        Revoked::Account(_, TokenFloor::Deleted) => (1, 0),
        Revoked::UserScope(_, generation) => (2, generation),
        Revoked::Device(_) => (3, 0),
    };
    let mut id = revoked.subject().as_bytes().to_vec();
    id.push(kind);
    id.extend_from_slice(&u32::to_be_bytes(generation));
    id
}

/// The revocation of an entry, if it is one.
fn revocation_of((at_ms, id): Entry) -> Option<Revocation> {
    let subject = Uuid::from_slice(id.get(..16)?).ok()?;
    let generation = u32::from_be_bytes(id.get(17..21)?.try_into().ok()?);
    let revoked = match id.get(16)? {
        0 => Revoked::Account(subject, TokenFloor::Generation(generation)),
        1 => Revoked::Account(subject, TokenFloor::Deleted),
        2 => Revoked::UserScope(subject, generation),
        3 => Revoked::Device(subject),
        _ => return None,
    };
    Some(Revocation { revoked, at_ms })
}

/// Whether the account's row (`None`: no row) shows an account's
/// revocation.
fn decided(revoked: Revoked, account: Option<&Account>) -> bool {
    match (account, revoked) {
        (None, _) => true,
        (Some(a), _) if a.deleted_at_ms.is_some() => true,
        (Some(a), Revoked::Account(_, TokenFloor::Generation(generation))) => a.generation() >= generation,
        (Some(a), Revoked::UserScope(_, generation)) => a.user_scope() >= generation,
        (Some(_), Revoked::Account(_, TokenFloor::Deleted) | Revoked::Device(_)) => false,
    }
}

impl Inner {
    /// The log entry of a revocation, for a batch.
    pub(super) async fn revocation_part(&self, revocation: Revocation) -> Result<Part, StoreError> {
        let alive = revocation.at_ms.div_euclid(1000).saturating_add(self.options.ttl_secs);
        self.indexes
            .part(
                &self.cql,
                REVOCATIONS,
                revocation.at_ms,
                entry_id(revocation.revoked),
                alive,
            )
            .await
    }

    /// The removal of a revocation's log entry, for a batch.
    pub(super) fn revocation_remove_part(revocation: Revocation) -> Part {
        TimeIndexes::remove_part(REVOCATIONS, revocation.at_ms, entry_id(revocation.revoked))
    }

    /// Logs a revocation.
    pub(super) async fn log_revocation(&self, revocation: Revocation) -> Result<(), StoreError> {
        let (stmt, values) = self.revocation_part(revocation).await?;
        self.cql.exec(stmt, values).await.map(drop)
    }

    /// Whether the store shows the decision an entry logs.
    async fn shows(&self, revoked: Revoked, accounts: &HashMap<Uuid, Option<Account>>) -> Result<bool, StoreError> {
        match revoked {
            Revoked::Device(device) => Ok(self.load_device(device).await?.is_none()),
            _ => Ok(decided(
                revoked,
                accounts.get(&revoked.subject()).and_then(Option::as_ref),
            )),
        }
    }

    async fn revocations_since(&self, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
        let entries = self.indexes.since(&self.cql, REVOCATIONS, since_ms).await?;
        let logged: Vec<Revocation> = entries.into_iter().filter_map(revocation_of).collect();
        let mut users: Vec<Uuid> = logged
            .iter()
            .filter(|r| !matches!(r.revoked, Revoked::Device(_)))
            .map(|r| r.revoked.subject())
            .collect();
        users.sort_unstable();
        users.dedup();
        let reads = users
            .into_iter()
            .map(|user| async move { Ok::<_, StoreError>((user, self.account(user).await?)) });
        let accounts: HashMap<Uuid, Option<Account>> = try_join_all(reads).await?.into_iter().collect();
        let checks = logged.iter().map(|r| self.shows(r.revoked, &accounts));
        let shown = try_join_all(checks).await?;
        Ok(logged
            .into_iter()
            .zip(shown)
            .filter_map(|(r, shown)| shown.then_some(r))
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

    /// Goal: an entry's id round-trips its subject and what is revoked,
    /// and within one millisecond an account's stricter floor sorts last.
    #[test]
    fn entry_ids_carry_the_floor_and_sort_by_strictness() {
        let user = Uuid::now_v7();
        for revoked in [
            Revoked::Account(user, TokenFloor::Generation(0)),
            Revoked::Account(user, TokenFloor::Generation(7)),
            Revoked::Account(user, TokenFloor::Deleted),
            Revoked::UserScope(user, 3),
            Revoked::Device(user),
        ] {
            let back = revocation_of((5, entry_id(revoked))).unwrap();
            assert_eq!(back, Revocation { revoked, at_ms: 5 });
        }
        let generation = |g| entry_id(Revoked::Account(user, TokenFloor::Generation(g)));
        assert!(generation(1) < generation(2));
        assert!(generation(u32::MAX) < entry_id(Revoked::Account(user, TokenFloor::Deleted)));
        assert!(entry_id(Revoked::UserScope(user, 1)) < entry_id(Revoked::UserScope(user, 2)));
        assert_eq!(revocation_of((5, vec![1, 2, 3])), None);
    }
}
