//! `POST /v1/attachments` and `GET /v1/attachments/{id}` (BEHAVIOR.md §9):
//! any bearer token; the body streams into blob storage under a fresh UUID
//! v4 and its expiry goes to the store; downloads stream back out. Ids are
//! capabilities: whoever holds one (and a token) may download.

use http::StatusCode;
use uuid::Uuid;

use super::blob_body::{check_declared, etag, if_none_match, not_modified, store_body, streamed};
use super::context::RequestCtx;
use super::error::ApiError;
use crate::blob::attachment_key;
use crate::http::{Body, Response};
use crate::util::time::now_secs;

const TOO_SMALL: &str = "Attachment too small";

/// `POST /v1/attachments`.
pub async fn upload(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    ctx.principal()?;
    let config = &ctx.app.config;
    let (min, max) = (config.attachment_min_size_bytes, config.attachment_max_size_bytes);
    let limits = check_declared(ctx.head, min, max, TOO_SMALL)?;
    let id = Uuid::new_v4();
    let key = attachment_key(&config.attachment_prefix, id);
    store_body(&ctx.app.blobs, &key, body, limits, TOO_SMALL).await?;
    let expires_at = now_secs().saturating_add(config.ttl_secs());
    if let Err(e) = ctx.app.store.insert_attachment(id, expires_at).await {
        ctx.app.blobs.delete_in_background(key);
        return Err(e.into());
    }
    Ok(Response::json(
        StatusCode::CREATED,
        &serde_json::json!({ "id": id, "expiresAt": expires_at }),
    ))
}

/// `GET /v1/attachments/{id}`: 304 for a matching `If-None-Match` without
/// any lookup; 404 when unknown, expired or without its blob.
pub async fn download(ctx: &RequestCtx<'_>) -> Result<Response, ApiError> {
    ctx.principal()?;
    let id = ctx.path_uuid("id")?;
    if if_none_match(ctx.head) == Some(id.to_string().as_str()) {
        return Ok(not_modified(etag(id)));
    }
    ctx.app
        .store
        .attachment_expiry(id)
        .await?
        .filter(|expires_at| *expires_at >= now_secs())
        .ok_or(ApiError::NotFound)?;
    let key = attachment_key(&ctx.app.config.attachment_prefix, id);
    let blob = ctx.app.blobs.read(&key).await.map_err(ApiError::internal)?;
    Ok(streamed(blob.ok_or(ApiError::NotFound)?, etag(id)))
}
