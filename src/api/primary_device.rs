//! The primary device that stands for a user wherever a legacy client
//! names one (BEHAVIOR.md §17.2): a legacy login without a device id, a
//! key upload with a user-scoped token, a `?token=` socket.

use uuid::Uuid;

use super::error::ApiError;
use crate::store::Store;

/// The primary device of `user`: its oldest device (for a legacy user, the
/// one created at registration; every device has complete keys), as the
/// store's target resolution defines it.
pub async fn primary_device(store: &dyn Store, user: Uuid) -> Result<Option<Uuid>, ApiError> {
    Ok(store.resolve_targets(vec![user]).await?.into_iter().next().flatten())
}
