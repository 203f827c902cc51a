//! [`Attachments`] on ScyllaDB: a row per attachment with its expiry, and
//! the expiry index the clean-up reads (oldest first, never a scan).

use uuid::Uuid;

use super::positions::ttl_until;
use super::statements::Stmt;
use super::time_index::ATTACHMENT_EXPIRY;
use super::{Inner, ScyllaStore};
use crate::store::{Attachments, StoreError, StoreFuture};
use crate::util::time::now_secs;

impl Inner {
    async fn attachment_expiry(&self, id: Uuid) -> Result<Option<i64>, StoreError> {
        let row = self.cql.first::<(Option<i64>,)>(Stmt::SelectAttachment, (id,)).await?;
        Ok(row.and_then(|(e,)| e))
    }

    pub(super) async fn insert_attachment(&self, id: Uuid, expires: i64) -> Result<(), StoreError> {
        let ttl = ttl_until(expires, now_secs());
        self.indexes
            .add(&self.cql, ATTACHMENT_EXPIRY, expires, id.as_bytes().to_vec(), expires)
            .await?;
        self.cql
            .exec(Stmt::InsertAttachment, (id, expires, ttl))
            .await
            .map(drop)
    }

    async fn expired_attachments(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, ATTACHMENT_EXPIRY, now.saturating_sub(1), limit)
            .await?;
        let mut ids = Vec::with_capacity(due.len());
        for (at, id) in due {
            let Ok(uuid) = Uuid::from_slice(&id) else {
                continue;
            };
            if self.attachment_expiry(uuid).await? == Some(at) {
                ids.push(uuid);
            } else {
                self.indexes.remove(&self.cql, ATTACHMENT_EXPIRY, at, id).await?;
            }
        }
        Ok(ids)
    }

    async fn delete_attachment(&self, id: Uuid) -> Result<(), StoreError> {
        if let Some(at) = self.attachment_expiry(id).await? {
            self.indexes
                .remove(&self.cql, ATTACHMENT_EXPIRY, at, id.as_bytes().to_vec())
                .await?;
        }
        self.cql.exec(Stmt::DeleteAttachment, (id,)).await.map(drop)
    }
}

impl Attachments for ScyllaStore {
    fn insert_attachment(&self, id: Uuid, expires_at_secs: i64) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.insert_attachment(id, expires_at_secs).await })
    }

    fn attachment_expiry(&self, id: Uuid) -> StoreFuture<'_, Option<i64>> {
        self.call(move |s| async move { s.attachment_expiry(id).await })
    }

    fn expired_attachments(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, Vec<Uuid>> {
        self.call(move |s| async move { s.expired_attachments(now_secs, limit).await })
    }

    fn delete_attachment(&self, id: Uuid) -> StoreFuture<'_, ()> {
        self.call(move |s| async move { s.delete_attachment(id).await })
    }
}
