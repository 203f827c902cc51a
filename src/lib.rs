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
//! A request reads from socket to store by folder names:
//! `http::listener → http::connection → http::request → api::routes →
//! api::<resource> → shard::mesh → store::embedded::group_commit`.
//!
//! # The layers
//!
//! - [`config`]: flags and `OBSCURA_*` variables, validated once.
//! - [`limits`]: every bound with its unit and its reason.
//! - [`server`]: starts the shards, the admin port and the store; drains on shutdown.
//! - [`shard`]: runtimes, placement and the mesh (guards "nothing blocks a shard").
//! - [`http`]: HTTP/1.1 on a socket, nothing about our API (guards invariant 3 and 4).
//! - [`api`]: one file per resource of the contract; the only place statuses are chosen.
//! - [`auth`]: tokens, passwords, refresh families, rate limits.
//! - [`crypto`]: public-key formats and XEdDSA signature checks.
//! - [`gateway`]: the WebSocket: handshake, framing, sessions, delivery.
//! - [`mailbox`]: message retention (expiry, inbox limits).
//! - [`push`]: wake-up push jobs and their providers (FCM).
//! - [`store`]: the storage interface and its embedded backend (guards invariant 1).
//! - [`blob`]: attachments and backups in object storage (local or S3), streamed.
//! - [`offload`]: work that must not run on a shard, and the channel that returns it.
//! - [`admin`]: `/livez`, `/readyz`, `/metrics` on the management port.
//! - [`proto`]: the protobuf wire contract.

#![deny(clippy::unwrap_used)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod blob;
pub mod config;
pub mod crypto;
pub mod gateway;
pub mod http;
pub mod limits;
pub mod mailbox;
pub mod offload;
pub mod proto;
pub mod push;
pub mod server;
pub mod shard;
pub mod store;
pub mod util;
