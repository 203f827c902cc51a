//! What arrives from the other relay nodes. [`ClusterInbox`] is the pub/sub
//! link's [`Deliver`]: it decodes each message once
//! ([`NodeMessage::decode`]), drops the node's own, and hands each kind to
//! its handler:
//! - a device's news goes to the gateway's [`Cluster`], which hands it to
//!   the shards holding the device's sockets;
//! - a token revocation (a password change, an account or a device deletion
//!   decided elsewhere) goes straight into this node's [`Revocations`], so
//!   an old token is refused on every node at once, not only after the next
//!   re-read of the store's revocation log (the backstop when a message is
//!   lost); a device deletion also tells the store
//!   ([`crate::store::Devices::forget_device`]), so a send to the device
//!   through this node is refused from then on; then it answers the
//!   deciding node, which waits for every node's answer
//!   ([`super::revocation_broadcast`]);
//! - an answer to one of this node's own decisions goes to its
//!   [`Confirmations`];
//! - a resync request has every session read its mailbox again;
//! - a device changed elsewhere (a takeover emptied its mailbox, its push
//!   token was set): the store forgets what it cached of it
//!   ([`crate::store::Devices::forget_cached_device`]).
//!
//! While the subscription is down the store is told not to trust what it
//! cached of devices ([`crate::store::Devices::trust_device_cache`]) until
//! it is back.

use std::sync::{Arc, OnceLock};

use uuid::Uuid;

use super::confirmations::Confirmations;
use super::revocation_broadcast::from_wire;
use super::revocations::Revocations;
use crate::gateway::cluster_bus::Cluster;
use crate::gateway::hub::Fanout;
use crate::proto::cluster::{Applied, DeviceChanged, DeviceNews, NodeMessage, Revocation as WireRevocation};
use crate::pubsub::{Deliver, Link};
use crate::store::{Revoked, Store};
use crate::util::time::now_micros;

/// Where the link's messages go in this process.
pub struct ClusterInbox {
    /// This process's name on the link.
    pub node: u64,
    /// The gateway's side: who holds which device's sockets.
    pub cluster: Arc<Cluster>,
    /// Recent revocations.
    pub revocations: Arc<Revocations>,
    /// The store, whose device cache follows deletions made elsewhere.
    pub store: Arc<dyn Store>,
    /// The decisions of this node waiting for the others' answers.
    pub confirmations: Arc<Confirmations>,
    /// The link, to answer other nodes' decisions (set once it started).
    pub link: OnceLock<Link>,
}

impl Deliver for ClusterInbox {
    fn message(&self, channel: &[u8], payload: &[u8]) {
        match NodeMessage::decode(channel, payload) {
            Ok(message) if message.origin() == Some(self.node) => {}
            Ok(message) => self.handle(message),
            Err(e) => tracing::debug!(error = %e, "a message from another node could not be read; ignored"),
        }
    }

    fn lost(&self) {
        self.store.trust_device_cache(false);
    }

    fn resync(&self) {
        self.store.trust_device_cache(true);
        self.cluster.resync();
    }
}

impl ClusterInbox {
    /// The one dispatch: every kind has its handler.
    fn handle(&self, message: NodeMessage) {
        match message {
            NodeMessage::Device { device, news } => self.device_news(device, news),
            NodeMessage::Revocation(revocation) => self.revocation(&revocation),
            NodeMessage::Applied { answer, .. } => self.confirmations.answered(answer.confirm),
            NodeMessage::Resync { .. } => self.cluster.resync(),
            NodeMessage::DeviceChanged(changed) => self.device_changed(&changed),
        }
    }

    /// A device changed on another node: the store forgets what it cached.
    fn device_changed(&self, changed: &DeviceChanged) {
        match Uuid::from_slice(&changed.device) {
            Ok(device) => self.store.forget_cached_device(device),
            Err(_) => tracing::debug!("a device change without a device from another node ignored"),
        }
    }

    /// News of a device to the shards holding its sockets here.
    fn device_news(&self, device: Uuid, news: DeviceNews) {
        match Fanout::try_from(news) {
            Ok(what) => self.cluster.land(device, what),
            Err(e) => tracing::debug!(error = %e, "device news from another node ignored"),
        }
    }

    /// Applies a revocation another node decided, and answers it when asked.
    fn revocation(&self, wire: &WireRevocation) {
        let Some(revocation) = from_wire(wire) else {
            return tracing::debug!("a revocation without a subject from another node ignored");
        };
        if let Revoked::Device(device) = revocation.revoked {
            self.store.forget_device(device);
        }
        self.revocations.apply(&[revocation], now_micros() / 1000);
        if let (Some(link), true) = (self.link.get(), wire.confirm != 0) {
            let answer = NodeMessage::Applied {
                to: wire.origin,
                answer: Applied { confirm: wire.confirm },
            };
            let (channel, payload) = answer.encode();
            link.publish(channel, payload);
        }
    }
}
