//! An account's `users` row as the ScyllaDB store reads it: its token
//! generation (none on a row written by schema version 1, which counts as
//! 0), its user-scope generation (none before schema version 4: 0) and its
//! deletion marker, which every read that can reach the account
//! checks ([`Inner::account`]). Shared by the files that need the account's
//! state: accounts, deletion, revocations, devices, refresh tokens and
//! tickets.

use uuid::Uuid;

use super::statements::Stmt;
use super::Inner;
use crate::store::{StoreError, UserRecord};
use crate::util::time::now_millis;

/// A generation as CQL stores it (an `int`: the bits of the `u32`).
pub(super) fn generation_to_cql(generation: u32) -> i32 {
    generation.cast_signed()
}

/// A stored generation; none (a row written by schema version 1) is 0.
pub(super) fn generation_from_cql(stored: Option<i32>) -> u32 {
    stored.map_or(0, i32::cast_unsigned)
}

/// Now, ms since the epoch.
pub(super) fn now_ms() -> i64 {
    i64::try_from(now_millis()).unwrap_or(i64::MAX)
}

/// A `users` row as read.
type UserRow = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<bool>,
    Option<i32>,
    Option<i64>,
    Option<Vec<Uuid>>,
    Option<i32>,
);

/// An account's `users` row.
#[derive(Debug, Clone)]
pub(super) struct Account {
    pub id: Uuid,
    pub username: Option<String>,
    password_hash: Option<String>,
    created_at_micros: i64,
    legacy: bool,
    /// The generation as stored (`None` on a schema-1 row: 0), bound as is
    /// in a compare-and-set.
    pub stored_generation: Option<i32>,
    /// The deletion marker: when the deletion was decided.
    pub deleted_at_ms: Option<i64>,
    /// The devices the deletion found.
    pub deleted_devices: Option<Vec<Uuid>>,
    /// The user-scope generation as stored (`None` before schema 4: 0),
    /// bound as is in a compare-and-set.
    pub stored_user_scope: Option<i32>,
}

impl Account {
    fn from_row(id: Uuid, row: UserRow) -> Self {
        let (username, password_hash, created, legacy, generation, deleted_at_ms, deleted_devices, user_scope) = row;
        Self {
            id,
            username,
            password_hash,
            created_at_micros: created.unwrap_or(0),
            legacy: legacy.unwrap_or(false),
            stored_generation: generation,
            deleted_at_ms,
            deleted_devices,
            stored_user_scope: user_scope,
        }
    }

    /// Its token generation.
    pub fn generation(&self) -> u32 {
        generation_from_cql(self.stored_generation)
    }

    /// Its user-scope generation.
    pub fn user_scope(&self) -> u32 {
        generation_from_cql(self.stored_user_scope)
    }

    /// Not deleted, at `generation`.
    pub fn holds(&self, generation: u32) -> bool {
        self.deleted_at_ms.is_none() && self.generation() == generation
    }

    /// The account as the interface knows it; `None` once deleted.
    pub fn record(self) -> Option<UserRecord> {
        if self.deleted_at_ms.is_some() {
            return None;
        }
        let (token_generation, user_scope_generation) = (self.generation(), self.user_scope());
        Some(UserRecord {
            id: self.id,
            username: self.username?,
            password_hash: self.password_hash?,
            created_at_micros: self.created_at_micros,
            legacy: self.legacy,
            token_generation,
            user_scope_generation,
        })
    }
}

impl Inner {
    /// The `users` row of `id`, deleted or not.
    pub(super) async fn account(&self, id: Uuid) -> Result<Option<Account>, StoreError> {
        let row = self.cql.first::<UserRow>(Stmt::SelectUser, (id,)).await?;
        Ok(row.map(|row| Account::from_row(id, row)))
    }

    /// Whether account `user` exists, not deleted, at `generation`.
    pub(super) async fn account_holds(&self, user: Uuid, generation: u32) -> Result<bool, StoreError> {
        Ok(self.account(user).await?.is_some_and(|a| a.holds(generation)))
    }

    /// Whether account `user` exists and is not deleted.
    pub(super) async fn account_lives(&self, user: Uuid) -> Result<bool, StoreError> {
        Ok(self.account(user).await?.is_some_and(|a| a.deleted_at_ms.is_none()))
    }
}
