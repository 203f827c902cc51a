//! [`Keys`] on fjall: key uploads (refill or takeover, BEHAVIOR.md §6.3) and
//! bundle fetches that consume one one-time prekey (§6.4). Both run as one
//! serialized transaction on the writer thread, so two fetches never hand
//! out the same prekey and a crash leaves either the old or the new keys.

use prost::Message;
use uuid::Uuid;

use super::devices::load_device;
use super::layout::{device_key, i32_from_ordered};
use super::mailboxes::wipe_mailbox;
use super::records::{decode, DeviceValue, OneTimePreKeyValue, SignedPreKeyValue};
use super::tables::{backend, Tables};
use super::EmbeddedStore;
use crate::crypto::public_key::PublicKey;
use crate::store::{
    Bundle, KeyUpload, Keys, OneTimePreKey, SignatureCheck, SignedPreKey, StoreError, StoreFuture, UploadOutcome,
    UploadRejection,
};

fn corrupt(table: &'static str) -> StoreError {
    StoreError::Corrupt {
        table,
        reason: "bad key id".into(),
    }
}

fn signed_prekeys(t: &Tables, device: Uuid) -> Result<Vec<SignedPreKey>, StoreError> {
    Tables::pairs_with_prefix(&t.signed_prekeys, device.as_bytes())?
        .into_iter()
        .map(|(k, v)| {
            let key_id = i32_from_ordered(k.get(16..).unwrap_or_default()).ok_or_else(|| corrupt("signed_prekeys"))?;
            decode::<SignedPreKeyValue>("signed_prekeys", &v)?.into_record(key_id)
        })
        .collect()
}

/// (key id, stored value) of every one-time prekey of a device.
fn one_time_prekeys(t: &Tables, device: Uuid) -> Result<Vec<(i32, OneTimePreKeyValue)>, StoreError> {
    Tables::pairs_with_prefix(&t.one_time_prekeys, device.as_bytes())?
        .into_iter()
        .map(|(k, v)| {
            let key_id =
                i32_from_ordered(k.get(16..).unwrap_or_default()).ok_or_else(|| corrupt("one_time_prekeys"))?;
            Ok((key_id, decode::<OneTimePreKeyValue>("one_time_prekeys", &v)?))
        })
        .collect()
}

fn insert_one_time(t: &Tables, batch: &mut fjall::OwnedWriteBatch, device: Uuid, keys: &[OneTimePreKey]) {
    let first = t.next_seqs(batch, keys.len() as u64);
    for (i, k) in keys.iter().enumerate() {
        let value = OneTimePreKeyValue::from_record(k, first + i as u64);
        batch.insert(&t.one_time_prekeys, device_key(device, k.key_id), value.encode_to_vec());
    }
}

fn upload(
    t: &Tables,
    device_id: Uuid,
    up: KeyUpload,
    verify: SignatureCheck,
) -> Result<Result<UploadOutcome, UploadRejection>, StoreError> {
    let Some(mut device) = load_device(t, device_id)? else {
        return Ok(Err(UploadRejection::DeviceNotFound));
    };
    let takeover = up.takes_over(&device.identity_key);
    if !verify(up.signing_identity(&device.identity_key)) {
        return Ok(Err(UploadRejection::InvalidSignature));
    }
    let stored_spks = signed_prekeys(t, device_id)?;
    let mut batch = t.db.batch();
    let spk = &up.signed_prekey;
    if takeover {
        for old in &stored_spks {
            batch.remove(&t.signed_prekeys, device_key(device_id, old.key_id));
        }
        for (key_id, _) in one_time_prekeys(t, device_id)? {
            batch.remove(&t.one_time_prekeys, device_key(device_id, key_id));
        }
        wipe_mailbox(t, &mut batch, device_id)?;
        if let Some((key, registration_id)) = up.identity.clone() {
            device.identity_key = key;
            device.registration_id = registration_id;
        }
        batch.insert(
            &t.devices,
            device_id.as_bytes().to_vec(),
            DeviceValue::from_record(&device).encode_to_vec(),
        );
        batch.insert(
            &t.signed_prekeys,
            device_key(device_id, spk.key_id),
            SignedPreKeyValue::from_record(spk).encode_to_vec(),
        );
        insert_one_time(t, &mut batch, device_id, &up.one_time_prekeys);
    } else {
        if let Err(rejection) = up.check_signed_prekey_id(stored_spks.iter().map(|k| k.key_id)) {
            return Ok(Err(rejection));
        }
        refill(t, &mut batch, device_id, &up, &stored_spks)?;
    }
    batch.commit().map_err(backend)?;
    Ok(Ok(if takeover {
        UploadOutcome::TookOver
    } else {
        UploadOutcome::Refilled
    }))
}

/// Prunes the oldest one-time prekeys beyond the cap, rotates the signed
/// prekey (only the new one remains) and adds the new one-time prekeys,
/// skipping ids the device already has.
fn refill(
    t: &Tables,
    batch: &mut fjall::OwnedWriteBatch,
    device: Uuid,
    up: &KeyUpload,
    stored_spks: &[SignedPreKey],
) -> Result<(), StoreError> {
    let stored = one_time_prekeys(t, device)?;
    let (pruned, fresh) = up.refill_plan(stored.iter().map(|(id, v)| (*id, v.uploaded_seq)).collect());
    for key_id in pruned {
        batch.remove(&t.one_time_prekeys, device_key(device, key_id));
    }
    insert_one_time(t, batch, device, &fresh);
    let spk = &up.signed_prekey;
    batch.insert(
        &t.signed_prekeys,
        device_key(device, spk.key_id),
        SignedPreKeyValue::from_record(spk).encode_to_vec(),
    );
    for old in stored_spks {
        batch.remove(&t.signed_prekeys, device_key(device, old.key_id));
    }
    Ok(())
}

fn take_bundle(t: &Tables, device_id: Uuid) -> Result<Option<Bundle>, StoreError> {
    let Some(device) = load_device(t, device_id)? else {
        return Ok(None);
    };
    let Some(signed_prekey) = signed_prekeys(t, device_id)?.into_iter().max_by_key(|k| k.key_id) else {
        return Ok(None);
    };
    let pool = one_time_prekeys(t, device_id)?;
    let one_time_prekey = match pool.first() {
        Some((key_id, value)) => {
            let mut batch = t.db.batch();
            batch.remove(&t.one_time_prekeys, device_key(device_id, *key_id));
            batch.commit().map_err(backend)?;
            let public_key = PublicKey::from_bytes(&value.public_key).map_err(|_| corrupt("one_time_prekeys"))?;
            Some(OneTimePreKey {
                key_id: *key_id,
                public_key,
            })
        }
        None => None,
    };
    Ok(Some(Bundle {
        device,
        signed_prekey,
        one_time_prekey,
        remaining: pool.len().saturating_sub(1),
    }))
}

impl Keys for EmbeddedStore {
    fn signed_prekeys(&self, device_id: Uuid) -> StoreFuture<'_, Vec<SignedPreKey>> {
        self.read(move |t| signed_prekeys(t, device_id))
    }

    fn one_time_prekey_count(&self, device_id: Uuid) -> StoreFuture<'_, usize> {
        self.read(move |t| Ok(Tables::keys_with_prefix(&t.one_time_prekeys, device_id.as_bytes())?.len()))
    }

    fn upload_keys(
        &self,
        device_id: Uuid,
        upload_: KeyUpload,
        verify: SignatureCheck,
    ) -> StoreFuture<'_, Result<UploadOutcome, UploadRejection>> {
        self.write(move |w| {
            let outcome = upload(w, device_id, upload_, verify)?;
            if outcome == Ok(UploadOutcome::TookOver) {
                w.mailboxes.forget(device_id);
            }
            Ok(outcome)
        })
    }

    fn take_bundle(&self, device_id: Uuid) -> StoreFuture<'_, Option<Bundle>> {
        self.write(move |t| take_bundle(t, device_id))
    }
}
