//! [`Keys`] on ScyllaDB. A key upload (refill or takeover, BEHAVIOR.md
//! §6.3) is decided on the current keys and written in one logged batch;
//! uploads of one device run one at a time in this process (a device's own
//! client sends them). Its deletes are stamped a microsecond before its
//! inserts, so a key that is pruned and sent again in one upload stays.
//! A bundle fetch claims its one-time prekey with a conditional delete
//! (`IF EXISTS`): of concurrent fetches exactly one gets each key, and a
//! loser tries another. Fetches start at a random key of the pool so that
//! concurrent ones rarely collide.

use scylla::statement::batch::BatchType;
use uuid::Uuid;

use super::cql::{corrupt, part, Part};
use super::positions::to_cql;
use super::statements::Stmt;
use super::{Inner, ScyllaStore};
use crate::crypto::public_key::{PublicKey, Signature};
use crate::store::{
    Bundle, KeyUpload, Keys, OneTimePreKey, SignatureCheck, SignedPreKey, StoreError, StoreFuture, UploadOutcome,
    UploadRejection,
};
use crate::util::time::now_micros;

fn public_key(bytes: &[u8]) -> Result<PublicKey, StoreError> {
    PublicKey::from_bytes(bytes).map_err(|e| corrupt("prekeys", e.to_string()))
}

impl Inner {
    async fn signed_prekeys(&self, device: Uuid) -> Result<Vec<SignedPreKey>, StoreError> {
        let rows: Vec<(i32, Vec<u8>, Vec<u8>)> = self.cql.rows(Stmt::SelectSignedPreKeys, (device,)).await?;
        rows.into_iter()
            .map(|(key_id, key, signature)| {
                Ok(SignedPreKey {
                    key_id,
                    public_key: public_key(&key)?,
                    signature: Signature::from_bytes(&signature)
                        .map_err(|e| corrupt("signed_prekeys", e.to_string()))?,
                })
            })
            .collect()
    }

    /// (key id, public key, upload order) of every one-time prekey.
    async fn one_time_prekeys(&self, device: Uuid) -> Result<Vec<(i32, Vec<u8>, i64)>, StoreError> {
        let rows: Vec<(i32, Option<Vec<u8>>, Option<i64>)> =
            self.cql.rows(Stmt::SelectOneTimePreKeys, (device,)).await?;
        Ok(rows
            .into_iter()
            .map(|(id, key, order)| (id, key.unwrap_or_default(), order.unwrap_or(0)))
            .collect())
    }

    async fn count_one_time(&self, device: Uuid) -> Result<usize, StoreError> {
        let count = self.cql.first::<(i64,)>(Stmt::CountOneTimePreKeys, (device,)).await?;
        Ok(count.map_or(0, |(n,)| usize::try_from(n).unwrap_or(0)))
    }

    fn one_time_parts(&self, device: Uuid, keys: &[OneTimePreKey], ts: i64) -> Vec<Part> {
        keys.iter()
            .map(|k| {
                let order = to_cql(self.positions.next());
                part(
                    Stmt::InsertOneTimePreKey,
                    (device, k.key_id, k.public_key.0.to_vec(), order, ts),
                )
            })
            .collect()
    }

    fn signed_part(device: Uuid, spk: &SignedPreKey, ts: i64) -> Part {
        part(
            Stmt::InsertSignedPreKey,
            (
                device,
                spk.key_id,
                spk.public_key.0.to_vec(),
                spk.signature.0.to_vec(),
                ts,
            ),
        )
    }

    async fn upload(
        &self,
        device_id: Uuid,
        up: KeyUpload,
        verify: SignatureCheck,
    ) -> Result<Result<UploadOutcome, UploadRejection>, StoreError> {
        let lock = self.upload_lock(device_id);
        let _held = lock.lock().await;
        let Some(device) = self.live_device(device_id).await? else {
            return Ok(Err(UploadRejection::DeviceNotFound));
        };
        let device = device.record;
        let takeover = up.takes_over(&device.identity_key);
        if !verify(up.signing_identity(&device.identity_key)) {
            return Ok(Err(UploadRejection::InvalidSignature));
        }
        let (deletes, inserts) = (now_micros(), now_micros() + 1);
        let parts = if takeover {
            let (key, registration_id) = up
                .identity
                .clone()
                .unwrap_or((device.identity_key, device.registration_id));
            let mut parts = vec![
                part(Stmt::UpdateDeviceIdentity, (key.0.to_vec(), registration_id, device_id)),
                part(Stmt::DeleteSignedPreKeys, (deletes, device_id)),
                part(Stmt::DeleteOneTimePreKeys, (deletes, device_id)),
                Self::signed_part(device_id, &up.signed_prekey, inserts),
            ];
            parts.extend(self.one_time_parts(device_id, &up.one_time_prekeys, inserts));
            parts
        } else {
            let stored = self.signed_prekeys(device_id).await?;
            if let Err(rejection) = up.check_signed_prekey_id(stored.iter().map(|k| k.key_id)) {
                return Ok(Err(rejection));
            }
            self.refill_parts(device_id, &up, &stored, deletes, inserts).await?
        };
        self.cql.batch(BatchType::Logged, parts).await?;
        if !takeover {
            return Ok(Ok(UploadOutcome::Refilled));
        }
        self.wipe_mailbox(device_id).await?;
        Ok(Ok(UploadOutcome::TookOver))
    }

    /// A refill: prune the oldest one-time prekeys beyond the cap, add the
    /// new ones the device does not have, and rotate the signed prekey.
    async fn refill_parts(
        &self,
        device: Uuid,
        up: &KeyUpload,
        stored_spks: &[SignedPreKey],
        deletes: i64,
        inserts: i64,
    ) -> Result<Vec<Part>, StoreError> {
        let stored = self.one_time_prekeys(device).await?;
        let orders = stored
            .iter()
            .map(|(id, _, order)| (*id, u64::try_from(*order).unwrap_or(0)));
        let (pruned, fresh) = up.refill_plan(orders.collect());
        let mut parts: Vec<Part> = pruned
            .into_iter()
            .map(|id| part(Stmt::DeleteOneTimePreKey, (deletes, device, id)))
            .collect();
        parts.extend(self.one_time_parts(device, &fresh, inserts));
        parts.push(Self::signed_part(device, &up.signed_prekey, inserts));
        for old in stored_spks {
            parts.push(part(Stmt::DeleteSignedPreKey, (deletes, device, old.key_id)));
        }
        Ok(parts)
    }

    async fn take_bundle(&self, device_id: Uuid) -> Result<Option<Bundle>, StoreError> {
        let Some(device) = self.live_device(device_id).await? else {
            return Ok(None);
        };
        let Some(signed_prekey) = self
            .signed_prekeys(device_id)
            .await?
            .into_iter()
            .max_by_key(|k| k.key_id)
        else {
            return Ok(None);
        };
        let mut pool = self.one_time_prekeys(device_id).await?;
        let size = pool.len();
        let mut start = [0u8; 4];
        let _ = getrandom::fill(&mut start);
        if !pool.is_empty() {
            let offset = u32::from_le_bytes(start) as usize % pool.len();
            pool.rotate_left(offset);
        }
        let mut taken = None;
        let mut lost = 0;
        for (key_id, key, _) in pool {
            // An unknown outcome (a Paxos timeout under contention) counts as
            // lost: the key may be gone, and is never handed out twice.
            let claimed = self
                .cql
                .applied_or_unknown(Stmt::ClaimOneTimePreKey, (device_id, key_id))
                .await?;
            if claimed == Some(true) {
                taken = Some(OneTimePreKey {
                    key_id,
                    public_key: public_key(&key)?,
                });
                break;
            }
            lost += 1;
        }
        let remaining = size.saturating_sub(lost + usize::from(taken.is_some()));
        Ok(Some(Bundle {
            device: device.record,
            signed_prekey,
            one_time_prekey: taken,
            remaining,
        }))
    }
}

impl Keys for ScyllaStore {
    fn signed_prekeys(&self, device_id: Uuid) -> StoreFuture<'_, Vec<SignedPreKey>> {
        self.call(move |s| async move { s.signed_prekeys(device_id).await })
    }

    fn one_time_prekey_count(&self, device_id: Uuid) -> StoreFuture<'_, usize> {
        self.call(move |s| async move { s.count_one_time(device_id).await })
    }

    fn upload_keys(
        &self,
        device_id: Uuid,
        upload: KeyUpload,
        verify: SignatureCheck,
    ) -> StoreFuture<'_, Result<UploadOutcome, UploadRejection>> {
        self.call(move |s| async move { s.upload(device_id, upload, verify).await })
    }

    fn take_bundle(&self, device_id: Uuid) -> StoreFuture<'_, Option<Bundle>> {
        self.call(move |s| async move { s.take_bundle(device_id).await })
    }
}
