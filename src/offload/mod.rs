//! Work that must not run on a shard thread, and the channels between
//! threads: [`oneshot`] carries one value from any thread to an awaiting
//! shard task (waking its runtime); [`backpressure`] is how a sender waits
//! for room in a full bounded queue; [`workers`] is the CPU pool for
//! argon2; [`side_runtime`] is the tokio runtime of the tokio-based
//! libraries.

pub mod backpressure;
pub mod oneshot;
pub mod side_runtime;
pub mod workers;
