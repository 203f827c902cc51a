//! What a handler works with: [`App`] (shared by every shard: config, store,
//! token keys, password pool, metrics), [`ShardLocal`] (one shard's own
//! state, reached over the mesh) and [`RequestCtx`] (one request, with the
//! authentication and placement helpers every handler uses).

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use uuid::Uuid;

use super::error::{device_scope_required, ApiError};
use crate::admin::metrics::{Counter, Metrics, ShardMetrics};
use crate::auth::passwords::Passwords;
use crate::auth::rate_limit::Buckets;
use crate::auth::tokens::{bearer_token, Principal, TokenKeys};
use crate::config::Config;
use crate::http::RequestHead;
use crate::shard::mesh::MeshEndpoint;
use crate::shard::placement;
use crate::shard::shutdown::Shutdown;
use crate::store::Store;

/// State shared by every shard; `Send + Sync`, read-only after start.
pub struct App {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The storage backend.
    pub store: Arc<dyn Store>,
    /// Access-token keys.
    pub tokens: TokenKeys,
    /// Password hashing on the worker pool.
    pub passwords: Passwords,
    /// Every shard's metrics.
    pub metrics: Arc<Metrics>,
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
    /// Rate-limit buckets of the client IPs this shard owns.
    pub buckets: RefCell<Buckets>,
    /// This shard's shutdown signal.
    pub shutdown: Shutdown,
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
        if let Some(metrics) = self.app.shard_metrics(self.mesh.me()) {
            metrics.count(counter);
        }
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
