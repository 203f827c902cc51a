//! The retention sweep (BEHAVIOR.md §12), every
//! `--messaging-cleanup-interval-secs` from boot on: shard 0 deletes expired
//! messages and idempotency records; every shard holds the mailboxes of the
//! devices it owns to `--messaging-inbox-max-size`, dropping the oldest.
//! Work goes in bounded slices with a yield between them, so the sweep
//! never holds its shard for long.

use std::rc::Rc;
use std::time::Duration;

use crate::api::ShardLocal;
use crate::limits;
use crate::shard::placement;
use crate::util::time::now_secs;

/// Runs the sweep until shutdown.
pub async fn run(local: Rc<ShardLocal>) {
    let interval = Duration::from_secs(local.app.config.messaging_cleanup_interval_secs);
    loop {
        if local.me == 0 {
            expire(&local).await;
        }
        hold_inboxes(&local).await;
        let shutdown = local.shutdown.clone();
        monoio::select! {
            _ = monoio::time::sleep(interval) => {},
            _ = shutdown.wait() => return,
        }
    }
}

async fn expire(local: &ShardLocal) {
    let store = &local.app.store;
    let slice = limits::SWEEP_EXPIRED_PER_SLICE;
    let (mut messages, mut records) = (0, 0);
    loop {
        match store.expire_messages(now_secs(), slice).await {
            Ok(n) if n == slice => messages += n,
            Ok(n) => {
                messages += n;
                break;
            }
            Err(e) => return tracing::warn!(error = %e, "message expiry failed"),
        }
        monoio::time::sleep(Duration::ZERO).await;
    }
    loop {
        match store.purge_idempotency(now_secs(), slice).await {
            Ok(n) if n == slice => records += n,
            Ok(n) => {
                records += n;
                break;
            }
            Err(e) => return tracing::warn!(error = %e, "idempotency purge failed"),
        }
    }
    if messages + records > 0 {
        tracing::info!(messages, idempotency_records = records, "expired rows deleted");
    }
}

async fn hold_inboxes(local: &ShardLocal) {
    let store = &local.app.store;
    let (max, shards) = (local.app.config.messaging_inbox_max_size, local.mesh.shards());
    let mut after = None;
    let mut dropped = 0;
    loop {
        let page = match store.device_page(after, limits::SWEEP_DEVICES_PER_SLICE).await {
            Ok(page) => page,
            Err(e) => return tracing::warn!(error = %e, "inbox sweep failed"),
        };
        let Some(last) = page.last().copied() else {
            break;
        };
        for device in page
            .into_iter()
            .filter(|d| placement::device_owner(*d, shards) == local.me)
        {
            dropped += store.prune_mailbox(device, max).await.unwrap_or(0);
        }
        after = Some(last);
        monoio::time::sleep(Duration::ZERO).await;
    }
    if dropped > 0 {
        tracing::info!(dropped, shard = local.me, "oldest messages dropped from full inboxes");
    }
}
