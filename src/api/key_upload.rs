//! A key upload (BEHAVIOR.md §6.3), shared by `POST /v1/devices/keys` and
//! the legacy `POST /v1/keys`: decoded in the reference server's order of
//! checks, then refill or takeover in one store transaction (the store
//! checks the signature against the identity key that will be in force);
//! a takeover closes the device's open sessions.

use http::StatusCode;
use serde::Deserialize;
use uuid::Uuid;

use super::context::RequestCtx;
use super::error::ApiError;
use super::keys_json::{
    check_unique_ids, decode_one_time_prekeys, decode_signed_prekey, OneTimePreKeyJson, SignedPreKeyJson,
};
use crate::crypto::public_key::PublicKey;
use crate::crypto::xeddsa::verify_signed_prekey;
use crate::gateway::events::DeviceEvent;
use crate::http::Response;
use crate::metrics::Counter;
use crate::store::{KeyUpload, UploadOutcome, UploadRejection};

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

/// Refill or takeover of `device`: one store transaction; a takeover
/// closes the device's open sessions.
pub async fn upload_to(ctx: &RequestCtx<'_>, device: Uuid, req: UploadRequest) -> Result<Response, ApiError> {
    let upload = decode_upload(req, ctx.app.config.pre_keys_max)?;
    let spk = upload.signed_prekey.clone();
    let verify = Box::new(move |identity: &PublicKey| verify_signed_prekey(identity, &spk.public_key, &spk.signature));
    match ctx.app.store.upload_keys(device, upload, verify).await? {
        Ok(UploadOutcome::TookOver) => {
            ctx.local.events.raise(device, DeviceEvent::Disconnect);
            ctx.app.device_changed(device);
            ctx.count(Counter::KeyTakeovers);
            Ok(Response::empty(StatusCode::OK))
        }
        Ok(UploadOutcome::Refilled) => Ok(Response::empty(StatusCode::OK)),
        Err(r) => Err(rejection(r)),
    }
}
