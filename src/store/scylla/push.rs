//! [`PushTokens`] and [`PushJobs`] on ScyllaDB. A device's token is a
//! column of its row, with an index row under the token's SHA-256 so a dead
//! token is removed from every device carrying it (each removal a
//! conditional update: only if the device still carries that token).
//!
//! A job is a partition of due times per device: scheduling adds a row (no
//! read, no lightweight transaction: on the send path), the job's due time
//! is the earliest row, so the first event's due time holds; cancelling
//! deletes the partition at the cancel's time, which later schedules
//! outlive. Each row also goes into the due-time index the worker's lease
//! reads. A lease is a conditional update of the device's lease row, so of
//! competing workers exactly one moves the job to its retry time.

use std::collections::HashSet;

use scylla::statement::batch::BatchType;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::caches::{lock, KnownDevice};
use super::cql::{part, Part};
use super::positions::ttl_until;
use super::statements::Stmt;
use super::time_index::PUSH_DUE;
use super::{Inner, ScyllaStore};
use crate::limits;
use crate::store::{PushJobs, PushTokens, StoreError, StoreFuture};
use crate::util::time::{now_micros, now_secs};

fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Seconds a job row outlives its due time (a day; leases move it on).
const JOB_ALIVE_SECS: i64 = 86_400;

fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Inner {
    /// A job row due at `due_ms` (stamped now) and its index row.
    pub(super) async fn push_job_parts(&self, device: Uuid, due_ms: u64) -> Result<Vec<Part>, StoreError> {
        self.job_parts_at(device, due_ms, now_micros()).await
    }

    async fn job_parts_at(&self, device: Uuid, due_ms: u64, stamp: i64) -> Result<Vec<Part>, StoreError> {
        let due = ms(due_ms);
        let alive = due / 1000 + JOB_ALIVE_SECS;
        let row = part(Stmt::InsertPushJob, (device, due, stamp, ttl_until(alive, now_secs())));
        let index = self
            .indexes
            .part(&self.cql, PUSH_DUE, due, device.as_bytes().to_vec(), alive)
            .await?;
        Ok(vec![row, index])
    }

    /// Deletes every pending job row of `device` written until now.
    pub(super) async fn cancel_push_jobs(&self, device: Uuid) -> Result<(), StoreError> {
        lock(&self.caches.pushes).remove(&device);
        self.cql
            .exec(Stmt::DeletePushJobs, (now_micros(), device))
            .await
            .map(drop)
    }

    async fn pending(&self, device: Uuid) -> Result<Option<u64>, StoreError> {
        let row = self.cql.first::<(i64,)>(Stmt::SelectPushJob, (device,)).await?;
        Ok(row.map(|(due,)| u64::try_from(due).unwrap_or(0)))
    }

    async fn schedule(&self, device: Uuid, due_ms: u64) -> Result<(), StoreError> {
        let has_token = self.load_device(device).await?.is_some_and(|d| d.push_token.is_some());
        if !has_token || self.pending(device).await?.is_some() {
            return Ok(());
        }
        let parts = self.push_job_parts(device, due_ms).await?;
        run_parts(self, parts).await?;
        lock(&self.caches.pushes).insert(device, due_ms);
        Ok(())
    }

    pub(super) async fn set_token(&self, device: Uuid, token: String) -> Result<bool, StoreError> {
        let Some(loaded) = self.load_device(device).await? else {
            return Ok(false);
        };
        let mut parts = vec![
            part(Stmt::SetPushToken, (token.clone(), device)),
            part(Stmt::InsertTokenDevice, (token_hash(&token), device)),
        ];
        if let Some(old) = loaded.push_token.filter(|old| *old != token) {
            parts.push(part(Stmt::DeleteTokenDevice, (token_hash(&old), device)));
        }
        run_parts(self, parts).await?;
        lock(&self.caches.devices.map).insert(device, KnownDevice { has_token: true });
        Ok(true)
    }

    async fn remove_tokens(&self, tokens: Vec<String>) -> Result<usize, StoreError> {
        let mut removed = 0;
        for token in tokens {
            let hash = token_hash(&token);
            let devices: Vec<(Uuid,)> = self.cql.rows(Stmt::SelectTokenDevices, (hash.clone(),)).await?;
            for (device,) in devices {
                self.cql.exec(Stmt::DeleteTokenDevice, (hash.clone(), device)).await?;
                if self
                    .cql
                    .applied(Stmt::ClearPushTokenIf, (device, token.clone()))
                    .await?
                {
                    removed += 1;
                    lock(&self.caches.devices.map).remove(&device);
                }
            }
        }
        Ok(removed)
    }

    /// Removes a deleted device's token index row, jobs and lease.
    pub(super) async fn wipe_push(&self, device: Uuid, token: Option<String>) -> Result<(), StoreError> {
        let mut parts = vec![
            part(Stmt::DeletePushJobs, (now_micros(), device)),
            part(Stmt::DeleteLease, (device,)),
        ];
        if let Some(token) = token {
            parts.push(part(Stmt::DeleteTokenDevice, (token_hash(&token), device)));
        }
        lock(&self.caches.pushes).remove(&device);
        run_parts(self, parts).await
    }

    async fn lease(&self, now_ms: u64, limit: usize, until_ms: u64) -> Result<Vec<(Uuid, String)>, StoreError> {
        let wanted = limit.saturating_mul(limits::SCYLLA_PUSH_SCAN_PER_LEASE_COUNT);
        let due = self.indexes.due(&self.cql, PUSH_DUE, ms(now_ms), wanted).await?;
        let mut seen = HashSet::new();
        let mut leased = Vec::new();
        for (at, id) in due {
            if leased.len() >= limit {
                break;
            }
            let Ok(device) = Uuid::from_slice(&id) else {
                continue;
            };
            if seen.insert(device) {
                if let Some(token) = self.lease_one(device, now_ms, until_ms).await? {
                    leased.push((device, token));
                }
            }
            self.indexes.remove(&self.cql, PUSH_DUE, at, id).await?;
        }
        Ok(leased)
    }

    /// Leases one device's job if it is due, has a token and no node holds
    /// an unexpired lease on it; a job without a token is removed.
    async fn lease_one(&self, device: Uuid, now_ms: u64, until_ms: u64) -> Result<Option<String>, StoreError> {
        if self.pending(device).await?.is_none_or(|due| due > now_ms) {
            return Ok(None);
        }
        let Some(token) = self.load_device(device).await?.and_then(|d| d.push_token) else {
            self.cancel_push_jobs(device).await?;
            return Ok(None);
        };
        let current = self.cql.first::<(Option<i64>,)>(Stmt::SelectLease, (device,)).await?;
        let current = current.and_then(|(l,)| l);
        // Another node holds the job (it read it as due too, and leased it
        // first; the job moves to the lease's end after the claim).
        if current.is_some_and(|until| until > ms(now_ms)) {
            return Ok(None);
        }
        if !self
            .cql
            .applied(Stmt::ClaimLease, (ms(until_ms), device, current))
            .await?
        {
            return Ok(None);
        }
        let stamp = now_micros();
        let mut parts = vec![part(Stmt::DeletePushJobs, (stamp, device))];
        parts.extend(self.job_parts_at(device, until_ms, stamp + 1).await?);
        run_parts(self, parts).await?;
        lock(&self.caches.pushes).remove(&device);
        Ok(Some(token))
    }

    async fn complete(&self, device: Uuid) -> Result<(), StoreError> {
        self.cancel_push_jobs(device).await?;
        self.cql.exec(Stmt::DeleteLease, (device,)).await.map(drop)
    }
}

/// Runs statements on different partitions as one unlogged batch.
async fn run_parts(s: &Inner, parts: Vec<Part>) -> Result<(), StoreError> {
    s.cql.batch(BatchType::Unlogged, parts).await.map(drop)
}

impl PushTokens for ScyllaStore {
    fn set_push_token(&self, device: Uuid, token: String) -> StoreFuture<'_, bool> {
        self.call(move |s| async move { s.set_token(device, token).await })
    }

    fn push_token(&self, device: Uuid) -> StoreFuture<'_, Option<String>> {
        self.call(move |s| async move { Ok(s.load_device(device).await?.and_then(|d| d.push_token)) })
    }

    fn remove_push_tokens(&self, tokens: Vec<String>) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.remove_tokens(tokens).await })
    }
}

impl PushJobs for ScyllaStore {
    fn schedule_push(&self, device: Uuid, due_at_ms: u64) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.schedule(device, due_at_ms).await })
    }

    fn cancel_push(&self, device: Uuid) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.cancel_push_jobs(device).await })
    }

    fn lease_pushes(&self, now_ms: u64, limit: usize, lease_until_ms: u64) -> StoreFuture<'_, Vec<(Uuid, String)>> {
        self.call(move |s| async move { s.lease(now_ms, limit, lease_until_ms).await })
    }

    fn complete_push(&self, device: Uuid) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.complete(device).await })
    }

    fn pending_push(&self, device: Uuid) -> StoreFuture<'_, Option<u64>> {
        self.call(move |s| async move { s.pending(device).await })
    }
}
