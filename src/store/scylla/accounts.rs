//! [`Accounts`] on ScyllaDB. A user's rows (with its refresh token, or for
//! a legacy registration its first device) are written in one logged batch
//! first; then the username is claimed with a lightweight transaction
//! (`INSERT … IF NOT EXISTS`). A taken name deletes those rows again, so of
//! two registrations of one name exactly one exists afterwards; a crash
//! between the two steps leaves rows that no name points to.

use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::cql::{part, Part};
use super::devices::device_parts;
use super::refresh::{refresh_parts, remove_token_parts};
use super::statements::Stmt;
use super::{Inner, ScyllaStore};
use crate::store::{Accounts, NewDevice, RefreshRecord, StoreError, StoreFuture, UserRecord};
use crate::util::time::now_secs;

fn user_part(user: &UserRecord) -> Part {
    part(
        Stmt::InsertUser,
        (
            user.id,
            user.username.clone(),
            user.password_hash.clone(),
            user.created_at_micros,
            user.legacy,
        ),
    )
}

impl Inner {
    /// Claims the username for `user`; `false` if it is taken.
    async fn claim_username(&self, user: &UserRecord) -> Result<bool, StoreError> {
        self.cql
            .applied(Stmt::ClaimUsername, (user.username.clone(), user.id))
            .await
    }

    async fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> Result<(), StoreError> {
        let mut parts = vec![user_part(&user)];
        parts.extend(refresh_parts(&refresh, now_secs(), false));
        parts.push(self.refresh_index(&refresh).await?);
        self.cql.batch(BatchType::Logged, parts).await?;
        if self.claim_username(&user).await? {
            return Ok(());
        }
        let r = &refresh;
        let mut undo = vec![part(Stmt::DeleteUser, (user.id,))];
        undo.extend(remove_token_parts(
            r.hash.0.to_vec(),
            r.family,
            r.device_id,
            r.expires_at_secs,
        ));
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
        let row = self
            .cql
            .first::<(Option<String>, Option<String>, Option<i64>, Option<bool>)>(Stmt::SelectUser, (id,))
            .await?;
        Ok(row.and_then(|(username, password_hash, created, legacy)| {
            Some(UserRecord {
                id,
                username: username?,
                password_hash: password_hash?,
                created_at_micros: created.unwrap_or(0),
                legacy: legacy.unwrap_or(false),
            })
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
}
