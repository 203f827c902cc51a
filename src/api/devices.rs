//! `POST /v1/devices`, `GET /v1/devices`, `GET/PUT/DELETE /v1/devices/{id}`
//! (BEHAVIOR.md §5). Device creation validates its keys exactly as §6.1–6.2
//! say (33-byte 0x05-prefixed keys, a 64-byte XEdDSA signature of the signed
//! prekey by the identity key). The store serializes every change of a
//! device (and the device limit), so each is one store call from the shard
//! that took the request. A foreign device is indistinguishable from a
//! missing one (404). An over-long name is a 400, not the reference's 500.
//! Deleting a device closes its open gateway sockets (the reference leaves
//! them open, silent) and revokes its credentials — every access token,
//! refresh token and ticket of the device, and the account's user-scoped
//! tokens issued before (a stolen device may hold one) — here and on every
//! other node it reaches before it answers ([`crate::node::App::revoke`]).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::auth_response::auth_response;
use super::context::RequestCtx;
use super::error::ApiError;
use super::json;
use super::keys_json::{DeviceKeys, DeviceKeysJson};
use super::new_device::new_device;
use crate::blob::backup_folder;
use crate::gateway::events::DeviceEvent;
use crate::http::{Body, Response};
use crate::limits::DEVICE_NAME_CHARS_MAX;
use crate::metrics::Counter;
use crate::store::{DeviceRecord, StoreError};
use crate::util::time::rfc3339_micros;

#[derive(Deserialize)]
pub(super) struct CreateDeviceRequest {
    name: Option<String>,
    #[serde(flatten)]
    keys: DeviceKeysJson,
}

#[derive(Deserialize)]
pub(super) struct RenameRequest {
    name: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DeviceResponse {
    device_id: Uuid,
    name: Option<String>,
    created_at: String,
}

impl From<DeviceRecord> for DeviceResponse {
    fn from(d: DeviceRecord) -> Self {
        Self {
            device_id: d.id,
            name: d.name,
            created_at: rfc3339_micros(d.created_at_micros),
        }
    }
}

fn check_name(name: &Option<String>) -> Result<(), ApiError> {
    match name {
        Some(n) if n.chars().count() > DEVICE_NAME_CHARS_MAX => Err(ApiError::BadRequest(format!(
            "Device name is too long (max {DEVICE_NAME_CHARS_MAX} characters)"
        ))),
        _ => Ok(()),
    }
}

fn device_limit(max: usize) -> ApiError {
    ApiError::Forbidden(format!("Device limit reached. Maximum allowed is {max}."))
}

/// `POST /v1/devices`.
pub async fn create(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: CreateDeviceRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let keys = DeviceKeys::decode(&req.keys)?;
    check_name(&req.name)?;
    let max_devices = ctx.app.config.auth_max_devices_per_user;
    if ctx.app.store.devices_of(principal.user_id).await?.len() >= max_devices {
        return Err(device_limit(max_devices));
    }
    keys.check(ctx.app.config.pre_keys_max)?;
    let (new, scoped, token) = new_device(ctx, keys, principal, req.name)?;
    match ctx.app.store.create_device(new, max_devices).await {
        Ok(()) => {}
        Err(StoreError::DeviceLimit(max)) => return Err(device_limit(max)),
        // The account was deleted or its password changed meanwhile.
        Err(StoreError::AccountChanged) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    }
    ctx.count(Counter::DevicesCreated);
    Ok(auth_response(ctx, StatusCode::CREATED, scoped, token))
}

/// `GET /v1/devices`.
pub async fn list(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let devices: Vec<DeviceResponse> = ctx
        .app
        .store
        .devices_of(principal.user_id)
        .await?
        .into_iter()
        .map(DeviceResponse::from)
        .collect();
    Ok(Response::json(
        StatusCode::OK,
        &serde_json::json!({ "devices": devices }),
    ))
}

/// `GET /v1/devices/{deviceId}`.
pub async fn get(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let id = ctx.path_uuid("deviceId")?;
    let device = ctx.app.store.device(id).await?;
    match device.filter(|d| d.user_id == principal.user_id) {
        Some(d) => Ok(Response::json(StatusCode::OK, &DeviceResponse::from(d))),
        None => Err(ApiError::NotFound),
    }
}

/// `PUT /v1/devices/{deviceId}`.
pub async fn rename(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let id = ctx.path_uuid("deviceId")?;
    let req: RenameRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    check_name(&req.name)?;
    let renamed = ctx.app.store.rename_device(principal.user_id, id, req.name).await?;
    match renamed {
        Some(d) => Ok(Response::json(StatusCode::OK, &DeviceResponse::from(d))),
        None => Err(ApiError::NotFound),
    }
}

/// `DELETE /v1/devices/{deviceId}`; the device's backup blobs are
/// deleted in the background.
pub async fn delete(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let id = ctx.path_uuid("deviceId")?;
    let Some(deletion) = ctx.app.store.delete_device(principal.user_id, id).await? else {
        return Err(ApiError::NotFound);
    };
    ctx.app.revoke(&deletion.revocations(principal.user_id, id)).await;
    ctx.local.events.raise(id, DeviceEvent::Disconnect);
    let folder = backup_folder(&ctx.app.config.backup_prefix, id);
    ctx.app.blobs.delete_folder_in_background(folder);
    ctx.count(Counter::DevicesDeleted);
    Ok(Response::empty(StatusCode::OK))
}
