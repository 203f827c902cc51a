//! [`RefreshTokens`] on fjall. A rotated token stays stored, marked spent,
//! until it expires: presenting it again is how reuse is detected, and it
//! revokes every token of its family. Every token is indexed under its
//! family, its user and (device-scoped ones) its device, so a logout, a
//! password change or a deletion finds them all. A token carries the
//! account's token generation it was issued at; one below the account's
//! current generation (or of a deleted account) never rotates.

use prost::Message;
use uuid::Uuid;

use super::layout::{ordered_i64, pair};
use super::records::{decode, RefreshValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::auth::refresh::TokenHash;
use crate::store::{RefreshRecord, RefreshTokens, Rotation, RotationStep, StoreError, StoreFuture};

fn load(t: &Tables, hash: &TokenHash) -> Result<Option<RefreshValue>, StoreError> {
    Tables::get(&t.refresh_tokens, &hash.0)?
        .map(|v| decode::<RefreshValue>("refresh_tokens", &v))
        .transpose()
}

/// Adds a refresh token and its index rows to `batch`.
pub(super) fn insert_refresh(t: &Tables, batch: &mut fjall::OwnedWriteBatch, r: &RefreshRecord) {
    let hash = r.hash.0;
    batch.insert(
        &t.refresh_tokens,
        hash.to_vec(),
        RefreshValue::from_record(r).encode_to_vec(),
    );
    batch.insert(&t.refresh_families, pair(r.family.as_bytes(), &hash), Vec::new());
    batch.insert(&t.user_refresh, pair(r.user_id.as_bytes(), &hash), Vec::new());
    batch.insert(
        &t.refresh_expiry,
        pair(&ordered_i64(r.expires_at_secs), &hash),
        Vec::new(),
    );
    if let Some(device) = r.device_id {
        batch.insert(&t.device_refresh, pair(device.as_bytes(), &hash), Vec::new());
    }
}

/// Removes one token and its index rows.
pub(super) fn remove_token(t: &Tables, batch: &mut fjall::OwnedWriteBatch, hash: &[u8], value: &RefreshValue) {
    batch.remove(&t.refresh_tokens, hash.to_vec());
    batch.remove(&t.refresh_families, pair(&value.family, hash));
    batch.remove(&t.user_refresh, pair(&value.user_id, hash));
    batch.remove(&t.refresh_expiry, pair(&ordered_i64(value.expires_at_secs), hash));
    if let Some(device) = &value.device_id {
        batch.remove(&t.device_refresh, pair(device, hash));
    }
}

/// Removes every token of `family`.
fn remove_family(t: &Tables, batch: &mut fjall::OwnedWriteBatch, family: &[u8]) -> Result<(), StoreError> {
    for key in Tables::keys_with_prefix(&t.refresh_families, family)? {
        let hash = key.get(16..).unwrap_or_default();
        if let Some(value) = Tables::get(&t.refresh_tokens, hash)? {
            remove_token(t, batch, hash, &decode::<RefreshValue>("refresh_tokens", &value)?);
        }
    }
    Ok(())
}

/// Removes every token of `user` (password change, deletion).
pub(super) fn remove_user_tokens(t: &Tables, batch: &mut fjall::OwnedWriteBatch, user: Uuid) -> Result<(), StoreError> {
    for key in Tables::keys_with_prefix(&t.user_refresh, user.as_bytes())? {
        let hash = key.get(16..).unwrap_or_default();
        match Tables::get(&t.refresh_tokens, hash)? {
            Some(value) => remove_token(t, batch, hash, &decode::<RefreshValue>("refresh_tokens", &value)?),
            None => batch.remove(&t.user_refresh, key),
        }
    }
    Ok(())
}

/// Whether the token's account still exists at the token's generation.
fn rotate(
    t: &Tables,
    presented: TokenHash,
    next: TokenHash,
    now: i64,
    next_expiry: i64,
) -> Result<Rotation, StoreError> {
    let Some(mut value) = load(t, &presented)? else {
        return Ok(Rotation::Unknown);
    };
    let mut batch = t.db.batch();
    let spent = value.to_record(presented)?;
    let account = t.user(spent.user_id)?;
    let step = spent.rotation_step(false, value.rotated, now, account.as_ref().map(Into::into));
    let outcome = match step {
        RotationStep::RevokeFamily => {
            remove_family(t, &mut batch, &value.family)?;
            Rotation::Reused
        }
        RotationStep::Expire => {
            remove_token(t, &mut batch, &presented.0, &value);
            Rotation::Expired
        }
        RotationStep::Forget => {
            remove_token(t, &mut batch, &presented.0, &value);
            Rotation::Unknown
        }
        RotationStep::Rotate => {
            value.rotated = true;
            batch.insert(&t.refresh_tokens, presented.0.to_vec(), value.encode_to_vec());
            let fresh = RefreshRecord {
                hash: next,
                expires_at_secs: next_expiry,
                ..spent.clone()
            };
            insert_refresh(t, &mut batch, &fresh);
            Rotation::Rotated(spent)
        }
    };
    batch.commit().map_err(backend)?;
    Ok(outcome)
}

fn purge(t: &Tables, now: i64, limit: usize) -> Result<usize, StoreError> {
    let mut batch = t.db.batch();
    let mut purged = 0;
    for guard in t
        .refresh_expiry
        .range(ordered_i64(i64::MIN).to_vec()..ordered_i64(now).to_vec())
        .take(limit)
    {
        let key = guard.key().map_err(backend)?;
        let hash = key.get(8..).unwrap_or_default();
        match Tables::get(&t.refresh_tokens, hash)? {
            Some(v) => remove_token(t, &mut batch, hash, &decode::<RefreshValue>("refresh_tokens", &v)?),
            None => batch.remove(&t.refresh_expiry, key.to_vec()),
        }
        purged += 1;
    }
    batch.commit().map_err(backend)?;
    Ok(purged)
}

impl RefreshTokens for EmbeddedStore {
    fn insert_refresh(&self, record: RefreshRecord) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            t.check_account(record.user_id, record.generation)?;
            let mut batch = t.db.batch();
            insert_refresh(t, &mut batch, &record);
            batch.commit().map_err(backend)
        })
    }

    fn rotate_refresh(
        &self,
        presented: TokenHash,
        next: TokenHash,
        now: i64,
        next_expiry: i64,
    ) -> StoreFuture<'_, Rotation> {
        self.write(move |t| rotate(t, presented, next, now, next_expiry))
    }

    fn revoke_refresh(&self, user_id: Uuid, presented: TokenHash) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let Some(value) = load(t, &presented)? else {
                return Ok(());
            };
            if value.user_id != user_id.as_bytes() {
                return Ok(());
            }
            let mut batch = t.db.batch();
            remove_family(t, &mut batch, &value.family)?;
            batch.commit().map_err(backend)
        })
    }

    fn purge_expired_refresh(&self, now: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.write(move |t| purge(t, now, limit))
    }
}
