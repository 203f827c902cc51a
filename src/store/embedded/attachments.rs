//! [`Attachments`] on fjall: each attachment's expiry under its id, and an
//! expiry index (expiry ‖ id) that the clean-up reads oldest first.

use uuid::Uuid;

use super::layout::{expiry_key, ordered_i64};
use super::records::uuid;
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Attachments, StoreError, StoreFuture};

fn expiry_of(value: &[u8]) -> Result<i64, StoreError> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| StoreError::Corrupt {
        table: "attachments",
        reason: "expiry is not 8 bytes".into(),
    })?;
    Ok(i64::from_be_bytes(bytes))
}

impl Attachments for EmbeddedStore {
    fn insert_attachment(&self, id: Uuid, expires_at_secs: i64) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            batch.insert(
                &t.attachments,
                id.as_bytes().to_vec(),
                expires_at_secs.to_be_bytes().to_vec(),
            );
            batch.insert(&t.attachment_expiry, expiry_key(expires_at_secs, id, &[]), Vec::new());
            batch.commit().map_err(backend)
        })
    }

    fn attachment_expiry(&self, id: Uuid) -> StoreFuture<'_, Option<i64>> {
        self.read(move |t| {
            Tables::get(&t.attachments, id.as_bytes())?
                .map(|v| expiry_of(&v))
                .transpose()
        })
    }

    fn expired_attachments(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, Vec<Uuid>> {
        self.read(move |t| {
            let range = ordered_i64(i64::MIN).to_vec()..ordered_i64(now_secs).to_vec();
            t.attachment_expiry
                .range(range)
                .take(limit)
                .map(|guard| {
                    let key = guard.key().map_err(backend)?;
                    uuid("attachment_expiry", key.get(8..24).unwrap_or_default())
                })
                .collect()
        })
    }

    fn delete_attachment(&self, id: Uuid) -> StoreFuture<'_, ()> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            if let Some(value) = Tables::get(&t.attachments, id.as_bytes())? {
                batch.remove(&t.attachment_expiry, expiry_key(expiry_of(&value)?, id, &[]));
                batch.remove(&t.attachments, id.as_bytes().to_vec());
            }
            batch.commit().map_err(backend)
        })
    }
}
