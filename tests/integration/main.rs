//! Black-box integration suite for `obscura-relay`.
//!
//! Every test spawns the real server binary (see `common::server`) on port 0 in its own temp
//! dir and talks to it over HTTP: through `ureq` for ordinary requests and through raw
//! `TcpStream`s where the bytes on the wire matter (pipelining, slow clients, malformed input).
//! Tests are independent and run in parallel under cargo-nextest.

mod common;

mod account;
mod account_deletion;
mod accounts;
mod acks;
mod admin;
mod attachments;
mod auth;
mod backup;
mod blob_memory;
mod bodies;
mod bundles;
mod cluster;
mod cluster_deletions;
mod cluster_races;
mod cql_store;
mod crash;
mod delivery;
mod device_keys;
mod device_revocation;
mod devices;
mod gateway_session;
mod http_protocol;
mod key_upload;
mod legacy;
mod limits;
mod messages;
mod prekey_status;
mod push;
mod rate_limit;
mod restart;
mod retention;
mod rolling_deploy;
mod scopes;
mod sessions;
mod signing_keys;
mod smoke;
mod tickets;
