//! Work that must not run on a shard thread, and the channel that brings its
//! result back: [`oneshot`] carries one value from any thread to an awaiting
//! shard task (waking its runtime); [`workers`] is the CPU pool for argon2.

pub mod oneshot;
pub mod workers;
