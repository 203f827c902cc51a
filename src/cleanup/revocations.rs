//! Keeping this node's map of recent token revocations
//! ([`crate::node::revocations`]) current from the store's log, and the
//! log short.
//!
//! - [`load`], before the node accepts requests: every revocation that
//!   still matters (decided within the keep time).
//! - [`sync`], on shard 0 every `--auth-revocation-sync-interval-secs`:
//!   one store read of the revocations since the previous read began
//!   (less [`limits::AUTH_REVOCATION_SYNC_OVERLAP_MS`], for late commits
//!   and clocks that differ between nodes). Decisions taken on this node
//!   enter the map at once from their request; with several relay nodes a
//!   cross-node event brings the others' at once, and this re-read is the
//!   backstop that bounds how long a lost event goes unseen: one interval
//!   (plus the read itself).
//! - [`purge`], with the expired-refresh-token purge: log rows older than
//!   the keep time refuse nothing any more.

use std::cell::Cell;

use crate::limits;
use crate::node::revocations::keep_ms;
use crate::node::App;
use crate::store::StoreError;
use crate::util::time::now_micros;

fn now_ms() -> i64 {
    now_micros() / 1000
}

/// Fills the map with every revocation decided within the keep time.
pub async fn load(app: &App) -> Result<(), StoreError> {
    let now = now_ms();
    let since = now.saturating_sub(keep_ms(app.config.auth_token_ttl_secs));
    let recent = app.store.revocations_since(since).await?;
    app.revocations.apply(&recent, now);
    Ok(())
}

/// Applies the revocations logged since the last read (`since`, ms); moves
/// `since` on when the read succeeded.
pub async fn sync(app: &App, since: &Cell<i64>) {
    let started = now_ms();
    match app.store.revocations_since(since.get()).await {
        Ok(recent) => {
            app.revocations.apply(&recent, now_ms());
            since.set(started.saturating_sub(limits::AUTH_REVOCATION_SYNC_OVERLAP_MS));
        }
        Err(e) => tracing::warn!(error = %e, "reading the revocation log failed"),
    }
}

/// Deletes log rows older than the keep time, in slices.
pub async fn purge(app: &App) {
    let before = now_ms().saturating_sub(keep_ms(app.config.auth_token_ttl_secs));
    loop {
        match app
            .store
            .purge_revocations(before, limits::AUTH_REVOCATION_PURGE_SLICE)
            .await
        {
            Ok(n) if n == limits::AUTH_REVOCATION_PURGE_SLICE => {}
            Ok(_) => break,
            Err(e) => return tracing::warn!(error = %e, "revocation log purge failed"),
        }
    }
}
