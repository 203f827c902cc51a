//! `POST /v1/sessions` (login), `DELETE /v1/sessions` (logout) and
//! `POST /v1/sessions/refresh` (rotation), BEHAVIOR.md §4.3–4.6.
//!
//! Login failures look the same whether or not the user exists: same status
//! and body, and the same argon2 cost (a dummy hash is verified, through
//! [`super::credentials::verify_password`]); a deleted account is an
//! unknown one, and so are the refresh tokens it had.
//! Refresh tokens rotate on every use; a reused one revokes its family.
//! A user registered through the legacy API who logs in without a device id
//! gets a token bound to their primary device (BEHAVIOR.md §17.2 item 3).

use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::auth_response::{auth_response, new_refresh};
use super::context::RequestCtx;
use super::credentials::verify_password;
use super::error::ApiError;
use super::json;
use super::primary_device::primary_device;
use crate::auth::refresh::hash_text;
use crate::auth::tokens::Principal;
use crate::http::{Body, Response};
use crate::metrics::Counter;
use crate::store::{Rotation, StoreError};
use crate::util::time::now_secs;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LoginRequest {
    username: String,
    password: String,
    device_id: Option<String>,
}

/// `POST /v1/sessions`.
pub async fn login(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let req: LoginRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let device_id = match req.device_id.as_deref() {
        Some(text) => Some(Uuid::parse_str(text).map_err(|_| ApiError::BadRequest("Invalid device_id".into()))?),
        None => None,
    };
    let user = ctx.app.store.user_by_name(&req.username.to_lowercase()).await?;
    let Some(user) = verify_password(ctx, user, req.password).await? else {
        return Err(ApiError::Unauthorized);
    };
    let device = match device_id {
        Some(id) => ctx
            .app
            .store
            .device(id)
            .await?
            .filter(|d| d.user_id == user.id)
            .map(|d| d.id),
        // A legacy client's login is bound to its account's one device.
        None if user.legacy => primary_device(ctx.app.store.as_ref(), user.id).await?,
        None => None,
    };
    let principal = Principal {
        user_id: user.id,
        device_id: device,
        generation: user.token_generation,
        user_scope: user.user_scope_generation,
    };
    let (token, record) = new_refresh(ctx, principal, Uuid::new_v4())?;
    match ctx.app.store.insert_refresh(record).await {
        Ok(()) => {}
        // Deleted or its password changed since it was read: as unknown.
        Err(StoreError::AccountChanged) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    }
    ctx.count(Counter::Logins);
    Ok(auth_response(ctx, StatusCode::OK, principal, token))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RefreshRequest {
    refresh_token: String,
}

/// `POST /v1/sessions/refresh`.
pub async fn refresh(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let req: RefreshRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let presented = hash_text(&req.refresh_token);
    let placeholder = Principal {
        user_id: Uuid::nil(),
        device_id: None,
        generation: 0,
        user_scope: 0,
    };
    let (next, next_record) = new_refresh(ctx, placeholder, Uuid::nil())?;
    let rotation = ctx
        .app
        .store
        .rotate_refresh(presented, next_record.hash, now_secs(), next_record.expires_at_secs)
        .await?;
    match rotation {
        Rotation::Rotated(spent) => {
            ctx.count(Counter::TokenRefreshes);
            let principal = Principal {
                user_id: spent.user_id,
                device_id: spent.device_id,
                generation: spent.generation,
                user_scope: spent.user_scope_generation,
            };
            Ok(auth_response(ctx, StatusCode::OK, principal, next))
        }
        Rotation::Reused => {
            tracing::warn!("refresh token reused: its session family is revoked");
            Err(ApiError::Unauthorized)
        }
        Rotation::Unknown | Rotation::Expired => Err(ApiError::Unauthorized),
    }
}

/// `DELETE /v1/sessions`.
pub async fn logout(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: RefreshRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    ctx.app
        .store
        .revoke_refresh(principal.user_id, hash_text(&req.refresh_token))
        .await?;
    ctx.count(Counter::Logouts);
    Ok(Response::empty(StatusCode::OK))
}
