//! JSON request bodies (BEHAVIOR.md §3.2): the content type must be
//! `application/json` or `application/*+json` (parameters allowed) → else
//! 415; the body is bounded → 413; every other rejection of the body is a
//! 400, as the contract says: an empty body, a syntax error, and valid JSON
//! of the wrong shape (not an object, a missing or mistyped field, an
//! integer out of range; the reference answers 422 for those). The texts
//! keep the reference's two prefixes, so a client can still tell syntax
//! from shape. Unknown fields are ignored; `null` equals absent.

use http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::http::{Body, RequestHead};

fn is_json(head: &RequestHead) -> bool {
    let Some(value) = head.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads and decodes a JSON body of at most `limit` bytes.
pub async fn read<T: DeserializeOwned>(head: &RequestHead, body: &mut Body<'_>, limit: usize) -> Result<T, ApiError> {
    if !is_json(head) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let bytes = body.read_to_vec(limit).await?;
    decode(&bytes)
}

/// Decodes JSON bytes: the syntax of the whole body is checked first
/// (without building anything), so a body that is not JSON is always
/// reported as such, whatever fields it lacks; then that it is an object;
/// then its shape.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    std::str::from_utf8(bytes)
        .map_err(|e| ApiError::BadRequest(format!("Failed to parse the request body as JSON: not UTF-8: {e}")))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| ApiError::BadRequest(format!("Failed to parse the request body as JSON: {e}")))?;
    // serde would read a struct from an array too, field by field.
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(ApiError::BadShape("the body is not a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::BadShape(e.to_string()))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        a: i32,
    }

    #[test]
    fn syntax_and_shape_are_400() {
        assert!(decode::<Shape>(br#"{"a": 1, "extra": true}"#).is_ok());
        assert!(matches!(decode::<Shape>(b"{not json"), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode::<Shape>(b""), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode::<Shape>(br#"{"a": "x"}"#), Err(ApiError::BadShape(_))));
        assert!(matches!(decode::<Shape>(br#"{}"#), Err(ApiError::BadShape(_))));
        assert!(matches!(
            decode::<Shape>(br#"{"a": 4294967296}"#),
            Err(ApiError::BadShape(_))
        ));
        assert!(matches!(decode::<Shape>(b"[1]"), Err(ApiError::BadShape(_))));
        assert!(matches!(decode::<Shape>(b" \n[1]"), Err(ApiError::BadShape(_))));
        assert!(decode::<Shape>(b" \r\n{\"a\": 1}").is_ok());
        for body in [&b"{not json"[..], b"", br#"{}"#, b"[1]"] {
            assert_eq!(decode::<Shape>(body).unwrap_err().status().as_u16(), 400);
        }
    }
}
