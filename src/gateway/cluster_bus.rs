//! [`ClusterBus`]: the [`EventBus`] of a relay node in a deployment of
//! several (`--pubsub-url`). Every event is raised in this process as the
//! [`MeshBus`] raises it, and published on the device's Redis channel
//! (`obscura:device:<uuid>`) for the other nodes. A node listens only on
//! the channels of the devices it holds sockets for: [`Cluster`] counts,
//! per device, the sessions each shard holds, subscribes when the first
//! opens and unsubscribes when the last closes, and hands what arrives
//! straight to the shards that hold the device's sockets.
//!
//! Events only make delivery prompt; the store has every message. New
//! messages travel with their payloads up to
//! [`limits::PUBSUB_ARRIVAL_BYTES_MAX`] per publish (the session writes
//! them without a store read when they follow its cursor), larger ones as a
//! bare "read your mailbox". When the link loses messages (its subscription
//! was down, or a node could not publish), every session of the node reads
//! its mailbox after its cursor again ([`Hub::resync_all`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use prost::Message;
use uuid::Uuid;

use super::events::{Arrival, BusFuture, DeviceEvent, EventBus};
use super::hub::{Fanout, Hub};
use super::mesh_bus::MeshBus;
use super::presence::SessionRef;
use crate::limits;
use crate::offload::oneshot::Canceled;
use crate::pubsub::{Link, RESYNC_CHANNEL};
use crate::shard::mesh::{Job, Mesh};
use crate::shard::ShardId;
use crate::store::StoredMessage;

/// Prefix of a device's Redis channel (the device id follows).
const DEVICE_CHANNEL_PREFIX: &str = "obscura:device:";

/// The Redis channel of `device`'s events.
fn channel(device: Uuid) -> Vec<u8> {
    format!("{DEVICE_CHANNEL_PREFIX}{device}").into_bytes()
}

/// The device a channel names.
fn device_of(channel: &[u8]) -> Option<Uuid> {
    let text = std::str::from_utf8(channel).ok()?;
    Uuid::parse_str(text.strip_prefix(DEVICE_CHANNEL_PREFIX)?).ok()
}

/// One event on the wire between nodes.
#[derive(Clone, PartialEq, prost::Message)]
struct Relayed {
    /// The node that published it (it ignores its own).
    #[prost(uint64, tag = "1")]
    origin: u64,
    /// A [`DeviceEvent`] without data (`PreKeysLow`, `Disconnect`), or 0.
    #[prost(uint32, tag = "2")]
    event: u32,
    /// New messages, in commit order (when `event` is 0 and `stale` is not set).
    #[prost(message, repeated, tag = "3")]
    arrivals: Vec<RelayedArrival>,
    /// Messages arrived that are not carried: read the store.
    #[prost(bool, tag = "4")]
    stale: bool,
}

/// An [`Arrival`] on the wire.
#[derive(Clone, PartialEq, prost::Message)]
struct RelayedArrival {
    #[prost(uint64, tag = "1")]
    seq: u64,
    #[prost(bytes = "vec", tag = "2")]
    id: Vec<u8>,
    #[prost(bytes = "vec", tag = "3")]
    sender_user: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    sender_device: Vec<u8>,
    #[prost(bytes = "bytes", tag = "5")]
    payload: Bytes,
    #[prost(uint64, tag = "6")]
    created_at_ms: u64,
    #[prost(uint64, optional, tag = "7")]
    prev: Option<u64>,
    #[prost(int64, tag = "8")]
    expires_at_secs: i64,
}

impl From<&Arrival> for RelayedArrival {
    fn from(a: &Arrival) -> Self {
        let m = &a.message;
        Self {
            seq: m.seq,
            id: m.id.as_bytes().to_vec(),
            sender_user: m.sender_user.as_bytes().to_vec(),
            sender_device: m.sender_device.as_bytes().to_vec(),
            payload: m.payload.clone(),
            created_at_ms: m.created_at_ms,
            prev: a.prev,
            expires_at_secs: a.expires_at_secs,
        }
    }
}

impl RelayedArrival {
    fn into_arrival(self) -> Option<Arrival> {
        Some(Arrival {
            message: StoredMessage {
                seq: self.seq,
                id: Uuid::from_slice(&self.id).ok()?,
                sender_user: Uuid::from_slice(&self.sender_user).ok()?,
                sender_device: Uuid::from_slice(&self.sender_device).ok()?,
                payload: self.payload,
                created_at_ms: self.created_at_ms,
            },
            prev: self.prev,
            expires_at_secs: self.expires_at_secs,
        })
    }
}

impl Relayed {
    /// What the local sessions are handed; `None` for a malformed event.
    fn into_fanout(self) -> Option<Fanout> {
        if self.stale {
            return Some(Fanout::Stale);
        }
        match self.event {
            0 => self
                .arrivals
                .into_iter()
                .map(RelayedArrival::into_arrival)
                .collect::<Option<Vec<_>>>()
                .map(Fanout::Arrivals),
            e if e == DeviceEvent::PreKeysLow as u32 => Some(Fanout::Event(DeviceEvent::PreKeysLow)),
            e if e == DeviceEvent::Disconnect as u32 => Some(Fanout::Event(DeviceEvent::Disconnect)),
            _ => None,
        }
    }
}

/// The part of the cluster bus shared by every shard of the process: who
/// holds which device's sockets, and where events from the link go.
pub struct Cluster {
    /// This process's name on the link.
    node: u64,
    mesh: Arc<Mesh<Hub>>,
    /// Per device with sockets here: the shards holding them, with counts.
    holders: Mutex<HashMap<Uuid, Vec<(ShardId, usize)>>>,
}

impl Cluster {
    /// The cluster state of process `node`, whose shards share `mesh`.
    pub fn new(node: u64, mesh: Arc<Mesh<Hub>>) -> Arc<Self> {
        Arc::new(Self {
            node,
            mesh,
            holders: Mutex::default(),
        })
    }

    fn holders(&self) -> MutexGuard<'_, HashMap<Uuid, Vec<(ShardId, usize)>>> {
        self.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a session of `device` on `shard`; `true` when it is the
    /// device's first in this process (its channel must be subscribed).
    fn hold(&self, device: Uuid, shard: ShardId) -> bool {
        let mut holders = self.holders();
        let first = !holders.contains_key(&device);
        let shards = holders.entry(device).or_default();
        match shards.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, n)) => *n += 1,
            None => shards.push((shard, 1)),
        }
        first
    }

    /// Uncounts a session; `true` when it was the device's last here.
    fn release(&self, device: Uuid, shard: ShardId) -> bool {
        let mut holders = self.holders();
        let Some(shards) = holders.get_mut(&device) else {
            return false;
        };
        if let Some(i) = shards.iter().position(|(s, _)| *s == shard) {
            shards[i].1 -= 1;
            if shards[i].1 == 0 {
                shards.swap_remove(i);
            }
        }
        let last = shards.is_empty();
        if last {
            holders.remove(&device);
        }
        last
    }

    /// Hands `job` to `shard` from the side runtime's thread; a full inbox
    /// (rare: it holds thousands of jobs) is waited for on a thread of its
    /// own, so the side runtime never blocks.
    fn send(&self, shard: ShardId, job: Job<Hub>) {
        if let Err(job) = self.mesh.try_push(shard, job) {
            let mesh = self.mesh.clone();
            std::thread::spawn(move || mesh.push_blocking(shard, job));
        }
    }
}

/// What arrives over the link for the gateway (the node's
/// [`crate::pubsub::Deliver`] hands it on).
impl Cluster {
    /// A device event (or a resync request) from another node.
    pub fn message(&self, channel: &[u8], payload: &[u8]) {
        if channel == RESYNC_CHANNEL.as_bytes() {
            if payload != self.node.to_le_bytes() {
                self.resync();
            }
            return;
        }
        let (Some(device), Ok(event)) = (device_of(channel), Relayed::decode(payload)) else {
            return tracing::debug!("malformed event from another node ignored");
        };
        if event.origin == self.node {
            return;
        }
        let Some(what) = event.into_fanout() else {
            return;
        };
        let shards: Vec<ShardId> = self
            .holders()
            .get(&device)
            .map(|s| s.iter().map(|(shard, _)| *shard).collect())
            .unwrap_or_default();
        for shard in shards {
            let what = what.clone();
            self.send(shard, Box::new(move |hub| hub.land_device(device, &what)));
        }
    }

    /// Events may have been lost: every session reads its mailbox again.
    pub fn resync(&self) {
        tracing::info!("events may have been lost: every session reads its mailbox again");
        for shard in 0..self.mesh.shards() {
            self.send(shard, Box::new(|hub| hub.resync_all()));
        }
    }
}

/// See the module documentation. One per shard.
pub struct ClusterBus {
    local: MeshBus,
    cluster: Arc<Cluster>,
    link: Link,
    me: ShardId,
}

impl ClusterBus {
    /// The bus of shard `me`: `local` for this process, `link` beyond it.
    pub fn new(local: MeshBus, cluster: Arc<Cluster>, link: Link, me: ShardId) -> Self {
        Self {
            local,
            cluster,
            link,
            me,
        }
    }

    fn relayed(&self) -> Relayed {
        Relayed {
            origin: self.link.node(),
            ..Relayed::default()
        }
    }

    fn publish(&self, device: Uuid, event: &Relayed) {
        self.link.publish(channel(device), event.encode_to_vec());
    }
}

impl EventBus for ClusterBus {
    fn raise(&self, device: Uuid, event: DeviceEvent) {
        self.local.raise(device, event);
        let relayed = Relayed {
            event: event as u32,
            ..self.relayed()
        };
        self.publish(device, &relayed);
    }

    fn arrived(&self, arrivals: Vec<(Uuid, Arrival)>) {
        let mut by_target: Vec<(Uuid, Vec<RelayedArrival>, usize)> = Vec::new();
        for (target, arrival) in &arrivals {
            let bytes = arrival.message.payload.len();
            match by_target.iter_mut().find(|(t, _, _)| t == target) {
                Some((_, list, total)) => {
                    list.push(arrival.into());
                    *total += bytes;
                }
                None => by_target.push((*target, vec![arrival.into()], bytes)),
            }
        }
        self.local.arrived(arrivals);
        for (target, list, bytes) in by_target {
            let relayed = if bytes <= limits::PUBSUB_ARRIVAL_BYTES_MAX {
                Relayed {
                    arrivals: list,
                    ..self.relayed()
                }
            } else {
                Relayed {
                    stale: true,
                    ..self.relayed()
                }
            };
            self.publish(target, &relayed);
        }
    }

    fn subscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, Result<(), Canceled>> {
        Box::pin(async move {
            if self.cluster.hold(device, self.me) {
                self.link.subscribe(channel(device)).await;
            }
            self.local.subscribe(device, session).await
        })
    }

    fn unsubscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, ()> {
        Box::pin(async move {
            self.local.unsubscribe(device, session).await;
            if self.cluster.release(device, self.me) {
                self.link.unsubscribe(channel(device));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: an arrival survives the trip through the wire format, and a
    /// malformed event or channel is refused, never half-read.
    #[test]
    fn relayed_events_round_trip() {
        let arrival = Arrival {
            message: StoredMessage {
                seq: 7,
                id: Uuid::now_v7(),
                sender_user: Uuid::now_v7(),
                sender_device: Uuid::now_v7(),
                payload: Bytes::from_static(b"ciphertext"),
                created_at_ms: 5,
            },
            prev: Some(3),
            expires_at_secs: 99,
        };
        let wire = Relayed {
            origin: 1,
            arrivals: vec![(&arrival).into()],
            ..Relayed::default()
        }
        .encode_to_vec();
        let Some(Fanout::Arrivals(back)) = Relayed::decode(wire.as_slice()).unwrap().into_fanout() else {
            panic!("not arrivals");
        };
        assert_eq!(back[0].message, arrival.message);
        assert_eq!((back[0].prev, back[0].expires_at_secs), (Some(3), 99));
        let bad = Relayed {
            arrivals: vec![RelayedArrival::default()],
            ..Relayed::default()
        };
        assert!(bad.into_fanout().is_none(), "ids that are not 16 bytes");
        let device = Uuid::now_v7();
        assert_eq!(device_of(&channel(device)), Some(device));
        assert_eq!(device_of(b"obscura:device:nope"), None);
    }
}
