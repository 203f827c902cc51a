//! What the relay nodes of one deployment say to each other over Redis
//! pub/sub: the messages of `proto/cluster.proto` (generated at build time
//! by prost), the channel and lease names ([`names`]), and
//! [`NodeMessage`], the one place a message is encoded for its channel and
//! decoded from it.
//!
//! The channel names the kind, so a channel carries its kind's message
//! alone, byte for byte what the nodes sent before this module (a rolling
//! deploy runs old and new nodes side by side; `cluster.proto` says how a
//! message may change). A node that adds a kind adds a [`Channel`] and a
//! [`NodeMessage`] variant; every `match` on them is exhaustive, so a kind
//! nobody handles does not compile.

#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/obscura.cluster.v1.rs"));
}

pub mod names;

use prost::Message;
use uuid::Uuid;

pub use self::generated::{Applied, Arrival, DeviceChanged, DeviceNews, DeviceSignal, Revocation};
pub use self::names::{job_lease, send_lease, Channel};

/// One message between nodes, decoded: a variant per kind.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeMessage {
    /// News of `device`, for the nodes holding its sockets.
    Device {
        /// The device the channel names.
        device: Uuid,
        /// What happened to it.
        news: DeviceNews,
    },
    /// A token revocation decided on another node.
    Revocation(Revocation),
    /// Node `to`'s answer that another node applied one of its decisions.
    Applied {
        /// The node that waits for it (the channel's).
        to: u64,
        /// Which decision.
        answer: Applied,
    },
    /// Node `origin` lost publishes: every node reads its mailboxes again.
    Resync {
        /// The node that asks.
        origin: u64,
    },
    /// A device changed in a way other nodes may have cached.
    DeviceChanged(DeviceChanged),
}

/// Why a message from another node could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The channel is none that nodes use.
    #[error("a channel no node uses")]
    UnknownChannel,
    /// The payload is not the channel's message.
    #[error("a malformed message on {channel:?}: {source}")]
    Malformed {
        /// Where it came.
        channel: Channel,
        /// What prost found.
        #[source]
        source: prost::DecodeError,
    },
    /// A resync request is a node id, 8 bytes.
    #[error("a resync request of {0} bytes, not 8")]
    Resync(usize),
}

impl NodeMessage {
    /// Reads what arrived on `channel`.
    pub fn decode(channel: &[u8], payload: &[u8]) -> Result<Self, WireError> {
        let channel = Channel::parse(channel).ok_or(WireError::UnknownChannel)?;
        let malformed = |source| WireError::Malformed { channel, source };
        Ok(match channel {
            Channel::Device(device) => NodeMessage::Device {
                device,
                news: DeviceNews::decode(payload).map_err(malformed)?,
            },
            Channel::Revocations => NodeMessage::Revocation(Revocation::decode(payload).map_err(malformed)?),
            Channel::Node(to) => NodeMessage::Applied {
                to,
                answer: Applied::decode(payload).map_err(malformed)?,
            },
            Channel::Resync => {
                let id = <[u8; 8]>::try_from(payload).map_err(|_| WireError::Resync(payload.len()))?;
                NodeMessage::Resync {
                    origin: u64::from_le_bytes(id),
                }
            }
            Channel::DeviceChanges => NodeMessage::DeviceChanged(DeviceChanged::decode(payload).map_err(malformed)?),
        })
    }

    /// The channel it travels on.
    pub fn channel(&self) -> Channel {
        match self {
            NodeMessage::Device { device, .. } => Channel::Device(*device),
            NodeMessage::Revocation(_) => Channel::Revocations,
            NodeMessage::Applied { to, .. } => Channel::Node(*to),
            NodeMessage::Resync { .. } => Channel::Resync,
            NodeMessage::DeviceChanged(_) => Channel::DeviceChanges,
        }
    }

    /// Its channel's name and its payload, for [`crate::pubsub::Link`].
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let payload = match self {
            NodeMessage::Device { news, .. } => news.encode_to_vec(),
            NodeMessage::Revocation(revocation) => revocation.encode_to_vec(),
            NodeMessage::Applied { answer, .. } => answer.encode_to_vec(),
            NodeMessage::Resync { origin } => origin.to_le_bytes().to_vec(),
            NodeMessage::DeviceChanged(changed) => changed.encode_to_vec(),
        };
        (self.channel().name(), payload)
    }

    /// The node that sent it, where the message says (a node ignores its
    /// own news).
    pub fn origin(&self) -> Option<u64> {
        match self {
            NodeMessage::Device { news, .. } => Some(news.origin),
            NodeMessage::Revocation(revocation) => Some(revocation.origin),
            NodeMessage::Applied { .. } => None,
            NodeMessage::Resync { origin } => Some(*origin),
            NodeMessage::DeviceChanged(changed) => Some(changed.origin),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn every_kind() -> Vec<NodeMessage> {
        let arrival = Arrival {
            seq: 7,
            id: Bytes::from_static(&[1; 16]),
            payload: Bytes::from_static(b"ciphertext"),
            prev: Some(3),
            ..Arrival::default()
        };
        vec![
            NodeMessage::Device {
                device: Uuid::now_v7(),
                news: DeviceNews {
                    origin: 1,
                    arrivals: vec![arrival],
                    ..DeviceNews::default()
                },
            },
            NodeMessage::Revocation(Revocation {
                origin: 2,
                subject: Bytes::from_static(&[2; 16]),
                user_scope: Some(4),
                confirm: 9,
                ..Revocation::default()
            }),
            NodeMessage::Applied {
                to: 3,
                answer: Applied { confirm: 9 },
            },
            NodeMessage::Resync { origin: 4 },
            NodeMessage::DeviceChanged(DeviceChanged {
                origin: 5,
                device: Bytes::from_static(&[5; 16]),
            }),
        ]
    }

    /// Goal: every kind reads back as itself from its own channel.
    #[test]
    fn every_kind_round_trips() {
        for message in every_kind() {
            let (channel, payload) = message.encode();
            assert_eq!(NodeMessage::decode(&channel, &payload).unwrap(), message);
        }
    }

    /// Goal: the bytes are the ones nodes sent before `cluster.proto`
    /// (field tags written out here by hand), so old and new nodes read
    /// each other during a rolling deploy.
    #[test]
    fn the_wire_keeps_the_old_tags() {
        let news = DeviceNews {
            origin: 1,
            signal: DeviceSignal::Disconnect as i32,
            ..DeviceNews::default()
        };
        // tag 1 varint 1, tag 2 varint 4 (the old `event: u32`).
        assert_eq!(news.encode_to_vec(), [0x08, 1, 0x10, 4]);
        let stale = DeviceNews::decode(&[0x08, 1, 0x20, 1][..]).unwrap();
        assert!(stale.stale);
        let revocation = Revocation::decode(
            &[
                0x08, 5, // origin
                0x12, 2, 0xaa, 0xbb, // subject
                0x18, 3, // generation
                0x20, 6, // at_ms
                0x28, 1, // device
                0x30, 7, // user_scope
                0x38, 8, // confirm
            ][..],
        )
        .unwrap();
        let expected = Revocation {
            origin: 5,
            subject: Bytes::from_static(&[0xaa, 0xbb]),
            generation: Some(3),
            at_ms: 6,
            device: true,
            user_scope: Some(7),
            confirm: 8,
        };
        assert_eq!(revocation, expected);
        assert_eq!(Applied { confirm: 2 }.encode_to_vec(), [0x08, 2]);
        let (_, resync) = NodeMessage::Resync { origin: 0x0102 }.encode();
        assert_eq!(resync, [2, 1, 0, 0, 0, 0, 0, 0]);
    }

    /// Goal: what is not a message of its channel is refused, never half
    /// read.
    #[test]
    fn malformed_messages_are_refused() {
        let device = Channel::Device(Uuid::now_v7()).name();
        assert!(matches!(
            NodeMessage::decode(&device, &[0x0a, 0xff]),
            Err(WireError::Malformed { .. })
        ));
        assert!(matches!(
            NodeMessage::decode(b"obscura:resync", &[1, 2, 3]),
            Err(WireError::Resync(3))
        ));
        assert!(matches!(
            NodeMessage::decode(b"elsewhere", &[]),
            Err(WireError::UnknownChannel)
        ));
    }
}
