//! Prekeys as the JSON API carries them, both ways: the keys a device is
//! created with or uploads (decoded and checked in the reference server's
//! order, BEHAVIOR.md §6.1–6.3: 33-byte 0x05-prefixed keys, 64-byte
//! XEdDSA signatures, unique one-time prekey ids, the batch limit), and the
//! bundles a fetch answers with (§6.4).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use crate::crypto::public_key::{KeyError, PublicKey, Signature};
use crate::crypto::xeddsa::verify_signed_prekey;
use crate::store::{Bundle, OneTimePreKey, SignedPreKey};

/// A signed prekey as the JSON API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPreKeyJson {
    key_id: i32,
    public_key: String,
    signature: String,
}

/// A one-time prekey as the JSON API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimePreKeyJson {
    key_id: i32,
    public_key: String,
}

/// The keys a device is created with, as the JSON API carries them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceKeysJson {
    /// The identity key, base64.
    pub identity_key: String,
    /// Signal registration id.
    pub registration_id: i32,
    /// The signed prekey.
    pub signed_pre_key: SignedPreKeyJson,
    /// The one-time prekeys.
    pub one_time_pre_keys: Vec<OneTimePreKeyJson>,
}

/// A new device's keys, decoded and checked.
pub struct DeviceKeys {
    /// The identity key.
    pub identity_key: PublicKey,
    /// Signal registration id.
    pub registration_id: i32,
    /// The signed prekey.
    pub signed_prekey: SignedPreKey,
    /// The one-time prekeys.
    pub one_time_prekeys: Vec<OneTimePreKey>,
}

impl DeviceKeys {
    /// Decodes the keys in the reference server's order: duplicate ids,
    /// identity key, signed prekey, one-time prekeys.
    pub fn decode(keys: &DeviceKeysJson) -> Result<Self, ApiError> {
        check_unique_ids(&keys.one_time_pre_keys)?;
        Ok(Self {
            identity_key: PublicKey::from_base64(&keys.identity_key).map_err(bad_key)?,
            registration_id: keys.registration_id,
            signed_prekey: decode_signed_prekey(&keys.signed_pre_key)?,
            one_time_prekeys: decode_one_time_prekeys(&keys.one_time_pre_keys)?,
        })
    }

    /// Checks the signature and the one-time prekey batch size.
    pub fn check(&self, pre_keys_max: usize) -> Result<(), ApiError> {
        check_signature_and_batch(
            &self.identity_key,
            &self.signed_prekey,
            self.one_time_prekeys.len(),
            pre_keys_max,
        )
    }
}

fn bad_key(e: KeyError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Rejects duplicate one-time prekey ids (`Duplicate prekey ID: <id>`).
pub fn check_unique_ids(keys: &[OneTimePreKeyJson]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    match keys.iter().find(|k| !seen.insert(k.key_id)) {
        Some(dup) => Err(ApiError::BadRequest(format!("Duplicate prekey ID: {}", dup.key_id))),
        None => Ok(()),
    }
}

/// Decodes a signed prekey (public key, then signature).
pub fn decode_signed_prekey(spk: &SignedPreKeyJson) -> Result<SignedPreKey, ApiError> {
    Ok(SignedPreKey {
        key_id: spk.key_id,
        public_key: PublicKey::from_base64(&spk.public_key).map_err(bad_key)?,
        signature: Signature::from_base64(&spk.signature).map_err(bad_key)?,
    })
}

/// Decodes one-time prekeys in order.
pub fn decode_one_time_prekeys(keys: &[OneTimePreKeyJson]) -> Result<Vec<OneTimePreKey>, ApiError> {
    keys.iter()
        .map(|k| {
            Ok(OneTimePreKey {
                key_id: k.key_id,
                public_key: PublicKey::from_base64(&k.public_key).map_err(bad_key)?,
            })
        })
        .collect()
}

/// Checks the SPK signature and the one-time prekey batch size.
pub fn check_signature_and_batch(
    identity: &PublicKey,
    spk: &SignedPreKey,
    one_time_count: usize,
    pre_keys_max: usize,
) -> Result<(), ApiError> {
    if !verify_signed_prekey(identity, &spk.public_key, &spk.signature) {
        return Err(ApiError::BadRequest("Invalid signature".into()));
    }
    if one_time_count > pre_keys_max {
        return Err(ApiError::BadRequest(format!(
            "Batch too large. Limit is {pre_keys_max}"
        )));
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedPreKeyOut {
    key_id: i32,
    public_key: String,
    signature: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OneTimePreKeyOut {
    key_id: i32,
    public_key: String,
}

/// One bundle as the JSON API carries it (the legacy API omits the device).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleOut {
    /// The device; `None` only in legacy answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    registration_id: i32,
    identity_key: String,
    signed_pre_key: SignedPreKeyOut,
    one_time_pre_key: Option<OneTimePreKeyOut>,
}

impl From<Bundle> for BundleOut {
    fn from(b: Bundle) -> Self {
        Self {
            device_id: Some(b.device.id),
            registration_id: b.device.registration_id,
            identity_key: b.device.identity_key.to_base64(),
            signed_pre_key: SignedPreKeyOut {
                key_id: b.signed_prekey.key_id,
                public_key: b.signed_prekey.public_key.to_base64(),
                signature: b.signed_prekey.signature.to_base64(),
            },
            one_time_pre_key: b.one_time_prekey.map(|k| OneTimePreKeyOut {
                key_id: k.key_id,
                public_key: k.public_key.to_base64(),
            }),
        }
    }
}
