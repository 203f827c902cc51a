//! HS256 access tokens (BEHAVIOR.md §3.3): claims `sub` (user), optional
//! `device_id` (device scope), `exp`; accepted until `exp + 60 s`; any other
//! algorithm, a bad signature, an `aud` claim or a non-UUID subject is
//! refused. Verification is pure CPU work of a few microseconds and runs on
//! the shard.
//!
//! Our own claim `gen` carries the account's token generation at issue
//! (absent when 0, so tokens of accounts whose password never changed look
//! as before, and tokens without it count as generation 0): a password
//! change raises the account's generation, and the node refuses tokens
//! below it (`crate::node::revocations`) — within the second of the change
//! too, which an issue time in seconds could not tell. Our claim `ugen`
//! carries the account's user-scope generation (absent when 0): deleting a
//! device raises it, and the node refuses user-scoped tokens below it, so a
//! user-scoped token kept by a stolen device dies with the device.
//!
//! Keys rotate without logging anyone out: a token's header names its key
//! (`kid`, [`key_id`] of the secret, the same on every node); tokens are
//! signed with the current key and verified with the key their `kid` names,
//! the current one or a previous one still listed. A token without `kid`
//! (from before kids) is tried with the current key, then each previous one.

use std::fmt;

use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, TokenData, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Leeway on `exp`, seconds (the reference server's).
pub const EXP_LEEWAY_SECS: u64 = 60;

/// The identity a valid access token carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user (`sub`).
    pub user_id: Uuid,
    /// The device, for device-scoped tokens.
    pub device_id: Option<Uuid>,
    /// The account's token generation the token was issued at (`gen`).
    pub generation: u32,
    /// The account's user-scope generation the token was issued at
    /// (`ugen`); it matters for user-scoped tokens only.
    pub user_scope: u32,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_id: Option<Uuid>,
    exp: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    gen: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    ugen: u32,
}

fn is_zero(generation: &u32) -> bool {
    *generation == 0
}

/// A freshly issued access token. `Debug` redacts the token.
pub struct IssuedToken {
    /// The compact JWS.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a token was refused (always answered 401).
#[derive(Debug, thiserror::Error)]
#[error("invalid access token: {0}")]
pub struct InvalidToken(#[source] jsonwebtoken::errors::Error);

/// The key id (`kid`) of `secret`: the first
/// [`crate::limits::AUTH_JWT_KEY_ID_BYTES`] bytes of its SHA-256, in hex.
/// Every node computes the same one, and it tells nothing of the secret.
pub fn key_id(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest
        .iter()
        .take(crate::limits::AUTH_JWT_KEY_ID_BYTES)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The header of the tokens a key signs: HS256 with its `kid`.
fn signing_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(kid.to_string());
    header
}

/// One verifying key, its id, and the header it signs with.
struct VerifyingKey {
    kid: String,
    decoding: DecodingKey,
    /// The first part of the tokens it signs (HS256 with its `kid`),
    /// encoded: a token that starts with it needs no header decode.
    header_part: String,
}

impl VerifyingKey {
    fn new(secret: &str) -> Self {
        let kid = key_id(secret);
        let key = EncodingKey::from_secret(secret.as_bytes());
        let sample = jsonwebtoken::encode(&signing_header(&kid), &(), &key);
        let header_part = sample
            .unwrap_or_default()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_string();
        Self {
            kid,
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            header_part,
        }
    }
}

/// Signs access tokens with the current secret and verifies them with it
/// and the previous ones. `Debug` redacts keys.
pub struct TokenKeys {
    encoding: EncodingKey,
    /// HS256 with the current key's `kid`.
    header: Header,
    current: VerifyingKey,
    previous: Vec<VerifyingKey>,
    validation: Validation,
    ttl_secs: i64,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("secret", &"<redacted>")
            .field("kid", &self.current.kid)
            .field("previous", &self.previous.len())
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl TokenKeys {
    /// Keys for `secret` (its UTF-8 bytes) issuing tokens valid `ttl_secs`.
    pub fn new(secret: &str, ttl_secs: u64) -> Self {
        Self::rotating(secret, &[], ttl_secs)
    }

    /// Keys signing with `secret` and verifying with it and `previous`
    /// (UTF-8 bytes each), issuing tokens valid `ttl_secs`.
    pub fn rotating(secret: &str, previous: &[&str], ttl_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = EXP_LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp"]);
        validation.validate_nbf = false;
        let current = VerifyingKey::new(secret);
        // A previous key listed twice, or equal to the current one, is kept once.
        let mut kept: Vec<VerifyingKey> = Vec::with_capacity(previous.len());
        for key in previous.iter().map(|secret| VerifyingKey::new(secret)) {
            if key.kid != current.kid && kept.iter().all(|k| k.kid != key.kid) {
                kept.push(key);
            }
        }
        Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            header: signing_header(&current.kid),
            current,
            previous: kept,
            validation,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2),
        }
    }

    /// The current key's id.
    pub fn key_id(&self) -> &str {
        &self.current.kid
    }

    /// How many previous keys are still accepted.
    pub fn previous_count(&self) -> usize {
        self.previous.len()
    }

    /// Issues a token for `principal` expiring `ttl` from `now_secs`.
    pub fn issue(&self, principal: Principal, now_secs: i64) -> IssuedToken {
        let expires_at = now_secs.saturating_add(self.ttl_secs);
        let claims = Claims {
            sub: principal.user_id,
            device_id: principal.device_id,
            exp: expires_at,
            gen: principal.generation,
            ugen: principal.user_scope,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding).unwrap_or_default();
        IssuedToken { token, expires_at }
    }

    /// Verifies a token and returns whom it names.
    pub fn verify(&self, token: &str) -> Result<Principal, InvalidToken> {
        let data = self.decode(token).map_err(InvalidToken)?;
        Ok(Principal {
            user_id: data.claims.sub,
            device_id: data.claims.device_id,
            generation: data.claims.gen,
            user_scope: data.claims.ugen,
        })
    }

    /// Checks `token` with the key its `kid` names. With one key the header
    /// is not read: a wrong `kid` cannot come with a right signature. With
    /// more, a header as this server writes it is recognized as it is;
    /// only another one is decoded.
    fn decode(&self, token: &str) -> Result<TokenData<Claims>, JwtError> {
        let decode = |key: &VerifyingKey| jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation);
        if self.previous.is_empty() {
            return decode(&self.current);
        }
        let mut keys = std::iter::once(&self.current).chain(&self.previous);
        let header_part = token.split('.').next().unwrap_or_default();
        if let Some(key) = keys.clone().find(|key| key.header_part == header_part) {
            return decode(key);
        }
        match jsonwebtoken::decode_header(token)?.kid {
            Some(kid) => keys
                .find(|key| key.kid == kid)
                .map_or_else(|| Err(ErrorKind::InvalidSignature.into()), decode),
            // From before kids: the first key whose signature matches decides.
            None => {
                let mut result = Err(ErrorKind::InvalidSignature.into());
                for key in keys {
                    result = decode(key);
                    if !matches!(&result, Err(e) if *e.kind() == ErrorKind::InvalidSignature) {
                        break;
                    }
                }
                result
            }
        }
    }
}

/// Extracts the token of an `Authorization` header value: exactly
/// `Bearer <token>`, visible ASCII.
pub fn bearer_token(header: Option<&http::HeaderValue>) -> Option<&str> {
    let value = header?.to_str().ok()?;
    let token = value.strip_prefix("Bearer ")?;
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_scopes() {
        let keys = TokenKeys::new("secret", 900);
        let user = Principal {
            user_id: Uuid::now_v7(),
            device_id: None,
            generation: 0,
            user_scope: 3,
        };
        let device = Principal {
            user_id: user.user_id,
            device_id: Some(Uuid::now_v7()),
            generation: 7,
            user_scope: 0,
        };
        let now = crate::util::time::now_secs();
        assert_eq!(keys.verify(&keys.issue(user, now).token).unwrap(), user);
        assert_eq!(keys.verify(&keys.issue(device, now).token).unwrap(), device);
        let user_token = keys.issue(user, now).token;
        let payload = user_token.split('.').nth(1).unwrap();
        assert!(!payload.is_empty());
        assert!(!format!("{:?}", keys.issue(user, now)).contains(&user_token));
        use base64::Engine;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        let claims = String::from_utf8(claims).unwrap();
        assert!(!claims.contains("\"gen\""), "generation 0 is left out: {claims}");
        assert!(claims.contains("\"ugen\":3"), "{claims}");
        let device_token = keys.issue(device, now).token;
        let claims = device_token.split('.').nth(1).unwrap();
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap();
        let claims = String::from_utf8(claims).unwrap();
        assert!(claims.contains("\"gen\":7") && !claims.contains("ugen"), "{claims}");
    }

    #[test]
    fn refuses_expired_foreign_and_garbage() {
        let keys = TokenKeys::new("secret", 900);
        let other = TokenKeys::new("other", 900);
        let p = Principal {
            user_id: Uuid::now_v7(),
            device_id: None,
            generation: 0,
            user_scope: 0,
        };
        let now = crate::util::time::now_secs();
        assert!(
            keys.verify(&keys.issue(p, now - 900 - 30).token).is_ok(),
            "within the 60 s leeway"
        );
        assert!(keys.verify(&keys.issue(p, now - 900 - 120).token).is_err());
        assert!(keys.verify(&other.issue(p, now).token).is_err());
        assert!(keys.verify("invalid-token").is_err());
    }

    #[test]
    fn bearer_prefix_is_exact() {
        let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(bearer_token(Some(&v("Bearer abc"))), Some("abc"));
        assert_eq!(bearer_token(Some(&v("bearer abc"))), None);
        assert_eq!(bearer_token(Some(&v("NotBearer abc"))), None);
        assert_eq!(bearer_token(None), None);
    }
}
