//! Streamed uploads. The shard pushes body chunks into a bounded channel;
//! a task on the side runtime feeds them to an object_store multipart
//! upload, a few parts at a time, and enforces the size limits as bytes
//! arrive. The object appears only when the upload completes: a body that
//! breaks off, grows too large or ends too small is aborted and leaves no
//! object (nor does a dropped [`Upload`], e.g. on a request timeout).

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::sync::{mpsc, oneshot};

use super::{BlobError, Blobs};
use crate::limits;

/// The sizes an upload must stay within, bytes (both inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimits {
    /// Fewer bytes fail with [`BlobError::TooSmall`].
    pub min: u64,
    /// More bytes fail with [`BlobError::TooLarge`].
    pub max: u64,
}

/// What the shard sends to the upload task.
enum Piece {
    Data(Bytes),
    /// The body ended: complete the object.
    End,
}

/// An upload in progress, driven from a shard.
pub struct Upload {
    pieces: mpsc::Sender<Piece>,
    outcome: oneshot::Receiver<Result<u64, BlobError>>,
}

impl Upload {
    /// Starts the upload task on the side runtime.
    pub(super) fn start(blobs: &Blobs, path: Path, limits: SizeLimits) -> Self {
        let (pieces, rx) = mpsc::channel(limits::BLOB_UPLOAD_QUEUE_CHUNKS);
        let (tx, outcome) = oneshot::channel();
        let (store, part_bytes) = (blobs.store.clone(), blobs.part_bytes);
        blobs.side.spawn(async move {
            let _ = tx.send(receive(store, path, part_bytes, rx, limits).await);
        });
        Self { pieces, outcome }
    }

    /// Queues the next chunk of the body, waiting while the queue is full.
    /// An error means the upload already failed (e.g. the body is too large).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), BlobError> {
        if self.pieces.send(Piece::Data(chunk)).await.is_err() {
            return Err(self.failure().await);
        }
        Ok(())
    }

    /// Ends the body and waits until the object is stored; its size.
    pub async fn finish(mut self) -> Result<u64, BlobError> {
        if self.pieces.send(Piece::End).await.is_err() {
            return Err(self.failure().await);
        }
        (&mut self.outcome).await.map_err(|_| BlobError::Interrupted)?
    }

    /// Why the task stopped taking chunks.
    async fn failure(&mut self) -> BlobError {
        match (&mut self.outcome).await {
            Ok(Err(e)) => e,
            _ => BlobError::Interrupted,
        }
    }
}

/// The upload task: multipart upload of what arrives, completed on
/// [`Piece::End`], aborted on any failure or if the sender goes away.
async fn receive(
    store: std::sync::Arc<dyn ObjectStore>,
    path: Path,
    part_bytes: usize,
    mut pieces: mpsc::Receiver<Piece>,
    limits: SizeLimits,
) -> Result<u64, BlobError> {
    let upload = store.put_multipart(&path).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, part_bytes);
    match feed(&mut writer, &mut pieces, limits).await {
        Ok(size) => {
            writer.finish().await?;
            Ok(size)
        }
        Err(e) => {
            if let Err(abort) = writer.abort().await {
                tracing::warn!(error = %abort, "aborting a failed upload failed");
            }
            Err(e)
        }
    }
}

/// Passes chunks to the writer until the body ends; its size.
async fn feed(
    writer: &mut WriteMultipart,
    pieces: &mut mpsc::Receiver<Piece>,
    limits: SizeLimits,
) -> Result<u64, BlobError> {
    let mut size = 0u64;
    loop {
        match pieces.recv().await {
            Some(Piece::Data(chunk)) => {
                size += chunk.len() as u64;
                if size > limits.max {
                    return Err(BlobError::TooLarge(limits.max));
                }
                writer.wait_for_capacity(limits::BLOB_PARTS_IN_FLIGHT).await?;
                writer.put(chunk);
            }
            Some(Piece::End) if size < limits.min => return Err(BlobError::TooSmall(limits.min)),
            Some(Piece::End) => return Ok(size),
            None => return Err(BlobError::Interrupted),
        }
    }
}
