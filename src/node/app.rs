//! [`App`]: the state every shard of the process shares. `Send + Sync`;
//! each part is internally shared (an `Arc`, a channel, atomics), so a
//! handler holds `&App`; only the recent token revocations take a lock,
//! and only when one arrives ([`Revocations`]).

use std::sync::Arc;

use super::revocations::Revocations;
use crate::auth::passwords::Passwords;
use crate::auth::rate_limit::Buckets;
use crate::auth::tokens::TokenKeys;
use crate::blob::Blobs;
use crate::config::Config;
use crate::metrics::{Metrics, ShardMetrics};
use crate::store::Store;

/// See the module documentation.
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
    /// Rate-limit buckets of every client IP (shared, lock-free).
    pub buckets: Buckets,
    /// Accounts whose older access tokens are refused (recent password
    /// changes and deletions).
    pub revocations: Revocations,
}

impl App {
    /// Shard `i`'s metric slots.
    pub fn shard_metrics(&self, shard: usize) -> Option<&ShardMetrics> {
        self.metrics.shard(shard)
    }
}
