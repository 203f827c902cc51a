//! Refresh tokens (BEHAVIOR.md §4.6): 32 random bytes as base64url without
//! padding, stored only as the SHA-256 of that text. Every token belongs to a
//! family (one login, one registration or one device creation); rotation
//! keeps the family, and presenting a token that was already rotated revokes
//! the whole family (reuse detection, which the reference server lacks).

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// A refresh token as handed to the client. `Debug` redacts it.
pub struct RefreshToken(pub String);

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The stored form of a refresh token: SHA-256 of its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl RefreshToken {
    /// A fresh token from the OS CSPRNG.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Its stored hash.
    pub fn hash(&self) -> TokenHash {
        hash_text(&self.0)
    }
}

/// The hash under which a presented token would be stored.
pub fn hash_text(text: &str) -> TokenHash {
    TokenHash(Sha256::digest(text.as_bytes()).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_differ_and_hash_deterministically() {
        let a = RefreshToken::generate().unwrap();
        let b = RefreshToken::generate().unwrap();
        assert_ne!(a.0, b.0);
        assert_eq!(a.0.len(), 43);
        assert_eq!(a.hash(), hash_text(&a.0));
        assert!(!format!("{a:?}").contains(&a.0));
    }
}
