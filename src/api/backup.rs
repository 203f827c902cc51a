//! `GET`, `HEAD` and `POST /v1/backup` (BEHAVIOR.md §10): one encrypted
//! blob per device, device-scoped tokens only. An upload reserves the next
//! version in the store (optimistic locking on `If-Match` /
//! `If-None-Match: *`), streams its body to its own object, and commits
//! only if its reservation still holds; a failed or timed-out upload frees
//! its reservation and never replaces the last good backup. Readers see the
//! last committed version throughout.

use std::sync::Arc;

use http::header::IF_MATCH;
use http::header::IF_NONE_MATCH;
use http::{HeaderValue, StatusCode};
use uuid::Uuid;

use super::blob_body::{check_declared, etag, if_none_match, not_modified, store_body, streamed};
use super::context::RequestCtx;
use super::error::ApiError;
use crate::blob::backup_key;
use crate::http::{Body, RequestHead, Response};
use crate::store::{BackupCommit, Reservation, Store};
use crate::util::time::now_micros;

const TOO_SMALL: &str = "Backup too small";

/// `GET /v1/backup` (`conditional`: honours `If-None-Match`) and
/// `HEAD /v1/backup` (headers of the same answer, no body).
pub async fn download(ctx: &RequestCtx<'_>, conditional: bool) -> Result<Response, ApiError> {
    let (_, device) = ctx.calling_device()?;
    let row = ctx.app.store.backup(device).await?;
    let current = row.map(|r| r.current_version);
    let asked = if_none_match(ctx.head).and_then(|v| v.parse::<i32>().ok());
    if conditional && asked.is_some() && asked == current {
        return Ok(not_modified(etag(asked.unwrap_or_default())));
    }
    let (version, token) = row
        .and_then(|r| r.current_token.map(|t| (r.current_version, t)))
        .filter(|(version, _)| *version > 0)
        .ok_or(ApiError::NotFound)?;
    let key = backup_key(&ctx.app.config.backup_prefix, device, version, token);
    let blob = ctx.app.blobs.read(&key).await.map_err(ApiError::internal)?;
    Ok(streamed(blob.ok_or(ApiError::NotFound)?, etag(version)))
}

/// `POST /v1/backup`.
pub async fn upload(ctx: &RequestCtx<'_>, body: &mut Body<'_>) -> Result<Response, ApiError> {
    let (_, device) = ctx.calling_device()?;
    let expected = expected_version(ctx.head)?;
    let config = &ctx.app.config;
    let (min, max) = (config.backup_min_size_bytes, config.backup_max_size_bytes);
    let limits = check_declared(ctx.head, min, max, TOO_SMALL)?;
    let token = Uuid::new_v4();
    let version = reserve(ctx, device, expected, token).await?;
    let slot = Slot {
        store: Some(ctx.app.store.clone()),
        device,
        token,
    };
    let key = backup_key(&config.backup_prefix, device, version, token);
    store_body(&ctx.app.blobs, &key, body, limits, TOO_SMALL).await?;
    let committed = ctx.app.store.commit_backup(device, token).await;
    slot.settled(committed.is_ok());
    match committed {
        Ok(BackupCommit::Committed(previous)) => {
            if let Some((old, old_token)) = previous {
                let old_key = backup_key(&config.backup_prefix, device, old, old_token);
                ctx.app.blobs.delete_in_background(old_key);
            }
            Ok(Response::empty(StatusCode::OK).with_header(http::header::ETAG, etag(version)))
        }
        Ok(BackupCommit::Lost) => {
            ctx.app.blobs.delete_in_background(key);
            Err(ApiError::Conflict("Concurrent modification".into()))
        }
        Err(e) => {
            ctx.app.blobs.delete_in_background(key);
            Err(e.into())
        }
    }
}

/// Reserves the next version (§10.2 step 5); deletes the blob of a stale
/// upload it takes over.
async fn reserve(ctx: &RequestCtx<'_>, device: Uuid, expected: i32, token: Uuid) -> Result<i32, ApiError> {
    let config = &ctx.app.config;
    let now = now_micros() / 1000;
    let stale_before = now.saturating_sub(config.backup_stale_threshold_ms());
    let reserved = ctx
        .app
        .store
        .reserve_backup(device, expected, token, now, stale_before)
        .await?;
    match reserved {
        Reservation::Reserved { version, replaced } => {
            if let Some(stale) = replaced {
                let stale_key = backup_key(&config.backup_prefix, device, stale.version, stale.token);
                ctx.app.blobs.delete_in_background(stale_key);
            }
            Ok(version)
        }
        Reservation::VersionMismatch => Err(ApiError::PreconditionFailed),
        Reservation::InProgress => Err(ApiError::Conflict("Upload already in progress".into())),
    }
}

/// The committed version the client expects (§10.2 step 2). `If-None-Match`
/// wins, but an `If-Match` sent with it must still be a version: the
/// contract says what it holds (the reference ignores it).
fn expected_version(head: &RequestHead) -> Result<i32, ApiError> {
    let bad = |text: &str| ApiError::BadRequest(text.into());
    let none_match = match head.headers.get(IF_NONE_MATCH).map(HeaderValue::as_bytes) {
        Some(b"*") => Some(0),
        Some(_) => return Err(bad("Invalid If-None-Match header")),
        None => None,
    };
    let if_match = match head.headers.get(IF_MATCH) {
        Some(value) => {
            let text = value.to_str().map_err(|_| bad("Invalid If-Match header"))?;
            let version = text.trim_matches('"').parse::<i32>();
            Some(version.map_err(|_| bad("Invalid version in If-Match header"))?)
        }
        None => None,
    };
    none_match
        .or(if_match)
        .ok_or_else(|| bad("Missing If-Match or If-None-Match header"))
}

/// A reserved version slot: released in the background if the upload ends
/// any other way than a commit attempt (an error, a timeout that drops the
/// handler), so the device's next upload is not refused with 409.
struct Slot {
    store: Option<Arc<dyn Store>>,
    device: Uuid,
    token: Uuid,
}

impl Slot {
    /// The commit ran: if it reached the store, the slot is settled
    /// (committed or lost); otherwise it is released on drop.
    fn settled(mut self, reached_store: bool) {
        if reached_store {
            self.store = None;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(store) = self.store.take() {
            let (device, token) = (self.device, self.token);
            monoio::spawn(async move {
                if let Err(e) = store.release_backup(device, token).await {
                    tracing::warn!(error = %e, "releasing a backup upload failed");
                }
            });
        }
    }
}
