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
//! [`crate::retention`]'s. With
//! several relay nodes, one of them runs each clean-up per period
//! ([`App::lead`]).

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
    spawn_every(
        app,
        shutdown,
        (Some("accounts"), config.backup_cleanup_interval_secs),
        move |app| accounts::finish_pending(app, started_ms),
    );
    let since = Rc::new(Cell::new(
        started_ms.saturating_sub(crate::limits::AUTH_REVOCATION_SYNC_OVERLAP_MS),
    ));
    // Every node keeps its own revocation map: no lease.
    spawn_every(
        app,
        shutdown,
        (None, config.auth_revocation_sync_interval_secs),
        move |app| {
            let since = since.clone();
            async move { revocations::sync(&app, &since).await }
        },
    );
    spawn_every(
        app,
        shutdown,
        (Some("attachments"), config.attachment_cleanup_interval_secs),
        |app| async move { blobs::expire_attachments(&app).await },
    );
    spawn_every(
        app,
        shutdown,
        (Some("backups"), config.backup_cleanup_interval_secs),
        |app| async move { blobs::reset_stale_backups(&app).await },
    );
    if config.auth_refresh_token_cleanup_interval_secs > 0 {
        spawn_every(
            app,
            shutdown,
            (Some("refresh-tokens"), config.auth_refresh_token_cleanup_interval_secs),
            |app| async move {
                refresh_tokens::purge_expired(&app).await;
                revocations::purge(&app).await;
            },
        );
    }
}

/// Spawns `job` every period (seconds), with its own handle on the app; of
/// several relay nodes, one runs a named job per period ([`App::lead`]),
/// every node runs an unnamed one.
fn spawn_every<F, Fut>(app: &Arc<App>, shutdown: &Shutdown, (name, period_secs): (Option<&'static str>, u64), job: F)
where
    F: Fn(Arc<App>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let app = app.clone();
    let period = Duration::from_secs(period_secs);
    let job = std::rc::Rc::new(job);
    monoio::spawn(every(period, shutdown.clone(), move || {
        let (app, job) = (app.clone(), job.clone());
        async move {
            let lead = match name {
                Some(name) => app.lead(name, period).await,
                None => true,
            };
            if lead {
                job(app).await;
            }
        }
    }));
}
