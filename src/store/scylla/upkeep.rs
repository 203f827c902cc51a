//! The store's periodic upkeep on the driver's runtime, for as long as the
//! store lives: renewing this relay's node tag ([`super::node_tags`]), and
//! learning of devices deleted through other relay nodes, whose queued
//! messages this relay must stop delivering too.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::time_index::DELETED_SENDERS;
use super::{caches::lock, node_tags, Inner};
use crate::limits;
use crate::offload::side_runtime::SideRuntime;
use crate::store::StoreError;
use crate::util::time::now_secs;

/// Starts every upkeep task of `inner` on `runtime`.
pub(super) fn start(runtime: &SideRuntime, inner: &Arc<Inner>) {
    let renew = Duration::from_secs(limits::SCYLLA_NODE_TAG_RENEW_SECS).min(inner.options.node_tag_ttl / 4);
    runtime.spawn(every(
        renew,
        Arc::downgrade(inner),
        "renewing the node tag",
        |inner| async move { node_tags::renew(&inner).await },
    ));
    let learn = Duration::from_secs(limits::SCYLLA_DELETED_SENDERS_REFRESH_SECS);
    runtime.spawn(every(
        learn,
        Arc::downgrade(inner),
        "reading deleted devices",
        |inner| async move { learn_deleted_senders(&inner).await },
    ));
}

/// Runs `task` every `period` until the store is gone; a failure is logged
/// and retried at the next tick.
async fn every<F, Fut>(period: Duration, inner: Weak<Inner>, what: &'static str, task: F)
where
    F: Fn(Arc<Inner>) -> Fut,
    Fut: Future<Output = Result<(), StoreError>>,
{
    loop {
        tokio::time::sleep(period).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if let Err(e) = task(inner).await {
            tracing::warn!(error = %e, what, "store upkeep failed; retrying");
        }
    }
}

/// Adds the devices deleted lately (through any relay) to the deleted set.
async fn learn_deleted_senders(inner: &Inner) -> Result<(), StoreError> {
    let since = now_secs().saturating_sub(limits::SCYLLA_DELETED_SENDERS_LOOKBACK_SECS);
    let entries = inner.indexes.since(&inner.cql, DELETED_SENDERS, since).await?;
    let devices = entries
        .into_iter()
        .filter_map(|(_, id)| uuid::Uuid::from_slice(&id).ok());
    lock(&inner.deleted).extend(devices);
    Ok(())
}
