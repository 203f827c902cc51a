//! Work that must not run on a shard thread, and the channel that brings its
//! result back: [`oneshot`] carries one value from any thread to an awaiting
//! shard task (waking its runtime); [`workers`] is the CPU pool for argon2;
//! [`side_runtime`] is the tokio runtime of the tokio-based libraries.

pub mod oneshot;
pub mod side_runtime;
pub mod workers;
