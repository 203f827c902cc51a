//! The protobuf wire contract (BEHAVIOR.md §18), generated at build time from
//! `proto/obscura/v1/obscura.proto` by prost.

#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/obscura.v1.rs"));
