//! The expired-refresh-token purge: deletes tokens past their expiry in
//! slices of [`limits::REFRESH_PURGE_SLICE`], so the store's writer is
//! never held long by it.

use crate::limits;
use crate::node::App;
use crate::util::time::now_secs;

/// Deletes every refresh token that has expired.
pub async fn purge_expired(app: &App) {
    let mut purged = 0;
    loop {
        match app
            .store
            .purge_expired_refresh(now_secs(), limits::REFRESH_PURGE_SLICE)
            .await
        {
            Ok(n) if n == limits::REFRESH_PURGE_SLICE => purged += n,
            Ok(n) => {
                purged += n;
                break;
            }
            Err(e) => return tracing::warn!(error = %e, "refresh token purge failed"),
        }
    }
    tracing::debug!(purged, "expired refresh tokens purged");
}
