//! [`RevocationLog`] on fjall: one row per revocation, keyed by its time,
//! its subject (account or device) and — for the kinds that came with
//! device revocations — a kind byte, so "revocations since T" is one range
//! read and the purge removes the oldest rows first. Rows are written
//! inside the batches of the password change, the account deletion and the
//! device deletion that decide them ([`log_revocation`]). Two revocations
//! of one kind of one account in one millisecond share a row; the writer
//! serializes them, so the one kept is the later, stricter one.

use prost::Message;

use super::layout::{ordered_i64, pair};
use super::records::{decode, uuid, RevocationValue, RevokedKind};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::store::{Revocation, RevocationLog, StoreError, StoreFuture};

/// Adds a revocation's row to `batch`.
pub(super) fn log_revocation(t: &Tables, batch: &mut fjall::OwnedWriteBatch, r: &Revocation) {
    let mut key = pair(&ordered_i64(r.at_ms), r.revoked.subject().as_bytes());
    key.extend_from_slice(RevokedKind::of(r.revoked).suffix());
    batch.insert(
        &t.revocations,
        key,
        RevocationValue::from_revoked(r.revoked).encode_to_vec(),
    );
}

/// The time of a row's key.
fn at_ms(key: &[u8]) -> i64 {
    let bytes: [u8; 8] = key.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]);
    (u64::from_be_bytes(bytes) ^ 0x8000_0000_0000_0000) as i64
}

/// The revocation of a row.
fn revocation(key: &[u8], value: &[u8]) -> Result<Revocation, StoreError> {
    let subject = uuid("revocations", key.get(8..24).unwrap_or_default())?;
    let kind = RevokedKind::from_suffix(key.get(24..).unwrap_or_default()).ok_or_else(|| StoreError::Corrupt {
        table: "revocations",
        reason: "unknown kind".into(),
    })?;
    Ok(Revocation {
        revoked: decode::<RevocationValue>("revocations", value)?.revoked(subject, kind),
        at_ms: at_ms(key),
    })
}

/// The revocations decided at or after `since_ms`, oldest first.
pub(super) fn since(t: &Tables, since_ms: i64) -> Result<Vec<Revocation>, StoreError> {
    t.revocations
        .range(ordered_i64(since_ms).to_vec()..)
        .map(|guard| {
            let (key, value) = guard.into_inner().map_err(backend)?;
            revocation(&key, &value)
        })
        .collect()
}

fn purge(t: &Tables, before_ms: i64, limit: usize) -> Result<usize, StoreError> {
    let mut batch = t.db.batch();
    let mut purged = 0;
    for guard in t
        .revocations
        .range(ordered_i64(i64::MIN).to_vec()..ordered_i64(before_ms).to_vec())
        .take(limit)
    {
        batch.remove(&t.revocations, guard.key().map_err(backend)?.to_vec());
        purged += 1;
    }
    batch.commit().map_err(backend)?;
    Ok(purged)
}

impl RevocationLog for EmbeddedStore {
    fn revocations_since(&self, since_ms: i64) -> StoreFuture<'_, Vec<Revocation>> {
        self.read(move |t| since(t, since_ms))
    }

    fn purge_revocations(&self, before_ms: i64, limit: usize) -> StoreFuture<'_, usize> {
        self.write(move |t| purge(t, before_ms, limit))
    }
}
