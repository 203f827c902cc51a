//! [`crate::store::Mailboxes`]' read side on ScyllaDB: fetches, the floor,
//! the retention sweep and its device pages, deleted senders, and wiping a
//! mailbox.
//!
//! A fetch lists the device's buckets and floor (`mailbox_buckets`), then
//! reads each bucket from `max(cursor, floor)` up to the mailbox's
//! watermark ([`super::inflight`]). The floor is moved up every
//! `SCYLLA_FLOOR_ACKS` acks and by every sweep, to the first message still
//! deliverable (or the watermark when there is none) but never into the
//! late-commit window (where another relay node's append may still land),
//! so a fetch from the floor passes no more tombstones than that many acks
//! and the window's; buckets wholly below the floor are dropped (one
//! partition tombstone).
//! The sweep visits the devices that received messages in recent buckets
//! or in the buckets that are expiring now (the `mailbox_activity` index),
//! never every device.

use std::collections::{BTreeSet, HashSet};

use futures_util::future::try_join_all;
use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::caches::lock;
use super::cql::{part, Part};
use super::positions::{bucket_at_millis, bucket_of, bucket_start, from_cql, span_of_millis, to_cql};
use super::statements::Stmt;
use super::time_index::{DELETED_SENDERS, MAILBOX_ACTIVITY};
use super::Inner;
use crate::limits;
use crate::store::message_ids::message_id;
use crate::store::{StoreError, StoredMessage};
use crate::util::time::{now_micros, now_millis, now_secs};

/// A message row as fetched.
type MessageRow = (i64, Uuid, Uuid, bytes::Bytes, i64, i64);

/// (position, sender device, expiry) of a message.
type Head = (u64, Uuid, i64);

/// Rows one read of the sweep takes.
const HEADS_PER_READ: i32 = 1_000;

/// Rows one read of a floor move takes: the first deliverable message is
/// usually the first row.
const FLOOR_HEADS_PER_READ: i32 = 16;

/// Loads the devices deleted within the messages' lifetime.
pub(super) async fn load_deleted_senders(s: &Inner) -> Result<HashSet<Uuid>, StoreError> {
    let entries = s.indexes.due(&s.cql, DELETED_SENDERS, now_secs(), usize::MAX).await?;
    Ok(entries
        .into_iter()
        .filter_map(|(_, id)| Uuid::from_slice(&id).ok())
        .collect())
}

impl Inner {
    /// The device's buckets (ascending) and its floor.
    async fn buckets(&self, device: Uuid) -> Result<(Vec<i64>, u64), StoreError> {
        let rows: Vec<(Option<i64>, Option<i64>)> = self.cql.rows(Stmt::SelectBuckets, (device,)).await?;
        let floor = rows.first().and_then(|(_, f)| *f).map_or(0, from_cql);
        let buckets = rows.into_iter().filter_map(|(b, _)| b).collect();
        Ok((buckets, floor))
    }

    fn deliverable(&self, sender: &Uuid, expires: i64, now: i64) -> bool {
        crate::store::deliverable(expires, now, self.is_deleted_sender(sender))
    }

    pub(super) async fn fetch(
        &self,
        device: Uuid,
        after: Option<u64>,
        limit: usize,
        now: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        if self.is_deleted_sender(&device) {
            // A deleted device's mailbox (wiped, or being wiped) holds
            // nothing deliverable.
            return Ok(Vec::new());
        }
        let cap = self.appends.watermark(device, &self.positions);
        let (buckets, floor) = self.buckets(device).await?;
        let start = after.map_or(0, |a| a.saturating_add(1)).max(floor);
        let mut out = Vec::with_capacity(limit.min(1024));
        for bucket in buckets.into_iter().filter(|b| *b >= bucket_of(start)) {
            let mut from = start.max(bucket_start(bucket));
            while out.len() < limit && from < cap {
                let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
                let rows: Vec<MessageRow> = self
                    .cql
                    .rows(Stmt::SelectMessages, (device, bucket, to_cql(from), to_cql(cap), want))
                    .await?;
                let full = rows.len() == usize::try_from(want).unwrap_or(0);
                for (seq, sender_user, sender_device, payload, created, expires) in rows {
                    from = from_cql(seq) + 1;
                    if self.deliverable(&sender_device, expires, now) {
                        let (seq, created_at_ms) = (from_cql(seq), u64::try_from(created).unwrap_or(0));
                        out.push(StoredMessage {
                            seq,
                            id: message_id(created_at_ms, seq),
                            sender_user,
                            sender_device,
                            payload,
                            created_at_ms,
                        });
                    }
                }
                if !full {
                    break;
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// The message heads from the floor up to the watermark (all of them,
    /// or up to the first deliverable one when `to_first`), with the
    /// watermark, the buckets and the floor.
    async fn heads(&self, device: Uuid, to_first: bool) -> Result<(Vec<Head>, u64, Vec<i64>, u64), StoreError> {
        let cap = self.appends.watermark(device, &self.positions);
        let (buckets, floor) = self.buckets(device).await?;
        let now = now_secs();
        let per_read = if to_first { FLOOR_HEADS_PER_READ } else { HEADS_PER_READ };
        let mut heads = Vec::new();
        for &bucket in buckets.iter().filter(|b| **b >= bucket_of(floor)) {
            let mut from = floor.max(bucket_start(bucket));
            while from < cap {
                let rows: Vec<(i64, Uuid, i64)> = self
                    .cql
                    .rows(
                        Stmt::SelectMessageHeads,
                        (device, bucket, to_cql(from), to_cql(cap), per_read),
                    )
                    .await?;
                let full = rows.len() == usize::try_from(per_read).unwrap_or(0);
                for (seq, sender, expires) in rows {
                    from = from_cql(seq) + 1;
                    heads.push((from_cql(seq), sender, expires));
                    if to_first && self.deliverable(&sender, expires, now) {
                        return Ok((heads, cap, buckets, floor));
                    }
                }
                if !full {
                    break;
                }
            }
        }
        Ok((heads, cap, buckets, floor))
    }

    /// Moves the floor up to the first deliverable message (or the
    /// watermark), within [`Inner::set_floor`]'s clamp.
    pub(super) async fn advance_floor(&self, device: Uuid) -> Result<(), StoreError> {
        let (heads, cap, buckets, floor) = self.heads(device, true).await?;
        let now = now_secs();
        let first = heads
            .iter()
            .find(|(_, sender, expires)| self.deliverable(sender, *expires, now));
        let new = first.map_or(cap, |(seq, _, _)| *seq);
        self.set_floor(device, new, floor, &buckets).await
    }

    /// How far (in positions) behind a later position an append through
    /// another relay node may still commit: its two write steps (the
    /// submissions, then the messages), each bounded by the request
    /// timeout, plus the clock skew allowed between nodes.
    pub(super) fn late_commit_window(&self) -> u64 {
        let timeout_ms = u64::try_from(self.options.request_timeout.as_millis()).unwrap_or(u64::MAX);
        span_of_millis(
            timeout_ms
                .saturating_mul(2)
                .saturating_add(limits::SCYLLA_CLOCK_SKEW_MS),
        )
    }

    /// Moves the floor from `old` up to `new`, but never into the
    /// late-commit window, where another relay node's append may still
    /// land below `new`; drops the buckets wholly below. Every floor move
    /// (acks and the sweep) goes through here.
    async fn set_floor(&self, device: Uuid, new: u64, old: u64, buckets: &[i64]) -> Result<(), StoreError> {
        let settled = self.positions.horizon().saturating_sub(self.late_commit_window());
        let new = new.min(settled);
        if new <= old {
            return Ok(());
        }
        self.cql.exec(Stmt::SetFloor, (to_cql(new), device)).await?;
        let stamp = now_micros();
        let below: Vec<i64> = buckets.iter().copied().filter(|b| *b < bucket_of(new)).collect();
        let drops = below.iter().map(|&bucket| {
            let parts = vec![
                part(Stmt::DeleteBucket, (stamp, device, bucket)),
                part(Stmt::DeleteBucketRow, (device, bucket)),
            ];
            self.cql.batch(BatchType::Unlogged, parts)
        });
        try_join_all(drops).await?;
        let mut cache = lock(&self.caches.buckets);
        for bucket in below {
            cache.remove(&(device, bucket));
        }
        Ok(())
    }

    pub(super) async fn sweep_mailbox(&self, device: Uuid, now: i64, max: usize) -> Result<usize, StoreError> {
        let (heads, cap, buckets, floor) = self.heads(device, false).await?;
        // A deleted device keeps nothing (rows an append racing its
        // deletion wrote after the wipe).
        let gone = self.is_deleted_sender(&device);
        let (mut victims, kept): (Vec<Head>, Vec<Head>) = heads
            .into_iter()
            .partition(|(_, sender, expires)| gone || !self.deliverable(sender, *expires, now));
        let excess = kept.len().saturating_sub(max);
        victims.extend(kept.iter().take(excess).copied());
        let mut by_partition: std::collections::HashMap<i64, Vec<Part>> = std::collections::HashMap::new();
        for (seq, _, _) in &victims {
            by_partition
                .entry(bucket_of(*seq))
                .or_default()
                .push(part(Stmt::DeleteMessage, (device, bucket_of(*seq), to_cql(*seq))));
        }
        let deletes = by_partition.into_values().flat_map(|parts| {
            let mut chunks = Vec::new();
            let mut parts = parts.into_iter().peekable();
            while parts.peek().is_some() {
                chunks.push(parts.by_ref().take(limits::SCYLLA_BATCH_ROWS_MAX).collect::<Vec<_>>());
            }
            chunks
        });
        try_join_all(deletes.map(|chunk| self.cql.batch(BatchType::Unlogged, chunk))).await?;
        let new_floor = kept.get(excess).map_or(cap, |(seq, _, _)| *seq);
        self.set_floor(device, new_floor, floor, &buckets).await?;
        Ok(victims.len())
    }

    /// Deletes every message of `device` (takeover, deletion).
    pub(super) async fn wipe_mailbox(&self, device: Uuid) -> Result<(), StoreError> {
        let (buckets, _) = self.buckets(device).await?;
        let stamp = now_micros();
        let deletes = buckets
            .iter()
            .map(|&bucket| self.cql.exec(Stmt::DeleteBucket, (stamp, device, bucket)));
        try_join_all(deletes).await?;
        self.cql.exec(Stmt::DeleteMailbox, (stamp, device)).await?;
        let now = bucket_at_millis(now_millis());
        let mut cache = lock(&self.caches.buckets);
        for bucket in buckets.into_iter().chain(now - 1..=now + 1) {
            cache.remove(&(device, bucket));
        }
        drop(cache);
        self.appends.forget(device);
        Ok(())
    }

    pub(super) async fn forget_deleted_senders(&self, before: i64) -> Result<usize, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, DELETED_SENDERS, before.saturating_sub(1), usize::MAX)
            .await?;
        for (at, id) in &due {
            self.indexes.remove(&self.cql, DELETED_SENDERS, *at, id.clone()).await?;
            if let Ok(device) = Uuid::from_slice(id) {
                lock(&self.deleted).remove(&device);
            }
        }
        Ok(due.len())
    }

    /// The mailbox buckets whose devices a sweep visits: the recent ones
    /// (inbox limit) and those expiring now.
    fn sweep_buckets(&self) -> BTreeSet<i64> {
        let width = limits::SCYLLA_MAILBOX_BUCKET_MS;
        let interval_ms = self.options.sweep_interval_secs.saturating_mul(1000);
        let span = i64::try_from(interval_ms / width + 1).unwrap_or(i64::MAX);
        let now_ms = now_millis();
        let ttl_ms = u64::try_from(self.options.ttl_secs).unwrap_or(0).saturating_mul(1000);
        let (recent, expiring) = (
            bucket_at_millis(now_ms),
            bucket_at_millis(now_ms.saturating_sub(ttl_ms)),
        );
        (recent - span..=recent).chain(expiring - span..=expiring).collect()
    }

    pub(super) async fn device_page(&self, after: Option<Uuid>, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let after = after.map_or_else(Vec::new, |a| a.as_bytes().to_vec());
        let pages = self.sweep_buckets().into_iter().map(|bucket| {
            self.indexes
                .bucket_page(&self.cql, MAILBOX_ACTIVITY, bucket, after.clone(), limit)
        });
        let ids: BTreeSet<Uuid> = try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .filter_map(|id| Uuid::from_slice(&id).ok())
            .collect();
        Ok(ids.into_iter().take(limit).collect())
    }
}
