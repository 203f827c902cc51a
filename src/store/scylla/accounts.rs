//! [`Accounts`] on ScyllaDB: registration, lookups and password changes
//! (deletion is in [`super::account_deletion`]).
//!
//! A user's rows (with its refresh token, or for a legacy registration its
//! first device) are written in one logged batch first; then the username
//! is claimed with a lightweight transaction (`INSERT … IF NOT EXISTS`). A
//! taken name deletes those rows again, so of two registrations of one name
//! exactly one exists afterwards; a crash between the two steps leaves rows
//! that no name points to. A name still held by a deleted account (its
//! clean-up not finished) is taken over with a compare-and-set on the old
//! holder.
//!
//! The `users` row is the account's state: its token generation and its
//! deletion marker. A password change is one compare-and-set on it (new
//! hash and generation, `IF token_generation = ? AND deleted_at_ms = null`);
//! its revocation is logged just before ([`super::revocations`]: an entry
//! counts only once the row shows it), the account's older refresh tokens
//! are deleted after (a rotation refuses them by their generation anyway).

use scylla::statement::batch::BatchType;
use scylla::value::CqlValue;
use uuid::Uuid;

use super::account_rows::{generation_to_cql, now_ms, Account};
use super::cql::{part, Part};
use super::devices::device_parts;
use super::refresh::{refresh_parts, remove_token_parts};
use super::statements::Stmt;
use super::{Inner, ScyllaStore};
use crate::store::{
    AccountDeletion, Accounts, NewDevice, PasswordChange, PasswordChanged, RefreshRecord, Revocation, Revoked,
    StoreError, StoreFuture, TokenFloor, UserRecord,
};
use crate::util::time::now_secs;

/// A user's row.
pub(super) fn user_part(user: &UserRecord) -> Part {
    part(
        Stmt::InsertUser,
        (
            user.id,
            user.username.clone(),
            user.password_hash.clone(),
            user.created_at_micros,
            user.legacy,
            generation_to_cql(user.token_generation),
            generation_to_cql(user.user_scope_generation),
        ),
    )
}

impl Inner {
    /// Claims the username for `user`; `false` if a live account holds it.
    /// The claim's mark is the account id, so a claim of unknown outcome is
    /// resolved ([`super::cql::Cql::lwt_resolved`]).
    async fn claim_username(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let name = user.username.clone();
        let ours = |current: &[Option<CqlValue>]| current.contains(&Some(CqlValue::Uuid(user.id)));
        let (claimed, current) = self
            .cql
            .lwt_resolved(Stmt::ClaimUsername, (name.clone(), user.id), ours)
            .await?;
        if claimed {
            return Ok(true);
        }
        let Some(holder) = current.iter().find_map(|v| match v {
            Some(CqlValue::Uuid(id)) => Some(*id),
            _ => None,
        }) else {
            return Ok(false);
        };
        if self.account_lives(holder).await? {
            return Ok(false);
        }
        // A deleted account whose clean-up has not released the name yet.
        let taken = self
            .cql
            .lwt_resolved(Stmt::TakeOverUsername, (user.id, name, holder), ours)
            .await?;
        Ok(taken.0)
    }

    async fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> Result<(), StoreError> {
        let mut parts = vec![user_part(&user)];
        parts.extend(refresh_parts(&refresh, now_secs(), false));
        parts.push(self.refresh_index(&refresh).await?);
        self.cql.batch(BatchType::Logged, parts).await?;
        if self.claim_username(&user).await? {
            return Ok(());
        }
        let mut undo = vec![part(Stmt::DeleteUser, (user.id,))];
        undo.extend(remove_token_parts(&refresh));
        self.cql.batch(BatchType::Logged, undo).await?;
        Err(StoreError::UsernameTaken)
    }

    async fn create_user_with_device(&self, user: UserRecord, device: NewDevice) -> Result<(), StoreError> {
        let (user_id, id) = (user.id, device.device.id);
        let mut parts = vec![user_part(&user)];
        parts.extend(device_parts(self, &device));
        parts.push(self.refresh_index(&device.refresh).await?);
        // A new user: nobody else can race for its first slot.
        parts.push(part(Stmt::InsertUserDevice, (user_id, id)));
        parts.push(part(Stmt::SetDeviceVersion, (1_i32, user_id)));
        self.cql.batch(BatchType::Logged, parts).await?;
        if self.claim_username(&user).await? {
            return Ok(());
        }
        self.remove_new_device(&device).await?;
        let undo = vec![
            part(Stmt::DeleteUser, (user_id,)),
            part(Stmt::DeleteUserDevices, (user_id,)),
        ];
        self.cql.batch(BatchType::Logged, undo).await?;
        Err(StoreError::UsernameTaken)
    }

    async fn user_by_name(&self, username: String) -> Result<Option<UserRecord>, StoreError> {
        if username.is_empty() {
            // No user has an empty name, and CQL refuses an empty key.
            return Ok(None);
        }
        let Some((Some(id),)) = self
            .cql
            .first::<(Option<Uuid>,)>(Stmt::SelectUsername, (username,))
            .await?
        else {
            return Ok(None);
        };
        Ok(self.account(id).await?.and_then(Account::record))
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<PasswordChanged>, StoreError> {
        let user = change.user_id;
        let Some(account) = self
            .account(user)
            .await?
            .filter(|a| a.holds(change.expected_generation))
        else {
            return Ok(None);
        };
        let generation = change.expected_generation.wrapping_add(1);
        let at_ms = now_ms();
        let revocation = Revocation {
            revoked: Revoked::Account(user, TokenFloor::Generation(generation)),
            at_ms,
        };
        self.log_revocation(revocation).await?;
        let values = (
            change.password_hash,
            generation_to_cql(generation),
            user,
            account.stored_generation,
            account.username,
        );
        if !self.cql.applied(Stmt::ChangePassword, values).await? {
            return Ok(None);
        }
        self.remove_user_tokens(user, Some(generation)).await?;
        let refresh = RefreshRecord {
            generation,
            ..change.refresh
        };
        self.write_refresh(&refresh, false).await?;
        let (devices, _) = self.slots(user).await?;
        Ok(Some(PasswordChanged {
            generation,
            devices,
            at_ms,
        }))
    }
}

impl Accounts for ScyllaStore {
    fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.create_user(user, refresh).await })
    }

    fn create_user_with_device(&self, user: UserRecord, device: NewDevice) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.create_user_with_device(user, device).await })
    }

    fn user_by_name(&self, username: &str) -> StoreFuture<'_, Option<UserRecord>> {
        let username = username.to_owned();
        self.call(move |s| async move { s.user_by_name(username).await })
    }

    fn user(&self, id: Uuid) -> StoreFuture<'_, Option<UserRecord>> {
        self.call(move |s| async move { Ok(s.account(id).await?.and_then(Account::record)) })
    }

    fn change_password(&self, change: PasswordChange) -> StoreFuture<'_, Option<PasswordChanged>> {
        self.call(move |s| async move { s.change_password(change).await })
    }

    fn delete_account(&self, user_id: Uuid, expected_generation: u32) -> StoreFuture<'_, Option<AccountDeletion>> {
        self.call(move |s| async move { s.delete_account(user_id, expected_generation).await })
    }

    fn pending_account_deletions(&self, decided_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<AccountDeletion>> {
        self.call(move |s| async move { s.pending_deletions(decided_before_ms, limit).await })
    }

    fn finish_account_deletion(&self, user_id: Uuid) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.finish_deletion(user_id).await })
    }
}
