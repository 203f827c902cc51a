//! Public-key material as the API carries it: base64 of 33-byte
//! type-prefixed Curve25519 keys and 64-byte signatures
//! ([`public_key`]), and the XEdDSA check of signed prekeys ([`xeddsa`]).
//! The server never holds a private key.

pub mod public_key;
pub mod xeddsa;
