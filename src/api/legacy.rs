//! The single-device legacy API served beside v1 (BEHAVIOR.md §17.2): the
//! two routes only the legacy API has — `POST /v1/keys`
//! (a key upload to the token's device, or the primary device for a
//! user-scoped token) and `GET /v1/keys/{userId}` (the primary device's
//! bundle as one object, any valid token). Legacy registration lives with
//! [`super::users`], legacy login with [`super::sessions`], addressing a
//! user in a submission with [`super::messages`], and the `?token=` socket
//! with [`super::gateway`].

use http::StatusCode;

use super::bundles::take_bundle;
use super::context::RequestCtx;
use super::error::ApiError;
use super::json;
use super::key_upload::{upload_to, UploadRequest};
use super::keys_json::BundleOut;
use super::primary_device::primary_device;
use crate::http::{Body, Response};

/// The 400 of a key upload for a user without devices.
const NO_DEVICE: &str = "No device to upload keys to; create one with POST /v1/devices";

/// `POST /v1/keys`.
pub async fn upload(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let principal = ctx.principal()?;
    let req: UploadRequest = json::read(ctx.head, body, ctx.app.config.http_body_bytes_max).await?;
    let device = match principal.device_id {
        Some(device) => device,
        // The legacy contract knows no 403 here.
        None => primary_device(ctx.app.store.as_ref(), principal.user_id)
            .await?
            .ok_or_else(|| ApiError::BadRequest(NO_DEVICE.into()))?,
    };
    upload_to(ctx, device, req).await
}

/// `GET /v1/keys/{userId}`.
pub async fn bundle(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    ctx.principal()?;
    let user = ctx.path_uuid("userId")?;
    for device in ctx.app.store.devices_of(user).await? {
        if let Some(bundle) = take_bundle(ctx, device.id).await? {
            let mut out = BundleOut::from(bundle);
            out.device_id = None;
            return Ok(Response::json(StatusCode::OK, &out));
        }
    }
    Err(ApiError::NotFound)
}
