//! [`Idempotency`] on ScyllaDB: the first answer to (sending device,
//! Idempotency-Key), written by [`super::mailboxes`] after the messages it
//! reports, and its expiry index for the purge (answers also carry a TTL,
//! which only collects garbage).

use uuid::Uuid;

use super::statements::Stmt;
use super::time_index::ANSWER_EXPIRY;
use super::{Inner, ScyllaStore};
use crate::store::{Idempotency, StoreError, StoreFuture};

impl Inner {
    async fn purge_answers(&self, now: i64, limit: usize) -> Result<usize, StoreError> {
        let due = self
            .indexes
            .due(&self.cql, ANSWER_EXPIRY, now.saturating_sub(1), limit)
            .await?;
        for (at, id) in &due {
            if let (Ok(device), Ok(key)) = (
                Uuid::from_slice(id.get(..16).unwrap_or_default()),
                Uuid::from_slice(id.get(16..).unwrap_or_default()),
            ) {
                if self.stored_answer(device, key, now).await?.is_none() {
                    self.cql.exec(Stmt::DeleteAnswer, (device, key)).await?;
                }
            }
            self.indexes.remove(&self.cql, ANSWER_EXPIRY, *at, id.clone()).await?;
        }
        Ok(due.len())
    }
}

impl Idempotency for ScyllaStore {
    fn idempotent_response(&self, device: Uuid, key: Uuid, now_secs: i64) -> StoreFuture<'_, Option<bytes::Bytes>> {
        self.call(move |s| async move { s.stored_answer(device, key, now_secs).await })
    }

    fn purge_idempotency(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.purge_answers(now_secs, limit).await })
    }
}
