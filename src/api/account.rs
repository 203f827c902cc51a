//! The caller's own account: `GET /v1/users/me`, `PUT
//! /v1/users/me/password` and `DELETE /v1/users/me`, with a user- or
//! device-scoped access token (v1 or legacy). Bodies of the wrong shape are
//! 400 (this contract has no 422).
//!
//! A password change and a deletion check the password like a login
//! ([`verify_password`]: an account that is gone fails as a wrong password
//! does), then are each one store decision, conditional on the token
//! generation the caller was authorized at (a concurrent change or
//! deletion wins; the loser gets 401). After the decision, this node
//! refuses the account's older access tokens at once
//! ([`crate::node::revocations`]) and every device's open sockets close
//! through the event seam (`Disconnect`, as a takeover or a device deletion
//! closes them). A password change answers the caller's new pair, at the
//! new generation and the caller's scope; a deletion starts the deletion of
//! its devices' backup blobs ([`crate::cleanup::accounts`]).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth_response::{auth_response, new_refresh};
use super::context::RequestCtx;
use super::credentials::{validate_password, verify_password};
use super::error::ApiError;
use super::json;
use crate::auth::tokens::Principal;
use crate::gateway::events::DeviceEvent;
use crate::http::{Body, Response};
use crate::metrics::Counter;
use crate::store::{PasswordChange, Revocation, Revoked, TokenFloor, UserRecord};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AccountResponse {
    user_id: Uuid,
    username: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PasswordChangeRequest {
    current_password: String,
    new_password: String,
}

#[derive(Deserialize)]
pub(crate) struct DeletionRequest {
    password: String,
}

/// The caller's account, if it still exists at the token's generation.
async fn current_user(ctx: &RequestCtx<'_>, principal: &Principal) -> Result<Option<UserRecord>, ApiError> {
    let user = ctx.app.store.user(principal.user_id).await?;
    Ok(user.filter(|u| u.token_generation == principal.generation))
}

/// Makes every open socket of `devices` close.
fn disconnect(ctx: &RequestCtx<'_>, devices: &[Uuid]) {
    for device in devices {
        ctx.local.events.raise(*device, DeviceEvent::Disconnect);
    }
}

/// Test builds only (`--test-fault-abort-after-account-deletion`): dies as
/// a crash does, between a deletion's decision and its follow-up.
fn crash_now() {
    // SAFETY: kill(2) on our own pid; SIGKILL ends the process at once
    // (no unwinding, no core dump).
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// `GET /v1/users/me`.
pub async fn get(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let user = current_user(ctx, &principal).await?.ok_or(ApiError::Unauthorized)?;
    Ok(Response::json(
        StatusCode::OK,
        &AccountResponse {
            user_id: user.id,
            username: user.username,
        },
    ))
}

/// `PUT /v1/users/me/password`.
pub async fn change_password(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: PasswordChangeRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    validate_password(&req.new_password)?;
    let user = current_user(ctx, &principal).await?;
    let Some(user) = verify_password(ctx, user, req.current_password).await? else {
        return Err(ApiError::Unauthorized);
    };
    let password_hash = ctx
        .app
        .passwords
        .hash(req.new_password.into())
        .await
        .map_err(ApiError::internal)?;
    let (token, refresh) = new_refresh(ctx, principal, Uuid::new_v4())?;
    let change = PasswordChange {
        user_id: user.id,
        expected_generation: user.token_generation,
        password_hash,
        refresh,
    };
    let Some(changed) = ctx.app.store.change_password(change).await? else {
        return Err(ApiError::Unauthorized);
    };
    let revocation = Revocation {
        revoked: Revoked::Account(user.id, TokenFloor::Generation(changed.generation)),
        at_ms: changed.at_ms,
    };
    ctx.app.revoke(&[revocation]).await;
    disconnect(ctx, &changed.devices);
    ctx.count(Counter::PasswordChanges);
    let renewed = Principal {
        generation: changed.generation,
        ..principal
    };
    Ok(auth_response(ctx, StatusCode::OK, renewed, token))
}

/// `DELETE /v1/users/me`.
pub async fn delete(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: DeletionRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let user = current_user(ctx, &principal).await?;
    let Some(user) = verify_password(ctx, user, req.password).await? else {
        return Err(ApiError::Unauthorized);
    };
    let Some(deletion) = ctx.app.store.delete_account(user.id, user.token_generation).await? else {
        return Err(ApiError::Unauthorized);
    };
    if ctx.app.config.abort_after_account_deletion() {
        crash_now();
    }
    let revocation = Revocation {
        revoked: Revoked::Account(user.id, TokenFloor::Deleted),
        at_ms: deletion.at_ms,
    };
    ctx.app.revoke(&[revocation]).await;
    disconnect(ctx, &deletion.devices);
    ctx.count(Counter::AccountsDeleted);
    ctx.local.count(Counter::DevicesDeleted, deletion.devices.len());
    tracing::info!(devices = deletion.devices.len(), "account deleted");
    let app = ctx.app.clone();
    monoio::spawn(async move { crate::cleanup::accounts::finish(&app, &deletion).await });
    Ok(Response::empty(StatusCode::NO_CONTENT))
}
