//! [`MeshBus`]: the [`EventBus`] of one relay process. Every event of a
//! device goes to the device's owner shard over the mesh (or inline when
//! that is this shard), whose [`Hub`] fans it out to the device's sessions;
//! a session subscribes by joining the presence on the owner shard.
//! Nothing here waits but a subscription, which needs the owner's answer.

use std::collections::HashMap;
use std::rc::Rc;

use uuid::Uuid;

use super::events::{Arrival, BusFuture, DeviceEvent, EventBus};
use super::hub::{Fanout, Hub};
use super::presence::SessionRef;
use crate::offload::oneshot::Canceled;
use crate::shard::mesh::{Job, MeshEndpoint};
use crate::shard::{placement, ShardId};

/// See the module documentation.
pub struct MeshBus {
    endpoint: Rc<MeshEndpoint<Hub>>,
}

impl MeshBus {
    /// The bus of the shard that `endpoint` is connected on.
    pub fn new(endpoint: Rc<MeshEndpoint<Hub>>) -> Self {
        Self { endpoint }
    }

    fn owner(&self, device: Uuid) -> ShardId {
        placement::device_owner(device, self.endpoint.shards())
    }

    /// Runs `job` on shard `owner`: inline when that is this shard.
    fn on(&self, owner: ShardId, job: Job<Hub>) {
        let hub = self.endpoint.context();
        if owner == self.endpoint.me() {
            job(hub.clone());
        } else {
            hub.send_to(owner, job);
        }
    }
}

impl EventBus for MeshBus {
    fn raise(&self, device: Uuid, event: DeviceEvent) {
        self.on(
            self.owner(device),
            Box::new(move |hub| hub.fan_out(device, Fanout::Event(event))),
        );
    }

    fn arrived(&self, arrivals: Vec<(Uuid, Arrival)>) {
        for (owner, targets) in by_owner(arrivals, self.endpoint.shards()) {
            self.on(
                owner,
                Box::new(move |hub| {
                    for (target, arrivals) in targets {
                        hub.fan_out(target, Fanout::Arrivals(arrivals));
                    }
                }),
            );
        }
    }

    fn subscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, Result<(), Canceled>> {
        let owner = self.owner(device);
        Box::pin(
            self.endpoint
                .call(owner, move |hub| async move { hub.join(device, session) }),
        )
    }

    fn unsubscribe(&self, device: Uuid, session: SessionRef) -> BusFuture<'_, ()> {
        let owner = self.owner(device);
        Box::pin(async move {
            let _ = self
                .endpoint
                .call(owner, move |hub| async move { hub.leave(device, session) })
                .await;
        })
    }
}

/// The arrivals of each target, grouped by the target's owner shard, each
/// target's in their append order.
type ByOwner = HashMap<ShardId, Vec<(Uuid, Vec<Arrival>)>>;

fn by_owner(arrivals: Vec<(Uuid, Arrival)>, shards: usize) -> ByOwner {
    let mut grouped = ByOwner::new();
    for (target, arrival) in arrivals {
        let targets = grouped.entry(placement::device_owner(target, shards)).or_default();
        match targets.iter_mut().find(|(t, _)| *t == target) {
            Some((_, list)) => list.push(arrival),
            None => targets.push((target, vec![arrival])),
        }
    }
    grouped
}
