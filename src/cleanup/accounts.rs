//! What follows an account deletion outside the store: the backup blobs of
//! its devices. The store records the deletion as pending in the
//! deletion's own transaction ([`crate::store::Accounts`]), so this work
//! survives a crash: the request that deleted the account starts
//! [`finish`] at once, and [`finish_pending`] (on shard 0, at start and
//! then every `--backup-cleanup-interval-secs`) finishes every deletion
//! that a crash or a failed blob delete left pending.

use std::sync::Arc;

use crate::blob::backup_folder;
use crate::limits;
use crate::node::App;
use crate::store::AccountDeletion;
use crate::util::time::now_micros;

/// Deletes the backup folders of the account's devices, then tells the
/// store the deletion is finished. A failure leaves it pending (logged),
/// for the next run of [`finish_pending`].
pub async fn finish(app: &App, deletion: &AccountDeletion) {
    for device in &deletion.devices {
        let folder = backup_folder(&app.config.backup_prefix, *device);
        if let Err(e) = app.blobs.delete_folder(folder).await {
            return tracing::warn!(error = %e, "deleting a deleted account's backups failed; retried later");
        }
    }
    if let Err(e) = app.store.finish_account_deletion(deletion.user_id).await {
        tracing::warn!(error = %e, "finishing an account deletion failed; retried later");
    }
}

/// Finishes the pending deletions decided before this process started
/// (nobody else is on them) or more than [`limits::ACCOUNT_CLEANUP_GRACE_MS`]
/// ago (their request gave up), a batch per run.
pub async fn finish_pending(app: Arc<App>, started_ms: i64) {
    let now_ms = now_micros() / 1000;
    let before = started_ms.max(now_ms.saturating_sub(limits::ACCOUNT_CLEANUP_GRACE_MS));
    let pending = match app
        .store
        .pending_account_deletions(before, limits::ACCOUNT_CLEANUP_BATCH_COUNT)
        .await
    {
        Ok(pending) => pending,
        Err(e) => return tracing::warn!(error = %e, "listing pending account deletions failed"),
    };
    for deletion in &pending {
        finish(&app, deletion).await;
    }
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "pending account deletions processed");
    }
}
