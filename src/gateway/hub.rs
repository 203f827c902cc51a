//! [`Hub`]: one shard's gateway, and the context every mesh job runs with.
//! It holds two tables, both touched only on this shard:
//!
//! - the **presence** of the devices this shard owns (which sessions each
//!   has open, on which shard): an event of a device is fanned out from
//!   here ([`Hub::fan_out`]);
//! - the **sessions** whose sockets this shard holds, by id: a fanned-out
//!   event lands in one of them (`Hub::land`: the session's
//!   [`super::signal::SessionSignal`]).
//!
//! It also carries what a session needs from the node (store, config,
//! metrics, the shard's shutdown), so that the gateway depends on nothing
//! above it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::events::{Arrival, DeviceEvent};
use super::presence::{Presence, SessionRef};
use super::signal::SessionSignal;
use crate::config::Config;
use crate::limits;
use crate::metrics::{Counter, Metrics};
use crate::shard::mesh::{Job, Mesh};
use crate::shard::pacing::pace;
use crate::shard::shutdown::Shutdown;
use crate::shard::{placement, ShardId};
use crate::store::Store;

/// What happened to a device, as it is handed to its sessions.
#[derive(Debug, Clone)]
pub enum Fanout {
    /// An event without data.
    Event(DeviceEvent),
    /// Messages just appended for it, in commit order.
    Arrivals(Vec<Arrival>),
    /// Messages were appended, or may have been: the sessions read the
    /// store after their cursors.
    Stale,
}

/// See the module documentation.
pub struct Hub {
    me: ShardId,
    mesh: Arc<Mesh<Hub>>,
    presence: RefCell<Presence>,
    sessions: RefCell<HashMap<u64, Rc<SessionSignal>>>,
    /// The ids in `sessions`, by device.
    by_device: RefCell<HashMap<Uuid, Vec<u64>>>,
    next_session: Cell<u64>,
    /// This shard's shutdown signal (sessions close with 1001 on it).
    pub shutdown: Shutdown,
    /// The storage backend (mailboxes, prekey counts, acks, push jobs).
    pub store: Arc<dyn Store>,
    /// The configuration (the session's bounds).
    pub config: Arc<Config>,
    metrics: Arc<Metrics>,
}

/// What a [`Hub`] is made of, besides its tables.
pub struct HubParts {
    /// The shard.
    pub me: ShardId,
    /// The mesh of every shard's hub.
    pub mesh: Arc<Mesh<Hub>>,
    /// The shard's shutdown signal.
    pub shutdown: Shutdown,
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Every shard's metrics.
    pub metrics: Arc<Metrics>,
}

impl Hub {
    /// A shard's hub before it serves: no presence, no sessions.
    pub fn new(parts: HubParts) -> Self {
        Self {
            me: parts.me,
            mesh: parts.mesh,
            presence: RefCell::default(),
            sessions: RefCell::default(),
            by_device: RefCell::default(),
            next_session: Cell::new(0),
            shutdown: parts.shutdown,
            store: parts.store,
            config: parts.config,
            metrics: parts.metrics,
        }
    }

    /// This shard.
    pub fn me(&self) -> ShardId {
        self.me
    }

    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// How far behind the newest position a message may still commit in a
    /// mailbox: the store's window when several relay nodes append to one
    /// mailbox (a pub/sub link is set), else 0 ([`super::cursor`]).
    pub fn late_commit_window(&self) -> u64 {
        if self.config.pubsub_url.is_some() {
            self.store.late_commit_window()
        } else {
            0
        }
    }

    /// Adds `n` to a counter of this shard.
    pub fn count(&self, counter: Counter, n: usize) {
        if let Some(metrics) = self.metrics.shard(self.me) {
            metrics.add(counter, n as u64);
        }
    }

    /// Registers a session of `device` whose socket this shard holds.
    pub fn open_session(&self, device: Uuid) -> (u64, Rc<SessionSignal>) {
        let id = self.next_session.get();
        self.next_session.set(id + 1);
        let signal = Rc::new(SessionSignal::default());
        self.sessions.borrow_mut().insert(id, signal.clone());
        self.by_device.borrow_mut().entry(device).or_default().push(id);
        (id, signal)
    }

    /// Forgets a closed session of `device`.
    pub fn close_session(&self, device: Uuid, id: u64) {
        self.sessions.borrow_mut().remove(&id);
        let mut by_device = self.by_device.borrow_mut();
        if let Some(ids) = by_device.get_mut(&device) {
            ids.retain(|i| *i != id);
            if ids.is_empty() {
                by_device.remove(&device);
            }
        }
    }

    /// Hands `what` to every session of `device` whose socket this shard
    /// holds (an event from another relay node).
    pub fn land_device(&self, device: Uuid, what: &Fanout) {
        let ids = self.by_device.borrow().get(&device).cloned().unwrap_or_default();
        for id in ids {
            self.land(id, what);
        }
    }

    /// Every session of this shard reads the store after its cursor
    /// (events may have been lost): [`limits::RESYNC_SESSIONS_PER_TICK`]
    /// of them every [`limits::RESYNC_TICK_MS`], so a resync of a node with
    /// many sockets does not send them all to the store at once.
    pub fn resync_all(&self) {
        let signals: Vec<Rc<SessionSignal>> = self.sessions.borrow().values().cloned().collect();
        let tick = Duration::from_millis(limits::RESYNC_TICK_MS);
        pace(signals, limits::RESYNC_SESSIONS_PER_TICK, tick, |signal| signal.stale());
    }

    /// On the owner shard of `device`: records an open session of it.
    pub fn join(&self, device: Uuid, session: SessionRef) {
        self.assert_owner(device);
        self.presence.borrow_mut().join(device, session);
    }

    /// On the owner shard of `device`: forgets a session of it.
    pub fn leave(&self, device: Uuid, session: SessionRef) {
        self.assert_owner(device);
        self.presence.borrow_mut().leave(device, session);
    }

    /// On the owner shard of `device`: hands `what` to every open session
    /// of the device, on this shard directly, over the mesh otherwise.
    pub fn fan_out(&self, device: Uuid, what: Fanout) {
        self.assert_owner(device);
        let sessions = self.presence.borrow().sessions(&device).to_vec();
        for session in sessions {
            if session.shard == self.me {
                self.land(session.id, &what);
            } else {
                let what = what.clone();
                self.send_to(session.shard, Box::new(move |hub| hub.land(session.id, &what)));
            }
        }
    }

    /// Hands `what` to a session of this shard, if it is still open.
    fn land(&self, id: u64, what: &Fanout) {
        let signal = self.sessions.borrow().get(&id).cloned();
        match (signal, what) {
            (Some(signal), Fanout::Event(event)) => signal.raise(*event),
            (Some(signal), Fanout::Arrivals(arrivals)) => signal.arrive(arrivals),
            (Some(signal), Fanout::Stale) => signal.stale(),
            (None, _) => {}
        }
    }

    /// Queues `job` on `shard` without waiting (in a task when its inbox is
    /// full: back-pressure stays off the caller's path).
    pub fn send_to(&self, shard: ShardId, job: Job<Hub>) {
        if let Err(job) = self.mesh.try_push(shard, job) {
            let mesh = self.mesh.clone();
            monoio::spawn(async move { mesh.push(shard, job).await });
        }
    }

    fn assert_owner(&self, device: Uuid) {
        debug_assert_eq!(placement::device_owner(device, self.shards()), self.me);
    }
}
