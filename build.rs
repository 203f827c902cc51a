//! Compiles `proto/obscura/v1/obscura.proto` (clients) and `proto/cluster.proto`
//! (between relay nodes) with protox (a pure-Rust protobuf compiler), so a
//! fresh machine builds with cargo alone: no system `protoc`.
//!
//! Also sets a cfg for each service a test may need, where this machine has
//! it; without it the tests that need it are reported ignored, never passed
//! (`.ci/run` provides every service and fails if any test was ignored):
//! - `cql_node`: a CQL node (the `OBSCURA_TEST_CQL_NODES` variable, or a
//!   Cassandra build in `../shared/cassandra` or `OBSCURA_TEST_CASSANDRA_DIR`);
//! - `moto`: the S3 stand-in (`python3 -m moto.server`), for the S3 tests;
//! - `redis_server`: `redis-server` on `PATH`, for the tests of several nodes;
//! - `old_relay`: a relay binary of the previous release at
//!   `OBSCURA_TEST_OLD_RELAY`, for the rolling-deploy test (`.ci/run` builds
//!   it from the commit it pins).
//!
//! Each is watched where it exists; a service installed later is seen after
//! `touch build.rs` (README "The two commands").

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/obscura/v1/obscura.proto", "proto/cluster.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
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
    provide("moto", moto_package());
    provide("redis_server", on_path("redis-server"));
    println!("cargo:rerun-if-env-changed=OBSCURA_TEST_OLD_RELAY");
    let old_relay = std::env::var_os("OBSCURA_TEST_OLD_RELAY").map(PathBuf::from);
    provide("old_relay", old_relay.filter(|path| path.is_file()));
    Ok(())
}

/// Sets cfg `name` when `found` (a file to watch) is there.
fn provide(name: &str, found: Option<PathBuf>) {
    println!("cargo:rustc-check-cfg=cfg({name})");
    if let Some(path) = found {
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-cfg={name}");
    }
}

/// moto's package file, if `python3` can import its server.
fn moto_package() -> Option<PathBuf> {
    let out = Command::new("python3")
        .args(["-c", "import moto.server, moto; print(moto.__file__)"])
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !path.trim().is_empty()).then(|| PathBuf::from(path.trim()))
}

/// The first `program` on `PATH`.
fn on_path(program: &str) -> Option<PathBuf> {
    println!("cargo:rerun-if-env-changed=PATH");
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}
