//! What a handler works with: [`App`] (shared by every shard: config, store,
//! blobs, token keys, password pool, metrics), [`ShardLocal`] (one shard's own
//! state, reached over the mesh) and [`RequestCtx`] (one request, with the
//! authentication and placement helpers every handler uses).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use super::error::{device_scope_required, ApiError};
use super::known_devices::KnownDevices;
use crate::admin::metrics::{Counter, Metrics, ShardMetrics};
use crate::auth::passwords::Passwords;
use crate::auth::rate_limit::Buckets;
use crate::auth::tokens::{bearer_token, Principal, TokenKeys};
use crate::blob::Blobs;
use crate::config::Config;
use crate::gateway::events::{Arrival, DeviceEvent, Presence, SessionRef, SessionSignal};
use crate::http::RequestHead;
use crate::limits;
use crate::push::worker::Pusher;
use crate::shard::mesh::{Job, Mesh, MeshEndpoint};
use crate::shard::placement;
use crate::shard::shutdown::Shutdown;
use crate::shard::ShardId;
use crate::store::Store;

/// State shared by every shard; `Send + Sync`, read-only after start.
pub struct App {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// Blob storage (attachments, backups).
    pub blobs: Blobs,
    /// Access-token keys.
    pub tokens: TokenKeys,
    /// Password hashing on the worker pool.
    pub passwords: Passwords,
    /// Every shard's metrics.
    pub metrics: Arc<Metrics>,
    /// Wake-up push sending (the worker runs on shard 0).
    pub pusher: Pusher,
    /// Rate-limit buckets of every client IP (shared, lock-free).
    pub buckets: Buckets,
}

impl App {
    /// Shard `i`'s metric slots.
    pub fn shard_metrics(&self, shard: usize) -> Option<&ShardMetrics> {
        self.metrics.shard(shard)
    }
}

/// One shard's own state; only that shard's thread touches it.
pub struct ShardLocal {
    /// The shared state.
    pub app: Arc<App>,
    /// This shard.
    pub me: ShardId,
    /// The mesh, for events this shard sends without awaiting an answer.
    pub mesh: Arc<Mesh<ShardLocal>>,
    /// This shard's shutdown signal.
    pub shutdown: Shutdown,
    /// Open sessions of the devices this shard owns.
    pub presence: RefCell<Presence>,
    /// Sessions whose sockets this shard holds, by id.
    sessions: RefCell<HashMap<u64, Rc<SessionSignal>>>,
    next_session: Cell<u64>,
    /// Message targets this shard has seen stored: no legacy resolution.
    pub known_devices: RefCell<KnownDevices>,
}

impl ShardLocal {
    /// A shard's state before it serves.
    pub fn new(app: Arc<App>, me: ShardId, mesh: Arc<Mesh<ShardLocal>>, shutdown: Shutdown) -> Self {
        Self {
            app,
            me,
            mesh,
            shutdown,
            presence: RefCell::default(),
            sessions: RefCell::default(),
            next_session: Cell::new(0),
            known_devices: RefCell::new(KnownDevices::new(limits::KNOWN_DEVICES_MAX)),
        }
    }

    /// Registers a session whose socket this shard holds.
    pub fn open_session(&self) -> (u64, Rc<SessionSignal>) {
        let id = self.next_session.get();
        self.next_session.set(id + 1);
        let signal = Rc::new(SessionSignal::default());
        self.sessions.borrow_mut().insert(id, signal.clone());
        (id, signal)
    }

    /// Forgets a closed session.
    pub fn close_session(&self, id: u64) {
        self.sessions.borrow_mut().remove(&id);
    }

    /// Raises `event` on a session of this shard (if it is still open).
    pub fn signal_session(&self, id: u64, event: DeviceEvent) {
        let signal = self.sessions.borrow().get(&id).cloned();
        if let Some(signal) = signal {
            signal.raise(event);
        }
    }

    /// Hands new messages to a session of this shard (if it is still open).
    pub fn arrive_at_session(&self, id: u64, arrivals: &[Arrival]) {
        let signal = self.sessions.borrow().get(&id).cloned();
        if let Some(signal) = signal {
            signal.arrive(arrivals);
        }
    }

    /// On the owner shard of `device`: raises `event` on every open session
    /// of the device, wherever its socket is.
    pub fn notify(&self, device: Uuid, event: DeviceEvent) {
        for session in self.sessions_of(device) {
            if session.shard == self.me {
                self.signal_session(session.id, event);
            } else {
                self.send_to(
                    session.shard,
                    Box::new(move |local| local.signal_session(session.id, event)),
                );
            }
        }
    }

    /// On the owner shard of `device`: hands the messages just appended
    /// for it to every open session of the device, wherever its socket is.
    pub fn deliver(&self, device: Uuid, arrivals: Vec<Arrival>) {
        for session in self.sessions_of(device) {
            if session.shard == self.me {
                self.arrive_at_session(session.id, &arrivals);
            } else {
                let arrivals = arrivals.clone();
                self.send_to(
                    session.shard,
                    Box::new(move |local| local.arrive_at_session(session.id, &arrivals)),
                );
            }
        }
    }

    fn sessions_of(&self, device: Uuid) -> Vec<SessionRef> {
        debug_assert_eq!(placement::device_owner(device, self.mesh.shards()), self.me);
        self.presence.borrow().sessions(&device).to_vec()
    }

    /// Adds `n` to a counter of this shard.
    pub fn count(&self, counter: Counter, n: usize) {
        if let Some(metrics) = self.app.shard_metrics(self.me) {
            metrics.add(counter, n as u64);
        }
    }

    /// Queues `job` on `shard` without waiting (in a task when its inbox is full).
    pub fn send_to(&self, shard: ShardId, job: Job<ShardLocal>) {
        if let Err(job) = self.mesh.try_push(shard, job) {
            let mesh = self.mesh.clone();
            monoio::spawn(async move { mesh.push(shard, job).await });
        }
    }
}

/// One request as a handler sees it.
pub struct RequestCtx<'a> {
    /// Shared state.
    pub app: &'a Arc<App>,
    /// This shard's mesh endpoint.
    pub mesh: &'a Rc<MeshEndpoint<ShardLocal>>,
    /// The request head.
    pub head: &'a RequestHead,
    /// The path parameter, raw.
    pub param: Option<&'a str>,
}

impl RequestCtx<'_> {
    /// The caller named by a valid bearer token (401 otherwise).
    pub fn principal(&self) -> Result<Principal, ApiError> {
        let token = bearer_token(self.head.headers.get(http::header::AUTHORIZATION)).ok_or(ApiError::Unauthorized)?;
        self.app.tokens.verify(token).map_err(|_| ApiError::Unauthorized)
    }

    /// The calling device of a device-scoped token (403 for a user token).
    pub fn device_principal(principal: Principal) -> Result<(Uuid, Uuid), ApiError> {
        principal
            .device_id
            .map(|d| (principal.user_id, d))
            .ok_or_else(device_scope_required)
    }

    /// The path parameter as a UUID (400 otherwise).
    pub fn path_uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let raw = self.param.unwrap_or_default();
        super::routes::parse_uuid(raw).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Invalid URL: Cannot parse `{name}` with value `{raw}` to a UUID"
            ))
        })
    }

    /// Adds one to a counter of this shard.
    pub fn count(&self, counter: Counter) {
        self.mesh.context().count(counter, 1);
    }

    /// The device of a device-scoped token (403 for a user token).
    pub fn calling_device(&self) -> Result<(Uuid, Uuid), ApiError> {
        Self::device_principal(self.principal()?)
    }

    /// Runs `f` on the shard that owns `device_id`, with that shard's state.
    pub async fn on_device_owner<T, F, Fut>(&self, device_id: Uuid, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(Rc<ShardLocal>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let owner = placement::device_owner(device_id, self.mesh.shards());
        Ok(self.mesh.call(owner, f).await?)
    }
}
