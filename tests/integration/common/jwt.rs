//! Reading the claims of the server's access tokens, and making HS256 tokens by hand (HMAC over
//! `sha2`) so tests can present expired, foreign-secret or oddly-shaped tokens without waiting
//! for real ones to expire.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256, Sha512};

/// The claims (payload) of a JWT, without checking its signature.
pub fn claims(token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let payload = token.split('.').nth(1).ok_or_else(|| format!("not a JWT: {token:?}"))?;
    let bytes = URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// The header of a JWT.
pub fn header(token: &str) -> Result<Value, Box<dyn std::error::Error>> {
    let head = token.split('.').next().ok_or("empty token")?;
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head)?)?)
}

fn hmac<D: Digest>(block: usize, key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut k = if key.len() > block {
        D::digest(key).to_vec()
    } else {
        key.to_vec()
    };
    k.resize(block, 0);
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let mut inner = D::new();
    inner.update(&ipad);
    inner.update(msg);
    let inner = inner.finalize();
    let mut outer = D::new();
    outer.update(&opad);
    outer.update(inner);
    outer.finalize().to_vec()
}

pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> Vec<u8> {
    hmac::<Sha256>(64, key, msg)
}

/// A compact JWS with the given header and claims, signed with HS256 or HS512 per `header.alg`
/// (any other alg gets an empty signature).
pub fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => hmac_sha256(secret.as_bytes(), signing_input.as_bytes()),
        Some("HS512") => hmac::<Sha512>(128, secret.as_bytes(), signing_input.as_bytes()),
        _ => Vec::new(),
    };
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// An HS256 token like the server's: `sub`, optional `device_id`, `exp`.
pub fn token(secret: &str, sub: &str, device_id: Option<&str>, exp: i64) -> String {
    let mut claims = json!({"sub": sub, "exp": exp});
    if let Some(d) = device_id {
        claims["device_id"] = json!(d);
    }
    sign(&json!({"typ": "JWT", "alg": "HS256"}), &claims, secret)
}

#[test]
fn harness_hmac_sha256_matches_rfc4231() {
    // Goal: the hand-made HMAC is right, so a 401 for a crafted token means the server rejected
    // it for the intended reason. Method: RFC 4231 test case 2.
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}
