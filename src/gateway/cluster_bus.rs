//! [`ClusterBus`]: the [`EventBus`] of a relay node in a deployment of
//! several (`--pubsub-url`). Every event is raised in this process as the
//! [`MeshBus`] raises it, and published as the device's news
//! ([`super::news_wire`]) on its channel ([`Channel::Device`]) for the
//! other nodes. A node listens only on
//! the channels of the devices it holds sockets for: [`Cluster`] counts,
//! per device, the sessions each shard holds, subscribes when the first
//! opens and unsubscribes when the last closes, and hands what arrives
//! (decoded by the node's cluster inbox, `crate::node::cluster_inbox`)
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
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use uuid::Uuid;

use super::events::{Arrival, BusFuture, DeviceEvent, EventBus};
use super::hub::{Fanout, Hub};
use super::mesh_bus::MeshBus;
use super::news_wire::{arrivals_news, event_news, stale_news};
use super::presence::SessionRef;
use crate::limits;
use crate::offload::oneshot::Canceled;
use crate::proto::cluster::{Arrival as WireArrival, Channel, DeviceNews, NodeMessage};
use crate::pubsub::Link;
use crate::shard::mesh::{Job, Mesh};
use crate::shard::overflow::{MakeUp, Overflow};
use crate::shard::ShardId;

/// The part of the cluster bus shared by every shard of the process: who
/// holds which device's sockets, and where events from the link go.
pub struct Cluster {
    shards: usize,
    /// How jobs reach the shards from the side runtime, which never waits.
    overflow: Overflow<Hub>,
    /// Per device with sockets here: the shards holding them, with counts.
    holders: Mutex<HashMap<Uuid, Vec<(ShardId, usize)>>>,
}

impl Cluster {
    /// The cluster state of the process whose shards share `mesh`. A shard
    /// whose inbox and overflow are full is owed a re-read of every
    /// session's mailbox ([`Overflow`]).
    pub fn new(mesh: Arc<Mesh<Hub>>) -> io::Result<Arc<Self>> {
        let check = Duration::from_millis(limits::PUBSUB_OVERFLOW_CHECK_MS);
        let make_up: MakeUp<Hub> = Box::new(|| Box::new(|hub: Rc<Hub>| hub.resync_all()));
        Ok(Arc::new(Self {
            shards: mesh.shards(),
            overflow: Overflow::start(mesh, limits::PUBSUB_OVERFLOW_MAX, check, make_up)?,
            holders: Mutex::default(),
        }))
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

    /// Hands `job` to `shard` from the side runtime's thread, which never
    /// waits: a full inbox (rare: it holds thousands of jobs) is waited for
    /// by the overflow's one thread.
    fn send(&self, shard: ShardId, job: Job<Hub>) {
        self.overflow.send(shard, job);
    }
}

/// What arrives over the link for the gateway (the node's
/// [`crate::pubsub::Deliver`] decodes it and hands it on).
impl Cluster {
    /// News of `device` from another node: to the shards holding its
    /// sessions here.
    pub fn land(&self, device: Uuid, what: Fanout) {
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
        for shard in 0..self.shards {
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

    fn publish(&self, device: Uuid, news: DeviceNews) {
        let (channel, payload) = NodeMessage::Device { device, news }.encode();
        self.link.publish(channel, payload);
    }
}

impl EventBus for ClusterBus {
    fn raise(&self, device: Uuid, event: DeviceEvent) {
        self.local.raise(device, event);
        self.publish(device, event_news(self.link.node(), event));
    }

    fn arrived(&self, arrivals: Vec<(Uuid, Arrival)>) {
        let mut by_target: Vec<(Uuid, Vec<WireArrival>, usize)> = Vec::new();
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
            let origin = self.link.node();
            let news = if bytes <= limits::PUBSUB_ARRIVAL_BYTES_MAX {
                arrivals_news(origin, list)
            } else {
                stale_news(origin)
            };
            self.publish(target, news);
        }
    }

    fn subscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, Result<(), Canceled>> {
        Box::pin(async move {
            if self.cluster.hold(device, self.me) {
                self.link.subscribe(Channel::Device(device).name()).await;
            }
            self.local.subscribe(device, session).await
        })
    }

    fn unsubscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, ()> {
        Box::pin(async move {
            self.local.unsubscribe(device, session).await;
            if self.cluster.release(device, self.me) {
                self.link.unsubscribe(Channel::Device(device).name());
            }
        })
    }
}
