//! Reads every record of an embedded store as [`Item`]s, for `store copy`
//! ([`crate::store::copy`]). Opens the tables directly (no writer thread):
//! the server must be stopped. Indexes (usernames, expiry and due-time
//! orders, the token index) are not exported: the target rebuilds its own
//! from the records.

use std::path::Path;

use super::layout::{i32_from_ordered, seq_of_mailbox_key};
use super::records::{
    decode, message_id, uuid, BackupValue, DeviceValue, MessageValue, OneTimePreKeyValue, RefreshValue,
    SignedPreKeyValue, UserValue,
};
use super::tables::{backend, Tables};
use crate::auth::refresh::TokenHash;
use crate::crypto::public_key::PublicKey;
use crate::store::portable::Item;
use crate::store::{OneTimePreKey, StoreError, StoredMessage};

/// Every (key, value) of a keyspace.
fn rows(keyspace: &fjall::Keyspace) -> impl Iterator<Item = Result<(fjall::Slice, fjall::Slice), StoreError>> + '_ {
    keyspace.iter().map(|guard| guard.into_inner().map_err(backend))
}

fn corrupt(table: &'static str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: "bad key".into(),
    }
}

/// Calls `sink` with every record of the store in `dir`, owners first
/// (users, devices, then what devices own).
pub fn export(dir: &Path, sink: &mut dyn FnMut(Item) -> Result<(), StoreError>) -> Result<(), StoreError> {
    let t = Tables::open(dir)?;
    accounts(&t, sink)?;
    keys(&t, sink)?;
    for row in rows(&t.refresh_tokens) {
        let (key, value) = row?;
        let hash = TokenHash(key.as_ref().try_into().map_err(|_| corrupt("refresh_tokens"))?);
        let value = decode::<RefreshValue>("refresh_tokens", &value)?;
        let record = value.to_record(hash)?;
        sink(Item::Refresh {
            record,
            rotated: value.rotated,
        })?;
    }
    messages(&t, sink)?;
    others(&t, sink)
}

fn accounts(t: &Tables, sink: &mut dyn FnMut(Item) -> Result<(), StoreError>) -> Result<(), StoreError> {
    for row in rows(&t.users) {
        let (key, value) = row?;
        sink(Item::User(
            decode::<UserValue>("users", &value)?.into_record(uuid("users", &key)?),
        ))?;
    }
    for row in rows(&t.devices) {
        let (key, value) = row?;
        let id = uuid("devices", &key)?;
        let device = decode::<DeviceValue>("devices", &value)?.into_record(id)?;
        let token = t.push_tokens.get(id.as_bytes()).map_err(backend)?;
        sink(Item::Device {
            device,
            push_token: token.map(|v| String::from_utf8_lossy(&v).into_owned()),
        })?;
    }
    Ok(())
}

fn keys(t: &Tables, sink: &mut dyn FnMut(Item) -> Result<(), StoreError>) -> Result<(), StoreError> {
    for row in rows(&t.signed_prekeys) {
        let (key, value) = row?;
        let device = uuid("signed_prekeys", key.get(..16).unwrap_or_default())?;
        let key_id = i32_from_ordered(key.get(16..).unwrap_or_default()).ok_or_else(|| corrupt("signed_prekeys"))?;
        let key = decode::<SignedPreKeyValue>("signed_prekeys", &value)?.into_record(key_id)?;
        sink(Item::SignedPreKey { device, key })?;
    }
    for row in rows(&t.one_time_prekeys) {
        let (key, value) = row?;
        let device = uuid("one_time_prekeys", key.get(..16).unwrap_or_default())?;
        let key_id = i32_from_ordered(key.get(16..).unwrap_or_default()).ok_or_else(|| corrupt("one_time_prekeys"))?;
        let value = decode::<OneTimePreKeyValue>("one_time_prekeys", &value)?;
        let public_key = PublicKey::from_bytes(&value.public_key).map_err(|_| corrupt("one_time_prekeys"))?;
        sink(Item::OneTimePreKey {
            device,
            key: OneTimePreKey { key_id, public_key },
            order: value.uploaded_seq,
        })?;
    }
    Ok(())
}

fn messages(t: &Tables, sink: &mut dyn FnMut(Item) -> Result<(), StoreError>) -> Result<(), StoreError> {
    for row in rows(&t.mailboxes) {
        let (key, value) = row?;
        let target = uuid("mailboxes", key.get(..16).unwrap_or_default())?;
        let seq = seq_of_mailbox_key(&key).ok_or_else(|| corrupt("mailboxes"))?;
        let value = decode::<MessageValue>("mailboxes", &value)?;
        sink(Item::Message {
            target,
            submission_id: uuid("mailboxes", &value.submission_id)?,
            expires_at_secs: value.expires_at_secs,
            message: StoredMessage {
                seq,
                id: message_id(value.created_at_ms, seq),
                sender_user: uuid("mailboxes", &value.sender_user)?,
                sender_device: uuid("mailboxes", &value.sender_device)?,
                payload: value.payload,
                created_at_ms: value.created_at_ms,
            },
        })?;
    }
    Ok(())
}

fn be_i64(table: &'static str, v: &[u8]) -> Result<i64, StoreError> {
    Ok(i64::from_be_bytes(v.try_into().map_err(|_| corrupt(table))?))
}

fn others(t: &Tables, sink: &mut dyn FnMut(Item) -> Result<(), StoreError>) -> Result<(), StoreError> {
    for row in rows(&t.push_jobs) {
        let (key, value) = row?;
        let due_ms = u64::try_from(be_i64("push_jobs", &value)?).unwrap_or(0);
        sink(Item::PushJob {
            device: uuid("push_jobs", &key)?,
            due_ms,
        })?;
    }
    for row in rows(&t.attachments) {
        let (key, value) = row?;
        sink(Item::Attachment {
            id: uuid("attachments", &key)?,
            expires_at_secs: be_i64("attachments", &value)?,
        })?;
    }
    for row in rows(&t.backups) {
        let (key, value) = row?;
        sink(Item::Backup {
            device: uuid("backups", &key)?,
            row: decode::<BackupValue>("backups", &value)?.into_record()?,
        })?;
    }
    for row in rows(&t.deleted_senders) {
        let (key, value) = row?;
        sink(Item::DeletedSender {
            device: uuid("deleted_senders", &key)?,
            deleted_at_secs: be_i64("deleted_senders", &value)?,
        })?;
    }
    for revocation in super::revocations::since(t, i64::MIN)? {
        sink(Item::Revocation(revocation))?;
    }
    for deletion in super::accounts::pending_deletions(t, i64::MAX, usize::MAX)? {
        sink(Item::AccountDeletion(deletion))?;
    }
    Ok(())
}
