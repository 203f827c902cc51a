//! Shards: one pinned monoio runtime per core, the placement of state on
//! them, and the mesh between them.
//!
//! Nothing here blocks: a shard thread only runs futures that yield on I/O,
//! timers, the mesh or a [`crate::offload::oneshot`].

pub mod mesh;
pub mod placement;
pub mod runtime;
pub mod shutdown;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;
