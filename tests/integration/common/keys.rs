//! Key material for `POST /v1/devices`. An identity key is the Montgomery form of an Ed25519
//! key (`0x05 ‖ u`), and the signed prekey is signed with that Ed25519 key, which is what an
//! XEdDSA verifier (BEHAVIOR §6.2) accepts. Everything is deterministic from a one-byte seed.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

/// Standard base64 with padding, the API's encoding for keys and signatures.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A base64 "key" of `len` bytes whose first byte is `prefix` (the rest 0x05), for bad-key cases.
pub fn b64_key(len: usize, prefix: u8) -> String {
    let mut k = vec![0x05u8; len];
    if let Some(first) = k.first_mut() {
        *first = prefix;
    }
    b64(&k)
}

/// The public key an OTPK may carry: 33 bytes of 0x05 (no curve check is made at upload).
pub fn otpk_public() -> String {
    b64_key(33, 0x05)
}

/// `n` one-time prekeys with ids `first..first+n`.
pub fn otpks(first: i32, n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"keyId": first + i as i32, "publicKey": otpk_public()}))
            .collect(),
    )
}

/// What the SPK signature is computed over (§6.2 accepts both).
#[derive(Clone, Copy, Debug)]
pub enum SignOver {
    /// The 33-byte wire form with the 0x05 prefix (what libsignal signs).
    Prefixed33,
    /// The 32-byte raw u-coordinate.
    Raw32,
}

pub struct DeviceKeys {
    pub identity: SigningKey,
    /// The signed prekey's public key, 33 bytes with the 0x05 prefix.
    pub spk_public: [u8; 33],
    pub spk_key_id: i32,
    pub registration_id: i32,
}

/// `0x05 ‖ Montgomery u` of an Ed25519 signing key.
pub fn curve_public(key: &SigningKey) -> [u8; 33] {
    let mut out = [0x05u8; 33];
    out[1..].copy_from_slice(&key.verifying_key().to_montgomery().to_bytes());
    out
}

impl DeviceKeys {
    pub fn new(seed: u8) -> Self {
        let identity = SigningKey::from_bytes(&[seed; 32]);
        let spk = SigningKey::from_bytes(&[seed.wrapping_add(100); 32]);
        DeviceKeys {
            identity,
            spk_public: curve_public(&spk),
            spk_key_id: 1,
            registration_id: 4242,
        }
    }

    /// Keys whose Ed25519 public key has the given sign bit (bit 255 of its compressed form), so
    /// tests can cover both branches of the XEdDSA verifier.
    pub fn with_edwards_sign(bit: u8) -> Self {
        for seed in 1..=255u8 {
            let keys = Self::new(seed);
            if keys.identity.verifying_key().as_bytes()[31] >> 7 == bit {
                return keys;
            }
        }
        unreachable!("half of all keys have each sign bit")
    }

    pub fn identity_key(&self) -> [u8; 33] {
        curve_public(&self.identity)
    }

    pub fn sign_spk(&self, over: SignOver) -> [u8; 64] {
        let msg: &[u8] = match over {
            SignOver::Prefixed33 => &self.spk_public,
            SignOver::Raw32 => &self.spk_public[1..],
        };
        self.identity.sign(msg).to_bytes()
    }

    /// A valid `CreateDeviceRequest` with `n` OTPKs (ids 1..=n) and the SPK signed over its
    /// 33-byte form. Tests mutate the returned value for their bad-input variants.
    pub fn request(&self, n_otpk: usize) -> Value {
        self.request_signed_over(n_otpk, SignOver::Prefixed33)
    }

    pub fn request_signed_over(&self, n_otpk: usize, over: SignOver) -> Value {
        self.request_with_signature(n_otpk, &self.sign_spk(over))
    }

    pub fn request_with_signature(&self, n_otpk: usize, signature: &[u8]) -> Value {
        json!({
            "identityKey": b64(&self.identity_key()),
            "registrationId": self.registration_id,
            "signedPreKey": {
                "keyId": self.spk_key_id,
                "publicKey": b64(&self.spk_public),
                "signature": b64(signature),
            },
            "oneTimePreKeys": otpks(1, n_otpk),
        })
    }
}

/// A valid device-creation body (seed 1) with `n` OTPKs.
pub fn valid_device_request(n_otpk: usize) -> Value {
    DeviceKeys::new(1).request(n_otpk)
}
