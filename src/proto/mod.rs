//! The protobuf wire contracts. With clients (BEHAVIOR.md §18): generated at
//! build time from `proto/obscura/v1/obscura.proto` by prost, and [`wire`]:
//! what the server reads of a client's bytes without building messages, so
//! that decoding stays within the bounds the body limits set. Between relay
//! nodes: [`cluster`] (`proto/cluster.proto`, and every Redis channel and
//! key name).

#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/obscura.v1.rs"));
}

pub mod cluster;
pub mod wire;

pub use generated::*;
