//! The ScyllaDB backend (`--store scylla`): every store trait on a ScyllaDB
//! or Cassandra cluster through the official `scylla` driver.
//!
//! The driver is tokio-based and a shard runs monoio, so, as object_store,
//! it runs on a side runtime of its own ([`crate::offload::side_runtime`]):
//! a store call hands a future over and the shard awaits its answer on a
//! tokio oneshot; nothing blocks a shard. Every statement is prepared once
//! ([`statements`], [`cql`]); the schema lives in `schema/` ([`schema`]).
//!
//! One file per trait: [`accounts`] (with [`account_deletion`]),
//! [`revocations`], [`devices`], [`prekeys`], [`mailboxes`] (with
//! [`mailbox_reads`]), [`idempotency`], [`refresh`], [`attachments`],
//! [`backups`], [`push`], [`tickets`]. What one process
//! keeps in memory to behave as the embedded store does is in
//! [`inflight`] (the send path) and [`caches`]; the time-bucketed indexes
//! that replace table scans are in [`time_index`]. [`import`] writes what
//! `store copy` reads from an embedded store. The data model is written up
//! in docs/ARCHITECTURE.md.

mod account_deletion;
mod account_rows;
mod accounts;
mod attachments;
mod backups;
mod caches;
mod cql;
mod devices;
mod idempotency;
pub mod import;
mod inflight;
mod mailbox_reads;
mod mailboxes;
mod node_tags;
mod positions;
mod prekeys;
mod push;
mod query_metrics;
mod refresh;
mod revocations;
pub mod schema;
pub mod session;
mod statements;
mod tickets;
mod time_index;
mod upkeep;

#[cfg(test)]
pub mod test_node;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use self::caches::{lock, Caches};
use self::cql::Cql;
use self::inflight::{Appends, Keys};
use self::node_tags::TagLease;
use self::positions::SeqGenerator;
use self::session::ScyllaOptions;
use self::statements::Stmt;
use self::time_index::TimeIndexes;
use super::{Health, StoreError, StoreFuture};
use crate::offload::side_runtime::SideRuntime;

/// Everything a store call needs, shared with the driver's runtime.
pub(crate) struct Inner {
    cql: Cql,
    options: ScyllaOptions,
    /// This relay's id as the holder of its node tag.
    node: Uuid,
    positions: SeqGenerator,
    /// How long this relay surely holds its node tag.
    tag_lease: TagLease,
    appends: Appends,
    keys: Keys,
    caches: Caches,
    indexes: TimeIndexes,
    /// Devices deleted within the messages' lifetime (by a device deletion
    /// or an account deletion): their queued messages are never delivered,
    /// nor are they themselves found.
    deleted: Mutex<HashSet<Uuid>>,
    /// Key uploads of a device run one at a time in this process.
    uploads: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
}

/// The ScyllaDB store. Cheap to share behind an `Arc`.
pub struct ScyllaStore {
    inner: Arc<Inner>,
    runtime: SideRuntime,
}

impl ScyllaStore {
    /// Connects, applies (`--scylla-create-schema true`) or checks the
    /// schema, and prepares every statement, on `runtime`.
    pub fn open(options: ScyllaOptions, runtime: SideRuntime) -> Result<Arc<Self>, StoreError> {
        let opened = runtime
            .block_on(Self::connect(options))
            .map_err(|_| StoreError::Closed)??;
        let inner = Arc::new(opened);
        upkeep::start(&runtime, &inner);
        Ok(Arc::new(Self { inner, runtime }))
    }

    async fn connect(options: ScyllaOptions) -> Result<Inner, StoreError> {
        let session = session::connect(&options).await?;
        if options.create_schema {
            schema::apply(&session, &options).await?;
        } else {
            schema::check(&session, &options.keyspace).await?;
        }
        if options.reset_keyspace {
            schema::empty_keyspace(&session, &options.keyspace).await?;
        }
        session
            .use_keyspace(&options.keyspace, false)
            .await
            .map_err(cql::backend)?;
        let mut cql = Cql::prepare(session).await?;
        cql.lose_outcomes_of(options.lost_outcome_of);
        let indexes = TimeIndexes::load(&cql).await?;
        let node = Uuid::new_v4();
        let tag_lease = TagLease::new(options.node_tag_ttl);
        let tag = node_tags::claim(&cql, node, &tag_lease).await?;
        tracing::info!(tag, "claimed a node tag for mailbox positions");
        let mut inner = Inner {
            cql,
            options,
            node,
            positions: SeqGenerator::new(tag),
            tag_lease,
            appends: Appends::default(),
            keys: Keys::default(),
            caches: Caches::new(),
            indexes,
            deleted: Mutex::new(HashSet::new()),
            uploads: Mutex::new(HashMap::new()),
        };
        let mut deleted = mailbox_reads::load_deleted_senders(&inner).await?;
        deleted.extend(inner.load_pending_deleted_devices().await?);
        inner.deleted = Mutex::new(deleted);
        Ok(inner)
    }

    /// Runs `op` on the driver's runtime and awaits its answer here.
    fn call<T, F, Fut>(&self, op: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let future = op(self.inner.clone());
        Box::pin(async move { self.runtime.run(future).await.map_err(|_| StoreError::Closed)? })
    }
}

impl Inner {
    /// Whether `device` was deleted (its queued messages are hidden).
    fn is_deleted_sender(&self, device: &Uuid) -> bool {
        lock(&self.deleted).contains(device)
    }

    /// The lock that serializes key uploads of `device` in this process.
    fn upload_lock(&self, device: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut uploads = lock(&self.uploads);
        uploads.retain(|_, l| Arc::strong_count(l) > 1);
        uploads.entry(device).or_default().clone()
    }
}

impl Health for ScyllaStore {
    fn ping(&self) -> StoreFuture<'_, ()> {
        self.call(|s| async move {
            if !s.options.ping_delay.is_zero() {
                tokio::time::sleep(s.options.ping_delay).await;
            }
            s.cql.exec(Stmt::Ping, ()).await.map(drop)
        })
    }

    fn is_poisoned(&self) -> bool {
        false
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every acknowledged write is already durable at the configured
        // consistency: there is nothing to flush.
        Ok(())
    }

    fn render_metrics(&self, out: &mut String) {
        self.inner.cql.metrics().render(out);
    }
}
