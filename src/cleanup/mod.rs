//! Clean-ups that keep the store and blob storage from growing without
//! bound, run on shard 0 from boot on (BEHAVIOR.md §12), each every its
//! own period until shutdown: expired attachments
//! (`--attachment-cleanup-interval-secs`) and stale backup uploads
//! (`--backup-cleanup-interval-secs`) in [`blobs`], the blobs of deleted
//! accounts (same period) in [`accounts`], expired refresh tokens and old
//! token revocations (`--auth-refresh-token-cleanup-interval-secs`, 0
//! disables it) in [`refresh_tokens`] and [`revocations`], which also keeps
//! the node's revocation map current
//! (`--auth-revocation-sync-interval-secs`). Message retention is
//! [`crate::mailbox`]'s.

pub mod accounts;
pub mod blobs;
pub mod refresh_tokens;
pub mod revocations;

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::node::App;
use crate::shard::periodic::every;
use crate::shard::shutdown::Shutdown;

/// Starts every clean-up on this shard; they end at shutdown.
/// `started_ms`: when this process started (ms since the epoch).
pub fn spawn(app: &Arc<App>, shutdown: &Shutdown, started_ms: i64) {
    let config = &app.config;
    spawn_every(app, shutdown, config.backup_cleanup_interval_secs, move |app| {
        accounts::finish_pending(app, started_ms)
    });
    let since = Rc::new(Cell::new(
        started_ms.saturating_sub(crate::limits::AUTH_REVOCATION_SYNC_OVERLAP_MS),
    ));
    spawn_every(app, shutdown, config.auth_revocation_sync_interval_secs, move |app| {
        let since = since.clone();
        async move { revocations::sync(&app, &since).await }
    });
    spawn_every(
        app,
        shutdown,
        config.attachment_cleanup_interval_secs,
        |app| async move { blobs::expire_attachments(&app).await },
    );
    spawn_every(app, shutdown, config.backup_cleanup_interval_secs, |app| async move {
        blobs::reset_stale_backups(&app).await
    });
    if config.auth_refresh_token_cleanup_interval_secs > 0 {
        spawn_every(
            app,
            shutdown,
            config.auth_refresh_token_cleanup_interval_secs,
            |app| async move {
                refresh_tokens::purge_expired(&app).await;
                revocations::purge(&app).await;
            },
        );
    }
}

/// Spawns `job` every `period_secs`, with its own handle on the app.
fn spawn_every<F, Fut>(app: &Arc<App>, shutdown: &Shutdown, period_secs: u64, job: F)
where
    F: Fn(Arc<App>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let app = app.clone();
    let period = Duration::from_secs(period_secs);
    monoio::spawn(every(period, shutdown.clone(), move || job(app.clone())));
}
