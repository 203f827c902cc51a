//! [`Backups`] on fjall: one row per device, and an index of the rows with
//! an upload in progress for the stale-upload clean-up. Every operation is
//! one closure on the writer thread, so reserve, commit and release are
//! atomic conditional updates: a commit lands only while its upload's token
//! still holds the slot.

use prost::Message;
use uuid::Uuid;

use super::records::{decode, uuid, BackupValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{
    reserved_upload, BackupCommit, BackupRow, Backups, PendingBackup, Reservation, StoreError, StoreFuture,
};

pub(super) fn load(t: &Tables, device: Uuid) -> Result<Option<BackupRow>, StoreError> {
    Tables::get(&t.backups, device.as_bytes())?
        .map(|v| decode::<BackupValue>("backups", &v)?.into_record())
        .transpose()
}

/// Writes `row` and keeps the in-progress index in step with it.
fn save(t: &Tables, device: Uuid, row: &BackupRow) -> Result<(), StoreError> {
    let mut batch = t.db.batch();
    let key = device.as_bytes().to_vec();
    batch.insert(&t.backups, key.clone(), BackupValue::from_record(row).encode_to_vec());
    match row.pending {
        Some(_) => batch.insert(&t.backup_uploads, key, Vec::new()),
        None => batch.remove(&t.backup_uploads, key),
    }
    batch.commit().map_err(backend)
}

/// Removes a device's row (device deletion).
pub(super) fn wipe_backup(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) {
    batch.remove(&t.backups, device.as_bytes().to_vec());
    batch.remove(&t.backup_uploads, device.as_bytes().to_vec());
}

fn reserve(
    t: &Tables,
    device: Uuid,
    expected: i32,
    pending: PendingBackup,
    stale_before_ms: i64,
) -> Result<Reservation, StoreError> {
    let existing = load(t, device)?;
    let mut row = existing.unwrap_or(BackupRow::EMPTY);
    let outcome = row.reservation(expected, stale_before_ms);
    let reserved = reserved_upload(&outcome, pending.token, pending.started_at_ms);
    if reserved.is_some() {
        row.pending = reserved;
    }
    if existing.is_none() || reserved.is_some() {
        save(t, device, &row)?;
    }
    Ok(outcome)
}

/// Applies `change` to the row if upload `token` holds its slot.
fn if_holding(
    t: &Tables,
    device: Uuid,
    token: Uuid,
    change: impl FnOnce(&mut BackupRow, PendingBackup),
) -> Result<bool, StoreError> {
    let Some(mut row) = load(t, device)? else {
        return Ok(false);
    };
    let Some(pending) = row.pending.filter(|p| p.token == token) else {
        return Ok(false);
    };
    row.pending = None;
    change(&mut row, pending);
    save(t, device, &row)?;
    Ok(true)
}

fn commit(t: &Tables, device: Uuid, token: Uuid) -> Result<BackupCommit, StoreError> {
    let mut previous = None;
    let held = if_holding(t, device, token, |row, pending| {
        previous = row.current_token.map(|old| (row.current_version, old));
        row.current_version = pending.version;
        row.current_token = Some(pending.token);
    })?;
    Ok(if held {
        BackupCommit::Committed(previous)
    } else {
        BackupCommit::Lost
    })
}

fn stale(t: &Tables, stale_before_ms: i64, limit: usize) -> Result<Vec<(Uuid, PendingBackup)>, StoreError> {
    let mut found = Vec::new();
    for key in Tables::keys_with_prefix(&t.backup_uploads, &[])? {
        let device = uuid("backup_uploads", &key)?;
        let pending = load(t, device)?.and_then(|row| row.pending);
        if let Some(p) = pending.filter(|p| p.started_at_ms <= stale_before_ms) {
            found.push((device, p));
            if found.len() == limit {
                break;
            }
        }
    }
    Ok(found)
}

impl Backups for EmbeddedStore {
    fn backup(&self, device: Uuid) -> StoreFuture<'_, Option<BackupRow>> {
        self.read(move |t| load(t, device))
    }

    fn reserve_backup(
        &self,
        device: Uuid,
        expected: i32,
        token: Uuid,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'_, Reservation> {
        let pending = PendingBackup {
            version: 0,
            token,
            started_at_ms: now_ms,
        };
        self.write(move |t| reserve(t, device, expected, pending, stale_before_ms))
    }

    fn commit_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, BackupCommit> {
        self.write(move |t| commit(t, device, token))
    }

    fn release_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, bool> {
        self.write(move |t| if_holding(t, device, token, |_, _| {}))
    }

    fn stale_backups(&self, stale_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<(Uuid, PendingBackup)>> {
        self.read(move |t| stale(t, stale_before_ms, limit))
    }
}
