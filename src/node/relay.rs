//! What arrives from the other relay nodes over the pub/sub link, and the
//! node-level news this node sends them. Device events go to the gateway's
//! [`Cluster`]; token revocations (a password change, an account deletion
//! or a device deletion decided on another node) go on their own channel
//! (`obscura:revocations`, every node listens) straight into this node's
//! [`Revocations`], so an old token is refused on every node at once, not
//! only after the next re-read of the store's revocation log (which stays
//! the backstop when a message is lost). A device deletion also tells the
//! store ([`crate::store::Devices::forget_device`]), so a send to the
//! device through this node is refused from then on, and answers the
//! deciding node on its own channel (`obscura:node:<id>`), which waits for
//! every node's answer before it answers its client
//! ([`super::confirmations`]); while the
//! subscription is down the store is told not to trust what it cached of
//! devices ([`crate::store::Devices::trust_device_cache`]) until it is
//! back.
//!
//! The wire form stays readable by a node of the version before device
//! revocations (rolling upgrades): it reads a device's revocation as a
//! deleted "account" with the device's id, which names no account, and a
//! user-scope revocation as the floor of generation 0, which refuses
//! nothing.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use prost::Message;
use uuid::Uuid;

use super::confirmations::Confirmations;
use super::revocations::Revocations;
use crate::gateway::cluster_bus::Cluster;
use crate::limits;
use crate::pubsub::{Deliver, Link, PubSubError};
use crate::store::{Revocation, Revoked, Store, TokenFloor};
use crate::util::time::now_micros;

/// The channel of token revocations.
pub const REVOCATIONS_CHANNEL: &str = "obscura:revocations";

/// A revocation on the wire between nodes.
#[derive(Clone, PartialEq, prost::Message)]
struct RelayedRevocation {
    /// The node that decided it (it ignores its own).
    #[prost(uint64, tag = "1")]
    origin: u64,
    /// The account, or the device of a device revocation.
    #[prost(bytes = "vec", tag = "2")]
    user_id: Vec<u8>,
    /// The token generation from which tokens stay valid; absent: deleted.
    #[prost(uint32, optional, tag = "3")]
    generation: Option<u32>,
    #[prost(int64, tag = "4")]
    at_ms: i64,
    /// The subject is a deleted device.
    #[prost(bool, tag = "5")]
    device: bool,
    /// The account's user-scope floor (then `generation` is 0).
    #[prost(uint32, optional, tag = "6")]
    user_scope: Option<u32>,
    /// When not 0: the origin waits for every node to answer this id on
    /// its own channel once it applied the revocation.
    #[prost(uint64, tag = "7")]
    confirm: u64,
}

/// A node's answer that it applied a revocation (on the origin's channel).
#[derive(Clone, PartialEq, prost::Message)]
struct Applied {
    #[prost(uint64, tag = "1")]
    confirm: u64,
}

/// The channel on which node `node` hears answers to its own decisions.
pub fn node_channel(node: u64) -> Vec<u8> {
    format!("obscura:node:{node:016x}").into_bytes()
}

impl RelayedRevocation {
    fn new(origin: u64, revocation: &Revocation) -> Self {
        let (generation, device, user_scope) = match revocation.revoked {
            Revoked::Account(_, TokenFloor::Generation(g)) => (Some(g), false, None),
            Revoked::Account(_, TokenFloor::Deleted) => (None, false, None),
            Revoked::UserScope(_, g) => (Some(0), false, Some(g)),
            Revoked::Device(_) => (None, true, None),
        };
        Self {
            origin,
            user_id: revocation.revoked.subject().as_bytes().to_vec(),
            generation,
            at_ms: revocation.at_ms,
            device,
            user_scope,
            confirm: 0,
        }
    }

    fn into_revocation(self) -> Option<Revocation> {
        let subject = Uuid::from_slice(&self.user_id).ok()?;
        let revoked = match (self.device, self.user_scope) {
            (true, _) => Revoked::Device(subject),
            (false, Some(g)) => Revoked::UserScope(subject, g),
            (false, None) => Revoked::Account(
                subject,
                self.generation.map_or(TokenFloor::Deleted, TokenFloor::Generation),
            ),
        };
        Some(Revocation {
            revoked,
            at_ms: self.at_ms,
        })
    }
}

/// Where the link's messages go in this process.
pub struct NodeDeliver {
    /// This process's name on the link.
    pub node: u64,
    /// Device events.
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

impl Deliver for NodeDeliver {
    fn message(&self, channel: &[u8], payload: &[u8]) {
        if channel == REVOCATIONS_CHANNEL.as_bytes() {
            return self.revocation(payload);
        }
        if channel == node_channel(self.node) {
            if let Ok(applied) = Applied::decode(payload) {
                self.confirmations.answered(applied.confirm);
            }
            return;
        }
        self.cluster.message(channel, payload);
    }

    fn lost(&self) {
        self.store.trust_device_cache(false);
    }

    fn resync(&self) {
        self.store.trust_device_cache(true);
        self.cluster.resync();
    }
}

impl NodeDeliver {
    /// Applies a revocation another node decided, and answers it when asked.
    fn revocation(&self, payload: &[u8]) {
        let Ok(relayed) = RelayedRevocation::decode(payload) else {
            return tracing::debug!("malformed revocation from another node ignored");
        };
        let (origin, confirm) = (relayed.origin, relayed.confirm);
        if origin == self.node {
            return;
        }
        let Some(revocation) = relayed.into_revocation() else {
            return;
        };
        if let Revoked::Device(device) = revocation.revoked {
            self.store.forget_device(device);
        }
        self.revocations.apply(&[revocation], now_micros() / 1000);
        if let (Some(link), true) = (self.link.get(), confirm != 0) {
            link.publish(node_channel(origin), Applied { confirm }.encode_to_vec());
        }
    }
}

/// Why the other nodes may not have applied a revocation yet.
#[derive(Debug, thiserror::Error)]
pub enum NotConfirmed {
    /// Redis did not take the publish.
    #[error(transparent)]
    Publish(#[from] PubSubError),
    /// Some of the nodes it reached did not answer in time (down, slow,
    /// or of a version that does not answer).
    #[error("not every one of the {0} other nodes confirmed in time")]
    Unanswered(usize),
}

/// Tells the other nodes of revocations decided here and waits until every
/// node Redis handed them to has answered that it applied them, at most
/// [`limits::PUBSUB_CONFIRM_TIMEOUT_MS`] in all.
pub async fn publish_revocations_confirmed(
    link: &Link,
    confirmations: &Confirmations,
    revocations: &[Revocation],
) -> Result<(), NotConfirmed> {
    let started = Instant::now();
    let wait = Duration::from_millis(limits::PUBSUB_CONFIRM_TIMEOUT_MS);
    let (confirm, done) = confirmations.open();
    let payloads = revocations
        .iter()
        .map(|r| {
            let relayed = RelayedRevocation {
                confirm,
                ..RelayedRevocation::new(link.node(), r)
            };
            relayed.encode_to_vec()
        })
        .collect();
    let published = link
        .publish_confirmed(REVOCATIONS_CHANNEL.as_bytes().to_vec(), payloads, wait)
        .await;
    // Redis counts this node among the receivers while it listens.
    let others = match published {
        Ok(receivers) => receivers.saturating_sub(usize::from(link.subscribed())),
        Err(e) => {
            confirmations.close(confirm);
            return Err(e.into());
        }
    };
    confirmations.expect(confirm, others);
    let answered = monoio::time::timeout(wait.saturating_sub(started.elapsed()), done).await;
    confirmations.close(confirm);
    match answered {
        Ok(_) => Ok(()),
        Err(_) => Err(NotConfirmed::Unanswered(others)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every kind of revocation crosses the wire unchanged, and a
    /// message without a subject is dropped.
    #[test]
    fn revocations_round_trip() {
        let id = Uuid::now_v7();
        for revoked in [
            Revoked::Account(id, TokenFloor::Generation(3)),
            Revoked::Account(id, TokenFloor::Deleted),
            Revoked::UserScope(id, 4),
            Revoked::Device(id),
        ] {
            let revocation = Revocation { revoked, at_ms: 5 };
            let wire = RelayedRevocation::new(1, &revocation).encode_to_vec();
            let back = RelayedRevocation::decode(wire.as_slice()).unwrap();
            assert_eq!(back.into_revocation(), Some(revocation));
        }
        assert!(RelayedRevocation::default().into_revocation().is_none());
    }

    /// Goal: a node of the version before device revocations (which reads
    /// only tags 1–4) refuses nothing of an account for a user-scope
    /// revocation, and only the device's own id for a device's.
    #[test]
    fn older_nodes_read_new_kinds_harmlessly() {
        let (user, device) = (Uuid::now_v7(), Uuid::now_v7());
        let scope = RelayedRevocation::new(
            1,
            &Revocation {
                revoked: Revoked::UserScope(user, 9),
                at_ms: 5,
            },
        );
        assert_eq!(
            (scope.user_id.as_slice(), scope.generation),
            (user.as_bytes().as_slice(), Some(0))
        );
        let gone = RelayedRevocation::new(
            1,
            &Revocation {
                revoked: Revoked::Device(device),
                at_ms: 5,
            },
        );
        assert_eq!(
            (gone.user_id.as_slice(), gone.generation),
            (device.as_bytes().as_slice(), None)
        );
    }
}
