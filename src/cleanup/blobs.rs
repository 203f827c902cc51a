//! The blob clean-ups (BEHAVIOR.md §12): expired attachments (blob first,
//! then its metadata, which stays if the blob delete failed), and backup
//! uploads left unfinished past `--backup-stale-threshold-mins` (pending
//! blob deleted, slot freed, the committed version untouched).

use crate::blob::{attachment_key, backup_key};
use crate::limits;
use crate::node::App;
use crate::util::time::{now_micros, now_secs};

/// Deletes expired attachments in batches until none is left (or a batch
/// makes no progress: its deletes failed, and the next run retries).
pub async fn expire_attachments(app: &App) {
    let batch = app.config.attachment_cleanup_batch_size;
    let mut deleted = 0;
    loop {
        let expired = match app.store.expired_attachments(now_secs(), batch).await {
            Ok(ids) => ids,
            Err(e) => return tracing::warn!(error = %e, "listing expired attachments failed"),
        };
        let mut progress = 0;
        for id in &expired {
            let key = attachment_key(&app.config.attachment_prefix, *id);
            let removed = match app.blobs.delete(&key).await {
                Ok(()) => app.store.delete_attachment(*id).await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match removed {
                Ok(()) => progress += 1,
                Err(error) => tracing::warn!(%error, "deleting an expired attachment failed"),
            }
        }
        deleted += progress;
        if expired.len() < batch || progress == 0 {
            break;
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "expired attachments deleted");
    }
}

/// Frees the slots of uploads older than the stale threshold.
pub async fn reset_stale_backups(app: &App) {
    let config = &app.config;
    let stale_before = (now_micros() / 1000).saturating_sub(config.backup_stale_threshold_ms());
    let stale = match app
        .store
        .stale_backups(stale_before, limits::SWEEP_EXPIRED_PER_SLICE)
        .await
    {
        Ok(stale) => stale,
        Err(e) => return tracing::warn!(error = %e, "listing stale backup uploads failed"),
    };
    for (device, pending) in stale {
        let key = backup_key(&config.backup_prefix, device, pending.version, pending.token);
        if let Err(e) = app.blobs.delete(&key).await {
            tracing::warn!(error = %e, "deleting a stale backup upload failed");
            continue;
        }
        if let Err(e) = app.store.release_backup(device, pending.token).await {
            tracing::warn!(error = %e, "resetting a stale backup upload failed");
        }
    }
}
