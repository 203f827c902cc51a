//! Streamed downloads. A task on the side runtime reads the object and
//! passes its chunks through a bounded channel to the shard, which writes
//! them to the client as they come; a slow client slows the read, it does
//! not grow a buffer. Dropping a [`Download`] stops the task.

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::path::Path;
use object_store::{GetResult, ObjectStoreExt};
use tokio::sync::mpsc;

use super::{BlobError, Blobs};
use crate::limits;

/// An object being read.
pub struct Download {
    /// Its size, bytes.
    pub size: u64,
    chunks: mpsc::Receiver<Result<Bytes, BlobError>>,
}

impl Download {
    /// Opens `path`; `None` if it does not exist.
    pub(super) async fn open(blobs: &Blobs, path: Path) -> Result<Option<Self>, BlobError> {
        let store = blobs.store.clone();
        let found = blobs.side.run(async move { store.get(&path).await }).await?;
        let object = match found {
            Ok(object) => object,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let size = object.meta.size;
        let (tx, chunks) = mpsc::channel(limits::BLOB_DOWNLOAD_QUEUE_CHUNKS);
        blobs.side.spawn(forward(object, tx));
        Ok(Some(Self { size, chunks }))
    }

    /// The next chunk; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<Bytes, BlobError>> {
        self.chunks.recv().await
    }
}

/// Passes the object's chunks on until it ends or the reader goes away.
async fn forward(object: GetResult, tx: mpsc::Sender<Result<Bytes, BlobError>>) {
    let mut stream = object.into_stream();
    while let Some(chunk) = stream.next().await {
        let failed = chunk.is_err();
        if tx.send(chunk.map_err(BlobError::from)).await.is_err() || failed {
            return;
        }
    }
}
