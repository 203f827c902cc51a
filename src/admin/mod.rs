//! The management port: `/livez`, `/readyz` ([`readyz`]) and `/metrics`
//! (rendered from [`crate::metrics`]) for operators and their probes.
//! Served by shard 0 on its own listener; not rate limited.

pub mod readyz;
pub mod service;
