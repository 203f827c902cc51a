//! Shards: one pinned monoio runtime per core ([`runtime`]), the placement
//! of devices on them ([`placement`]), the mesh between them ([`mesh`]) and
//! its bounded overflow for threads that must not block ([`overflow`]),
//! work spread over ticks ([`pacing`]),
//! each shard's shutdown signal ([`shutdown`]), and how a periodic job
//! runs on a shard ([`periodic`]).
//!
//! Nothing here blocks: a shard thread only runs futures that yield on I/O,
//! timers, the mesh or a [`crate::offload::oneshot`].

pub mod mesh;
pub mod overflow;
pub mod pacing;
pub mod periodic;
pub mod placement;
pub mod runtime;
pub mod shutdown;

/// Index of a shard, `0..shards`.
pub type ShardId = usize;
