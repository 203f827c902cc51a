//! [`PushTokens`] and [`PushJobs`] on fjall. A device's token is one row,
//! with an index row under the token's SHA-256 so a dead token is removed
//! from every device that carries it. A job is one row per device (its due
//! time) plus a row in due-time order that the worker's lease scans. Jobs
//! are scheduled inside the mailbox append (see [`schedule_wake_up`]) and
//! cancelled inside the ack, so neither costs a transaction of its own.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::layout::pair;
use super::records::uuid;
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{PushJobs, PushTokens, StoreError, StoreFuture};

/// `sha256(token) ‖ device`, the index row of a token.
fn token_index_key(token: &[u8], device: Uuid) -> Vec<u8> {
    pair(&Sha256::digest(token), device.as_bytes())
}

/// `due (ms) ‖ device`.
fn due_key(due_at_ms: u64, device: Uuid) -> Vec<u8> {
    pair(&due_at_ms.to_be_bytes(), device.as_bytes())
}

fn job_due(t: &Tables, device: Uuid) -> Result<Option<u64>, StoreError> {
    Ok(Tables::get(&t.push_jobs, device.as_bytes())?
        .and_then(|v| v.as_slice().try_into().ok())
        .map(u64::from_be_bytes))
}

fn put_job(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid, due_at_ms: u64) {
    batch.insert(
        &t.push_jobs,
        device.as_bytes().to_vec(),
        due_at_ms.to_be_bytes().to_vec(),
    );
    batch.insert(&t.push_due, due_key(due_at_ms, device), Vec::new());
}

/// Adds the removal of the device's pending job (if any) to `batch`.
pub(super) fn remove_job(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) -> Result<(), StoreError> {
    if let Some(due) = job_due(t, device)? {
        batch.remove(&t.push_jobs, device.as_bytes().to_vec());
        batch.remove(&t.push_due, due_key(due, device));
    }
    Ok(())
}

/// Adds a job due at `due_at_ms` for `device` to `batch` if the device has
/// a push token and no job is pending (coalescing).
pub(super) fn schedule_wake_up(
    t: &Tables,
    batch: &mut fjall::OwnedWriteBatch,
    device: Uuid,
    due_at_ms: u64,
) -> Result<(), StoreError> {
    let has_token = t.push_tokens.contains_key(device.as_bytes()).map_err(backend)?;
    if has_token && !t.push_jobs.contains_key(device.as_bytes()).map_err(backend)? {
        put_job(t, batch, device, due_at_ms);
    }
    Ok(())
}

/// Adds the removal of the device's token, its index row and its job to
/// `batch` (device deletion).
pub(super) fn wipe_push(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) -> Result<(), StoreError> {
    if let Some(token) = Tables::get(&t.push_tokens, device.as_bytes())? {
        batch.remove(&t.push_tokens, device.as_bytes().to_vec());
        batch.remove(&t.push_token_devices, token_index_key(&token, device));
    }
    remove_job(t, batch, device)
}

fn set_token(t: &Tables, device: Uuid, token: String) -> Result<bool, StoreError> {
    if !t.devices.contains_key(device.as_bytes()).map_err(backend)? {
        return Ok(false);
    }
    let mut batch = t.db.batch();
    if let Some(old) = Tables::get(&t.push_tokens, device.as_bytes())? {
        batch.remove(&t.push_token_devices, token_index_key(&old, device));
    }
    batch.insert(
        &t.push_token_devices,
        token_index_key(token.as_bytes(), device),
        Vec::new(),
    );
    batch.insert(&t.push_tokens, device.as_bytes().to_vec(), token.into_bytes());
    batch.commit().map_err(backend)?;
    Ok(true)
}

fn remove_tokens(t: &Tables, tokens: Vec<String>) -> Result<usize, StoreError> {
    let mut batch = t.db.batch();
    let mut removed = 0;
    for token in tokens {
        let digest = Sha256::digest(token.as_bytes());
        for key in Tables::keys_with_prefix(&t.push_token_devices, &digest)? {
            let device = uuid("push_token_devices", key.get(32..).unwrap_or_default())?;
            batch.remove(&t.push_token_devices, key);
            let current = Tables::get(&t.push_tokens, device.as_bytes())?;
            if current.as_deref() == Some(token.as_bytes()) {
                batch.remove(&t.push_tokens, device.as_bytes().to_vec());
                removed += 1;
            }
        }
    }
    batch.commit().map_err(backend)?;
    Ok(removed)
}

fn lease(t: &Tables, now_ms: u64, limit: usize, lease_until_ms: u64) -> Result<Vec<(Uuid, String)>, StoreError> {
    let mut batch = t.db.batch();
    let mut leased = Vec::new();
    let end = due_key(now_ms, Uuid::max());
    for row in t.push_due.range(..=end) {
        if leased.len() >= limit {
            break;
        }
        let key = row.key().map_err(backend)?;
        let device = uuid("push_due", key.get(8..).unwrap_or_default())?;
        batch.remove(&t.push_due, key.to_vec());
        match Tables::get(&t.push_tokens, device.as_bytes())? {
            Some(token) => {
                put_job(t, &mut batch, device, lease_until_ms);
                leased.push((device, String::from_utf8_lossy(&token).into_owned()));
            }
            // No token (any more): the job is done without a push.
            None => batch.remove(&t.push_jobs, device.as_bytes().to_vec()),
        }
    }
    batch.commit().map_err(backend)?;
    Ok(leased)
}

fn remove_one_job(t: &Tables, device: Uuid) -> Result<(), StoreError> {
    let mut batch = t.db.batch();
    remove_job(t, &mut batch, device)?;
    batch.commit().map_err(backend)
}

impl PushTokens for EmbeddedStore {
    fn set_push_token(&self, device: Uuid, token: String) -> StoreFuture<'_, bool> {
        self.write(move |t| set_token(t, device, token))
    }

    fn push_token(&self, device: Uuid) -> StoreFuture<'_, Option<String>> {
        self.read(move |t| {
            Ok(Tables::get(&t.push_tokens, device.as_bytes())?.map(|v| String::from_utf8_lossy(&v).into_owned()))
        })
    }

    fn remove_push_tokens(&self, tokens: Vec<String>) -> StoreFuture<'_, usize> {
        self.write(move |t| remove_tokens(t, tokens))
    }
}

impl PushJobs for EmbeddedStore {
    fn schedule_push(&self, device: Uuid, due_at_ms: u64) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            schedule_wake_up(t, &mut batch, device, due_at_ms)?;
            batch.commit().map_err(backend)
        })
    }

    fn cancel_push(&self, device: Uuid) -> StoreFuture<'_, ()> {
        self.write(move |t| remove_one_job(t, device))
    }

    fn lease_pushes(&self, now_ms: u64, limit: usize, lease_until_ms: u64) -> StoreFuture<'_, Vec<(Uuid, String)>> {
        self.write(move |t| lease(t, now_ms, limit, lease_until_ms))
    }

    fn complete_push(&self, device: Uuid) -> StoreFuture<'_, ()> {
        self.write(move |t| remove_one_job(t, device))
    }

    fn pending_push(&self, device: Uuid) -> StoreFuture<'_, Option<u64>> {
        self.read(move |t| job_due(t, device))
    }
}
