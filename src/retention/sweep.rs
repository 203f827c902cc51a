//! The retention sweep (BEHAVIOR.md §12), every
//! `--messaging-cleanup-interval-secs` from boot on: every shard sweeps the
//! mailboxes of the devices it owns, deleting expired messages, messages of
//! deleted senders, and the oldest beyond `--messaging-inbox-max-size`;
//! shard 0 also purges expired idempotency records and forgets the deleted
//! senders whose messages have all expired (`--ttl-days` after the
//! deletion). Work goes in bounded slices with a yield between them, so the
//! sweep never holds its shard for long. With several relay nodes, one
//! shard of the deployment sweeps each share of the devices per period
//! ([`crate::node::App::lead`]).

use std::rc::Rc;
use std::time::Duration;

use crate::limits;
use crate::node::ShardLocal;
use crate::shard::periodic::every;
use crate::shard::placement;
use crate::util::time::now_secs;

/// Runs the sweep until shutdown.
pub async fn run(local: Rc<ShardLocal>) {
    let interval = Duration::from_secs(local.app.config.messaging_cleanup_interval_secs);
    let shutdown = local.shutdown().clone();
    every(interval, shutdown, move || {
        let local = local.clone();
        async move {
            // Shards of nodes with the same shard count own the same devices.
            let job = format!("retention:{}:{}", local.shards(), local.me());
            if !local.app.lead(&job, interval).await {
                return;
            }
            sweep_mailboxes(&local).await;
            if local.me() == 0 {
                purge(&local).await;
            }
        }
    })
    .await;
}

async fn purge(local: &ShardLocal) {
    let store = &local.app.store;
    let slice = limits::SWEEP_EXPIRED_PER_SLICE;
    let mut records = 0;
    // An idempotency record is kept for a while after it expired: a send
    // that began before its expiry still finds it in its transaction
    // (api::messages), and no send lasts longer than the global timeout.
    let grace = i64::try_from(local.app.config.global_timeout().as_secs()).unwrap_or(i64::MAX / 2) + 60;
    loop {
        match store.purge_idempotency(now_secs().saturating_sub(grace), slice).await {
            Ok(n) if n == slice => records += n,
            Ok(n) => {
                records += n;
                break;
            }
            Err(e) => return tracing::warn!(error = %e, "idempotency purge failed"),
        }
        monoio::time::sleep(Duration::ZERO).await;
    }
    let senders = match store
        .forget_deleted_senders(now_secs().saturating_sub(local.app.config.ttl_secs()))
        .await
    {
        Ok(n) => n,
        Err(e) => return tracing::warn!(error = %e, "forgetting deleted senders failed"),
    };
    if records + senders > 0 {
        tracing::info!(
            idempotency_records = records,
            deleted_senders = senders,
            "expired rows deleted"
        );
    }
}

async fn sweep_mailboxes(local: &ShardLocal) {
    let store = &local.app.store;
    let (max, shards) = (local.app.config.messaging_inbox_max_size, local.shards());
    let mut after = None;
    let mut deleted = 0;
    loop {
        let page = match store.device_page(after, limits::SWEEP_DEVICES_PER_SLICE).await {
            Ok(page) => page,
            Err(e) => return tracing::warn!(error = %e, "mailbox sweep failed"),
        };
        let Some(last) = page.last().copied() else {
            break;
        };
        for device in page
            .into_iter()
            .filter(|d| placement::device_owner(*d, shards) == local.me())
        {
            match store.sweep_mailbox(device, now_secs(), max).await {
                Ok(n) => deleted += n,
                Err(e) => tracing::warn!(error = %e, "sweeping a mailbox failed"),
            }
        }
        after = Some(last);
        monoio::time::sleep(Duration::ZERO).await;
    }
    if deleted > 0 {
        tracing::info!(
            deleted,
            shard = local.me(),
            "expired, orphaned and overflowing messages deleted"
        );
    }
}
