//! The events seam: everything that tells a session something happened to
//! its device — messages arrived, prekeys ran low, the device was taken over
//! or deleted — goes through one interface, [`EventBus`]. Handlers raise
//! events on it and sessions subscribe to their device's events through it;
//! neither knows where the other runs. Today's one implementation is the
//! in-process mesh ([`super::mesh_bus::MeshBus`]): the device's owner shard
//! keeps its presence and fans each event out to the shards that hold its
//! sockets. Relaying events between relay nodes is a second implementation
//! behind the same trait.

use std::future::Future;
use std::pin::Pin;

use uuid::Uuid;

use super::presence::SessionRef;
use crate::offload::oneshot::Canceled;
use crate::store::StoredMessage;

/// A message handed to a session right after its append.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The message as the store keeps it.
    pub message: StoredMessage,
    /// The newest message queued before it in the mailbox at its commit
    /// ([`crate::store::Queued::prev`]).
    pub prev: Option<u64>,
    /// Expiry, Unix seconds: an expired message is never delivered.
    pub expires_at_secs: i64,
}

/// Something happened to a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceEvent {
    /// Messages were queued for it.
    MessagesArrived = 1,
    /// A bundle fetch left it below the prekey threshold.
    PreKeysLow = 2,
    /// Takeover or deletion: its sessions must close.
    Disconnect = 4,
}

/// A future of the seam, run on the calling shard.
pub type BusFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Where device events go (see the module documentation). One per shard;
/// every method is called on that shard.
pub trait EventBus {
    /// `event` happened to `device`: raises it on every open session of the
    /// device. Never waits.
    fn raise(&self, device: Uuid, event: DeviceEvent);
    /// Messages were appended (each with its target device, in append
    /// order): hands each to every open session of its target, which
    /// writes it without a store read when it follows its cursor. Never
    /// waits.
    fn arrived(&self, arrivals: Vec<(Uuid, Arrival)>);
    /// From now on `session` (whose socket this shard holds) gets the
    /// events of `device`. Fails only when the server is stopping.
    fn subscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, Result<(), Canceled>>;
    /// `session` no longer gets the events of `device`.
    fn unsubscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, ()>;
}
