//! [`Mailboxes`] on fjall. A message is one row under `device ‖ seq`; `seq`
//! comes from the writer's counter, so a mailbox's order is its commit
//! order. Rows are written once and never overwritten, so they are deleted
//! with weak tombstones, which vanish together with their row in the next
//! memtable flush instead of being carried down the tree.
//!
//! The writer's [`super::mailbox_index::MailboxIndex`] answers every check
//! of an append (sender and target exist, the submission is not queued
//! yet) and of an ack (the id names a queued message), so neither reads
//! mailbox rows, and each writes or deletes that one row per message (the
//! idempotency answer and wake-up jobs are point reads of their own).
//!
//! There is no index by expiry or by sender: the retention sweep reads each
//! mailbox ([`Mailboxes::sweep_mailbox`]) and deletes what expired, what
//! overflows the inbox, and what a deleted device sent. A deleted device is
//! marked (`deleted_senders`) in its deletion's transaction, and from then
//! on its queued messages are skipped by every read, until the sweep has
//! deleted them and the marker is forgotten.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use prost::Message;
use uuid::Uuid;

use super::group_commit::Writer;
use super::idempotency::{store_answer, stored_answer};
use super::layout::{mailbox_key, pair, seq_of_mailbox_key};
use super::mailbox_index::Row;
use super::push::{remove_job, schedule_wake_up};
use super::records::{decode, message_id, seq_of_message_id, uuid, MessageValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{
    AnswerKey, AnswerOf, Appended, GuardedAppend, Mailboxes, NewMessage, Queued, StoreError, StoreFuture, StoredMessage,
};

/// Removes every message of `device` (takeover, device deletion). The
/// caller forgets the device in the index after the commit.
pub(super) fn wipe_mailbox(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) -> Result<(), StoreError> {
    for key in Tables::keys_with_prefix(&t.mailboxes, device.as_bytes())? {
        batch.remove_weak(&t.mailboxes, key);
    }
    Ok(())
}

/// What an append decided for one message before its commit.
struct Accepted {
    target: Uuid,
    seq: u64,
    row: Row,
}

/// A message with its row's value already encoded: encoding (and copying
/// the payload into the value) happens on the calling shard, so the writer
/// thread, which every write waits for, only inserts it.
struct Prepared {
    target: Uuid,
    sender_device: Uuid,
    submission_id: Uuid,
    created_at_ms: u64,
    wake_at_ms: Option<u64>,
    value: fjall::Slice,
}

fn prepare(messages: Vec<NewMessage>) -> Vec<Prepared> {
    let prepare = |m: NewMessage| {
        let value = MessageValue {
            sender_user: m.sender_user.as_bytes().to_vec(),
            sender_device: m.sender_device.as_bytes().to_vec(),
            submission_id: m.submission_id.as_bytes().to_vec(),
            payload: m.payload,
            created_at_ms: m.created_at_ms,
            expires_at_secs: m.expires_at_secs,
        };
        Prepared {
            target: m.target,
            sender_device: m.sender_device,
            submission_id: m.submission_id,
            created_at_ms: m.created_at_ms,
            wake_at_ms: m.wake_at_ms,
            value: value.encode_to_vec().into(),
        }
    };
    messages.into_iter().map(prepare).collect()
}

/// Appends `messages` and, when `answer` is given, stores the answer it
/// makes of their outcomes under its key, in one batch.
fn append(
    w: &mut Writer,
    messages: Vec<Prepared>,
    answer: Option<(AnswerKey, AnswerOf)>,
) -> Result<(Vec<Appended>, Option<Bytes>), StoreError> {
    let t = w.tables.clone();
    let mut batch = t.db.batch();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut accepted: Vec<Accepted> = Vec::with_capacity(messages.len());
    let mut in_batch = HashSet::new();
    let mut newest_in_batch: HashMap<Uuid, u64> = HashMap::new();
    let mut woken = HashSet::new();
    for m in messages {
        if !w.mailboxes.exists(&t, m.sender_device)? {
            outcomes.push(Appended::NoSuchSender);
            continue;
        }
        let Some(mailbox) = w.mailboxes.mailbox(&t, m.target)? else {
            outcomes.push(Appended::NoSuchDevice);
            continue;
        };
        let queued_earlier = mailbox.holds(m.sender_device, m.submission_id);
        let newest_queued = mailbox.newest();
        if queued_earlier || !in_batch.insert((m.target, m.sender_device, m.submission_id)) {
            outcomes.push(Appended::Duplicate);
            continue;
        }
        let seq = t.next_seqs(&mut batch, 1);
        let prev = newest_in_batch.insert(m.target, seq).or(newest_queued);
        batch.insert(&t.mailboxes, mailbox_key(m.target, seq), m.value);
        if let Some(due) = m.wake_at_ms {
            if woken.insert(m.target) {
                schedule_wake_up(&t, &mut batch, m.target, due)?;
            }
        }
        outcomes.push(Appended::Stored(Queued {
            seq,
            id: message_id(m.created_at_ms, seq),
            prev,
        }));
        accepted.push(Accepted {
            target: m.target,
            seq,
            row: Row {
                sender_device: m.sender_device,
                submission_id: m.submission_id,
                created_at_ms: m.created_at_ms,
            },
        });
    }
    let answer = answer.and_then(|(key, answer_of)| {
        let answer = answer_of(&outcomes)?;
        store_answer(&t, &mut batch, key.device, key.key, answer.clone(), key.expires_at_secs);
        Some(answer)
    });
    batch.commit().map_err(backend)?;
    for a in accepted {
        w.mailboxes.add(a.target, a.seq, a.row);
    }
    Ok((outcomes, answer))
}

/// A row as reads see it: `None` when it is not to be delivered (expired
/// at `now`, or its sender was deleted).
fn deliverable(t: &Tables, key: &[u8], value: &[u8], now: i64) -> Result<Option<StoredMessage>, StoreError> {
    let value = decode::<MessageValue>("mailboxes", value)?;
    let sender_device = uuid("mailboxes", &value.sender_device)?;
    if !crate::store::deliverable(value.expires_at_secs, now, t.is_deleted_sender(&sender_device)) {
        return Ok(None);
    }
    let seq = seq_of_mailbox_key(key).unwrap_or_default();
    Ok(Some(StoredMessage {
        seq,
        id: message_id(value.created_at_ms, seq),
        sender_user: uuid("mailboxes", &value.sender_user)?,
        sender_device,
        payload: value.payload,
        created_at_ms: value.created_at_ms,
    }))
}

fn fetch(
    t: &Tables,
    device: Uuid,
    after: Option<u64>,
    limit: usize,
    now: i64,
) -> Result<Vec<StoredMessage>, StoreError> {
    let from = after.map_or(0, |s| s.saturating_add(1)).max(t.mailbox_head(device));
    let start = mailbox_key(device, from);
    let end = mailbox_key(device, u64::MAX);
    let mut out = Vec::with_capacity(limit.min(1024));
    for guard in t.mailboxes.range(start..=end) {
        if out.len() >= limit {
            break;
        }
        let (key, value) = guard.into_inner().map_err(backend)?;
        out.extend(deliverable(t, &key, &value, now)?);
    }
    Ok(out)
}

/// Records the device's first queued position for reads to start at, if
/// its mailbox is indexed.
fn advance_head(w: &Writer, device: Uuid) {
    if let Some(oldest) = w.mailboxes.oldest_if_indexed(device) {
        w.set_mailbox_head(device, oldest.unwrap_or_else(|| w.last_seq() + 1));
    }
}

fn ack(w: &mut Writer, device: Uuid, mut ids: Vec<Uuid>) -> Result<usize, StoreError> {
    let t = w.tables.clone();
    ids.sort_unstable();
    ids.dedup();
    let Some(mailbox) = w.mailboxes.mailbox(&t, device)? else {
        return Ok(0);
    };
    let mut batch = t.db.batch();
    let mut deleted = Vec::with_capacity(ids.len());
    for id in ids {
        let seq = seq_of_message_id(id.as_bytes());
        if mailbox
            .row(seq)
            .is_some_and(|row| message_id(row.created_at_ms, seq) == id)
        {
            batch.remove_weak(&t.mailboxes, mailbox_key(device, seq));
            deleted.push(seq);
        }
    }
    remove_job(&t, &mut batch, device)?;
    batch.commit().map_err(backend)?;
    for seq in &deleted {
        w.mailboxes.remove(device, *seq);
    }
    advance_head(w, device);
    Ok(deleted.len())
}

/// The positions the sweep deletes from `device`'s mailbox: the rows that
/// expired at `now` or whose sender was deleted, and the oldest of the rest
/// beyond `max`. A read: the rows are deleted by [`delete_rows`].
fn sweep_victims(t: &Tables, device: Uuid, now: i64, max: usize) -> Result<Vec<u64>, StoreError> {
    let (mut victims, mut kept) = (Vec::new(), Vec::new());
    for guard in t.mailboxes.prefix(device.as_bytes()) {
        let (key, value) = guard.into_inner().map_err(backend)?;
        let seq = seq_of_mailbox_key(&key).unwrap_or_default();
        match deliverable(t, &key, &value, now)? {
            Some(_) => kept.push(seq),
            None => victims.push(seq),
        }
    }
    let excess = kept.len().saturating_sub(max);
    victims.extend(kept.into_iter().take(excess));
    Ok(victims)
}

/// Deletes the rows at `seqs` of `device` (rows an ack deleted meanwhile
/// only get a second tombstone, which is harmless for write-once keys).
fn delete_rows(w: &mut Writer, device: Uuid, seqs: &[u64]) -> Result<(), StoreError> {
    let t = w.tables.clone();
    let mut batch = t.db.batch();
    for seq in seqs {
        batch.remove_weak(&t.mailboxes, mailbox_key(device, *seq));
    }
    batch.commit().map_err(backend)?;
    for seq in seqs {
        w.mailboxes.remove(device, *seq);
    }
    advance_head(w, device);
    Ok(())
}

/// Removes the markers of senders deleted before `before` (the sweep has
/// deleted their messages long since: every one of them has expired).
fn forget_deleted_senders(t: &Tables, before: i64) -> Result<usize, StoreError> {
    let senders = t.deleted_senders_before(before);
    if senders.is_empty() {
        return Ok(0);
    }
    let mut batch = t.db.batch();
    for sender in &senders {
        batch.remove(&t.deleted_senders, sender.as_bytes().to_vec());
    }
    batch.commit().map_err(backend)?;
    t.forget_deleted_senders(&senders);
    Ok(senders.len())
}

impl Mailboxes for EmbeddedStore {
    fn append(&self, messages: Vec<NewMessage>) -> StoreFuture<'_, Vec<Appended>> {
        let messages = prepare(messages);
        self.write(move |w| append(w, messages, None).map(|(outcomes, _)| outcomes))
    }

    fn append_and_answer(
        &self,
        messages: Vec<NewMessage>,
        key: AnswerKey,
        answer: AnswerOf,
    ) -> StoreFuture<'_, GuardedAppend> {
        let messages = prepare(messages);
        self.write(move |w| {
            if let Some(earlier) = stored_answer(w, key.device, key.key, key.now_secs)? {
                return Ok(GuardedAppend::Answered(earlier));
            }
            let (outcomes, answer) = append(w, messages, Some((key, answer)))?;
            Ok(GuardedAppend::Appended { outcomes, answer })
        })
    }

    fn fetch(
        &self,
        device: Uuid,
        after: Option<u64>,
        limit: usize,
        now_secs: i64,
    ) -> StoreFuture<'_, Vec<StoredMessage>> {
        self.read(move |t| fetch(t, device, after, limit, now_secs))
    }

    fn ack(&self, device: Uuid, ids: Vec<Uuid>) -> StoreFuture<'_, usize> {
        self.write(move |w| ack(w, device, ids))
    }

    fn sweep_mailbox(&self, device: Uuid, now_secs: i64, max: usize) -> StoreFuture<'_, usize> {
        Box::pin(async move {
            let victims = self.read(move |t| sweep_victims(t, device, now_secs, max)).await?;
            if victims.is_empty() {
                return Ok(0);
            }
            let n = victims.len();
            self.write(move |w| delete_rows(w, device, &victims)).await?;
            Ok(n)
        })
    }

    fn forget_deleted_senders(&self, before_secs: i64) -> StoreFuture<'_, usize> {
        self.write(move |t| forget_deleted_senders(t, before_secs))
    }

    fn device_page(&self, after: Option<Uuid>, limit: usize) -> StoreFuture<'_, Vec<Uuid>> {
        self.read(move |t| {
            let start = after.map_or_else(Vec::new, |a| pair(a.as_bytes(), &[0]));
            t.devices
                .range(start..)
                .take(limit)
                .map(|g| uuid("devices", &g.key().map_err(backend)?))
                .collect()
        })
    }
}
