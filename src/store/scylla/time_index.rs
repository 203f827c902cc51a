//! Time-bucketed indexes: how the ScyllaDB store finds what is due
//! (expired refresh tokens, idempotency answers and attachments, due
//! pushes, stale backup uploads, deleted senders, active mailboxes) without
//! scanning a table. One `time_index` partition per (kind, time bucket),
//! rows ordered by time; a scan reads the buckets from the kind's *floor*
//! (the lowest bucket that may hold rows, in `time_index_floors`) up to the
//! time asked for, and raises the floor over buckets it found empty once
//! they lie in the past. A write into a bucket below the floor (only ever
//! with a time in the past) lowers it first, with a lightweight transaction;
//! a deployment's first write of a kind creates the floor that way, and no
//! other write on the send path touches it.
//! A scan reads its kind's floor from the table first: another relay node
//! may have created or moved it.

use std::collections::HashMap;
use std::sync::Mutex;

use super::caches::lock;
use super::cql::{backend, part, Cql, Part};
use super::positions::ttl_until;
use super::statements::Stmt;
use crate::limits;
use crate::store::StoreError;
use crate::util::time::now_micros;

/// One index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// Its name in the table.
    pub name: &'static str,
    /// Width of a bucket, in the index's time unit.
    pub width: i64,
    /// Units of its time per second (1: seconds, 1000: milliseconds).
    pub per_sec: i64,
}

/// Refresh tokens by expiry (seconds).
pub const REFRESH_EXPIRY: Kind = Kind::new("refresh_expiry", 86_400, 1);
/// Idempotency answers by expiry (seconds).
pub const ANSWER_EXPIRY: Kind = Kind::new("answer_expiry", 3_600, 1);
/// Attachments by expiry (seconds).
pub const ATTACHMENT_EXPIRY: Kind = Kind::new("attachment_expiry", 86_400, 1);
/// Backup uploads in progress by start (ms).
pub const BACKUP_UPLOADS: Kind = Kind::new("backup_uploads", 86_400_000, 1_000);
/// Wake-up push jobs by due time (ms).
pub const PUSH_DUE: Kind = Kind::new("push_due", 60_000, 1_000);
/// Deleted devices by deletion time (seconds).
pub const DELETED_SENDERS: Kind = Kind::new("deleted_senders", 86_400, 1);
/// Token revocations (password changes, deletions) by decision time (ms).
pub const REVOCATIONS: Kind = Kind::new("revocations", 3_600_000, 1_000);
/// Account deletions by decision time (ms), until they are finished.
pub const ACCOUNT_DELETIONS: Kind = Kind::new("account_deletions", 86_400_000, 1_000);
/// Devices by the mailbox buckets they received messages in (the time is
/// the bucket number: one partition per bucket).
pub const MAILBOX_ACTIVITY: Kind = Kind::new("mailbox_activity", 1, 0);

/// Every kind with a floor.
const FLOORED: [Kind; 8] = [
    REFRESH_EXPIRY,
    ANSWER_EXPIRY,
    ATTACHMENT_EXPIRY,
    BACKUP_UPLOADS,
    PUSH_DUE,
    DELETED_SENDERS,
    REVOCATIONS,
    ACCOUNT_DELETIONS,
];

impl Kind {
    const fn new(name: &'static str, width: i64, per_sec: i64) -> Self {
        Self { name, width, per_sec }
    }

    fn bucket(self, at: i64) -> i64 {
        at.div_euclid(self.width)
    }

    /// Now, in the index's unit.
    fn now(self) -> i64 {
        now_micros().saturating_mul(self.per_sec) / 1_000_000
    }

    /// `at` in seconds (for TTLs).
    fn secs(self, at: i64) -> i64 {
        if self.per_sec == 0 {
            at
        } else {
            at.div_euclid(self.per_sec)
        }
    }
}

/// An index entry: its time and its id.
pub type Entry = (i64, Vec<u8>);

/// The floors of every kind, as this process knows them.
pub struct TimeIndexes {
    floors: Mutex<HashMap<&'static str, Option<i64>>>,
}

impl TimeIndexes {
    /// Reads every kind's floor.
    pub async fn load(cql: &Cql) -> Result<Self, StoreError> {
        let names: Vec<&str> = FLOORED.iter().map(|k| k.name).collect();
        let rows: Vec<(String, Option<i64>)> = cql.rows(Stmt::SelectFloors, (names,)).await?;
        let mut floors: HashMap<&'static str, Option<i64>> = FLOORED.iter().map(|k| (k.name, None)).collect();
        for (name, bucket) in rows {
            if let Some(kind) = FLOORED.iter().find(|k| k.name == name) {
                floors.insert(kind.name, bucket);
            }
        }
        Ok(Self {
            floors: Mutex::new(floors),
        })
    }

    fn floor(&self, kind: Kind) -> Option<i64> {
        lock(&self.floors).get(kind.name).copied().flatten()
    }

    /// The kind's floor as the table holds it now (another relay node may
    /// have created or moved it since this one last looked), for a scan.
    async fn current_floor(&self, cql: &Cql, kind: Kind) -> Result<Option<i64>, StoreError> {
        let rows: Vec<(String, Option<i64>)> = cql.rows(Stmt::SelectFloors, (vec![kind.name],)).await?;
        let floor = rows.into_iter().find_map(|(_, bucket)| bucket);
        lock(&self.floors).insert(kind.name, floor);
        Ok(floor)
    }

    /// The statement that adds `id` at `at` (the row lives until
    /// `alive_until_secs`, plus a day), for a batch; lowers the floor first
    /// if `at` is below it.
    pub async fn part(
        &self,
        cql: &Cql,
        kind: Kind,
        at: i64,
        id: Vec<u8>,
        alive_until_secs: i64,
    ) -> Result<Part, StoreError> {
        let bucket = kind.bucket(at);
        if self.floor(kind).is_none_or(|f| bucket < f) && kind.per_sec != 0 {
            self.lower_floor(cql, kind, bucket).await?;
        }
        let ttl = ttl_until(alive_until_secs.max(kind.secs(at)), now_micros() / 1_000_000);
        Ok(part(Stmt::InsertTimeIndex, (kind.name, bucket, at, id, ttl)))
    }

    /// Adds `id` at `at` (see [`TimeIndexes::part`]).
    pub async fn add(
        &self,
        cql: &Cql,
        kind: Kind,
        at: i64,
        id: Vec<u8>,
        alive_until_secs: i64,
    ) -> Result<(), StoreError> {
        let (stmt, values) = self.part(cql, kind, at, id, alive_until_secs).await?;
        cql.exec(stmt, values).await.map(drop)
    }

    /// The statement that removes `id` at `at`, for a batch.
    pub fn remove_part(kind: Kind, at: i64, id: Vec<u8>) -> Part {
        part(Stmt::DeleteTimeIndex, (kind.name, kind.bucket(at), at, id))
    }

    /// Removes `id` at `at`.
    pub async fn remove(&self, cql: &Cql, kind: Kind, at: i64, id: Vec<u8>) -> Result<(), StoreError> {
        cql.exec(Stmt::DeleteTimeIndex, (kind.name, kind.bucket(at), at, id))
            .await
            .map(drop)
    }

    /// Makes the floor at most `bucket`.
    async fn lower_floor(&self, cql: &Cql, kind: Kind, bucket: i64) -> Result<(), StoreError> {
        let (created, current) = cql.lwt(Stmt::InsertFloor, (kind.name, bucket)).await?;
        let mut floor = if created { bucket } else { bigint(&current)? };
        while bucket < floor {
            let (moved, current) = cql.lwt(Stmt::MoveFloor, (bucket, kind.name, floor)).await?;
            floor = if moved { bucket } else { bigint(&current)? };
        }
        lock(&self.floors).insert(kind.name, Some(floor));
        Ok(())
    }

    /// Up to `limit` entries with a time at most `up_to`, oldest first.
    pub async fn due(&self, cql: &Cql, kind: Kind, up_to: i64, limit: usize) -> Result<Vec<Entry>, StoreError> {
        let Some(floor) = self.current_floor(cql, kind).await? else {
            return Ok(Vec::new());
        };
        let now = kind.now();
        let end_at = up_to.min(now.saturating_add(86_400 * kind.per_sec));
        let end = kind.bucket(end_at);
        let settled = kind.bucket(now) - 1;
        let mut out = Vec::new();
        let (mut bucket, mut empty_from_floor) = (floor, true);
        let mut new_floor = floor;
        while bucket <= end && out.len() < limit && bucket - floor < limits::SCYLLA_INDEX_BUCKETS_PER_SCAN {
            let want = i32::try_from(limit - out.len()).unwrap_or(i32::MAX);
            let rows: Vec<Entry> = cql
                .rows(Stmt::SelectTimeIndex, (kind.name, bucket, end_at, want))
                .await?;
            let whole = (bucket + 1) * kind.width - 1 <= end_at;
            if rows.is_empty() && empty_from_floor && whole && bucket < settled {
                new_floor = bucket + 1;
            } else {
                empty_from_floor = false;
            }
            out.extend(rows);
            bucket += 1;
        }
        if new_floor > floor {
            let (moved, _) = cql.lwt(Stmt::MoveFloor, (new_floor, kind.name, floor)).await?;
            if moved {
                lock(&self.floors).insert(kind.name, Some(new_floor));
            }
        }
        Ok(out)
    }

    /// Every entry with a time at or after `since` (up to a day ahead of
    /// now, for clocks that differ), oldest first: the buckets from the
    /// later of `since`'s and the floor, each read in pages.
    pub async fn since(&self, cql: &Cql, kind: Kind, since: i64) -> Result<Vec<Entry>, StoreError> {
        let Some(floor) = self.current_floor(cql, kind).await? else {
            return Ok(Vec::new());
        };
        let end = kind.bucket(kind.now().saturating_add(86_400 * kind.per_sec));
        let page = i32::try_from(limits::SCYLLA_INDEX_ROWS_PER_READ).unwrap_or(i32::MAX);
        let mut out = Vec::new();
        for bucket in kind.bucket(since).max(floor)..=end {
            let mut after: Entry = (since, Vec::new());
            loop {
                let rows: Vec<Entry> = cql
                    .rows(
                        Stmt::SelectTimeIndexAfter,
                        (kind.name, bucket, after.0, after.1.clone(), page),
                    )
                    .await?;
                let full = rows.len() == limits::SCYLLA_INDEX_ROWS_PER_READ;
                if let Some(last) = rows.last() {
                    after = last.clone();
                }
                out.extend(rows);
                if !full {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Up to `limit` ids of bucket `bucket` of an index whose time is the
    /// bucket (mailbox activity), after `after`, in id order.
    pub async fn bucket_page(
        &self,
        cql: &Cql,
        kind: Kind,
        bucket: i64,
        after: Vec<u8>,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows: Vec<(Vec<u8>,)> = cql
            .rows(Stmt::SelectTimeIndexAt, (kind.name, bucket, bucket, after, limit))
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// The floor's bucket among the current values an LWT sent back (its only
/// bigint column).
fn bigint(values: &[Option<scylla::value::CqlValue>]) -> Result<i64, StoreError> {
    values
        .iter()
        .find_map(|v| match v {
            Some(scylla::value::CqlValue::BigInt(v)) => Some(*v),
            _ => None,
        })
        .ok_or_else(|| backend(FloorUnreadable))
}

/// An LWT on a floor came back without its current value.
#[derive(Debug, thiserror::Error)]
#[error("a time index floor's lightweight transaction returned no current bucket")]
struct FloorUnreadable;
