//! Token revocations between nodes: a revocation decided here goes to every
//! other node on the revocations channel, and the decision is answered
//! only once each node Redis handed it to has said it applied it (on this
//! node's own channel, [`super::confirmations`]) or
//! [`limits::PUBSUB_CONFIRM_TIMEOUT_MS`] passed. Also the mapping between
//! a [`Revocation`] and its wire form ([`WireRevocation`]), both ways.

use std::time::{Duration, Instant};

use bytes::Bytes;
use uuid::Uuid;

use super::confirmations::Confirmations;
use crate::limits;
use crate::proto::cluster::{NodeMessage, Revocation as WireRevocation};
use crate::pubsub::{Link, PubSubError};
use crate::store::{Revocation, Revoked, TokenFloor};

/// `revocation` as node `origin` sends it, asking for answers to `confirm`
/// (0: none).
pub fn to_wire(origin: u64, revocation: &Revocation, confirm: u64) -> WireRevocation {
    // The forms a node of the version before device revocations reads
    // harmlessly (see `cluster.proto`).
    let (generation, device, user_scope) = match revocation.revoked {
        Revoked::Account(_, TokenFloor::Generation(g)) => (Some(g), false, None),
        Revoked::Account(_, TokenFloor::Deleted) => (None, false, None),
        Revoked::UserScope(_, g) => (Some(0), false, Some(g)),
        Revoked::Device(_) => (None, true, None),
    };
    WireRevocation {
        origin,
        subject: Bytes::copy_from_slice(revocation.revoked.subject().as_bytes()),
        generation,
        at_ms: revocation.at_ms,
        device,
        user_scope,
        confirm,
    }
}

/// The revocation a wire form carries; `None` without a 16-byte subject.
pub fn from_wire(wire: &WireRevocation) -> Option<Revocation> {
    let subject = Uuid::from_slice(&wire.subject).ok()?;
    let revoked = match (wire.device, wire.user_scope) {
        (true, _) => Revoked::Device(subject),
        (false, Some(g)) => Revoked::UserScope(subject, g),
        (false, None) => Revoked::Account(
            subject,
            wire.generation.map_or(TokenFloor::Deleted, TokenFloor::Generation),
        ),
    };
    Some(Revocation {
        revoked,
        at_ms: wire.at_ms,
    })
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
pub async fn publish_confirmed(
    link: &Link,
    confirmations: &Confirmations,
    revocations: &[Revocation],
) -> Result<(), NotConfirmed> {
    let started = Instant::now();
    let wait = Duration::from_millis(limits::PUBSUB_CONFIRM_TIMEOUT_MS);
    let (confirm, done) = confirmations.open();
    let messages: Vec<NodeMessage> = revocations
        .iter()
        .map(|r| NodeMessage::Revocation(to_wire(link.node(), r, confirm)))
        .collect();
    let Some(channel) = messages.first().map(|m| m.channel().name()) else {
        confirmations.close(confirm);
        return Ok(());
    };
    let payloads = messages.iter().map(|m| m.encode().1).collect();
    let published = link.publish_confirmed(channel, payloads, wait).await;
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
            let (channel, payload) = NodeMessage::Revocation(to_wire(1, &revocation, 0)).encode();
            let Ok(NodeMessage::Revocation(back)) = NodeMessage::decode(&channel, &payload) else {
                panic!("not a revocation");
            };
            assert_eq!(from_wire(&back), Some(revocation));
        }
        assert!(from_wire(&WireRevocation::default()).is_none());
    }

    /// Goal: a node of the version before device revocations (which reads
    /// only tags 1–4) refuses nothing of an account for a user-scope
    /// revocation, and only the device's own id for a device's.
    #[test]
    fn older_nodes_read_new_kinds_harmlessly() {
        let (user, device) = (Uuid::now_v7(), Uuid::now_v7());
        let scope = to_wire(
            1,
            &Revocation {
                revoked: Revoked::UserScope(user, 9),
                at_ms: 5,
            },
            0,
        );
        assert_eq!((&scope.subject[..], scope.generation), (&user.as_bytes()[..], Some(0)));
        let gone = to_wire(
            1,
            &Revocation {
                revoked: Revoked::Device(device),
                at_ms: 5,
            },
            0,
        );
        assert_eq!((&gone.subject[..], gone.generation), (&device.as_bytes()[..], None));
    }
}
