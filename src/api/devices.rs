//! `POST /v1/devices`, `GET /v1/devices`, `GET/PUT/DELETE /v1/devices/{id}`
//! (BEHAVIOR.md §5). Device creation validates its keys exactly as §6.1–6.2
//! say (33-byte 0x05-prefixed keys, a 64-byte XEdDSA signature of the signed
//! prekey by the identity key). Every operation on one device runs on the
//! device's owner shard. A foreign device is indistinguishable from a
//! missing one (404). An over-long name is a 400, not the reference's 500.
//! Deleting a device closes its open gateway sockets (the reference leaves
//! them open, silent).

use http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ApiError;
use super::sessions::{auth_response, new_refresh};
use super::{json, RequestCtx};
use crate::admin::metrics::Counter;
use crate::auth::refresh::RefreshToken;
use crate::auth::tokens::Principal;
use crate::blob::backup_folder;
use crate::crypto::public_key::{KeyError, PublicKey, Signature};
use crate::crypto::xeddsa::verify_signed_prekey;
use crate::gateway::events::DeviceEvent;
use crate::http::{Body, Response};
use crate::limits::DEVICE_NAME_CHARS_MAX;
use crate::store::{DeviceRecord, NewDevice, OneTimePreKey, SignedPreKey, StoreError};
use crate::util::time::{now_micros, rfc3339_micros};

/// A signed prekey as the JSON API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedPreKeyJson {
    key_id: i32,
    public_key: String,
    signature: String,
}

/// A one-time prekey as the JSON API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimePreKeyJson {
    key_id: i32,
    public_key: String,
}

/// The keys a device is created with, as the JSON API carries them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceKeysJson {
    /// The identity key, base64.
    pub identity_key: String,
    /// Signal registration id.
    pub registration_id: i32,
    /// The signed prekey.
    pub signed_pre_key: SignedPreKeyJson,
    /// The one-time prekeys.
    pub one_time_pre_keys: Vec<OneTimePreKeyJson>,
}

#[derive(Deserialize)]
pub(super) struct CreateDeviceRequest {
    name: Option<String>,
    #[serde(flatten)]
    keys: DeviceKeysJson,
}

/// A new device's keys, decoded and checked.
pub struct DeviceKeys {
    identity_key: PublicKey,
    registration_id: i32,
    signed_prekey: SignedPreKey,
    one_time_prekeys: Vec<OneTimePreKey>,
}

impl DeviceKeys {
    /// Decodes the keys in the reference server's order: duplicate ids,
    /// identity key, signed prekey, one-time prekeys.
    pub fn decode(keys: &DeviceKeysJson) -> Result<Self, ApiError> {
        check_unique_ids(&keys.one_time_pre_keys)?;
        Ok(Self {
            identity_key: PublicKey::from_base64(&keys.identity_key).map_err(bad_key)?,
            registration_id: keys.registration_id,
            signed_prekey: decode_signed_prekey(&keys.signed_pre_key)?,
            one_time_prekeys: decode_one_time_prekeys(&keys.one_time_pre_keys)?,
        })
    }

    /// Checks the signature and the one-time prekey batch size.
    pub fn check(&self, pre_keys_max: usize) -> Result<(), ApiError> {
        check_signature_and_batch(
            &self.identity_key,
            &self.signed_prekey,
            self.one_time_prekeys.len(),
            pre_keys_max,
        )
    }

    /// A new device of `user_id` with these keys, its device-scoped
    /// principal and refresh token.
    pub fn into_new_device(
        self,
        ctx: &RequestCtx<'_>,
        user_id: Uuid,
        name: Option<String>,
    ) -> Result<(NewDevice, Principal, RefreshToken), ApiError> {
        let device = DeviceRecord {
            id: Uuid::now_v7(),
            user_id,
            name,
            created_at_micros: now_micros(),
            identity_key: self.identity_key,
            registration_id: self.registration_id,
        };
        let scoped = Principal {
            user_id,
            device_id: Some(device.id),
        };
        let (token, refresh) = new_refresh(ctx, scoped, Uuid::new_v4())?;
        let new = NewDevice {
            device,
            signed_prekey: self.signed_prekey,
            one_time_prekeys: self.one_time_prekeys,
            refresh,
        };
        Ok((new, scoped, token))
    }
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

fn bad_key(e: KeyError) -> ApiError {
    ApiError::BadRequest(e.to_string())
}

/// Rejects duplicate one-time prekey ids (`Duplicate prekey ID: <id>`).
pub fn check_unique_ids(keys: &[OneTimePreKeyJson]) -> Result<(), ApiError> {
    let mut seen = std::collections::HashSet::with_capacity(keys.len());
    match keys.iter().find(|k| !seen.insert(k.key_id)) {
        Some(dup) => Err(ApiError::BadRequest(format!("Duplicate prekey ID: {}", dup.key_id))),
        None => Ok(()),
    }
}

/// Decodes a signed prekey (public key, then signature).
pub fn decode_signed_prekey(spk: &SignedPreKeyJson) -> Result<SignedPreKey, ApiError> {
    Ok(SignedPreKey {
        key_id: spk.key_id,
        public_key: PublicKey::from_base64(&spk.public_key).map_err(bad_key)?,
        signature: Signature::from_base64(&spk.signature).map_err(bad_key)?,
    })
}

/// Decodes one-time prekeys in order.
pub fn decode_one_time_prekeys(keys: &[OneTimePreKeyJson]) -> Result<Vec<OneTimePreKey>, ApiError> {
    keys.iter()
        .map(|k| {
            Ok(OneTimePreKey {
                key_id: k.key_id,
                public_key: PublicKey::from_base64(&k.public_key).map_err(bad_key)?,
            })
        })
        .collect()
}

/// Checks the SPK signature and the one-time prekey batch size.
pub fn check_signature_and_batch(
    identity: &PublicKey,
    spk: &SignedPreKey,
    one_time_count: usize,
    pre_keys_max: usize,
) -> Result<(), ApiError> {
    if !verify_signed_prekey(identity, &spk.public_key, &spk.signature) {
        return Err(ApiError::BadRequest("Invalid signature".into()));
    }
    if one_time_count > pre_keys_max {
        return Err(ApiError::BadRequest(format!(
            "Batch too large. Limit is {pre_keys_max}"
        )));
    }
    Ok(())
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
    let (new, scoped, token) = keys.into_new_device(ctx, principal.user_id, req.name)?;
    let id = new.device.id;
    let created = ctx
        .on_device_owner(id, move |local| async move {
            local.app.store.create_device(new, max_devices).await
        })
        .await?;
    match created {
        Ok(()) => {}
        Err(StoreError::DeviceLimit(max)) => return Err(device_limit(max)),
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
    let device = ctx
        .on_device_owner(id, move |local| async move { local.app.store.device(id).await })
        .await??;
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
    let user = principal.user_id;
    let renamed = ctx
        .on_device_owner(id, move |local| async move {
            local.app.store.rename_device(user, id, req.name).await
        })
        .await??;
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
    let user = principal.user_id;
    let deleted = ctx
        .on_device_owner(id, move |local| async move {
            let deleted = local.app.store.delete_device(user, id).await;
            if let Ok(true) = deleted {
                local.notify(id, DeviceEvent::Disconnect);
            }
            deleted
        })
        .await??;
    if !deleted {
        return Err(ApiError::NotFound);
    }
    let folder = backup_folder(&ctx.app.config.backup_prefix, id);
    ctx.app.blobs.delete_folder_in_background(folder);
    ctx.count(Counter::DevicesDeleted);
    Ok(Response::empty(StatusCode::OK))
}
