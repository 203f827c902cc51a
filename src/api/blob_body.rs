//! What attachments and backups share between HTTP and blob storage: the
//! Content-Length checks before anything is stored (411, 400, 413), a
//! request body streamed into an upload, a download as a streamed response,
//! and the quoted validators of `ETag` / `If-None-Match`.

use std::fmt::Display;
use std::future::Future;
use std::io;
use std::pin::Pin;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, ETAG, IF_NONE_MATCH};
use http::{HeaderValue, StatusCode};

use super::error::ApiError;
use crate::blob::{BlobError, Blobs, Download, SizeLimits};
use crate::http::{Body, ChunkSource, RequestHead, Response, Streamed};

/// `Content-Type: application/octet-stream`.
const OCTET_STREAM: HeaderValue = HeaderValue::from_static("application/octet-stream");

/// Checks the declared length against `min..=max`: absent or not a number
/// → 411, below the minimum → 400 `too_small`, above the maximum → 413.
/// The limits, for the upload.
pub fn check_declared(head: &RequestHead, min: u64, max: u64, too_small: &str) -> Result<SizeLimits, ApiError> {
    let limits = SizeLimits { min, max };
    let length = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(ApiError::LengthRequired)?;
    if length < limits.min {
        return Err(ApiError::BadRequest(too_small.into()));
    }
    if length > limits.max {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(limits)
}

/// Streams the rest of `body` into a new object `key`; its size. On any
/// failure no object is left.
pub async fn store_body(
    blobs: &Blobs,
    key: &str,
    body: &mut Body<'_>,
    limits: SizeLimits,
    too_small: &str,
) -> Result<u64, ApiError> {
    let failed = |e: BlobError| match e {
        BlobError::TooLarge(_) => ApiError::PayloadTooLarge,
        BlobError::TooSmall(_) => ApiError::BadRequest(too_small.into()),
        other => ApiError::internal(other),
    };
    let mut upload = blobs.upload(key, limits);
    while let Some(chunk) = body.next_chunk().await? {
        upload.write(Bytes::from(chunk)).await.map_err(failed)?;
    }
    upload.finish().await.map_err(failed)
}

/// A 200 whose body is `download`, streamed, with `ETag: tag`.
pub fn streamed(download: Download, tag: HeaderValue) -> Response {
    let body = Streamed {
        length: download.size,
        source: Box::new(DownloadSource(download)),
    };
    Response::streamed(StatusCode::OK, OCTET_STREAM, body).with_header(ETAG, tag)
}

/// A 304 with `ETag: tag`.
pub fn not_modified(tag: HeaderValue) -> Response {
    Response::empty(StatusCode::NOT_MODIFIED).with_header(ETAG, tag)
}

/// `"<value>"`, the form of our validators.
pub fn etag(value: impl Display) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{value}\"")).unwrap_or(HeaderValue::from_static("\"\""))
}

/// The `If-None-Match` value with all leading and trailing `"` stripped.
pub fn if_none_match(head: &RequestHead) -> Option<&str> {
    let value = head.headers.get(IF_NONE_MATCH)?.to_str().ok()?;
    Some(value.trim_matches('"'))
}

struct DownloadSource(Download);

impl ChunkSource for DownloadSource {
    fn next_chunk(&mut self) -> Pin<Box<dyn Future<Output = Option<io::Result<Bytes>>> + '_>> {
        Box::pin(async move { self.0.next().await.map(|chunk| chunk.map_err(io::Error::other)) })
    }
}
