//! The management port: `/livez`, `/readyz` ([`readyz`]) and `/metrics`
//! ([`metrics`]) for operators and their probes. Served by shard 0 on its
//! own listener; not rate limited.

pub mod metrics;
pub mod readyz;
pub mod service;
