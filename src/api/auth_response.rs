//! The `AuthResponse` that every token-issuing route answers with
//! (registration, login, refresh, device creation, password change): a
//! fresh access token, a refresh token and its stored record, both at the
//! principal's token generation.

use http::StatusCode;
use serde::Serialize;
use uuid::Uuid;

use super::context::RequestCtx;
use super::error::ApiError;
use crate::auth::refresh::RefreshToken;
use crate::auth::tokens::Principal;
use crate::http::Response;
use crate::store::RefreshRecord;
use crate::util::time::now_secs;

/// The body of every token-issuing answer.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthResponse {
    token: String,
    refresh_token: String,
    expires_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    device_id: Option<Uuid>,
}

/// A new refresh token for `principal` in `family`, and its stored record.
pub fn new_refresh(
    ctx: &RequestCtx<'_>,
    principal: Principal,
    family: Uuid,
) -> Result<(RefreshToken, RefreshRecord), ApiError> {
    let token = RefreshToken::generate().map_err(|e| ApiError::internal(std::io::Error::other(e.to_string())))?;
    let ttl_secs = ctx.app.config.auth_refresh_token_ttl_days.saturating_mul(86_400);
    let record = RefreshRecord {
        hash: token.hash(),
        user_id: principal.user_id,
        device_id: principal.device_id,
        family,
        expires_at_secs: now_secs().saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 2)),
        generation: principal.generation,
        user_scope_generation: principal.user_scope,
    };
    Ok((token, record))
}

/// The `AuthResponse` for `principal` with a fresh access token.
pub fn auth_response(
    ctx: &RequestCtx<'_>,
    status: StatusCode,
    principal: Principal,
    refresh: RefreshToken,
) -> Response {
    let issued = ctx.app.tokens.issue(principal, now_secs());
    Response::json(
        status,
        &AuthResponse {
            token: issued.token,
            refresh_token: refresh.0,
            expires_at: issued.expires_at,
            device_id: principal.device_id,
        },
    )
}
