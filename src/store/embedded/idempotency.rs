//! [`Idempotency`] on fjall: the first response to (sending device,
//! Idempotency-Key), kept until it expires, with an expiry index for the
//! purge. Answers are written by [`super::mailboxes`]' `append_and_answer`,
//! in the send's own transaction.

use prost::Message;
use uuid::Uuid;

use super::layout::{expiry_key, ordered_i64, pair};
use super::records::{decode, IdempotencyValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Idempotency, StoreError, StoreFuture};

/// Adds `answer` for (`device`, `key`), until `expires_at_secs`, to `batch`.
pub(super) fn store_answer(
    t: &Tables,
    batch: &mut fjall::OwnedWriteBatch,
    device: Uuid,
    key: Uuid,
    answer: bytes::Bytes,
    expires_at_secs: i64,
) {
    let value = IdempotencyValue {
        response: answer,
        expires_at_secs,
    };
    batch.insert(
        &t.idempotency,
        pair(device.as_bytes(), key.as_bytes()),
        value.encode_to_vec(),
    );
    batch.insert(
        &t.idempotency_expiry,
        expiry_key(expires_at_secs, device, key.as_bytes()),
        Vec::new(),
    );
}

/// The answer stored for (`device`, `key`), if it is unexpired at `now`.
pub(super) fn stored_answer(t: &Tables, device: Uuid, key: Uuid, now: i64) -> Result<Option<bytes::Bytes>, StoreError> {
    let Some(value) = Tables::get(&t.idempotency, &pair(device.as_bytes(), key.as_bytes()))? else {
        return Ok(None);
    };
    let value = decode::<IdempotencyValue>("idempotency", &value)?;
    Ok((value.expires_at_secs > now).then_some(value.response))
}

impl Idempotency for EmbeddedStore {
    fn idempotent_response(&self, device: Uuid, key: Uuid, now_secs: i64) -> StoreFuture<'_, Option<bytes::Bytes>> {
        self.read(move |t| stored_answer(t, device, key, now_secs))
    }

    fn purge_idempotency(&self, now_secs: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.write(move |t| {
            let mut batch = t.db.batch();
            let mut purged = 0;
            let range = ordered_i64(i64::MIN).to_vec()..ordered_i64(now_secs).to_vec();
            for guard in t.idempotency_expiry.range(range).take(limit) {
                let key = guard.key().map_err(backend)?;
                let record = key.get(8..40).unwrap_or_default().to_vec();
                if let Some(v) = Tables::get(&t.idempotency, &record)? {
                    if decode::<IdempotencyValue>("idempotency", &v)?.expires_at_secs <= now_secs {
                        batch.remove(&t.idempotency, record);
                    }
                }
                batch.remove(&t.idempotency_expiry, key.to_vec());
                purged += 1;
            }
            batch.commit().map_err(backend)?;
            Ok(purged)
        })
    }
}
