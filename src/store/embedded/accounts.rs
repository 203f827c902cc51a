//! [`Accounts`] on fjall: a user row plus a `usernames` index row, written
//! in one batch after checking the index on the writer thread (with the
//! user's first device in the same batch for a legacy registration).
//!
//! A password change and a deletion are each one batch on the writer, so
//! each is one decision: a password change rewrites the user row with the
//! next token generation, removes every refresh token of the user, stores
//! the caller's new one and logs the revocation; a deletion removes the
//! user and username rows, every device as a device deletion does
//! ([`wipe_device`]), every refresh token, logs the revocation and records
//! the deletion as pending in `account_deletions` until the blobs of its
//! devices are deleted ([`Accounts::finish_account_deletion`]). Nothing of
//! the account is left for a later cascade.

use prost::Message;
use uuid::Uuid;

use super::devices::{device_ids_of, forget_deleted_device, insert_device, wipe_device};
use super::group_commit::Writer;
use super::records::{decode, AccountDeletionValue};
use super::refresh::{insert_refresh, remove_user_tokens};
use super::revocations::log_revocation;
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{
    AccountDeletion, Accounts, NewDevice, PasswordChange, PasswordChanged, RefreshRecord, Revocation, Revoked,
    StoreError, StoreFuture, TokenFloor, UserRecord,
};
use crate::util::time::now_micros;

/// Checks that the username is free and adds the user's rows to `batch`.
fn insert_user(t: &Tables, batch: &mut fjall::OwnedWriteBatch, user: &UserRecord) -> Result<(), StoreError> {
    if t.usernames.contains_key(user.username.as_bytes()).map_err(backend)? {
        return Err(StoreError::UsernameTaken);
    }
    t.put_user(batch, user);
    batch.insert(
        &t.usernames,
        user.username.as_bytes().to_vec(),
        user.id.as_bytes().to_vec(),
    );
    Ok(())
}

/// The user `id` if it exists at token generation `generation`.
fn user_at(t: &Tables, id: Uuid, generation: u32) -> Result<Option<UserRecord>, StoreError> {
    Ok(t.user(id)?.filter(|u| u.token_generation == generation))
}

fn now_ms() -> i64 {
    now_micros() / 1000
}

fn change_password(t: &Tables, change: PasswordChange) -> Result<Option<PasswordChanged>, StoreError> {
    let Some(mut user) = user_at(t, change.user_id, change.expected_generation)? else {
        return Ok(None);
    };
    let generation = user.token_generation.wrapping_add(1);
    user.token_generation = generation;
    user.password_hash = change.password_hash;
    let at_ms = now_ms();
    let mut batch = t.db.batch();
    t.put_user(&mut batch, &user);
    remove_user_tokens(t, &mut batch, user.id)?;
    let refresh = RefreshRecord {
        generation,
        ..change.refresh
    };
    insert_refresh(t, &mut batch, &refresh);
    log_revocation(
        t,
        &mut batch,
        &Revocation {
            revoked: Revoked::Account(user.id, TokenFloor::Generation(generation)),
            at_ms,
        },
    );
    let devices = device_ids_of(t, user.id)?;
    batch.commit().map_err(backend)?;
    Ok(Some(PasswordChanged {
        generation,
        devices,
        at_ms,
    }))
}

fn delete_account(w: &mut Writer, id: Uuid, expected_generation: u32) -> Result<Option<AccountDeletion>, StoreError> {
    let t = w.tables.clone();
    let Some(user) = user_at(&t, id, expected_generation)? else {
        return Ok(None);
    };
    let deletion = AccountDeletion {
        user_id: id,
        devices: device_ids_of(&t, id)?,
        at_ms: now_ms(),
    };
    let deleted_at_secs = deletion.at_ms.div_euclid(1000);
    let mut batch = t.db.batch();
    batch.remove(&t.users, id.as_bytes().to_vec());
    batch.remove(&t.usernames, user.username.as_bytes().to_vec());
    remove_user_tokens(&t, &mut batch, id)?;
    for device in &deletion.devices {
        wipe_device(&t, &mut batch, id, *device, deleted_at_secs)?;
    }
    let revocation = Revocation {
        revoked: Revoked::Account(id, TokenFloor::Deleted),
        at_ms: deletion.at_ms,
    };
    log_revocation(&t, &mut batch, &revocation);
    batch.insert(
        &t.account_deletions,
        id.as_bytes().to_vec(),
        AccountDeletionValue::from_record(&deletion).encode_to_vec(),
    );
    batch.commit().map_err(backend)?;
    for device in &deletion.devices {
        forget_deleted_device(w, *device, deleted_at_secs);
    }
    Ok(Some(deletion))
}

/// Up to `limit` unfinished deletions decided before `before_ms`.
pub(super) fn pending_deletions(t: &Tables, before_ms: i64, limit: usize) -> Result<Vec<AccountDeletion>, StoreError> {
    let mut found = Vec::new();
    for (key, value) in Tables::pairs_with_prefix(&t.account_deletions, &[])? {
        let user = super::records::uuid("account_deletions", &key)?;
        let deletion = decode::<AccountDeletionValue>("account_deletions", &value)?.into_record(user)?;
        if deletion.at_ms < before_ms {
            found.push(deletion);
            if found.len() == limit {
                break;
            }
        }
    }
    Ok(found)
}

impl Accounts for EmbeddedStore {
    fn create_user(&self, user: UserRecord, refresh: RefreshRecord) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            insert_user(t, &mut batch, &user)?;
            insert_refresh(t, &mut batch, &refresh);
            batch.commit().map_err(backend)
        })
    }

    fn create_user_with_device(&self, user: UserRecord, device: NewDevice) -> StoreFuture<'_, ()> {
        self.write(move |w| {
            let mut batch = w.db.batch();
            insert_user(w, &mut batch, &user)?;
            insert_device(w, &mut batch, &device);
            batch.commit().map_err(backend)?;
            w.mailboxes.forget(device.device.id);
            Ok(())
        })
    }

    fn user_by_name(&self, username: &str) -> StoreFuture<'_, Option<UserRecord>> {
        let username = username.to_owned();
        self.read(move |t| {
            let Some(id) = Tables::get(&t.usernames, username.as_bytes())? else {
                return Ok(None);
            };
            t.user(super::records::uuid("usernames", &id)?)
        })
    }

    fn user(&self, id: Uuid) -> StoreFuture<'_, Option<UserRecord>> {
        self.read(move |t| t.user(id))
    }

    fn change_password(&self, change: PasswordChange) -> StoreFuture<'_, Option<PasswordChanged>> {
        self.write(move |t| change_password(t, change))
    }

    fn delete_account(&self, user_id: Uuid, expected_generation: u32) -> StoreFuture<'_, Option<AccountDeletion>> {
        self.write(move |w| delete_account(w, user_id, expected_generation))
    }

    fn pending_account_deletions(&self, decided_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<AccountDeletion>> {
        self.read(move |t| pending_deletions(t, decided_before_ms, limit))
    }

    fn finish_account_deletion(&self, user_id: Uuid) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            batch.remove(&t.account_deletions, user_id.as_bytes().to_vec());
            batch.commit().map_err(backend)
        })
    }
}
