//! `PUT /v1/push-tokens` (BEHAVIOR.md §11.1): the calling device's push
//! token, replaced on every call. Checked on the trimmed value (not empty,
//! at most 4096 bytes) and stored as sent, in one store call from the
//! shard that took the request.

use http::StatusCode;
use serde::Deserialize;

use super::context::RequestCtx;
use super::error::ApiError;
use super::json;
use crate::http::{Body, Response};
use crate::limits::PUSH_TOKEN_BYTES_MAX;

#[derive(Deserialize)]
pub(super) struct PushTokenRequest {
    token: String,
}

/// Checks a token's trimmed value.
fn validate(token: &str) -> Result<(), ApiError> {
    let trimmed = token.trim();
    if trimmed.is_empty() {
        return Err(ApiError::BadRequest("Token cannot be empty".into()));
    }
    if trimmed.len() > PUSH_TOKEN_BYTES_MAX {
        return Err(ApiError::BadRequest(format!(
            "Token is too long (max {PUSH_TOKEN_BYTES_MAX} characters)"
        )));
    }
    Ok(())
}

/// `PUT /v1/push-tokens`.
pub async fn put(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let (_, device) = ctx.calling_device()?;
    let req: PushTokenRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    validate(&req.token)?;
    if !ctx.app.store.set_push_token(device, req.token).await? {
        // A still-valid token of a deleted device.
        return Err(ApiError::Unauthorized);
    }
    // Other nodes that cached the device without a token schedule its
    // wake-ups from now on.
    ctx.app.device_changed(device);
    Ok(Response::empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimmed_value_is_checked() {
        assert!(validate("tok").is_ok());
        assert!(validate("  \t ").is_err());
        assert!(validate(&"a".repeat(PUSH_TOKEN_BYTES_MAX)).is_ok());
        assert!(validate(&format!("  {}  ", "a".repeat(PUSH_TOKEN_BYTES_MAX))).is_ok());
        assert!(validate(&"a".repeat(PUSH_TOKEN_BYTES_MAX + 1)).is_err());
    }
}
