//! [`Mailboxes`] on fjall. A message is a row under `device ‖ seq`, a dedup
//! row under `target ‖ sender device ‖ submission id`, and an expiry index
//! row; all three are written and deleted together. `seq` comes from the
//! writer's counter, so a mailbox's order is its commit order.

use prost::Message;
use uuid::Uuid;

use super::keys::{expiry_key, mailbox_key, ordered_i64, pair, seq_of_mailbox_key};
use super::push::{remove_job, schedule_wake_up};
use super::records::{decode, message_id, seq_of_message_id, uuid, MessageValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Appended, Mailboxes, NewMessage, StoreError, StoreFuture, StoredMessage};

fn dedup_key(target: Uuid, sender_device: &[u8], submission_id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(48);
    key.extend_from_slice(target.as_bytes());
    key.extend_from_slice(sender_device);
    key.extend_from_slice(submission_id);
    key
}

/// `sender device ‖ target ‖ seq`.
fn by_sender_key(sender_device: &[u8], target: Uuid, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(40);
    key.extend_from_slice(sender_device);
    key.extend_from_slice(target.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Removes one message and its index rows.
fn remove_message(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid, seq: u64, value: &MessageValue) {
    batch.remove(&t.mailboxes, mailbox_key(device, seq));
    batch.remove(&t.mailbox_by_sender, by_sender_key(&value.sender_device, device, seq));
    batch.remove(
        &t.mailbox_dedup,
        dedup_key(device, &value.sender_device, &value.submission_id),
    );
    batch.remove(
        &t.mailbox_expiry,
        expiry_key(value.expires_at_secs, device, &seq.to_be_bytes()),
    );
}

/// Removes every message of `device` (takeover, device deletion).
pub(super) fn wipe_mailbox(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid) -> Result<(), StoreError> {
    for (key, value) in Tables::pairs_with_prefix(&t.mailboxes, device.as_bytes())? {
        let seq = seq_of_mailbox_key(&key).unwrap_or_default();
        remove_message(t, batch, device, seq, &decode::<MessageValue>("mailboxes", &value)?);
    }
    Ok(())
}

/// Removes every message `sender` still has queued for anybody (device
/// deletion).
pub(super) fn wipe_sent(t: &Tables, batch: &mut fjall::OwnedWriteBatch, sender: Uuid) -> Result<(), StoreError> {
    for key in Tables::keys_with_prefix(&t.mailbox_by_sender, sender.as_bytes())? {
        let target = uuid("mailbox_by_sender", key.get(16..32).unwrap_or_default())?;
        let seq = seq_of_mailbox_key(key.get(16..).unwrap_or_default()).unwrap_or_default();
        match Tables::get(&t.mailboxes, &mailbox_key(target, seq))? {
            Some(value) => remove_message(t, batch, target, seq, &decode::<MessageValue>("mailboxes", &value)?),
            None => batch.remove(&t.mailbox_by_sender, key),
        }
    }
    Ok(())
}

fn device_exists(t: &Tables, known: &mut std::collections::HashMap<Uuid, bool>, id: Uuid) -> Result<bool, StoreError> {
    if let Some(exists) = known.get(&id) {
        return Ok(*exists);
    }
    let exists = t.devices.contains_key(id.as_bytes()).map_err(backend)?;
    known.insert(id, exists);
    Ok(exists)
}

fn append(t: &Tables, messages: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
    let mut batch = t.db.batch();
    let mut outcomes = Vec::with_capacity(messages.len());
    let mut seen_in_batch = std::collections::HashSet::new();
    let mut known_devices = std::collections::HashMap::new();
    let mut woken = std::collections::HashSet::new();
    for m in messages {
        if !device_exists(t, &mut known_devices, m.sender_device)? {
            outcomes.push(Appended::NoSuchSender);
            continue;
        }
        if !device_exists(t, &mut known_devices, m.target)? {
            outcomes.push(Appended::NoSuchDevice);
            continue;
        }
        let dedup = dedup_key(m.target, m.sender_device.as_bytes(), m.submission_id.as_bytes());
        if !seen_in_batch.insert(dedup.clone()) || t.mailbox_dedup.contains_key(&dedup).map_err(backend)? {
            outcomes.push(Appended::Duplicate);
            continue;
        }
        let seq = t.next_seqs(&mut batch, 1);
        let value = MessageValue {
            sender_user: m.sender_user.as_bytes().to_vec(),
            sender_device: m.sender_device.as_bytes().to_vec(),
            submission_id: m.submission_id.as_bytes().to_vec(),
            payload: m.payload,
            created_at_ms: m.created_at_ms,
            expires_at_secs: m.expires_at_secs,
        };
        batch.insert(&t.mailboxes, mailbox_key(m.target, seq), value.encode_to_vec());
        batch.insert(&t.mailbox_dedup, dedup, seq.to_be_bytes().to_vec());
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
                schedule_wake_up(t, &mut batch, m.target, due)?;
            }
        }
        outcomes.push(Appended::Stored(seq));
    }
    batch.commit().map_err(backend)?;
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

fn ack(t: &Tables, device: Uuid, ids: Vec<Uuid>) -> Result<usize, StoreError> {
    let mut batch = t.db.batch();
    let mut deleted = 0;
    for id in ids {
        let seq = seq_of_message_id(id.as_bytes());
        if let Some(value) = Tables::get(&t.mailboxes, &mailbox_key(device, seq))? {
            let value = decode::<MessageValue>("mailboxes", &value)?;
            if message_id(value.created_at_ms, seq) == id {
                remove_message(t, &mut batch, device, seq, &value);
                deleted += 1;
            }
        }
    }
    remove_job(t, &mut batch, device)?;
    batch.commit().map_err(backend)?;
    advance_head(t, device)?;
    Ok(deleted)
}

/// Moves the device's mailbox head to its first live row, so later fetches
/// that start at the beginning do not walk the tombstones of acked rows.
/// The head only moves forward, so each tombstone is walked here once.
fn advance_head(t: &Tables, device: Uuid) -> Result<(), StoreError> {
    let start = mailbox_key(device, t.mailbox_head(device));
    let first_live = match t.mailboxes.range(start..=mailbox_key(device, u64::MAX)).next() {
        Some(guard) => seq_of_mailbox_key(&guard.key().map_err(backend)?).unwrap_or_default(),
        None => t.last_seq.load(std::sync::atomic::Ordering::Relaxed) + 1,
    };
    t.set_mailbox_head(device, first_live);
    Ok(())
}

fn expire(t: &Tables, now: i64, limit: usize) -> Result<usize, StoreError> {
    let mut batch = t.db.batch();
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
            Some(v) => remove_message(t, &mut batch, device, seq, &decode::<MessageValue>("mailboxes", &v)?),
            None => batch.remove(&t.mailbox_expiry, key.to_vec()),
        }
        expired += 1;
    }
    batch.commit().map_err(backend)?;
    Ok(expired)
}

fn prune(t: &Tables, device: Uuid, max: usize) -> Result<usize, StoreError> {
    let keys = Tables::keys_with_prefix(&t.mailboxes, device.as_bytes())?;
    let excess = keys.len().saturating_sub(max);
    if excess == 0 {
        return Ok(0);
    }
    let mut batch = t.db.batch();
    for key in keys.iter().take(excess) {
        if let Some(value) = Tables::get(&t.mailboxes, key)? {
            let seq = seq_of_mailbox_key(key).unwrap_or_default();
            remove_message(
                t,
                &mut batch,
                device,
                seq,
                &decode::<MessageValue>("mailboxes", &value)?,
            );
        }
    }
    batch.commit().map_err(backend)?;
    Ok(excess)
}

impl Mailboxes for EmbeddedStore {
    fn append(&self, messages: Vec<NewMessage>) -> StoreFuture<'_, Vec<Appended>> {
        self.write(move |t| append(t, messages))
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
        self.write(move |t| ack(t, device, ids))
    }

    fn expire_messages(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.write(move |t| expire(t, now_secs, limit))
    }

    fn prune_mailbox(&self, device: Uuid, max: usize) -> StoreFuture<'_, usize> {
        self.write(move |t| prune(t, device, max))
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
