//! The writer thread's in-memory index of mailboxes: for each device it has
//! seen lately, whether the device exists and, once a write needed it, the
//! queued messages of its mailbox (position, sender, submission id, receive
//! time; not those of senders already deleted when it is loaded, which are
//! never delivered; rows of a sender deleted later stay until the sweep,
//! harmlessly: an ack of one deletes a row nobody reads). With it,
//! an append checks senders, targets and duplicates, and an ack checks ids,
//! without reading the store.
//!
//! Only the writer thread changes mailboxes, so the index stays exact: every
//! write operation either updates it after its commit or forgets the devices
//! it touched (which are then loaded again from the store, the truth, on
//! their next use). Loading a mailbox is one prefix scan of its rows.
//!
//! Memory is bounded with two generations: entries are used from the hot
//! one (an entry found in the cold one moves back), and when the hot one
//! holds more than `max_cost` devices plus rows it becomes the cold one and
//! the old cold one is dropped. A device therefore stays indexed while it is
//! in use and leaves within two rotations after.

use std::collections::{BTreeMap, HashMap, HashSet};

use uuid::Uuid;

use super::layout::seq_of_mailbox_key;
use super::records::{decode, uuid, MessageValue};
use super::tables::{backend, Tables};
use crate::store::StoreError;

/// What the index keeps of one queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    /// The sending device.
    pub sender_device: Uuid,
    /// The client's submission id.
    pub submission_id: Uuid,
    /// Receive time, ms (part of the message id).
    pub created_at_ms: u64,
}

/// The queued messages of one device.
#[derive(Debug, Default)]
pub struct Mailbox {
    rows: BTreeMap<u64, Row>,
    submissions: HashSet<(Uuid, Uuid)>,
}

impl Mailbox {
    /// Whether (sender device, submission id) is queued.
    pub fn holds(&self, sender_device: Uuid, submission_id: Uuid) -> bool {
        self.submissions.contains(&(sender_device, submission_id))
    }

    /// The queued message at `seq`.
    pub fn row(&self, seq: u64) -> Option<&Row> {
        self.rows.get(&seq)
    }

    /// The position of the newest queued message.
    pub fn newest(&self) -> Option<u64> {
        self.rows.last_key_value().map(|(seq, _)| *seq)
    }

    /// The position of the oldest queued message.
    pub fn oldest(&self) -> Option<u64> {
        self.rows.first_key_value().map(|(seq, _)| *seq)
    }

    fn insert(&mut self, seq: u64, row: Row) {
        self.submissions.insert((row.sender_device, row.submission_id));
        self.rows.insert(seq, row);
    }

    fn remove(&mut self, seq: u64) -> bool {
        match self.rows.remove(&seq) {
            Some(row) => {
                self.submissions.remove(&(row.sender_device, row.submission_id));
                true
            }
            None => false,
        }
    }

    fn load(t: &Tables, device: Uuid) -> Result<Self, StoreError> {
        let mut mailbox = Self::default();
        for (key, value) in Tables::pairs_with_prefix(&t.mailboxes, device.as_bytes())? {
            let value = decode::<MessageValue>("mailboxes", &value)?;
            let row = Row {
                sender_device: uuid("mailboxes", &value.sender_device)?,
                submission_id: uuid("mailboxes", &value.submission_id)?,
                created_at_ms: value.created_at_ms,
            };
            if t.is_deleted_sender(&row.sender_device) {
                // Never delivered; the retention sweep deletes it.
                continue;
            }
            mailbox.insert(seq_of_mailbox_key(&key).unwrap_or_default(), row);
        }
        Ok(mailbox)
    }
}

/// One device as the index knows it.
#[derive(Debug)]
enum Entry {
    /// No such device.
    Missing,
    /// The device exists; its mailbox once some write needed it.
    Present(Option<Mailbox>),
}

impl Entry {
    fn cost(&self) -> usize {
        match self {
            Entry::Present(Some(mailbox)) => 1 + mailbox.rows.len(),
            _ => 1,
        }
    }
}

#[derive(Default)]
struct Generation {
    entries: HashMap<Uuid, Entry>,
    cost: usize,
}

/// See the module documentation.
pub struct MailboxIndex {
    hot: Generation,
    cold: Generation,
    max_cost: usize,
}

impl MailboxIndex {
    /// An empty index whose hot generation holds about `max_cost` devices
    /// plus queued rows.
    pub fn new(max_cost: usize) -> Self {
        Self {
            hot: Generation::default(),
            cold: Generation::default(),
            max_cost: max_cost.max(1),
        }
    }

    /// The entry of `device` in the hot generation, moved there or loaded
    /// from the store if needed.
    fn entry(&mut self, t: &Tables, device: Uuid) -> Result<&mut Entry, StoreError> {
        if !self.hot.entries.contains_key(&device) {
            let entry = match self.cold.entries.remove(&device) {
                Some(entry) => {
                    self.cold.cost = self.cold.cost.saturating_sub(entry.cost());
                    entry
                }
                None if t.devices.contains_key(device.as_bytes()).map_err(backend)? => Entry::Present(None),
                None => Entry::Missing,
            };
            self.admit(device, entry);
        }
        // Admitted above: the default is never used.
        Ok(self.hot.entries.entry(device).or_insert(Entry::Missing))
    }

    fn admit(&mut self, device: Uuid, entry: Entry) {
        if self.hot.cost + entry.cost() > self.max_cost && !self.hot.entries.is_empty() {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.hot.cost += entry.cost();
        self.hot.entries.insert(device, entry);
    }

    /// Whether `device` exists.
    pub fn exists(&mut self, t: &Tables, device: Uuid) -> Result<bool, StoreError> {
        Ok(matches!(self.entry(t, device)?, Entry::Present(_)))
    }

    /// The mailbox of `device`, loaded if needed; `None` if the device
    /// does not exist.
    pub fn mailbox(&mut self, t: &Tables, device: Uuid) -> Result<Option<&Mailbox>, StoreError> {
        let loaded = match self.entry(t, device)? {
            Entry::Missing => return Ok(None),
            Entry::Present(Some(_)) => None,
            Entry::Present(None) => Some(Mailbox::load(t, device)?),
        };
        if let Some(mailbox) = loaded {
            self.hot.cost += mailbox.rows.len();
            self.hot.entries.insert(device, Entry::Present(Some(mailbox)));
        }
        Ok(match self.hot.entries.get(&device) {
            Some(Entry::Present(Some(mailbox))) => Some(mailbox),
            _ => None,
        })
    }

    /// The loaded mailbox of `device`, wherever it is; `None` when the
    /// index does not hold it (the store has it then).
    fn loaded_mut(&mut self, device: Uuid) -> Option<(&mut Mailbox, &mut usize)> {
        let generation = if self.hot.entries.contains_key(&device) {
            &mut self.hot
        } else {
            &mut self.cold
        };
        match generation.entries.get_mut(&device) {
            Some(Entry::Present(Some(mailbox))) => Some((mailbox, &mut generation.cost)),
            _ => None,
        }
    }

    /// The oldest queued position of `device` if its mailbox is indexed
    /// (`Some(None)`: indexed and empty).
    pub fn oldest_if_indexed(&self, device: Uuid) -> Option<Option<u64>> {
        [&self.hot, &self.cold]
            .into_iter()
            .find_map(|generation| match generation.entries.get(&device) {
                Some(Entry::Present(Some(mailbox))) => Some(mailbox.oldest()),
                _ => None,
            })
    }

    /// Records a committed message.
    pub fn add(&mut self, device: Uuid, seq: u64, row: Row) {
        if let Some((mailbox, cost)) = self.loaded_mut(device) {
            mailbox.insert(seq, row);
            *cost += 1;
        }
    }

    /// Records a committed deletion.
    pub fn remove(&mut self, device: Uuid, seq: u64) {
        if let Some((mailbox, cost)) = self.loaded_mut(device) {
            if mailbox.remove(seq) {
                *cost = cost.saturating_sub(1);
            }
        }
    }

    /// Drops what the index knows of `device` (after a write that changed
    /// it in ways the index does not follow: created, deleted, wiped,
    /// swept); the next use loads it from the store again.
    pub fn forget(&mut self, device: Uuid) {
        for generation in [&mut self.hot, &mut self.cold] {
            if let Some(entry) = generation.entries.remove(&device) {
                generation.cost = generation.cost.saturating_sub(entry.cost());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u8) -> Row {
        Row {
            sender_device: Uuid::from_bytes([n; 16]),
            submission_id: Uuid::from_bytes([n + 1; 16]),
            created_at_ms: u64::from(n),
        }
    }

    /// Goal: an indexed mailbox follows adds and removals, and a device
    /// that leaves both generations is loaded again from the store.
    #[test]
    fn follows_writes_and_bounds_memory() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tables::open(dir.path()).unwrap();
        let device = Uuid::now_v7();
        t.devices.insert(device.as_bytes(), b"").unwrap();
        let mut index = MailboxIndex::new(3);
        assert!(index.mailbox(&t, device).unwrap().unwrap().newest().is_none());
        index.add(device, 7, row(1));
        index.add(device, 9, row(3));
        let mailbox = index.mailbox(&t, device).unwrap().unwrap();
        assert!(mailbox.holds(row(1).sender_device, row(1).submission_id));
        assert_eq!((mailbox.oldest(), mailbox.newest()), (Some(7), Some(9)));
        index.remove(device, 7);
        let mailbox = index.mailbox(&t, device).unwrap().unwrap();
        assert!(!mailbox.holds(row(1).sender_device, row(1).submission_id));
        assert_eq!(mailbox.row(9), Some(&row(3)));
        // Other devices push it out of both generations.
        for _ in 0..8 {
            assert!(!index.exists(&t, Uuid::now_v7()).unwrap());
        }
        assert!(index.loaded_mut(device).is_none());
        assert_eq!(index.mailbox(&t, device).unwrap().unwrap().newest(), None, "reloaded");
    }
}
