//! Shards: one pinned monoio runtime per core ([`runtime`]), the placement
//! of devices on them ([`placement`]), the mesh between them ([`mesh`]),
//! each shard's shutdown signal ([`shutdown`]), and how a periodic job
//! runs on a shard ([`periodic`]).
//!
//! Nothing here blocks: a shard thread only runs futures that yield on I/O,
//! timers, the mesh or a [`crate::offload::oneshot`].

pub mod mesh;
pub mod periodic;
pub mod placement;
pub mod runtime;
pub mod shutdown;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;
