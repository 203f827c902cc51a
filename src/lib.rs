//! Obscura Relay: a privacy-first relay for Signal-protocol messengers.
//!
//! # The thread-per-core model
//!
//! The server runs `--shards` monoio runtimes, one per thread, each pinned to a
//! CPU and accepting on its own `SO_REUSEPORT` listener. A shard never blocks:
//! password hashing runs on [`offload::workers`], storage calls run on the
//! store's own threads ([`store::embedded`]). Every device is owned by one
//! shard ([`shard::placement`]); work on a device that lands on another shard
//! travels over the [`shard::mesh`], a set of bounded lock-free queues whose
//! pushes wake the target runtime.
//!
//! A message reads from socket to store, and on to the WebSocket that
//! delivers it, by folder names: `http::listener → http::connection →
//! http::request → api::routes → api::messages → store::embedded::group_commit
//! → gateway::events → gateway::mesh_bus → shard::mesh → gateway::hub →
//! gateway::session → gateway::delivery`.
//!
//! # The layers
//!
//! Bottom to top; a module uses its own layer and the ones below, never one
//! above (`tests/layers.rs` checks it, docs/ARCHITECTURE.md lists the rules):
//!
//! 0. [`limits`] (every bound and default), [`config`] (the options),
//!    [`util`] (time, CIDR, CPUs).
//! 1. [`shard`] (runtimes, placement, mesh, shutdown, periodic jobs; guards
//!    "nothing blocks a shard"), [`offload`] (work off the shards, and the
//!    channels back).
//! 2. [`http`] (HTTP/1.1, nothing about our API; invariants 3 and 4),
//!    [`store`] (the storage interface and its backends; invariant 1),
//!    [`blob`] (object storage), [`crypto`], [`auth`], [`proto`],
//!    [`metrics`], [`pubsub`] (the Redis link between relay nodes).
//! 3. [`gateway`] (sessions, presence, the device-event seam; invariant 2),
//!    [`node`] (the node's state: [`node::App`], [`node::ShardLocal`]).
//! 4. [`retention`] (the retention sweep), [`push`] (wake-up pushes), [`cleanup`]
//!    (blob and token clean-ups), [`admin`] (`/livez`, `/readyz`,
//!    `/metrics`).
//! 5. [`api`]: routes and handlers, the only place statuses are chosen.
//! 6. [`server`]: starts and stops it all.

#![deny(clippy::unwrap_used)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod blob;
pub mod cleanup;
pub mod config;
pub mod crypto;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod offload;
pub mod proto;
pub mod pubsub;
pub mod push;
pub mod retention;
pub mod server;
pub mod shard;
pub mod store;
pub mod util;
