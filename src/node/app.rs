//! [`App`]: the state every shard of the process shares. `Send + Sync`;
//! each part is internally shared (an `Arc`, a channel, atomics), so a
//! handler holds `&App`; only the recent token revocations take a lock,
//! and only when one arrives ([`Revocations`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use super::confirmations::Confirmations;
use super::revocations::Revocations;
use crate::auth::passwords::Passwords;
use crate::auth::rate_limit::Buckets;
use crate::auth::tokens::TokenKeys;
use crate::blob::Blobs;
use crate::config::Config;
use crate::metrics::{Metrics, ShardMetrics};
use crate::proto::cluster::{job_lease, DeviceChanged, NodeMessage};
use crate::pubsub::Link;
use crate::store::Revocation;
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
    /// The link to the other relay nodes (`--pubsub-url`), if any.
    pub pubsub: Option<Link>,
    /// Accounts and devices whose older access tokens are refused (recent
    /// password changes and account and device deletions).
    pub revocations: Arc<Revocations>,
    /// Decisions of this node waiting for the other nodes to apply them.
    pub confirmations: Arc<Confirmations>,
}

impl App {
    /// Takes in revocations decided on this node (a password change, an
    /// account or a device deletion), and returns once every other node
    /// reached has applied them, or that failed or took too long: then they
    /// learn of it from the store within their re-read periods, and this is
    /// logged. The decision is answered only after this.
    pub async fn revoke(&self, revocations: &[Revocation]) {
        self.revocations
            .apply(revocations, crate::util::time::now_micros() / 1000);
        let Some(link) = &self.pubsub else {
            return;
        };
        let confirmed = super::revocation_broadcast::publish_confirmed(link, &self.confirmations, revocations).await;
        if let Err(e) = confirmed {
            tracing::warn!(
                error = %e,
                "could not tell every other node of a revocation; they learn of it from the store"
            );
        }
    }

    /// Tells the other nodes that `device` changed in a way they may have
    /// cached (a takeover emptied its mailbox, its push token was set), so
    /// they forget it; in the background. This node's store is up to date.
    pub fn device_changed(&self, device: Uuid) {
        let Some(link) = &self.pubsub else {
            return;
        };
        let changed = DeviceChanged {
            origin: link.node(),
            device: Bytes::copy_from_slice(device.as_bytes()),
        };
        let (channel, payload) = NodeMessage::DeviceChanged(changed).encode();
        link.publish(channel, payload);
    }

    /// Whether this node runs the periodic job `job` this period. A node
    /// alone always does; with a pub/sub link, only the node that takes
    /// the job's lease ([`job_lease`], held for nine tenths of
    /// `period`) does, so a deployment runs each clean-up once per period,
    /// not once per node. Every such job is idempotent, so when Redis
    /// cannot be asked the node runs it anyway: twice is only more work,
    /// never is a backlog.
    pub async fn lead(&self, job: &str, period: Duration) -> bool {
        let Some(link) = &self.pubsub else {
            return true;
        };
        match link.claim(job_lease(job), period.mul_f64(0.9)).await {
            // Held until it runs out: the job runs once per period.
            Ok(lease) => lease.is_some(),
            Err(e) => {
                tracing::debug!(error = %e, job, "job lease unavailable; running the job here");
                true
            }
        }
    }

    /// Shard `i`'s metric slots.
    pub fn shard_metrics(&self, shard: usize) -> Option<&ShardMetrics> {
        self.metrics.shard(shard)
    }
}
