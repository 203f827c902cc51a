//! `POST /v1/devices/keys` (refill or takeover, BEHAVIOR.md §6.3) and
//! `GET /v1/users/{userId}` (prekey bundles, §6.4). The store makes each
//! upload and each bundle fetch one transaction; the events they cause
//! (Disconnect after a takeover, PreKeysLow when a fetch leaves a device
//! below the threshold) go through the event bus.

use http::StatusCode;

use super::bundles::take_bundle;
use super::context::RequestCtx;
use super::error::ApiError;
use super::json;
use super::key_upload::{upload_to, UploadRequest};
use super::keys_json::BundleOut;
use crate::http::{Body, Response};

/// `POST /v1/devices/keys`.
pub async fn upload(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: UploadRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let (_, device) = RequestCtx::device_principal(principal)?;
    upload_to(ctx, device, req).await
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
