//! Compiles `proto/obscura/v1/obscura.proto` with protox (a pure-Rust protobuf
//! compiler), so a fresh machine builds with cargo alone: no system `protoc`.
//!
//! Also sets the `cql_node` cfg when the tests can have a CQL node (the
//! `OBSCURA_TEST_CQL_NODES` variable, or a Cassandra build in
//! `../shared/cassandra` or `OBSCURA_TEST_CASSANDRA_DIR`): without it the
//! tests that need one are reported ignored, never passed.

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/obscura/v1/obscura.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    prost_build::Config::new().bytes(["."]).compile_fds(descriptors)?;

    println!("cargo:rustc-check-cfg=cfg(cql_node)");
    println!("cargo:rerun-if-env-changed=OBSCURA_TEST_CQL_NODES");
    println!("cargo:rerun-if-env-changed=OBSCURA_TEST_CASSANDRA_DIR");
    let cassandra = std::env::var_os("OBSCURA_TEST_CASSANDRA_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new("../shared/cassandra").to_path_buf());
    let start_node = cassandra.join("start-node");
    if start_node.exists() {
        // Watched only where it exists: a missing path would rerun this
        // script on every build.
        println!("cargo:rerun-if-changed={}", start_node.display());
    }
    if std::env::var_os("OBSCURA_TEST_CQL_NODES").is_some() || start_node.exists() {
        println!("cargo:rustc-cfg=cql_node");
    }
    Ok(())
}
