//! Account deletion on ScyllaDB: one decision without a multi-row
//! transaction, then a resumable cascade.
//!
//! 1. *Findable first.* The deletion's entry in the `account_deletions`
//!    time index and its revocation ([`TokenFloor::Deleted`]) are written
//!    before anything is decided. Neither counts while the account's row
//!    does not show the marker: the pending list skips such an entry and
//!    the revocation log leaves it out ([`super::revocations`]).
//! 2. *The decision* is one compare-and-set on the account's `users` row:
//!    `deleted_at_ms` set (and the password hash dropped) `IF
//!    token_generation = ? AND deleted_at_ms = null`. From then on every
//!    read treats the account as gone: [`Inner::account`]'s callers check
//!    the marker (lookups, `devices_of`, `device`, bundles, logins,
//!    rotations, device creation), and the devices are marked deleted in
//!    this process at once.
//! 3. *The cascade*, idempotent, run by the deletion itself and again by
//!    [`Inner::finish_deletion`] (the clean-up after a crash,
//!    `cleanup::accounts`, finds it through the pending entry): the devices
//!    found after the decision are recorded on the row, marked as deleted
//!    senders, and wiped as a device deletion wipes one; the account's
//!    device slots and refresh tokens are deleted; the username is released
//!    only while it still names this account (`DELETE … IF user_id = ?`).
//!    Finishing deletes the row itself, then the pending entry.
//!
//! A device creation racing the decision checks the account again after it
//! took its slot and removes itself when the account is gone; a creation
//! whose slot the cascade saw is wiped by it.

use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::account_rows::{now_ms, Account};
use super::caches::lock;
use super::statements::Stmt;
use super::time_index::{ACCOUNT_DELETIONS, DELETED_SENDERS};
use super::Inner;
use crate::store::{AccountDeletion, Revocation, Revoked, StoreError, TokenFloor};

impl Inner {
    /// The pending entry of a deletion decided at `at_ms`, for a batch.
    async fn pending_part(&self, user: Uuid, at_ms: i64) -> Result<super::cql::Part, StoreError> {
        let alive = at_ms.div_euclid(1000).saturating_add(self.options.ttl_secs);
        self.indexes
            .part(&self.cql, ACCOUNT_DELETIONS, at_ms, user.as_bytes().to_vec(), alive)
            .await
    }

    pub(super) async fn delete_account(
        &self,
        user: Uuid,
        expected: u32,
    ) -> Result<Option<AccountDeletion>, StoreError> {
        let Some(decided) = self.decide_deletion(user, expected).await? else {
            return Ok(None);
        };
        if self.options.abort_after_deletion_decision {
            abort_now();
        }
        self.cascade(decided).await.map(Some)
    }

    /// Steps 1 and 2: the entries, then the decision; the account's row as
    /// decided, or `None` when it is gone or at another generation.
    pub(super) async fn decide_deletion(&self, user: Uuid, expected: u32) -> Result<Option<Account>, StoreError> {
        let Some(account) = self.account(user).await?.filter(|a| a.holds(expected)) else {
            return Ok(None);
        };
        let at_ms = now_ms();
        let revocation = Revocation {
            revoked: Revoked::Account(user, TokenFloor::Deleted),
            at_ms,
        };
        let findable = vec![
            self.pending_part(user, at_ms).await?,
            self.revocation_part(revocation).await?,
        ];
        self.cql.batch(BatchType::Unlogged, findable).await?;
        let values = (at_ms, user, account.stored_generation, account.username.clone());
        if !self.cql.applied(Stmt::MarkUserDeleted, values).await? {
            // Definitely not decided: the entries would only be skipped.
            let undo = vec![
                super::time_index::TimeIndexes::remove_part(ACCOUNT_DELETIONS, at_ms, user.as_bytes().to_vec()),
                Self::revocation_remove_part(revocation),
            ];
            self.cql.batch(BatchType::Unlogged, undo).await?;
            return Ok(None);
        }
        let mut decided = account;
        decided.deleted_at_ms = Some(at_ms);
        for device in self.slots(user).await?.0 {
            // Hidden here at once; the cascade marks them on every node.
            lock(&self.deleted).insert(device);
        }
        Ok(Some(decided))
    }

    /// The devices of a deleted account: those recorded on its row, or
    /// (the first time) those under it now, recorded there.
    async fn deleted_devices(&self, account: &Account) -> Result<Vec<Uuid>, StoreError> {
        if let Some(recorded) = &account.deleted_devices {
            return Ok(recorded.clone());
        }
        let (mut devices, _) = self.slots(account.id).await?;
        devices.sort_unstable();
        self.cql
            .exec(Stmt::SetDeletedDevices, (devices.clone(), account.id))
            .await?;
        Ok(devices)
    }

    /// Removes everything of a deleted account but its row (idempotent).
    async fn cascade(&self, account: Account) -> Result<AccountDeletion, StoreError> {
        let user = account.id;
        let at_ms = account.deleted_at_ms.unwrap_or(0);
        let devices = self.deleted_devices(&account).await?;
        let (mut found, _) = self.slots(user).await?;
        found.retain(|d| !devices.contains(d));
        let all: Vec<Uuid> = devices.iter().chain(&found).copied().collect();
        self.mark_deleted_senders(&all, at_ms).await?;
        let wipes = all.iter().map(|device| self.wipe_deleted_device(*device));
        futures_util::future::try_join_all(wipes).await?;
        self.cql.exec(Stmt::DeleteUserDevices, (user,)).await?;
        self.remove_user_tokens(user, None).await?;
        if let Some(name) = account.username {
            self.cql.exec(Stmt::ReleaseUsername, (name, user)).await?;
        }
        Ok(AccountDeletion {
            user_id: user,
            devices,
            at_ms,
        })
    }

    /// Marks `devices` deleted (their queued messages hidden, here at once
    /// and on every node through the index).
    async fn mark_deleted_senders(&self, devices: &[Uuid], at_ms: i64) -> Result<(), StoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        {
            let mut deleted = lock(&self.deleted);
            deleted.extend(devices.iter().copied());
        }
        let at = at_ms.div_euclid(1000);
        let alive = at.saturating_add(self.options.ttl_secs);
        let mut marks = Vec::with_capacity(devices.len());
        for device in devices {
            let id = device.as_bytes().to_vec();
            marks.push(self.indexes.part(&self.cql, DELETED_SENDERS, at, id, alive).await?);
        }
        self.cql.batch(BatchType::Unlogged, marks).await.map(drop)
    }

    /// Deletes a device of a deleted account and all it owns.
    async fn wipe_deleted_device(&self, id: Uuid) -> Result<(), StoreError> {
        let token = self.load_device(id).await?.and_then(|d| d.push_token);
        self.cql.exec(Stmt::DeleteDevice, (id,)).await?;
        lock(&self.caches.devices.map).remove(&id);
        self.wipe_device(id, token).await
    }

    /// Deletions decided before `before_ms` and not finished, oldest first.
    pub(super) async fn pending_deletions(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<AccountDeletion>, StoreError> {
        let entries = self
            .indexes
            .due(&self.cql, ACCOUNT_DELETIONS, before_ms.saturating_sub(1), limit)
            .await?;
        let mut pending = Vec::new();
        for (at, id) in entries {
            let Ok(user) = Uuid::from_slice(&id) else {
                continue;
            };
            match self.account(user).await? {
                // Finished: only the entry was left.
                None => self.indexes.remove(&self.cql, ACCOUNT_DELETIONS, at, id).await?,
                Some(account) if account.deleted_at_ms.is_some() => {
                    let devices = self.deleted_devices(&account).await?;
                    pending.push(AccountDeletion {
                        user_id: user,
                        devices,
                        at_ms: account.deleted_at_ms.unwrap_or(at),
                    });
                }
                // Not (yet) decided: a deletion that failed or is in flight.
                Some(_) => {}
            }
        }
        Ok(pending)
    }

    /// Runs the cascade again, logs the revocation again (a decision that
    /// landed late is then read by every node's next re-read of the log),
    /// and forgets the deletion: its row, then its pending entry.
    pub(super) async fn finish_deletion(&self, user: Uuid) -> Result<(), StoreError> {
        let Some(account) = self.account(user).await? else {
            return Ok(());
        };
        let Some(at_ms) = account.deleted_at_ms else {
            return Ok(());
        };
        self.cascade(account).await?;
        let revocation = Revocation {
            revoked: Revoked::Account(user, TokenFloor::Deleted),
            at_ms: now_ms(),
        };
        self.log_revocation(revocation).await?;
        self.cql.exec(Stmt::DeleteUser, (user,)).await?;
        self.indexes
            .remove(&self.cql, ACCOUNT_DELETIONS, at_ms, user.as_bytes().to_vec())
            .await
    }

    /// The devices of every deletion not finished (loaded at start, so that
    /// a cascade a crash interrupted hides them here at once).
    pub(super) async fn load_pending_deleted_devices(&self) -> Result<Vec<Uuid>, StoreError> {
        let pending = self.pending_deletions(i64::MAX, usize::MAX).await?;
        Ok(pending.into_iter().flat_map(|d| d.devices).collect())
    }
}

/// Test builds only (`--test-fault-abort-after-account-deletion`, always
/// off in release): the process dies as a crash would, between the
/// decision and the cascade.
fn abort_now() {
    // SAFETY: kill(2) on our own pid; SIGKILL ends the process at once.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
