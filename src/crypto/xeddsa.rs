//! XEdDSA verification of signed prekeys (BEHAVIOR.md §6.2): the identity key
//! is a Montgomery (X25519) key; its Edwards form is tried with both sign
//! bits, over the 33-byte and the 32-byte form of the signed key, with
//! standard cofactorless Ed25519 verification of the signature whose top bit
//! (XEdDSA's sign bit) is cleared.

use curve25519_dalek::montgomery::MontgomeryPoint;
use ed25519_dalek::{Verifier, VerifyingKey};

use super::public_key::{PublicKey, Signature};

/// Whether `signature` is an XEdDSA signature by `identity` over `signed`
/// (in either of its two encodings).
pub fn verify_signed_prekey(identity: &PublicKey, signed: &PublicKey, signature: &Signature) -> bool {
    let mut sig = signature.0;
    sig[63] &= 0x7f;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    let u = MontgomeryPoint(identity.montgomery_u());
    let messages: [&[u8]; 2] = [&signed.0, &signed.0[1..]];
    messages.iter().any(|message| {
        [0u8, 1].iter().any(|&sign| {
            let Some(edwards) = u.to_edwards(sign) else {
                return false;
            };
            let Ok(key) = VerifyingKey::from_bytes(&edwards.compress().to_bytes()) else {
                return false;
            };
            key.verify(message, &sig).is_ok()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn identity(seed: u8) -> (SigningKey, PublicKey) {
        let signing = SigningKey::from_bytes(&[seed; 32]);
        let mut key = [0x05u8; 33];
        key[1..].copy_from_slice(&signing.verifying_key().to_montgomery().to_bytes());
        (signing, PublicKey(key))
    }

    #[test]
    fn accepts_both_encodings_and_both_sign_bits() {
        let signed = PublicKey([0x05; 33]);
        for seed in 1..8u8 {
            let (signing, identity) = identity(seed);
            let over33 = Signature(signing.sign(&signed.0).to_bytes());
            let over32 = Signature(signing.sign(&signed.0[1..]).to_bytes());
            assert!(verify_signed_prekey(&identity, &signed, &over33));
            assert!(verify_signed_prekey(&identity, &signed, &over32));
            let mut flagged = over33.clone();
            flagged.0[63] |= 0x80;
            assert!(verify_signed_prekey(&identity, &signed, &flagged));
        }
    }

    #[test]
    fn rejects_wrong_key_message_or_zero_signature() {
        let signed = PublicKey([0x05; 33]);
        let (signing, identity_key) = identity(3);
        let (_, other) = identity(4);
        let sig = Signature(signing.sign(&signed.0).to_bytes());
        assert!(!verify_signed_prekey(&other, &signed, &sig));
        let mut changed = signed.clone();
        changed.0[5] = 1;
        assert!(!verify_signed_prekey(&identity_key, &changed, &sig));
        assert!(!verify_signed_prekey(&identity_key, &signed, &Signature([0; 64])));
    }
}
