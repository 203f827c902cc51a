//! Decoding keys and signatures from the JSON API (BEHAVIOR.md §6.1):
//! standard base64 with padding, canonical trailing bits; public keys are
//! exactly 33 bytes starting with 0x05 (the "DJB" type byte); signatures are
//! exactly 64 bytes. Error texts are the reference server's.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// Length of a type-prefixed Curve25519 public key.
pub const PUBLIC_KEY_BYTES: usize = 33;
/// The type byte of a Curve25519 ("DJB") key.
pub const DJB_TYPE: u8 = 0x05;
/// Length of an XEdDSA signature.
pub const SIGNATURE_BYTES: usize = 64;

/// A 33-byte type-prefixed Curve25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; PUBLIC_KEY_BYTES]);

/// A 64-byte signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature(pub [u8; SIGNATURE_BYTES]);

/// Why a key or signature was refused; `Display` is the client-facing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not canonical standard base64.
    #[error("{0}")]
    Base64(String),
    /// Decoded to the wrong number of bytes.
    #[error("Invalid key length: {0} (expected 33 bytes with 0x05 prefix)")]
    Length(usize),
    /// First byte is not 0x05.
    #[error("Invalid key prefix (expected 0x05)")]
    Prefix,
    /// A signature of the wrong length.
    #[error("Invalid signature length: {0} (expected 64)")]
    SignatureLength(usize),
}

fn decode(text: &str) -> Result<Vec<u8>, KeyError> {
    STANDARD.decode(text).map_err(|e| KeyError::Base64(e.to_string()))
}

impl PublicKey {
    /// Decodes and checks a base64 public key.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        Self::from_bytes(&decode(text)?)
    }

    /// Checks raw key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; PUBLIC_KEY_BYTES] = bytes.try_into().map_err(|_| KeyError::Length(bytes.len()))?;
        if array[0] != DJB_TYPE {
            return Err(KeyError::Prefix);
        }
        Ok(Self(array))
    }

    /// The 32-byte Montgomery u-coordinate.
    pub fn montgomery_u(&self) -> [u8; 32] {
        let mut u = [0u8; 32];
        u.copy_from_slice(&self.0[1..]);
        u
    }

    /// Standard base64 with padding, as stored.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl Signature {
    /// Decodes and checks a base64 signature.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = decode(text)?;
        let array: [u8; SIGNATURE_BYTES] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::SignatureLength(bytes.len()))?;
        Ok(Self(array))
    }

    /// Checks raw signature bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; SIGNATURE_BYTES] = bytes.try_into().map_err(|_| KeyError::SignatureLength(bytes.len()))?;
        Ok(Self(array))
    }

    /// Standard base64 with padding, as stored.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_the_reference() {
        let mut key = [0x05u8; 33];
        key[1] = 9;
        let text = STANDARD.encode(key);
        assert_eq!(PublicKey::from_base64(&text).unwrap().to_base64(), text);
        assert_eq!(
            PublicKey::from_base64(&STANDARD.encode([5u8; 32])),
            Err(KeyError::Length(32))
        );
        let mut wrong = key;
        wrong[0] = 0x04;
        assert_eq!(PublicKey::from_base64(&STANDARD.encode(wrong)), Err(KeyError::Prefix));
        assert_eq!(
            PublicKey::from_base64("!!!!"),
            Err(KeyError::Base64("Invalid symbol 33, offset 0.".into()))
        );
        assert!(matches!(PublicKey::from_base64("BQ"), Err(KeyError::Base64(_))));
        assert_eq!(
            Signature::from_base64(&STANDARD.encode([0u8; 63])),
            Err(KeyError::SignatureLength(63))
        );
        assert!(Signature::from_base64(&STANDARD.encode([0u8; 64])).is_ok());
    }
}
