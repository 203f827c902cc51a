//! The node's state: what the API and the background jobs work with.
//! [`App`] is shared by every shard of the process (config, store, blobs,
//! token keys, password pool, metrics, rate-limit buckets, recent token
//! revocations); [`ShardLocal`] is one shard's own (its gateway hub and
//! event bus, its cache of known message targets, its view of the
//! revocations), touched only on that shard.
//!
//! It sits above the gateway (a shard's state holds its hub) and below the
//! jobs and the API that use it.

pub mod app;
pub mod cluster_inbox;
pub mod confirmations;
pub mod known_devices;
pub mod revocation_broadcast;
pub mod revocations;
pub mod send_claims;
pub mod shard_local;

pub use self::app::App;
pub use self::shard_local::ShardLocal;
