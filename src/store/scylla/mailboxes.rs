//! [`Mailboxes`]' write side on ScyllaDB: appends (with the answer of an
//! Idempotency-Key) and acks, without a lightweight transaction.
//!
//! An append checks senders and targets (cached), finds duplicates in
//! `submissions` (a hit counts only while the message it names exists),
//! takes positions ([`super::inflight`]), then writes in two steps: the
//! submission rows, new bucket rows and activity index rows; then the
//! message rows, one unlogged batch per mailbox partition, and the wake-up
//! pushes. A failure deletes the message rows again (stamped later than
//! any write of theirs) before the error is returned, so a retry can never
//! find a duplicate of a message that is not there; so does a success for
//! the messages to a device deleted meanwhile (its wipe may have run
//! before they landed). The answer of a send
//! is written after all of that is acknowledged, and a repeat of the key
//! waits here for the first. Reads, the floor and the sweep are in
//! [`super::mailbox_reads`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{join_all, try_join_all};
use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::caches::{lock, KnownDevice};
use super::cql::{part, Part};
use super::inflight::Assigned;
use super::positions::{bucket_of, tag_of, to_cql, ttl_until};
use super::statements::Stmt;
use super::time_index::{ANSWER_EXPIRY, MAILBOX_ACTIVITY};
use super::{Inner, ScyllaStore};
use crate::limits;
use crate::store::message_ids::{message_id, seq_of_message_id};
use crate::store::{
    AnswerKey, AnswerOf, Appended, GuardedAppend, Mailboxes, NewMessage, Queued, StoreError, StoreFuture, StoredMessage,
};
use crate::util::time::{now_micros, now_secs};

/// An append after its reads: each message's outcome so far (`None`: to
/// be stored).
struct Checked {
    messages: Vec<NewMessage>,
    outcomes: Vec<Option<Appended>>,
    known: HashMap<Uuid, KnownDevice>,
}

/// (target, sender device, submission id).
type Submission = (Uuid, Uuid, Uuid);

/// Why an append's messages were not written.
enum Unwritten {
    /// Its node tag may have passed to another relay before the writes could
    /// be done: nothing was written at its positions, and nothing there may
    /// be deleted either (another relay may own them now).
    Fenced(StoreError),
    /// A write failed: its message rows are deleted again.
    Failed(StoreError),
}

impl Unwritten {
    fn into_error(self) -> StoreError {
        match self {
            Unwritten::Fenced(e) | Unwritten::Failed(e) => e,
        }
    }
}

impl Inner {
    /// The submissions of `messages` that are queued already.
    async fn queued_submissions(&self, messages: &[NewMessage]) -> Result<HashSet<Submission>, StoreError> {
        let mut by_sender: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for m in messages {
            by_sender.entry(m.sender_device).or_default().push(m.submission_id);
        }
        let wanted: HashSet<Submission> = messages
            .iter()
            .map(|m| (m.target, m.sender_device, m.submission_id))
            .collect();
        let reads = by_sender.into_iter().map(|(sender, subs)| async move {
            let rows: Vec<(Uuid, Uuid, i64)> = self.cql.rows(Stmt::SelectSubmissions, (sender, subs)).await?;
            Ok::<_, StoreError>(
                rows.into_iter()
                    .map(move |(sub, target, seq)| (target, sender, sub, seq)),
            )
        });
        let hits: Vec<_> = try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .filter(|(t, s, sub, _)| wanted.contains(&(*t, *s, *sub)))
            .collect();
        let checks = hits.into_iter().map(|(target, sender, sub, seq)| async move {
            let seq = super::positions::from_cql(seq);
            let rows: Vec<(i64, Option<i64>)> = self
                .cql
                .rows(Stmt::SelectMessageStamps, (target, bucket_of(seq), vec![to_cql(seq)]))
                .await?;
            Ok::<_, StoreError>((!rows.is_empty()).then_some((target, sender, sub)))
        });
        Ok(try_join_all(checks).await?.into_iter().flatten().collect())
    }

    /// Everything an append reads, before it takes positions.
    async fn check(&self, messages: Vec<NewMessage>) -> Result<Checked, StoreError> {
        let ids: Vec<Uuid> = messages.iter().flat_map(|m| [m.sender_device, m.target]).collect();
        let (known, queued) = tokio::join!(self.known_devices(&ids), self.queued_submissions(&messages));
        let (known, queued) = (known?, queued?);
        let mut in_batch = HashSet::new();
        let outcomes = messages
            .iter()
            .map(|m| {
                if !known.contains_key(&m.sender_device) || self.is_deleted_sender(&m.sender_device) {
                    Some(Appended::NoSuchSender)
                } else if !known.contains_key(&m.target) || self.is_deleted_sender(&m.target) {
                    Some(Appended::NoSuchDevice)
                } else {
                    let key = (m.target, m.sender_device, m.submission_id);
                    (queued.contains(&key) || !in_batch.insert(key)).then_some(Appended::Duplicate)
                }
            })
            .collect();
        Ok(Checked {
            messages,
            outcomes,
            known,
        })
    }

    /// Stores what [`Inner::check`] accepted; returns every outcome.
    async fn commit(&self, checked: Checked) -> Result<Vec<Appended>, StoreError> {
        let accepted: Vec<&NewMessage> = checked
            .messages
            .iter()
            .zip(&checked.outcomes)
            .filter(|(_, o)| o.is_none())
            .map(|(m, _)| m)
            .collect();
        let targets: Vec<Uuid> = accepted.iter().map(|m| m.target).collect();
        if !accepted.is_empty() {
            self.fence_before_positions().await?;
        }
        let assigned = self.appends.assign(&self.positions, &targets);
        if !self.options.append_delay.is_zero() {
            tokio::time::sleep(self.options.append_delay).await;
        }
        let written = self.write(&accepted, &assigned, &checked.known).await;
        if let Err(Unwritten::Failed(_)) = written {
            self.undo(&assigned).await;
        } else if written.is_ok() {
            // A target deleted while this append was in flight: its wipe
            // may have run before these rows landed.
            let orphans: Vec<Assigned> = assigned
                .iter()
                .filter(|a| self.is_deleted_sender(&a.device))
                .copied()
                .collect();
            self.undo(&orphans).await;
        }
        self.appends.settle(&assigned);
        written.map_err(Unwritten::into_error)?;
        self.appends.wait_in_order(&assigned).await;
        let mut stored = accepted.iter().zip(&assigned).map(|(m, a)| {
            Appended::Stored(Queued {
                seq: a.seq,
                id: message_id(m.created_at_ms, a.seq),
                prev: Some(a.prev),
            })
        });
        Ok(checked
            .outcomes
            .into_iter()
            .map(|o| o.or_else(|| stored.next()).unwrap_or(Appended::Duplicate))
            .collect())
    }

    /// Writes the accepted messages at their positions, in two steps, each
    /// only while this relay surely holds the positions' node tag until it
    /// is done ([`Inner::fence`]).
    async fn write(
        &self,
        messages: &[&NewMessage],
        assigned: &[Assigned],
        known: &HashMap<Uuid, KnownDevice>,
    ) -> Result<(), Unwritten> {
        let Some(tag) = assigned.first().map(|a| tag_of(a.seq)) else {
            return Ok(());
        };
        self.fence(tag, self.write_budget()).map_err(Unwritten::Fenced)?;
        let new_buckets = self
            .write_submissions(messages, assigned)
            .await
            .map_err(Unwritten::Failed)?;
        self.fence(tag, self.options.request_timeout)
            .map_err(Unwritten::Fenced)?;
        let second = self
            .message_batches(messages, assigned, known)
            .await
            .map_err(Unwritten::Failed)?;
        let batches = second
            .into_iter()
            .map(|parts| self.cql.batch(BatchType::Unlogged, parts));
        try_join_all(batches).await.map_err(Unwritten::Failed)?;
        let mut cache = lock(&self.caches.buckets);
        for key in new_buckets {
            cache.insert(key, ());
        }
        Ok(())
    }

    /// The first write step: the submission rows, and the rows of mailbox
    /// buckets this process has not seen yet (returned, for its cache once
    /// the messages are in).
    async fn write_submissions(
        &self,
        messages: &[&NewMessage],
        assigned: &[Assigned],
    ) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let now = now_secs();
        let trusted = self.caches.trusted();
        let mut first = Vec::with_capacity(messages.len() * 2);
        let mut new_buckets = Vec::new();
        for (m, a) in messages.iter().zip(assigned) {
            let ttl = ttl_until(m.expires_at_secs, now);
            first.push(part(
                Stmt::InsertSubmission,
                (m.sender_device, m.submission_id, m.target, to_cql(a.seq), ttl),
            ));
            let key = (m.target, bucket_of(a.seq));
            let cached = trusted && lock(&self.caches.buckets).get(&key).is_some();
            if !cached && !new_buckets.iter().any(|(k, _)| *k == key) {
                new_buckets.push((key, m.expires_at_secs));
            }
        }
        for ((device, bucket), expires) in &new_buckets {
            first.extend(self.bucket_parts(*device, *bucket, *bucket, *expires).await?);
        }
        self.cql.batch(BatchType::Unlogged, first).await?;
        Ok(new_buckets.into_iter().map(|(key, _)| key).collect())
    }

    /// A new bucket's row under its device and the device's row in the
    /// activity index under `active` (the bucket of the messages' time).
    pub(super) async fn bucket_parts(
        &self,
        device: Uuid,
        bucket: i64,
        active: i64,
        expires: i64,
    ) -> Result<Vec<Part>, StoreError> {
        let width_secs = i64::try_from(limits::SCYLLA_MAILBOX_BUCKET_MS / 1000).unwrap_or(i64::MAX);
        let alive = expires.saturating_add(width_secs);
        let row = part(Stmt::InsertBucket, (device, bucket, ttl_until(alive, now_secs())));
        let activity = self
            .indexes
            .part(&self.cql, MAILBOX_ACTIVITY, active, device.as_bytes().to_vec(), alive)
            .await?;
        Ok(vec![row, activity])
    }

    /// The message rows, one batch per mailbox partition, and the wake-up
    /// pushes of targets with a push token and none scheduled.
    async fn message_batches(
        &self,
        messages: &[&NewMessage],
        assigned: &[Assigned],
        known: &HashMap<Uuid, KnownDevice>,
    ) -> Result<Vec<Vec<Part>>, StoreError> {
        let now = now_secs();
        let mut partitions: HashMap<(Uuid, i64), (Vec<Part>, usize)> = HashMap::new();
        let mut pushes = Vec::new();
        for (m, a) in messages.iter().zip(assigned) {
            let bucket = bucket_of(a.seq);
            let values = (
                m.target,
                bucket,
                to_cql(a.seq),
                m.sender_user,
                m.sender_device,
                m.submission_id,
                m.payload.clone(),
                i64::try_from(m.created_at_ms).unwrap_or(i64::MAX),
                m.expires_at_secs,
                ttl_until(m.expires_at_secs, now),
            );
            let (parts, bytes) = partitions.entry((m.target, bucket)).or_default();
            parts.push(part(Stmt::InsertMessage, values));
            *bytes += m.payload.len();
            let wants_push = known.get(&m.target).is_some_and(|d| d.has_token);
            if let (true, Some(due)) = (wants_push, m.wake_at_ms) {
                if !pushes.iter().any(|(t, _)| *t == m.target) && lock(&self.caches.pushes).get(&m.target).is_none() {
                    pushes.push((m.target, due));
                }
            }
        }
        let mut groups: Vec<(Vec<Part>, usize)> = partitions.into_values().collect();
        for (target, due) in pushes {
            groups.push((self.push_job_parts(target, due).await?, 0));
            lock(&self.caches.pushes).insert(target, due);
        }
        Ok(pack(groups, limits::SCYLLA_BATCH_BYTES_MAX))
    }

    /// Deletes the rows of a failed append, stamped after anything it wrote.
    async fn undo(&self, assigned: &[Assigned]) {
        let later = now_micros() + 1_000_000;
        let deletes = assigned.iter().map(|a| {
            self.cql.exec(
                Stmt::DeleteMessageAt,
                (later, a.device, bucket_of(a.seq), to_cql(a.seq)),
            )
        });
        for failed in join_all(deletes).await.into_iter().filter_map(Result::err) {
            tracing::warn!(error = %failed, "removing a message of a failed append failed");
        }
    }

    pub(super) async fn append(&self, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        let checked = self.check(messages).await?;
        self.commit(checked).await
    }

    /// The answer stored under (device, key), if unexpired at `now`.
    pub(super) async fn stored_answer(&self, device: Uuid, key: Uuid, now: i64) -> Result<Option<Bytes>, StoreError> {
        let row = self
            .cql
            .first::<(Option<Bytes>, Option<i64>)>(Stmt::SelectAnswer, (device, key))
            .await?;
        Ok(row.and_then(|(response, expires)| (expires? > now).then_some(response?)))
    }

    /// Stores a send's answer with its expiry index row.
    pub(super) async fn store_answer(&self, key: &AnswerKey, answer: Bytes) -> Result<(), StoreError> {
        let ttl = ttl_until(key.expires_at_secs, now_secs());
        let row = part(
            Stmt::InsertAnswer,
            (key.device, key.key, answer, key.expires_at_secs, ttl),
        );
        let id = [key.device.as_bytes().as_slice(), key.key.as_bytes().as_slice()].concat();
        let index = self
            .indexes
            .part(&self.cql, ANSWER_EXPIRY, key.expires_at_secs, id, key.expires_at_secs)
            .await?;
        run_each(self, vec![row, index]).await
    }

    async fn append_and_answer(
        &self,
        messages: Vec<NewMessage>,
        key: AnswerKey,
        answer: AnswerOf,
    ) -> Result<GuardedAppend, StoreError> {
        let _held = self.keys.hold((key.device, key.key)).await;
        let (earlier, checked) = tokio::join!(
            self.stored_answer(key.device, key.key, key.now_secs),
            self.check(messages)
        );
        if let Some(earlier) = earlier? {
            return Ok(GuardedAppend::Answered(earlier));
        }
        let outcomes = self.commit(checked?).await?;
        let answer = answer(&outcomes);
        if let Some(bytes) = &answer {
            self.store_answer(&key, bytes.clone()).await?;
        }
        Ok(GuardedAppend::Appended { outcomes, answer })
    }

    /// Deletes the acked messages of `device` among `ids`; cancels its
    /// wake-up push; moves its floor up every so many acks.
    async fn ack(self: Arc<Self>, device: Uuid, ids: Vec<Uuid>) -> Result<usize, StoreError> {
        let mut by_bucket: HashMap<i64, Vec<(u64, Uuid)>> = HashMap::new();
        for id in ids {
            let seq = seq_of_message_id(id.as_bytes());
            by_bucket.entry(bucket_of(seq)).or_default().push((seq, id));
        }
        let deletes = by_bucket
            .into_iter()
            .map(|(bucket, wanted)| self.ack_bucket(device, bucket, wanted));
        let deleted: usize = try_join_all(deletes).await?.into_iter().sum();
        let known = self.known_devices(&[device]).await?;
        let pending = lock(&self.caches.pushes).remove(&device).is_some();
        if pending || known.get(&device).is_some_and(|d| d.has_token) {
            self.cancel_push_jobs(device).await?;
        }
        let probe = {
            let mut acks = lock(&self.caches.acks);
            let total = acks.get(&device).unwrap_or(0) + deleted;
            let due = total >= limits::SCYLLA_FLOOR_ACKS;
            acks.insert(device, if due { 0 } else { total });
            due
        };
        if probe {
            let store = self.clone();
            tokio::spawn(async move {
                if let Err(e) = store.advance_floor(device).await {
                    tracing::warn!(error = %e, "moving a mailbox floor failed");
                }
            });
        }
        Ok(deleted)
    }

    /// Deletes the messages of one bucket whose ids match; how many.
    async fn ack_bucket(&self, device: Uuid, bucket: i64, wanted: Vec<(u64, Uuid)>) -> Result<usize, StoreError> {
        let seqs: Vec<i64> = wanted.iter().map(|(s, _)| to_cql(*s)).collect();
        let rows: Vec<(i64, Option<i64>)> = self.cql.rows(Stmt::SelectMessageStamps, (device, bucket, seqs)).await?;
        let parts: Vec<Part> = rows
            .into_iter()
            .filter(|(seq, created)| {
                let id = message_id(
                    u64::try_from(created.unwrap_or(0)).unwrap_or(0),
                    super::positions::from_cql(*seq),
                );
                wanted.iter().any(|(_, w)| *w == id)
            })
            .map(|(seq, _)| part(Stmt::DeleteMessage, (device, bucket, seq)))
            .collect();
        let n = parts.len();
        if n > 0 {
            self.cql.batch(BatchType::Unlogged, parts).await?;
        }
        Ok(n)
    }
}

/// Packs groups of statements (one partition each, with their payload
/// bytes) into as few batches as keep under `max` payload bytes, in order;
/// a group larger than that goes alone. One request for a send's messages
/// costs the database far less than one per mailbox, and a batch stays
/// under the servers' batch-size warning (a single-partition batch is
/// exempt from their size limits, so a large group alone is fine).
fn pack<T>(groups: Vec<(Vec<T>, usize)>, max: usize) -> Vec<Vec<T>> {
    let mut batches: Vec<Vec<T>> = Vec::new();
    let mut size = 0;
    for (parts, bytes) in groups {
        match batches.last_mut() {
            Some(batch) if size + bytes <= max => {
                batch.extend(parts);
                size += bytes;
            }
            _ => {
                batches.push(parts);
                size = bytes;
            }
        }
    }
    batches
}

/// Runs statements that touch different partitions concurrently.
pub(super) async fn run_each(s: &Inner, parts: Vec<Part>) -> Result<(), StoreError> {
    try_join_all(parts.into_iter().map(|(stmt, values)| s.cql.exec(stmt, values))).await?;
    Ok(())
}

impl Mailboxes for ScyllaStore {
    fn append(&self, messages: Vec<NewMessage>) -> StoreFuture<'_, Vec<Appended>> {
        self.call(move |s| async move { s.append(messages).await })
    }

    fn append_and_answer(
        &self,
        messages: Vec<NewMessage>,
        key: AnswerKey,
        answer: AnswerOf,
    ) -> StoreFuture<'_, GuardedAppend> {
        self.call(move |s| async move { s.append_and_answer(messages, key, answer).await })
    }

    fn fetch(
        &self,
        device: Uuid,
        after: Option<u64>,
        limit: usize,
        now_secs: i64,
    ) -> StoreFuture<'_, Vec<StoredMessage>> {
        self.call(move |s| async move { s.fetch(device, after, limit, now_secs).await })
    }

    fn ack(&self, device: Uuid, ids: Vec<Uuid>) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.ack(device, ids).await })
    }

    fn sweep_mailbox(&self, device: Uuid, now_secs: i64, max: usize) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.sweep_mailbox(device, now_secs, max).await })
    }

    fn late_commit_window(&self) -> u64 {
        self.inner.late_commit_window()
    }

    fn forget_deleted_senders(&self, before_secs: i64) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.forget_deleted_senders(before_secs).await })
    }

    fn device_page(&self, after: Option<Uuid>, limit: usize) -> StoreFuture<'_, Vec<Uuid>> {
        self.call(move |s| async move { s.device_page(after, limit).await })
    }
}

#[cfg(test)]
mod tests {
    use super::pack;

    /// Goal: groups are packed in order into batches of at most `max`
    /// payload bytes; a group above `max` goes alone, and nothing is lost.
    #[test]
    fn pack_keeps_batches_under_the_byte_bound() {
        let groups = vec![
            (vec![1, 2], 40),
            (vec![3], 50),
            (vec![4], 10),
            (vec![5, 6], 150),
            (vec![7], 0),
            (vec![8], 100),
        ];
        assert_eq!(pack(groups, 100), vec![vec![1, 2, 3, 4], vec![5, 6], vec![7, 8]]);
        assert!(pack(Vec::<(Vec<u8>, usize)>::new(), 100).is_empty());
    }
}
