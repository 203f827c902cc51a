//! The open fjall database and one handle per keyspace. Shared read-only by
//! the store's threads; only the writer thread commits batches.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use prost::Message;
use uuid::Uuid;

use super::layout::{pair, KEYSPACES, META_SEQ, META_USER_REFRESH_INDEXED};
use super::records::{decode, uuid, RefreshValue, UserValue};
use crate::limits;
use crate::store::{StoreError, UserRecord};

/// The database and its keyspaces.
pub struct Tables {
    /// The database (journal, persist).
    pub db: Database,
    /// See [`super::layout`] for what each holds.
    pub users: Keyspace,
    #[allow(missing_docs)]
    pub usernames: Keyspace,
    #[allow(missing_docs)]
    pub devices: Keyspace,
    #[allow(missing_docs)]
    pub user_devices: Keyspace,
    #[allow(missing_docs)]
    pub signed_prekeys: Keyspace,
    #[allow(missing_docs)]
    pub one_time_prekeys: Keyspace,
    #[allow(missing_docs)]
    pub refresh_tokens: Keyspace,
    #[allow(missing_docs)]
    pub refresh_families: Keyspace,
    #[allow(missing_docs)]
    pub device_refresh: Keyspace,
    #[allow(missing_docs)]
    pub refresh_expiry: Keyspace,
    #[allow(missing_docs)]
    pub mailboxes: Keyspace,
    #[allow(missing_docs)]
    pub deleted_senders: Keyspace,
    #[allow(missing_docs)]
    pub idempotency: Keyspace,
    #[allow(missing_docs)]
    pub idempotency_expiry: Keyspace,
    #[allow(missing_docs)]
    pub meta: Keyspace,
    #[allow(missing_docs)]
    pub push_tokens: Keyspace,
    #[allow(missing_docs)]
    pub push_token_devices: Keyspace,
    #[allow(missing_docs)]
    pub push_jobs: Keyspace,
    #[allow(missing_docs)]
    pub push_due: Keyspace,
    #[allow(missing_docs)]
    pub attachments: Keyspace,
    #[allow(missing_docs)]
    pub attachment_expiry: Keyspace,
    #[allow(missing_docs)]
    pub backups: Keyspace,
    #[allow(missing_docs)]
    pub backup_uploads: Keyspace,
    #[allow(missing_docs)]
    pub user_refresh: Keyspace,
    #[allow(missing_docs)]
    pub revocations: Keyspace,
    #[allow(missing_docs)]
    pub account_deletions: Keyspace,
    /// The last sequence number handed out; only the writer advances it.
    last_seq: AtomicU64,
    /// The end of the block of sequence numbers the `meta` row reserves.
    seq_reserved: AtomicU64,
    /// Per device, a mailbox position below which every row is deleted
    /// (kept in memory; after a restart fetches start at 0 until the
    /// device's next ack).
    mailbox_heads: Mutex<HashMap<Uuid, u64>>,
    /// The `deleted_senders` rows in memory: devices deleted lately and
    /// when. The messages they sent that are still queued are never
    /// delivered; the retention sweep deletes them.
    recently_deleted: RwLock<HashMap<Uuid, i64>>,
}

/// A stored (key, value) pair.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Wraps a fjall error.
pub fn backend(e: fjall::Error) -> StoreError {
    StoreError::Backend(Box::new(e))
}

impl Tables {
    /// Opens (or creates) the database in `dir`. Journal flushes are left to
    /// the group committer (`manual_journal_persist`).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Backend(Box::new(e)))?;
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .open()
            .map_err(backend)?;
        let ks = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default).map_err(backend);
        let [users, usernames, devices, user_devices, signed_prekeys, one_time_prekeys, refresh_tokens, refresh_families, device_refresh, refresh_expiry, mailboxes, deleted_senders, idempotency, idempotency_expiry, meta, push_tokens, push_token_devices, push_jobs, push_due, attachments, attachment_expiry, backups, backup_uploads, user_refresh, revocations, account_deletions] =
            KEYSPACES;
        let meta = ks(meta)?;
        let deleted_senders = ks(deleted_senders)?;
        let recently_deleted = deleted_senders
            .iter()
            .map(|guard| {
                let (key, value) = guard.into_inner().map_err(backend)?;
                let at = value.as_ref().try_into().map(i64::from_be_bytes).unwrap_or(0);
                Ok((uuid("deleted_senders", &key)?, at))
            })
            .collect::<Result<HashMap<_, _>, StoreError>>()?;
        let last_seq = match meta.get(META_SEQ).map_err(backend)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().map_err(|_| StoreError::Corrupt {
                table: "meta",
                reason: "seq".into(),
            })?),
            None => 0,
        };
        Ok(Self {
            users: ks(users)?,
            usernames: ks(usernames)?,
            devices: ks(devices)?,
            user_devices: ks(user_devices)?,
            signed_prekeys: ks(signed_prekeys)?,
            one_time_prekeys: ks(one_time_prekeys)?,
            refresh_tokens: ks(refresh_tokens)?,
            refresh_families: ks(refresh_families)?,
            device_refresh: ks(device_refresh)?,
            refresh_expiry: ks(refresh_expiry)?,
            mailboxes: ks(mailboxes)?,
            deleted_senders,
            idempotency: ks(idempotency)?,
            idempotency_expiry: ks(idempotency_expiry)?,
            meta,
            push_tokens: ks(push_tokens)?,
            push_token_devices: ks(push_token_devices)?,
            push_jobs: ks(push_jobs)?,
            push_due: ks(push_due)?,
            attachments: ks(attachments)?,
            attachment_expiry: ks(attachment_expiry)?,
            backups: ks(backups)?,
            backup_uploads: ks(backup_uploads)?,
            user_refresh: ks(user_refresh)?,
            revocations: ks(revocations)?,
            account_deletions: ks(account_deletions)?,
            last_seq: AtomicU64::new(last_seq),
            seq_reserved: AtomicU64::new(last_seq),
            mailbox_heads: Mutex::default(),
            recently_deleted: RwLock::new(recently_deleted),
            db,
        })
    }

    /// The keys under `prefix` in `keyspace`, in order.
    pub fn keys_with_prefix(keyspace: &Keyspace, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        keyspace
            .prefix(prefix)
            .map(|guard| guard.key().map(|k| k.to_vec()).map_err(backend))
            .collect()
    }

    /// The (key, value) pairs under `prefix` in `keyspace`, in order.
    pub fn pairs_with_prefix(keyspace: &Keyspace, prefix: &[u8]) -> Result<Vec<KeyValue>, StoreError> {
        keyspace
            .prefix(prefix)
            .map(|guard| {
                guard
                    .into_inner()
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(backend)
            })
            .collect()
    }

    /// Hands out the next `n` sequence numbers (writer thread only) and
    /// returns the first. Numbers are reserved in blocks of [`limits::STORE_SEQ_BLOCK_COUNT`]:
    /// when a block runs out, `batch` records the end of the next one, so
    /// a restart continues after every number that may have been used
    /// (skipping the rest of the block) while the `meta` row is written
    /// once per block, not once per message. The reservation commits in
    /// the same batch as the first number it covers, and the journal is
    /// sequential, so no number survives a crash without its reservation.
    pub fn next_seqs(&self, batch: &mut fjall::OwnedWriteBatch, n: u64) -> u64 {
        let first = self.last_seq.fetch_add(n, Ordering::Relaxed) + 1;
        let last = first + n.max(1) - 1;
        if last > self.seq_reserved.load(Ordering::Relaxed) {
            let reserved = last + limits::STORE_SEQ_BLOCK_COUNT;
            batch.insert(&self.meta, META_SEQ.to_vec(), reserved.to_be_bytes().to_vec());
            self.seq_reserved.store(reserved, Ordering::Relaxed);
        }
        first
    }

    /// Forgets the reserved block (writer thread only): after a write whose
    /// batch may not have committed, its reservation may not be durable, so
    /// the next number handed out records a new one.
    pub fn drop_seq_reservation(&self) {
        self.seq_reserved.store(self.last_seq(), Ordering::Relaxed);
    }

    /// The last sequence number handed out.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Relaxed)
    }

    /// The mailbox head of `device` (0 if unknown).
    pub fn mailbox_head(&self, device: Uuid) -> u64 {
        self.mailbox_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&device)
            .copied()
            .unwrap_or(0)
    }

    /// Records the mailbox head of `device` (writer thread only).
    pub fn set_mailbox_head(&self, device: Uuid, head: u64) {
        self.mailbox_heads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(device, head);
    }

    /// Whether `device` is a deleted sender whose messages are hidden.
    pub fn is_deleted_sender(&self, device: &Uuid) -> bool {
        let deleted = self.recently_deleted.read().unwrap_or_else(|p| p.into_inner());
        !deleted.is_empty() && deleted.contains_key(device)
    }

    /// Records in `batch` that `device` was deleted at `at_secs`; call
    /// [`Tables::remember_deleted_sender`] after the commit.
    pub fn mark_deleted_sender(&self, batch: &mut fjall::OwnedWriteBatch, device: Uuid, at_secs: i64) {
        batch.insert(
            &self.deleted_senders,
            device.as_bytes().to_vec(),
            at_secs.to_be_bytes().to_vec(),
        );
    }

    /// Hides the messages of a deleted sender (after its marker committed).
    pub fn remember_deleted_sender(&self, device: Uuid, at_secs: i64) {
        let mut deleted = self.recently_deleted.write().unwrap_or_else(|p| p.into_inner());
        deleted.insert(device, at_secs);
    }

    /// Deleted senders marked before `before_secs`.
    pub fn deleted_senders_before(&self, before_secs: i64) -> Vec<Uuid> {
        let deleted = self.recently_deleted.read().unwrap_or_else(|p| p.into_inner());
        deleted
            .iter()
            .filter(|(_, at)| **at < before_secs)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Forgets deleted senders (after their markers' removal committed).
    pub fn forget_deleted_senders(&self, devices: &[Uuid]) {
        let mut deleted = self.recently_deleted.write().unwrap_or_else(|p| p.into_inner());
        for device in devices {
            deleted.remove(device);
        }
    }

    /// Account `id`; `None` if there is no such account.
    pub fn user(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError> {
        Self::get(&self.users, id.as_bytes())?
            .map(|v| Ok(decode::<UserValue>("users", &v)?.into_record(id)))
            .transpose()
    }

    /// Adds the row of account `user` to `batch`.
    pub fn put_user(&self, batch: &mut fjall::OwnedWriteBatch, user: &UserRecord) {
        batch.insert(
            &self.users,
            user.id.as_bytes().to_vec(),
            UserValue::from_record(user).encode_to_vec(),
        );
    }

    /// Fails with [`StoreError::AccountChanged`] unless account `user`
    /// exists at token generation `generation`.
    pub fn check_account(&self, user: Uuid, generation: u32) -> Result<(), StoreError> {
        match self.user(user)? {
            Some(current) if current.token_generation == generation => Ok(()),
            _ => Err(StoreError::AccountChanged),
        }
    }

    /// Builds the `user_refresh` index of a store from before it, once
    /// (before the writer starts): one row per stored refresh token, in
    /// batches of [`limits::STORE_BACKFILL_BATCH_COUNT`].
    pub fn index_refresh_tokens_by_user(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(META_USER_REFRESH_INDEXED).map_err(backend)? {
            return Ok(());
        }
        let mut batch = self.db.batch();
        let mut in_batch = 0;
        for guard in self.refresh_tokens.iter() {
            let (hash, value) = guard.into_inner().map_err(backend)?;
            let token = decode::<RefreshValue>("refresh_tokens", &value)?;
            batch.insert(&self.user_refresh, pair(&token.user_id, &hash), Vec::new());
            in_batch += 1;
            if in_batch == limits::STORE_BACKFILL_BATCH_COUNT {
                std::mem::replace(&mut batch, self.db.batch())
                    .commit()
                    .map_err(backend)?;
                in_batch = 0;
            }
        }
        batch.insert(&self.meta, META_USER_REFRESH_INDEXED.to_vec(), Vec::new());
        batch.commit().map_err(backend)?;
        self.db.persist(fjall::PersistMode::SyncAll).map_err(backend)
    }

    /// A point lookup.
    pub fn get(keyspace: &Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        keyspace.get(key).map(|v| v.map(|v| v.to_vec())).map_err(backend)
    }
}
