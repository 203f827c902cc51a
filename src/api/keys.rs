//! `POST /v1/devices/keys` (refill or takeover, BEHAVIOR.md §6.3) and
//! `GET /v1/users/{userId}` (prekey bundles, §6.4). Both run on the owner
//! shard of each device: the store makes each one transaction, and the
//! owner raises the device's events (Disconnect after a takeover, PreKeysLow
//! when a fetch leaves it below the threshold).

use http::StatusCode;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::devices::{
    check_unique_ids, decode_one_time_prekeys, decode_signed_prekey, OneTimePreKeyJson, SignedPreKeyJson,
};
use super::error::ApiError;
use super::{json, RequestCtx, ShardLocal};
use crate::crypto::public_key::PublicKey;
use crate::crypto::xeddsa::verify_signed_prekey;
use crate::gateway::events::DeviceEvent;
use crate::http::{Body, Response};
use crate::store::{Bundle, KeyUpload, UploadOutcome, UploadRejection};
use crate::util::time::{millis_after, now_millis};

/// A key upload as the JSON API carries it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRequest {
    identity_key: Option<String>,
    registration_id: Option<i32>,
    signed_pre_key: SignedPreKeyJson,
    one_time_pre_keys: Vec<OneTimePreKeyJson>,
}

fn rejection(r: UploadRejection) -> ApiError {
    match r {
        UploadRejection::IdentityKeyMissing => ApiError::BadRequest("Identity key missing".into()),
        UploadRejection::InvalidSignature => ApiError::BadRequest("Invalid signature".into()),
        UploadRejection::SignedPreKeyIdNotIncreasing { new, current } => ApiError::BadRequest(format!(
            "Signed Pre-Key ID {new} must be greater than current ID {current}"
        )),
        UploadRejection::DeviceNotFound => ApiError::Unauthorized,
    }
}

/// Decodes an upload in the reference server's order of checks.
fn decode_upload(req: UploadRequest, pre_keys_max: usize) -> Result<KeyUpload, ApiError> {
    if req.identity_key.is_some() && req.registration_id.is_none() {
        return Err(ApiError::BadRequest(
            "registrationId is required when identityKey is provided".into(),
        ));
    }
    check_unique_ids(&req.one_time_pre_keys)?;
    let identity = match (req.identity_key, req.registration_id) {
        (Some(key), Some(registration_id)) => Some((
            PublicKey::from_base64(&key).map_err(|e| ApiError::BadRequest(e.to_string()))?,
            registration_id,
        )),
        _ => None,
    };
    let signed_prekey = decode_signed_prekey(&req.signed_pre_key)?;
    let one_time_prekeys = decode_one_time_prekeys(&req.one_time_pre_keys)?;
    if one_time_prekeys.len() > pre_keys_max {
        return Err(ApiError::BadRequest(format!(
            "Batch too large. Limit is {pre_keys_max}"
        )));
    }
    Ok(KeyUpload {
        identity,
        signed_prekey,
        one_time_prekeys,
        pre_keys_max,
    })
}

/// `POST /v1/devices/keys`.
pub async fn upload(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: UploadRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let (_, device) = RequestCtx::device_principal(principal)?;
    upload_to(ctx, device, req).await
}

/// Refill or takeover of `device`, on its owner shard.
pub async fn upload_to(ctx: &RequestCtx<'_>, device: Uuid, req: UploadRequest) -> Result<Response, ApiError> {
    let upload = decode_upload(req, ctx.app.config.pre_keys_max)?;
    let outcome = ctx
        .on_device_owner(device, move |local| async move {
            let spk = upload.signed_prekey.clone();
            let verify =
                Box::new(move |identity: &PublicKey| verify_signed_prekey(identity, &spk.public_key, &spk.signature));
            let outcome = local.app.store.upload_keys(device, upload, verify).await;
            if let Ok(Ok(UploadOutcome::TookOver)) = outcome {
                local.notify(device, DeviceEvent::Disconnect);
            }
            outcome
        })
        .await??;
    match outcome {
        Ok(UploadOutcome::TookOver) => {
            ctx.count(crate::admin::metrics::Counter::KeyTakeovers);
            Ok(Response::empty(StatusCode::OK))
        }
        Ok(UploadOutcome::Refilled) => Ok(Response::empty(StatusCode::OK)),
        Err(r) => Err(rejection(r)),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SignedPreKeyOut {
    key_id: i32,
    public_key: String,
    signature: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OneTimePreKeyOut {
    key_id: i32,
    public_key: String,
}

/// One bundle as the JSON API carries it (the legacy API omits the device).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleOut {
    /// The device; `None` only in legacy answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<Uuid>,
    registration_id: i32,
    identity_key: String,
    signed_pre_key: SignedPreKeyOut,
    one_time_pre_key: Option<OneTimePreKeyOut>,
}

impl From<Bundle> for BundleOut {
    fn from(b: Bundle) -> Self {
        Self {
            device_id: Some(b.device.id),
            registration_id: b.device.registration_id,
            identity_key: b.device.identity_key.to_base64(),
            signed_pre_key: SignedPreKeyOut {
                key_id: b.signed_prekey.key_id,
                public_key: b.signed_prekey.public_key.to_base64(),
                signature: b.signed_prekey.signature.to_base64(),
            },
            one_time_pre_key: b.one_time_prekey.map(|k| OneTimePreKeyOut {
                key_id: k.key_id,
                public_key: k.public_key.to_base64(),
            }),
        }
    }
}

/// Takes one bundle of `device` on its owner shard, raising PreKeysLow when
/// the fetch leaves the device below the threshold.
pub async fn take_bundle(ctx: &RequestCtx<'_>, device: Uuid) -> Result<Option<Bundle>, ApiError> {
    let threshold = ctx.app.config.pre_key_refill_threshold;
    let bundle = ctx
        .on_device_owner(device, move |local| async move {
            let bundle = local.app.store.take_bundle(device).await;
            if let Ok(Some(b)) = &bundle {
                if b.remaining < threshold {
                    local.notify(device, DeviceEvent::PreKeysLow);
                    schedule_wake_up(&local, device);
                }
            }
            bundle
        })
        .await??;
    Ok(bundle)
}

/// A prekey-low event schedules a wake-up push (§11.2), in the background.
fn schedule_wake_up(local: &Rc<ShardLocal>, device: Uuid) {
    let app = local.app.clone();
    let due = millis_after(now_millis(), app.config.notifications_push_delay_secs);
    monoio::spawn(async move {
        if let Err(e) = app.store.schedule_push(device, due).await {
            tracing::warn!(error = %e, "scheduling a push job failed");
        }
    });
}

/// `GET /v1/users/{userId}`.
pub async fn bundles(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let user = ctx.path_uuid("userId")?;
    RequestCtx::device_principal(principal)?;
    let mut out = Vec::new();
    for device in ctx.app.store.devices_of(user).await? {
        if let Some(bundle) = take_bundle(ctx, device.id).await? {
            out.push(BundleOut::from(bundle));
        }
    }
    if out.is_empty() {
        return Err(ApiError::NotFound);
    }
    Ok(Response::json(StatusCode::OK, &out))
}
