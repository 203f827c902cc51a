//! [`RefreshTokens`] on ScyllaDB. A token is its row (by the SHA-256 of its
//! text) plus a row in its family and, when device-scoped, one under its
//! device, written in one logged batch with its expiry index row. Rotation
//! spends the presented token with a lightweight transaction (`IF rotated =
//! false`) that marks it with its successor's hash: of two concurrent
//! rotations one wins, and the other is a replay that revokes the family; a
//! spend whose outcome is unknown (a Paxos timeout) is asked again, and the
//! mark says whether the spend that landed was this rotation's. Revocation sets the family's static `revoked`
//! flag before it deletes the members, and every rotation checks the flag,
//! so a token the winner writes into a family revoked meanwhile is refused.
//!
//! A token carries the account's token generation and user-scope
//! generation it was issued at and is indexed under its account
//! (`user_refresh`): a rotation answers [`Rotation::Unknown`] (and deletes
//! the token) when the account is gone or no longer holds it
//! ([`RefreshRecord::held_by`]), and a password change or a deletion
//! deletes the account's older tokens through the index.

use scylla::statement::batch::BatchType;
use scylla::value::CqlValue;
use uuid::Uuid;

use super::account_rows::{generation_from_cql, generation_to_cql};
use super::cql::{part, Part};
use super::positions::ttl_until;
use super::statements::Stmt;
use super::time_index::{TimeIndexes, REFRESH_EXPIRY};
use super::{Inner, ScyllaStore};
use crate::auth::refresh::TokenHash;
use crate::store::{AccountGenerations, RefreshRecord, RefreshTokens, Rotation, RotationStep, StoreError, StoreFuture};
use crate::util::time::now_secs;

/// A token row as read.
type TokenRow = (
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<i64>,
    Option<bool>,
    Option<i32>,
    Option<i32>,
);

/// A stored token.
#[derive(Debug, Clone)]
pub(super) struct Token {
    user: Uuid,
    device: Option<Uuid>,
    family: Uuid,
    expires: i64,
    rotated: bool,
    /// The account generation it was issued at.
    pub generation: u32,
    /// The account's user-scope generation it was issued at.
    user_scope: u32,
}

impl Token {
    /// As the interface knows it, under `hash`.
    fn record(&self, hash: TokenHash) -> RefreshRecord {
        RefreshRecord {
            hash,
            user_id: self.user,
            device_id: self.device,
            family: self.family,
            expires_at_secs: self.expires,
            generation: self.generation,
            user_scope_generation: self.user_scope,
        }
    }
}

/// The rows of a token, spent or not (its expiry index row is added by
/// the caller).
pub(super) fn refresh_parts(r: &RefreshRecord, now: i64, rotated: bool) -> Vec<Part> {
    let (hash, ttl) = (r.hash.0.to_vec(), ttl_until(r.expires_at_secs, now));
    let mut parts = vec![
        part(
            Stmt::InsertRefresh,
            (
                hash.clone(),
                r.user_id,
                r.device_id,
                r.family,
                r.expires_at_secs,
                rotated,
                generation_to_cql(r.generation),
                generation_to_cql(r.user_scope_generation),
                ttl,
            ),
        ),
        part(Stmt::InsertFamilyMember, (r.family, hash.clone(), ttl)),
        part(Stmt::InsertUserRefresh, (r.user_id, hash.clone(), ttl)),
    ];
    if let Some(device) = r.device_id {
        parts.push(part(Stmt::InsertDeviceRefresh, (device, hash, ttl)));
    }
    parts
}

/// The deletions of one token (given by its record) and its index rows.
pub(super) fn remove_token_parts(r: &RefreshRecord) -> Vec<Part> {
    remove_parts(r.hash.0.to_vec(), r.user_id, r.family, r.device_id, r.expires_at_secs)
}

fn remove_parts(hash: Vec<u8>, user: Uuid, family: Uuid, device: Option<Uuid>, expires: i64) -> Vec<Part> {
    let mut parts = vec![
        part(Stmt::DeleteRefresh, (hash.clone(),)),
        part(Stmt::DeleteFamilyMember, (family, hash.clone())),
        part(Stmt::DeleteUserRefresh, (user, hash.clone())),
        TimeIndexes::remove_part(REFRESH_EXPIRY, expires, hash.clone()),
    ];
    if let Some(device) = device {
        parts.push(part(Stmt::DeleteDeviceRefresh, (device, hash)));
    }
    parts
}

impl Inner {
    /// The expiry index row of a token.
    pub(super) async fn refresh_index(&self, r: &RefreshRecord) -> Result<Part, StoreError> {
        let hash = r.hash.0.to_vec();
        self.indexes
            .part(&self.cql, REFRESH_EXPIRY, r.expires_at_secs, hash, r.expires_at_secs)
            .await
    }

    /// Writes a token, spent or not, in one logged batch.
    pub(super) async fn write_refresh(&self, r: &RefreshRecord, rotated: bool) -> Result<(), StoreError> {
        let mut parts = refresh_parts(r, now_secs(), rotated);
        parts.push(self.refresh_index(r).await?);
        self.cql.batch(BatchType::Logged, parts).await.map(drop)
    }

    pub(super) async fn load_token(&self, hash: &[u8]) -> Result<Option<Token>, StoreError> {
        let row = self
            .cql
            .first::<TokenRow>(Stmt::SelectRefresh, (hash.to_vec(),))
            .await?;
        Ok(
            row.and_then(|(user, device, family, expires, rotated, generation, user_scope)| {
                Some(Token {
                    user: user?,
                    device,
                    family: family?,
                    expires: expires?,
                    rotated: rotated.unwrap_or(false),
                    generation: generation_from_cql(generation),
                    user_scope: generation_from_cql(user_scope),
                })
            }),
        )
    }

    pub(super) async fn remove_token(&self, hash: &[u8], token: &Token) -> Result<(), StoreError> {
        let parts = remove_parts(hash.to_vec(), token.user, token.family, token.device, token.expires);
        self.cql.batch(BatchType::Logged, parts).await.map(drop)
    }

    async fn family_revoked(&self, family: Uuid) -> Result<bool, StoreError> {
        let row = self
            .cql
            .first::<(Option<Vec<u8>>, Option<bool>)>(Stmt::SelectFamily, (family,))
            .await?;
        Ok(row.and_then(|(_, revoked)| revoked).unwrap_or(false))
    }

    /// Flags the family revoked, then deletes every token in it.
    async fn revoke_family(&self, family: Uuid, expires: i64) -> Result<(), StoreError> {
        let ttl = ttl_until(expires, now_secs());
        self.cql.exec(Stmt::RevokeFamily, (ttl, family)).await?;
        let members: Vec<(Option<Vec<u8>>, Option<bool>)> = self.cql.rows(Stmt::SelectFamily, (family,)).await?;
        for hash in members.into_iter().filter_map(|(h, _)| h) {
            match self.load_token(&hash).await? {
                Some(token) => self.remove_token(&hash, &token).await?,
                None => drop(self.cql.exec(Stmt::DeleteFamilyMember, (family, hash)).await?),
            }
        }
        Ok(())
    }

    async fn rotate(
        &self,
        presented: TokenHash,
        next: TokenHash,
        now: i64,
        next_expiry: i64,
    ) -> Result<Rotation, StoreError> {
        let hash = presented.0.to_vec();
        let Some(token) = self.load_token(&hash).await? else {
            return Ok(Rotation::Unknown);
        };
        let device_gone = match token.device {
            Some(device) => self.load_device(device).await?.is_none(),
            None => false,
        };
        let orphaned = device_gone || self.family_revoked(token.family).await?;
        let spent = token.record(presented);
        let account = self.account(token.user).await?.filter(|a| a.deleted_at_ms.is_none());
        let generations = account.map(|a| AccountGenerations {
            token: a.generation(),
            user_scope: a.user_scope(),
        });
        match spent.rotation_step(orphaned, token.rotated, now, generations) {
            RotationStep::Forget => {
                self.remove_token(&hash, &token).await?;
                return Ok(Rotation::Unknown);
            }
            RotationStep::RevokeFamily => {
                self.revoke_family(token.family, token.expires.max(next_expiry)).await?;
                return Ok(Rotation::Reused);
            }
            RotationStep::Expire => {
                self.remove_token(&hash, &token).await?;
                return Ok(Rotation::Expired);
            }
            RotationStep::Rotate => {}
        }
        if !self.spend(&hash, &next).await? {
            self.revoke_family(token.family, token.expires.max(next_expiry)).await?;
            return Ok(Rotation::Reused);
        }
        let fresh = RefreshRecord {
            hash: next,
            expires_at_secs: next_expiry,
            ..spent.clone()
        };
        self.write_refresh(&fresh, false).await?;
        if self.family_revoked(token.family).await? {
            self.revoke_family(token.family, next_expiry).await?;
        }
        Ok(Rotation::Rotated(spent))
    }

    /// Spends the token `hash` for its successor `next`: whether this
    /// rotation spent it. The spend marks the row with `next`'s hash, so an
    /// unknown outcome (a Paxos round that timed out) is resolved by asking
    /// again: the condition then fails if a spend landed, and the row says
    /// whether it was this one's (issue 21: a slow round is not a replay).
    async fn spend(&self, hash: &[u8], next: &TokenHash) -> Result<bool, StoreError> {
        let mark = next.0.to_vec();
        let values = (mark.clone(), hash.to_vec());
        let ours = |current: &[Option<CqlValue>]| {
            current
                .iter()
                .any(|value| matches!(value, Some(CqlValue::Blob(b)) if *b == mark))
        };
        Ok(self.cql.lwt_resolved(Stmt::SpendRefresh, values, ours).await?.0)
    }

    async fn revoke(&self, user: Uuid, presented: TokenHash) -> Result<(), StoreError> {
        match self.load_token(&presented.0).await? {
            Some(token) if token.user == user => self.revoke_family(token.family, token.expires).await,
            _ => Ok(()),
        }
    }

    async fn purge(&self, now: i64, limit: usize) -> Result<usize, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, REFRESH_EXPIRY, now.saturating_sub(1), limit)
            .await?;
        for (at, hash) in &due {
            match self.load_token(hash).await? {
                Some(token) if token.expires < now => self.remove_token(hash, &token).await?,
                _ => {
                    self.indexes
                        .remove(&self.cql, REFRESH_EXPIRY, *at, hash.clone())
                        .await?;
                }
            }
        }
        Ok(due.len())
    }

    /// Stores a new token (a login) if its account holds its generation,
    /// checked again once it is written: a token that a password change or
    /// a deletion decided meanwhile missed is deleted again.
    async fn insert_refresh(&self, record: RefreshRecord) -> Result<(), StoreError> {
        if !self.account_holds(record.user_id, record.generation).await? {
            return Err(StoreError::AccountChanged);
        }
        self.write_refresh(&record, false).await?;
        if self.account_holds(record.user_id, record.generation).await? {
            return Ok(());
        }
        let parts = remove_token_parts(&record);
        self.cql.batch(BatchType::Logged, parts).await?;
        Err(StoreError::AccountChanged)
    }

    /// Deletes the tokens of `user` issued below generation `below`, or
    /// all of them (`None`). A token at `below` or above (a login at the
    /// new generation, racing a password change) stays.
    pub(super) async fn remove_user_tokens(&self, user: Uuid, below: Option<u32>) -> Result<(), StoreError> {
        let hashes: Vec<(Vec<u8>,)> = self.cql.rows(Stmt::SelectUserRefresh, (user,)).await?;
        let removals = hashes.into_iter().map(|(hash,)| async move {
            match self.load_token(&hash).await? {
                Some(token) if below.is_none_or(|g| token.generation < g) => self.remove_token(&hash, &token).await,
                Some(_) => Ok(()),
                None => self.cql.exec(Stmt::DeleteUserRefresh, (user, hash)).await.map(drop),
            }
        });
        futures_util::future::try_join_all(removals).await?;
        Ok(())
    }

    /// Deletes every token of a deleted device.
    pub(super) async fn wipe_device_refresh(&self, device: Uuid) -> Result<(), StoreError> {
        let hashes: Vec<(Vec<u8>,)> = self.cql.rows(Stmt::SelectDeviceRefresh, (device,)).await?;
        for (hash,) in hashes {
            if let Some(token) = self.load_token(&hash).await? {
                self.remove_token(&hash, &token).await?;
            }
        }
        self.cql.exec(Stmt::DeleteDeviceRefreshes, (device,)).await.map(drop)
    }
}

impl RefreshTokens for ScyllaStore {
    fn insert_refresh(&self, record: RefreshRecord) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.insert_refresh(record).await })
    }

    fn rotate_refresh(
        &self,
        presented: TokenHash,
        next: TokenHash,
        now_secs: i64,
        next_expires_at_secs: i64,
    ) -> StoreFuture<'_, Rotation> {
        self.call(move |s| async move { s.rotate(presented, next, now_secs, next_expires_at_secs).await })
    }

    fn revoke_refresh(&self, user_id: Uuid, presented: TokenHash) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.revoke(user_id, presented).await })
    }

    fn purge_expired_refresh(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.purge(now_secs, limit).await })
    }
}
