//! [`Backups`] on ScyllaDB: one row per device; reserve, commit and release
//! are each a compare-and-set (a lightweight transaction on the committed
//! version and the pending upload's token), so a commit lands only while
//! its upload still holds the slot, whichever node serves it. Uploads in
//! progress are indexed by start time for the stale-upload clean-up.

use uuid::Uuid;

use super::cql::backend;
use super::devices::Contended;
use super::statements::Stmt;
use super::time_index::BACKUP_UPLOADS;
use super::{Inner, ScyllaStore};
use crate::limits;
use crate::store::{
    reserved_upload, BackupCommit, BackupRow, Backups, PendingBackup, Reservation, StoreError, StoreFuture,
};

/// A backup row as read.
type Row = (Option<i32>, Option<Uuid>, Option<i32>, Option<Uuid>, Option<i64>);

fn from_row((current, token, version, pending_token, started): Row) -> BackupRow {
    let pending = match (version, pending_token, started) {
        (Some(version), Some(token), Some(started_at_ms)) => Some(PendingBackup {
            version,
            token,
            started_at_ms,
        }),
        _ => None,
    };
    BackupRow {
        current_version: current.unwrap_or(0),
        current_token: token,
        pending,
    }
}

impl Inner {
    async fn load_backup(&self, device: Uuid) -> Result<Option<BackupRow>, StoreError> {
        Ok(self
            .cql
            .first::<Row>(Stmt::SelectBackup, (device,))
            .await?
            .map(from_row))
    }

    pub(super) async fn index_upload(&self, device: Uuid, p: &PendingBackup) -> Result<(), StoreError> {
        let alive = p.started_at_ms / 1000 + 86_400;
        self.indexes
            .add(
                &self.cql,
                BACKUP_UPLOADS,
                p.started_at_ms,
                device.as_bytes().to_vec(),
                alive,
            )
            .await
    }

    async fn unindex_upload(&self, device: Uuid, p: &PendingBackup) -> Result<(), StoreError> {
        self.indexes
            .remove(&self.cql, BACKUP_UPLOADS, p.started_at_ms, device.as_bytes().to_vec())
            .await
    }

    async fn reserve(
        &self,
        device: Uuid,
        expected: i32,
        token: Uuid,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> Result<Reservation, StoreError> {
        for _ in 0..limits::SCYLLA_CAS_ATTEMPTS_MAX {
            let Some(row) = self.load_backup(device).await? else {
                let outcome = BackupRow::EMPTY.reservation(expected, stale_before_ms);
                let first = reserved_upload(&outcome, token, now_ms);
                let values = (
                    device,
                    first.map(|p| p.version),
                    first.map(|p| p.token),
                    first.map(|p| p.started_at_ms),
                );
                if !self.cql.applied(Stmt::CreateBackup, values).await? {
                    continue;
                }
                if let Some(p) = first {
                    self.index_upload(device, &p).await?;
                }
                return Ok(outcome);
            };
            let outcome = row.reservation(expected, stale_before_ms);
            let Some(pending) = reserved_upload(&outcome, token, now_ms) else {
                return Ok(outcome);
            };
            let values = (
                pending.version,
                token,
                now_ms,
                device,
                row.current_version,
                row.pending.map(|p| p.token),
            );
            if self.cql.applied(Stmt::ReserveBackup, values).await? {
                self.index_upload(device, &pending).await?;
                if let Some(old) = &row.pending {
                    self.unindex_upload(device, old).await?;
                }
                return Ok(outcome);
            }
        }
        Err(backend(Contended("backups")))
    }

    async fn commit_upload(&self, device: Uuid, token: Uuid) -> Result<BackupCommit, StoreError> {
        let Some(row) = self.load_backup(device).await? else {
            return Ok(BackupCommit::Lost);
        };
        let Some(pending) = row.pending.filter(|p| p.token == token) else {
            return Ok(BackupCommit::Lost);
        };
        let values = (pending.version, token, device, token);
        if !self.cql.applied(Stmt::CommitBackup, values).await? {
            return Ok(BackupCommit::Lost);
        }
        self.unindex_upload(device, &pending).await?;
        Ok(BackupCommit::Committed(
            row.current_token.map(|old| (row.current_version, old)),
        ))
    }

    async fn release_upload(&self, device: Uuid, token: Uuid) -> Result<bool, StoreError> {
        let pending = self.load_backup(device).await?.and_then(|r| r.pending);
        if !self.cql.applied(Stmt::ReleaseBackup, (device, token)).await? {
            return Ok(false);
        }
        if let Some(p) = pending.filter(|p| p.token == token) {
            self.unindex_upload(device, &p).await?;
        }
        Ok(true)
    }

    async fn stale(&self, stale_before_ms: i64, limit: usize) -> Result<Vec<(Uuid, PendingBackup)>, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, BACKUP_UPLOADS, stale_before_ms, usize::MAX)
            .await?;
        let mut found = Vec::new();
        for (at, id) in due {
            if found.len() >= limit {
                break;
            }
            let Ok(device) = Uuid::from_slice(&id) else {
                continue;
            };
            match self.load_backup(device).await?.and_then(|r| r.pending) {
                Some(p) if p.started_at_ms == at => found.push((device, p)),
                _ => {
                    self.indexes.remove(&self.cql, BACKUP_UPLOADS, at, id).await?;
                }
            }
        }
        Ok(found)
    }

    /// Deletes a deleted device's backup row.
    pub(super) async fn wipe_backup(&self, device: Uuid) -> Result<(), StoreError> {
        if let Some(p) = self.load_backup(device).await?.and_then(|r| r.pending) {
            self.unindex_upload(device, &p).await?;
        }
        self.cql.exec(Stmt::DeleteBackup, (device,)).await.map(drop)
    }
}

impl Backups for ScyllaStore {
    fn backup(&self, device: Uuid) -> StoreFuture<'_, Option<BackupRow>> {
        self.call(move |s| async move { s.load_backup(device).await })
    }

    fn reserve_backup(
        &self,
        device: Uuid,
        expected: i32,
        token: Uuid,
        now_ms: i64,
        stale_before_ms: i64,
    ) -> StoreFuture<'_, Reservation> {
        self.call(move |s| async move { s.reserve(device, expected, token, now_ms, stale_before_ms).await })
    }

    fn commit_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, BackupCommit> {
        self.call(move |s| async move { s.commit_upload(device, token).await })
    }

    fn release_backup(&self, device: Uuid, token: Uuid) -> StoreFuture<'_, bool> {
        self.call(move |s| async move { s.release_upload(device, token).await })
    }

    fn stale_backups(&self, stale_before_ms: i64, limit: usize) -> StoreFuture<'_, Vec<(Uuid, PendingBackup)>> {
        self.call(move |s| async move { s.stale(stale_before_ms, limit).await })
    }
}
