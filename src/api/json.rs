//! JSON request bodies (BEHAVIOR.md §3.2): the content type must be
//! `application/json` or `application/*+json` (parameters allowed) → else
//! 415; the body is bounded → 413; syntax errors → 400; valid JSON of the
//! wrong shape → 422. Unknown fields are ignored; `null` equals absent.

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

/// As [`read`], but the body must be a JSON object (serde would also take
/// an array for a struct) and a body of the wrong shape is a 400 too: the
/// account routes' contract (`/v1/users/me…`) has no 422.
pub async fn read_object_400<T: DeserializeOwned>(
    head: &RequestHead,
    body: &mut Body<'_>,
    limit: usize,
) -> Result<T, ApiError> {
    let shape_400 = |e: ApiError| match e {
        ApiError::Unprocessable(_) => ApiError::BadRequest(e.to_string()),
        other => other,
    };
    let object: serde_json::Map<String, serde_json::Value> = read(head, body, limit).await.map_err(shape_400)?;
    serde_json::from_value(serde_json::Value::Object(object))
        .map_err(|e| shape_400(ApiError::Unprocessable(e.to_string())))
}

/// Decodes JSON bytes with the 400/422 split: the syntax of the whole body
/// is checked first (without building anything), so a body that is not JSON
/// is always a 400, whatever fields it lacks.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    std::str::from_utf8(bytes)
        .map_err(|e| ApiError::BadRequest(format!("Failed to parse the request body as JSON: not UTF-8: {e}")))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| ApiError::BadRequest(format!("Failed to parse the request body as JSON: {e}")))?;
    serde_json::from_slice(bytes).map_err(|e| ApiError::Unprocessable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Shape {
        a: i32,
    }

    #[test]
    fn syntax_is_400_and_shape_is_422() {
        assert!(decode::<Shape>(br#"{"a": 1, "extra": true}"#).is_ok());
        assert!(matches!(decode::<Shape>(b"{not json"), Err(ApiError::BadRequest(_))));
        assert!(matches!(decode::<Shape>(b""), Err(ApiError::BadRequest(_))));
        assert!(matches!(
            decode::<Shape>(br#"{"a": "x"}"#),
            Err(ApiError::Unprocessable(_))
        ));
        assert!(matches!(decode::<Shape>(br#"{}"#), Err(ApiError::Unprocessable(_))));
        assert!(matches!(
            decode::<Shape>(br#"{"a": 4294967296}"#),
            Err(ApiError::Unprocessable(_))
        ));
    }
}
