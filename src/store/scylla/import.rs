//! Writes the records `store copy` reads from an embedded store
//! ([`crate::store::copy`]) into the ScyllaDB store, with the indexes the
//! ScyllaDB store keeps beside them. Every write is an upsert, so a copy
//! that stopped half way can be run again; a username that another user
//! holds already stops it. A deletion still pending on the embedded store
//! (whose rows are gone already) becomes a marked `users` row without
//! anything else, with its pending entry, so the new deployment's clean-up
//! finishes it.

use futures_util::future::try_join_all;
use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::cql::part;
use super::devices::device_part;
use super::mailboxes::run_each;
use super::positions::{bucket_at_millis, bucket_of, to_cql, ttl_until};
use super::statements::Stmt;
use super::time_index::{ACCOUNT_DELETIONS, DELETED_SENDERS};
use super::{Inner, ScyllaStore};
use crate::store::portable::Item;
use crate::store::{AccountDeletion, StoreError, UserRecord};
use crate::util::time::{now_micros, now_secs};

impl ScyllaStore {
    /// Writes `items` (independent of each other) concurrently; blocks the
    /// calling thread, which must not be a shard.
    pub fn import(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let inner = self.inner.clone();
        self.runtime
            .block_on(async move {
                try_join_all(items.into_iter().map(|item| inner.import(item))).await?;
                Ok(())
            })
            .map_err(|_| StoreError::Closed)?
    }
}

impl Inner {
    async fn import(&self, item: Item) -> Result<(), StoreError> {
        match item {
            Item::User(user) => self.import_user(user).await,
            Item::Device { device, push_token } => {
                let d = &device;
                let parts = vec![device_part(d), part(Stmt::InsertUserDevice, (d.user_id, d.id))];
                self.cql.batch(BatchType::Logged, parts).await?;
                match push_token {
                    Some(token) => self.set_token(d.id, token).await.map(drop),
                    None => Ok(()),
                }
            }
            Item::SignedPreKey { device, key } => {
                let values = (
                    device,
                    key.key_id,
                    key.public_key.0.to_vec(),
                    key.signature.0.to_vec(),
                    now_micros(),
                );
                self.cql.exec(Stmt::InsertSignedPreKey, values).await.map(drop)
            }
            Item::OneTimePreKey { device, key, order } => {
                let values = (
                    device,
                    key.key_id,
                    key.public_key.0.to_vec(),
                    to_cql(order),
                    now_micros(),
                );
                self.cql.exec(Stmt::InsertOneTimePreKey, values).await.map(drop)
            }
            Item::Refresh { record, rotated } => self.write_refresh(&record, rotated).await,
            Item::Message {
                target,
                message,
                submission_id,
                expires_at_secs,
            } => {
                self.import_message(target, message, submission_id, expires_at_secs)
                    .await
            }
            Item::PushJob { device, due_ms } => {
                let parts = self.push_job_parts(device, due_ms).await?;
                self.cql.batch(BatchType::Unlogged, parts).await.map(drop)
            }
            Item::Attachment { id, expires_at_secs } => self.insert_attachment(id, expires_at_secs).await,
            Item::Backup { device, row } => self.import_backup(device, row).await,
            Item::DeletedSender {
                device,
                deleted_at_secs,
            } => {
                let alive = deleted_at_secs.saturating_add(self.options.ttl_secs);
                let id = device.as_bytes().to_vec();
                self.indexes
                    .add(&self.cql, DELETED_SENDERS, deleted_at_secs, id, alive)
                    .await?;
                super::caches::lock(&self.deleted).insert(device);
                Ok(())
            }
            Item::Revocation(r) => self.log_revocation(r).await,
            Item::AccountDeletion(deletion) => self.import_deletion(deletion).await,
        }
    }

    async fn import_deletion(&self, d: AccountDeletion) -> Result<(), StoreError> {
        let values = (d.user_id, d.at_ms, d.devices.clone());
        self.cql.exec(Stmt::InsertDeletedUser, values).await?;
        let alive = d.at_ms.div_euclid(1000).saturating_add(self.options.ttl_secs);
        let id = d.user_id.as_bytes().to_vec();
        self.indexes
            .add(&self.cql, ACCOUNT_DELETIONS, d.at_ms, id, alive)
            .await?;
        super::caches::lock(&self.deleted).extend(d.devices);
        Ok(())
    }

    async fn import_user(&self, user: UserRecord) -> Result<(), StoreError> {
        let (stmt, values) = super::accounts::user_part(&user);
        self.cql.exec(stmt, values).await?;
        let (claimed, current) = self
            .cql
            .lwt(Stmt::ClaimUsername, (user.username.clone(), user.id))
            .await?;
        let ours = current
            .iter()
            .any(|v| matches!(v, Some(scylla::value::CqlValue::Uuid(id)) if *id == user.id));
        if claimed || ours {
            Ok(())
        } else {
            Err(StoreError::UsernameTaken)
        }
    }

    /// A queued message at its position (so its id still names it), with
    /// its submission row and its bucket's rows.
    async fn import_message(
        &self,
        target: Uuid,
        m: crate::store::StoredMessage,
        submission_id: Uuid,
        expires: i64,
    ) -> Result<(), StoreError> {
        let (bucket, seq, ttl) = (bucket_of(m.seq), to_cql(m.seq), ttl_until(expires, now_secs()));
        let active = bucket_at_millis(m.created_at_ms);
        let mut parts = self.bucket_parts(target, bucket, active, expires).await?;
        parts.push(part(
            Stmt::InsertSubmission,
            (m.sender_device, submission_id, target, seq, ttl),
        ));
        let created = i64::try_from(m.created_at_ms).unwrap_or(i64::MAX);
        let values = (
            target,
            bucket,
            seq,
            m.sender_user,
            m.sender_device,
            submission_id,
            m.payload,
            created,
            expires,
            ttl,
        );
        parts.push(part(Stmt::InsertMessage, values));
        run_each(self, parts).await
    }

    async fn import_backup(&self, device: Uuid, row: crate::store::BackupRow) -> Result<(), StoreError> {
        let p = row.pending;
        let values = (
            device,
            row.current_version,
            row.current_token,
            p.map(|p| p.version),
            p.map(|p| p.token),
            p.map(|p| p.started_at_ms),
        );
        self.cql.exec(Stmt::InsertBackup, values).await?;
        match p {
            Some(p) => self.index_upload(device, &p).await,
            None => Ok(()),
        }
    }
}
