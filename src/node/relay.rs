//! What arrives from the other relay nodes over the pub/sub link, and the
//! node-level news this node sends them. Device events go to the gateway's
//! [`Cluster`]; token revocations (a password change or an account
//! deletion decided on another node) go on their own channel
//! (`obscura:revocations`, every node listens) straight into this node's
//! [`Revocations`], so an old token is refused on every node at once, not
//! only after the next re-read of the store's revocation log (which stays
//! the backstop when a message is lost).

use std::sync::Arc;

use prost::Message;
use uuid::Uuid;

use super::revocations::Revocations;
use crate::gateway::cluster_bus::Cluster;
use crate::pubsub::{Deliver, Link};
use crate::store::{Revocation, TokenFloor};
use crate::util::time::now_micros;

/// The channel of token revocations.
pub const REVOCATIONS_CHANNEL: &str = "obscura:revocations";

/// A revocation on the wire between nodes.
#[derive(Clone, PartialEq, prost::Message)]
struct RelayedRevocation {
    /// The node that decided it (it ignores its own).
    #[prost(uint64, tag = "1")]
    origin: u64,
    #[prost(bytes = "vec", tag = "2")]
    user_id: Vec<u8>,
    /// The token generation from which tokens stay valid; absent: deleted.
    #[prost(uint32, optional, tag = "3")]
    generation: Option<u32>,
    #[prost(int64, tag = "4")]
    at_ms: i64,
}

impl RelayedRevocation {
    fn into_revocation(self) -> Option<Revocation> {
        Some(Revocation {
            user_id: Uuid::from_slice(&self.user_id).ok()?,
            floor: self.generation.map_or(TokenFloor::Deleted, TokenFloor::Generation),
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
}

impl Deliver for NodeDeliver {
    fn message(&self, channel: &[u8], payload: &[u8]) {
        if channel != REVOCATIONS_CHANNEL.as_bytes() {
            return self.cluster.message(channel, payload);
        }
        let Ok(relayed) = RelayedRevocation::decode(payload) else {
            return tracing::debug!("malformed revocation from another node ignored");
        };
        if relayed.origin == self.node {
            return;
        }
        if let Some(revocation) = relayed.into_revocation() {
            self.revocations.apply(&[revocation], now_micros() / 1000);
        }
    }

    fn resync(&self) {
        self.cluster.resync();
    }
}

/// Tells the other nodes of a revocation decided here.
pub fn publish_revocation(link: &Link, revocation: &Revocation) {
    let relayed = RelayedRevocation {
        origin: link.node(),
        user_id: revocation.user_id.as_bytes().to_vec(),
        generation: match revocation.floor {
            TokenFloor::Generation(g) => Some(g),
            TokenFloor::Deleted => None,
        },
        at_ms: revocation.at_ms,
    };
    link.publish(REVOCATIONS_CHANNEL.as_bytes().to_vec(), relayed.encode_to_vec());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_round_trip() {
        for floor in [TokenFloor::Generation(3), TokenFloor::Deleted] {
            let relayed = RelayedRevocation {
                origin: 1,
                user_id: Uuid::now_v7().as_bytes().to_vec(),
                generation: match floor {
                    TokenFloor::Generation(g) => Some(g),
                    TokenFloor::Deleted => None,
                },
                at_ms: 5,
            };
            let back = RelayedRevocation::decode(relayed.encode_to_vec().as_slice()).unwrap();
            assert_eq!(back.into_revocation().unwrap().floor, floor);
        }
        assert!(RelayedRevocation::default().into_revocation().is_none());
    }
}
