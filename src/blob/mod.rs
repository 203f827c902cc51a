//! Blob storage for attachments and backups, through object_store: the
//! local filesystem (`<data-dir>/blobs` by default) or S3. [`Blobs`] owns
//! the object store; object_store is tokio-based, so every call runs on the
//! side runtime ([`crate::offload::side_runtime`]) and a shard only sends
//! chunks and awaits answers over channels. Bodies stream both ways
//! ([`upload`], [`download`]): an upload holds a few parts in memory, never
//! its body. The periodic clean-ups of both resources are
//! [`crate::cleanup`]'s.

pub mod download;
pub mod upload;

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use uuid::Uuid;

use crate::config::{Config, StorageBackend};
use crate::limits;
use crate::offload::side_runtime::{SideRuntime, SideRuntimeGone};

pub use self::download::Download;
pub use self::upload::{SizeLimits, Upload};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The body grew past the maximum; nothing was stored.
    #[error("blob exceeds {0} bytes")]
    TooLarge(u64),
    /// The body ended below the minimum; nothing was stored.
    #[error("blob is smaller than {0} bytes")]
    TooSmall(u64),
    /// The body's source went away before its end; nothing was stored.
    #[error("blob upload was interrupted")]
    Interrupted,
    /// The object store failed.
    #[error("object store failed: {0}")]
    Store(#[from] object_store::Error),
    /// The side runtime is gone.
    #[error(transparent)]
    Gone(#[from] SideRuntimeGone),
    /// The storage options do not make a store.
    #[error("blob storage setup failed: {0}")]
    Setup(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The blob store; cheap to clone and shared by every shard.
#[derive(Debug, Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    side: SideRuntime,
    part_bytes: usize,
}

impl Blobs {
    /// Opens the store that `config` names, run on `side`.
    pub fn open(config: &Config, side: SideRuntime) -> Result<Self, BlobError> {
        let (store, part_bytes): (Arc<dyn ObjectStore>, usize) = match config.storage_backend {
            StorageBackend::Local => (Arc::new(local(config)?), limits::BLOB_LOCAL_PART_BYTES),
            StorageBackend::S3 => (Arc::new(s3(config)?), limits::BLOB_S3_PART_BYTES),
        };
        Ok(Self {
            store,
            side,
            part_bytes,
        })
    }

    /// Starts an upload to `key`; see [`Upload`].
    pub fn upload(&self, key: &str, limits: SizeLimits) -> Upload {
        Upload::start(self, Path::from(key), limits)
    }

    /// Opens `key` for reading; `None` if there is no such object.
    pub async fn read(&self, key: &str) -> Result<Option<Download>, BlobError> {
        Download::open(self, Path::from(key)).await
    }

    /// Deletes `key`; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        let (store, path) = (self.store.clone(), Path::from(key));
        Ok(self.side.run(async move { remove(&*store, &path).await }).await??)
    }

    /// Deletes `key` from a task of its own, logging a failure: for
    /// clean-ups nobody waits for (a replaced backup).
    pub fn delete_in_background(&self, key: String) {
        let store = self.store.clone();
        self.in_background(async move { remove(&*store, &Path::from(key)).await });
    }

    /// Deletes every object under the folder `prefix` (a deleted device's
    /// backups); an empty or missing folder is not an error.
    pub async fn delete_folder(&self, prefix: String) -> Result<(), BlobError> {
        let store = self.store.clone();
        Ok(self.side.run(remove_folder(store, prefix)).await??)
    }

    /// As [`Blobs::delete_folder`], from a task of its own, logging a
    /// failure.
    pub fn delete_folder_in_background(&self, prefix: String) {
        self.in_background(remove_folder(self.store.clone(), prefix));
    }

    fn in_background<F>(&self, clean_up: F)
    where
        F: std::future::Future<Output = Result<(), object_store::Error>> + Send + 'static,
    {
        self.side.spawn(async move {
            if let Err(e) = clean_up.await {
                tracing::warn!(error = %e, "deleting blobs failed");
            }
        });
    }
}

/// Deletes every object under `prefix`.
async fn remove_folder(store: Arc<dyn ObjectStore>, prefix: String) -> Result<(), object_store::Error> {
    use futures_util::StreamExt;
    let mut listing = store.list(Some(&Path::from(prefix)));
    while let Some(meta) = listing.next().await {
        match meta {
            Ok(meta) => remove(&*store, &meta.location).await?,
            // Gone between the listing and now: what we wanted.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The key of attachment `id`: `<prefix><id>` (BEHAVIOR.md §9.1).
pub fn attachment_key(prefix: &str, id: Uuid) -> String {
    format!("{prefix}{id}")
}

/// The folder of a device's backups: `<prefix><device>/`.
pub fn backup_folder(prefix: &str, device: Uuid) -> String {
    format!("{prefix}{device}/")
}

/// The key of one backup upload: `<prefix><device>/v<version>-<token>`.
/// The reference names it `v<version>`; the upload's token is added so two
/// uploads of one version (a stale one and its takeover) never write the
/// same object, and a loser deleting its blob never deletes the winner's.
pub fn backup_key(prefix: &str, device: Uuid, version: i32, token: Uuid) -> String {
    format!("{}v{version}-{}", backup_folder(prefix, device), token.simple())
}

/// Deletes one object on the side runtime; a missing object is not an error.
async fn remove(store: &dyn ObjectStore, path: &Path) -> Result<(), object_store::Error> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The local filesystem store under `--storage-local-dir` (default
/// `<data-dir>/blobs`), created if absent.
fn local(config: &Config) -> Result<LocalFileSystem, BlobError> {
    let root = config
        .storage_local_dir
        .clone()
        .unwrap_or_else(|| config.data_dir.join("blobs"));
    std::fs::create_dir_all(&root).map_err(|e| BlobError::Setup(Box::new(e)))?;
    let store = LocalFileSystem::new_with_prefix(&root)?.with_automatic_cleanup(true);
    Ok(store)
}

/// The S3 store of the `--storage-*` options. Credentials come from the
/// options when both keys are set, else from the usual `AWS_*` variables.
/// A custom endpoint is addressed path-style (MinIO, moto); AWS itself
/// virtual-hosted unless `--storage-force-path-style`.
fn s3(config: &Config) -> Result<object_store::aws::AmazonS3, BlobError> {
    // reqwest's TLS runs on rustls with ring; a second install is a no-op.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&config.storage_bucket)
        .with_region(&config.storage_region)
        .with_virtual_hosted_style_request(!config.storage_force_path_style && config.storage_endpoint.is_none());
    if let Some(endpoint) = &config.storage_endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint);
    }
    if let (Some(key), Some(secret)) = (&config.storage_access_key, &config.storage_secret_key) {
        builder = builder.with_access_key_id(key).with_secret_access_key(secret);
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use clap::Parser;

    use super::*;
    use crate::shard::runtime::{block_on, ChosenDriver};

    const LIMITS: SizeLimits = SizeLimits { min: 10, max: 100 };

    fn blobs(dir: &std::path::Path) -> Blobs {
        let data = dir.to_str().unwrap();
        let config = Config::parse_from(["obscura-relay", "--data-dir", data]);
        Blobs::open(&config, SideRuntime::start().unwrap()).unwrap()
    }

    /// Every file under `dir` (objects and multipart staging files alike).
    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files(&path));
            } else {
                found.push(path);
            }
        }
        found
    }

    /// Waits until no file is left under `dir` (aborts run on the side runtime).
    fn wait_empty(dir: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !files(dir).is_empty() {
            assert!(Instant::now() < deadline, "left behind: {:?}", files(dir));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn upload(blobs: &Blobs, key: &str, chunks: &[&'static [u8]]) -> Result<u64, BlobError> {
        let mut upload = blobs.upload(key, LIMITS);
        for chunk in chunks {
            upload.write(Bytes::from_static(chunk)).await?;
        }
        upload.finish().await
    }

    /// Goal: an upload stores exactly its chunks under its key, a read
    /// streams them back with the size, and a delete removes the object.
    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs(dir.path());
        block_on(ChosenDriver::Epoll, async {
            assert_eq!(upload(&blobs, "a/b", &[b"hello ", b"blob world"]).await.unwrap(), 16);
            let mut read = blobs.read("a/b").await.unwrap().unwrap();
            assert_eq!(read.size, 16);
            let mut body = Vec::new();
            while let Some(chunk) = read.next().await {
                body.extend_from_slice(&chunk.unwrap());
            }
            assert_eq!(body, b"hello blob world");
            assert!(blobs.read("a/missing").await.unwrap().is_none());
            blobs.delete("a/b").await.unwrap();
            blobs.delete("a/b").await.unwrap();
            assert!(blobs.read("a/b").await.unwrap().is_none());
        })
        .unwrap();
        wait_empty(&dir.path().join("blobs"));
    }

    /// Goal: TEST-CASES L116 — a body whose source fails after its first
    /// chunk (the upload is dropped) leaves no object, not even a staging file.
    #[test]
    fn interrupted_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs(dir.path());
        block_on(ChosenDriver::Epoll, async {
            let mut upload = blobs.upload("x/interrupted", LIMITS);
            upload.write(Bytes::from_static(&[7; 40])).await.unwrap();
            drop(upload);
        })
        .unwrap();
        wait_empty(&dir.path().join("blobs"));
    }

    /// Goal: TEST-CASES L117 and L118 — a 150-byte stream with a 100-byte
    /// maximum fails as too large, a 5-byte stream with a 10-byte minimum as
    /// too small, and neither leaves an object.
    #[test]
    fn streamed_size_limits_hold() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = blobs(dir.path());
        block_on(ChosenDriver::Epoll, async {
            let large = upload(&blobs, "x/large", &[&[1; 100], &[1; 50]]).await;
            assert!(matches!(large, Err(BlobError::TooLarge(100))), "{large:?}");
            let small = upload(&blobs, "x/small", &[b"12345"]).await;
            assert!(matches!(small, Err(BlobError::TooSmall(10))), "{small:?}");
            assert!(blobs.read("x/large").await.unwrap().is_none());
            assert!(blobs.read("x/small").await.unwrap().is_none());
        })
        .unwrap();
        wait_empty(&dir.path().join("blobs"));
    }
}
