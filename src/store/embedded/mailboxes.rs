//! [`Mailboxes`] on fjall. A message is a row under `device ‖ seq`, plus a
//! row under its sender (for the device-deletion cascade) and an expiry
//! index row; the three are written and deleted together. `seq` comes from
//! the writer's counter, so a mailbox's order is its commit order.
//!
//! The writer's [`MailboxIndex`] answers every check of an append (sender
//! and target exist, the submission is not queued yet) and of an ack (the
//! id names a queued message), so neither reads the store. Rows are written
//! once and never overwritten, so they are deleted with weak tombstones,
//! which vanish together with their row in the next memtable flush instead
//! of being carried down the tree.

use std::collections::{HashMap, HashSet};

use prost::Message;
use uuid::Uuid;

use super::group_commit::Writer;
use super::keys::{expiry_key, mailbox_key, ordered_i64, pair, seq_of_mailbox_key};
use super::mailbox_index::Row;
use super::push::{remove_job, schedule_wake_up};
use super::records::{decode, message_id, seq_of_message_id, uuid, MessageValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Appended, Mailboxes, NewMessage, Queued, StoreError, StoreFuture, StoredMessage};

/// `sender device ‖ target ‖ seq`.
fn by_sender_key(sender_device: &[u8], target: Uuid, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(sender_device);
    key.extend_from_slice(target.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Adds the deletion of one message and its index rows to `batch`.
fn remove_message(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid, seq: u64, sender: &[u8], expiry: i64) {
    batch.remove_weak(&t.mailboxes, mailbox_key(device, seq));
    batch.remove_weak(&t.mailbox_by_sender, by_sender_key(sender, device, seq));
    batch.remove_weak(&t.mailbox_expiry, expiry_key(expiry, device, &seq.to_be_bytes()));
}

fn remove_stored(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid, seq: u64, value: &MessageValue) {
    remove_message(t, batch, device, seq, &value.sender_device, value.expires_at_secs);
}

/// Removes every message of `device` (takeover, device deletion). The
/// caller forgets the device in the index after the commit.
pub(super) fn wipe_mailbox(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) -> Result<(), StoreError> {
    for (key, value) in Tables::pairs_with_prefix(&t.mailboxes, device.as_bytes())? {
        let seq = seq_of_mailbox_key(&key).unwrap_or_default();
        remove_stored(t, batch, device, seq, &decode::<MessageValue>("mailboxes", &value)?);
    }
    Ok(())
}

/// Removes every message `sender` still has queued for anybody (device
/// deletion); returns the devices whose mailboxes changed, for the caller
/// to forget in the index after the commit.
pub(super) fn wipe_sent(
    t: &Tables,
    batch: &mut fjall::OwnedWriteBatch,
    sender: Uuid,
) -> Result<HashSet<Uuid>, StoreError> {
    let mut targets = HashSet::new();
    for key in Tables::keys_with_prefix(&t.mailbox_by_sender, sender.as_bytes())? {
        let target = uuid("mailbox_by_sender", key.get(16..32).unwrap_or_default())?;
        let seq = seq_of_mailbox_key(key.get(16..).unwrap_or_default()).unwrap_or_default();
        match Tables::get(&t.mailboxes, &mailbox_key(target, seq))? {
            Some(value) => remove_stored(t, batch, target, seq, &decode::<MessageValue>("mailboxes", &value)?),
            None => batch.remove_weak(&t.mailbox_by_sender, key),
        }
        targets.insert(target);
    }
    Ok(targets)
}

/// What an append decided for one message before its commit.
struct Accepted {
    target: Uuid,
    seq: u64,
    row: Row,
}

fn append(w: &mut Writer, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
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
        let value = MessageValue {
            sender_user: m.sender_user.as_bytes().to_vec(),
            sender_device: m.sender_device.as_bytes().to_vec(),
            submission_id: m.submission_id.as_bytes().to_vec(),
            payload: m.payload,
            created_at_ms: m.created_at_ms,
            expires_at_secs: m.expires_at_secs,
        };
        batch.insert(&t.mailboxes, mailbox_key(m.target, seq), value.encode_to_vec());
        batch.insert(
            &t.mailbox_by_sender,
            by_sender_key(m.sender_device.as_bytes(), m.target, seq),
            Vec::new(),
        );
        batch.insert(
            &t.mailbox_expiry,
            expiry_key(m.expires_at_secs, m.target, &seq.to_be_bytes()),
            Vec::new(),
        );
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
                expires_at_secs: m.expires_at_secs,
            },
        });
    }
    batch.commit().map_err(backend)?;
    for a in accepted {
        w.mailboxes.add(a.target, a.seq, a.row);
    }
    Ok(outcomes)
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
        let value = decode::<MessageValue>("mailboxes", &value)?;
        if value.expires_at_secs <= now {
            continue;
        }
        let seq = seq_of_mailbox_key(&key).unwrap_or_default();
        out.push(StoredMessage {
            seq,
            id: message_id(value.created_at_ms, seq),
            sender_user: uuid("mailboxes", &value.sender_user)?,
            sender_device: uuid("mailboxes", &value.sender_device)?,
            payload: value.payload,
            created_at_ms: value.created_at_ms,
        });
    }
    Ok(out)
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
        let Some(row) = mailbox.row(seq) else {
            continue;
        };
        if message_id(row.created_at_ms, seq) != id {
            continue;
        }
        let sender = row.sender_device.as_bytes();
        remove_message(&t, &mut batch, device, seq, sender, row.expires_at_secs);
        deleted.push(seq);
    }
    remove_job(&t, &mut batch, device)?;
    batch.commit().map_err(backend)?;
    for seq in &deleted {
        w.mailboxes.remove(device, *seq);
    }
    let head = match w.mailboxes.mailbox(&t, device)? {
        Some(mailbox) => mailbox.oldest(),
        None => None,
    };
    t.set_mailbox_head(device, head.unwrap_or_else(|| t.last_seq() + 1));
    Ok(deleted.len())
}

fn expire(w: &mut Writer, now: i64, limit: usize) -> Result<usize, StoreError> {
    let t = w.tables.clone();
    let mut batch = t.db.batch();
    let mut touched = HashSet::new();
    let mut expired = 0;
    for guard in t
        .mailbox_expiry
        .range(ordered_i64(i64::MIN).to_vec()..ordered_i64(now).to_vec())
        .take(limit)
    {
        let key = guard.key().map_err(backend)?;
        let device = uuid("mailbox_expiry", key.get(8..24).unwrap_or_default())?;
        let seq = u64::from_be_bytes(key.get(24..32).and_then(|s| s.try_into().ok()).unwrap_or_default());
        match Tables::get(&t.mailboxes, &mailbox_key(device, seq))? {
            Some(v) => remove_stored(&t, &mut batch, device, seq, &decode::<MessageValue>("mailboxes", &v)?),
            None => batch.remove_weak(&t.mailbox_expiry, key.to_vec()),
        }
        touched.insert(device);
        expired += 1;
    }
    batch.commit().map_err(backend)?;
    touched.into_iter().for_each(|d| w.mailboxes.forget(d));
    Ok(expired)
}

fn prune(w: &mut Writer, device: Uuid, max: usize) -> Result<usize, StoreError> {
    let t = w.tables.clone();
    let keys = Tables::keys_with_prefix(&t.mailboxes, device.as_bytes())?;
    let excess = keys.len().saturating_sub(max);
    if excess == 0 {
        return Ok(0);
    }
    let mut batch = t.db.batch();
    for key in keys.iter().take(excess) {
        if let Some(value) = Tables::get(&t.mailboxes, key)? {
            let seq = seq_of_mailbox_key(key).unwrap_or_default();
            remove_stored(
                &t,
                &mut batch,
                device,
                seq,
                &decode::<MessageValue>("mailboxes", &value)?,
            );
        }
    }
    batch.commit().map_err(backend)?;
    w.mailboxes.forget(device);
    Ok(excess)
}

impl Mailboxes for EmbeddedStore {
    fn append(&self, messages: Vec<NewMessage>) -> StoreFuture<'_, Vec<Appended>> {
        self.write(move |w| append(w, messages))
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

    fn expire_messages(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.write(move |w| expire(w, now_secs, limit))
    }

    fn prune_mailbox(&self, device: Uuid, max: usize) -> StoreFuture<'_, usize> {
        self.write(move |w| prune(w, device, max))
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
