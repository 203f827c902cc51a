//! How the ScyllaDB store connects: [`ScyllaOptions`] (from the
//! `--scylla-*` options) and [`connect`], which opens a driver session with
//! the configured consistency, timeouts, credentials and datacenter. Client
//! timestamps come from a monotonic generator, so a compensating delete the
//! store sends after a failed write always wins over that write.

use std::sync::Arc;
use std::time::Duration;

use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::policies::timestamp_generator::MonotonicTimestampGenerator;
use scylla::statement::{Consistency, SerialConsistency};

use super::cql::backend;
use crate::config::{Config, CqlConsistency};
use crate::store::StoreError;

/// How the keyspace replicates, when it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// SimpleStrategy with this factor.
    Simple(u32),
    /// NetworkTopologyStrategy with a factor per datacenter.
    PerDatacenter(Vec<(String, u32)>),
}

impl Replication {
    /// The keyspace's `replication` map in CQL.
    pub fn cql(&self) -> String {
        match self {
            Replication::Simple(n) => format!("{{'class': 'SimpleStrategy', 'replication_factor': {n}}}"),
            Replication::PerDatacenter(dcs) => {
                let pairs: Vec<String> = dcs.iter().map(|(dc, n)| format!("'{dc}': {n}")).collect();
                format!("{{'class': 'NetworkTopologyStrategy', {}}}", pairs.join(", "))
            }
        }
    }
}

/// Everything the ScyllaDB store is opened with.
#[derive(Debug, Clone)]
pub struct ScyllaOptions {
    /// Contact points, `host:port`.
    pub nodes: Vec<String>,
    /// The keyspace (letters, digits and `_`).
    pub keyspace: String,
    /// Replication of a created keyspace.
    pub replication: Replication,
    /// Datacenter served first.
    pub local_datacenter: Option<String>,
    /// Consistency of reads and writes.
    pub consistency: CqlConsistency,
    /// Credentials.
    pub credentials: Option<(String, String)>,
    /// Connection timeout.
    pub connect_timeout: Duration,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Create the keyspace and apply the schema at start.
    pub create_schema: bool,
    /// Lifetime of messages, seconds (the retention sweep's horizon).
    pub ttl_secs: i64,
    /// Period of the retention sweep, seconds.
    pub sweep_interval_secs: u64,
    /// Empty every table at start (test builds, keyspaces leased by tests).
    pub reset_keyspace: bool,
    /// Every ping takes this long (test builds: exercises /readyz timeouts).
    pub ping_delay: Duration,
    /// Every append waits this long after taking its positions, before its
    /// rows are written (test builds: makes a late commit, as a slow node
    /// would).
    pub append_delay: Duration,
    /// The process kills itself right after an account deletion's decision,
    /// before its cascade (test builds: exercises the clean-up after a
    /// restart; always false in release).
    pub abort_after_deletion_decision: bool,
    /// A lightweight transaction of the statement with this name that
    /// applies is reported as of unknown outcome (test builds: a Paxos
    /// round that timed out after it committed; always `None` in release).
    pub lost_outcome_of: Option<&'static str>,
    /// Life of this relay's claim on its node tag (renewed every quarter of
    /// it, at most every `SCYLLA_NODE_TAG_RENEW_SECS`): the default, or
    /// shorter in test builds (`--test-node-tag-ttl-secs`).
    pub node_tag_ttl: Duration,
}

/// Why the options cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("--scylla-keyspace must be 1 to 48 letters, digits or underscores, starting with a letter, got {0:?}")]
pub struct BadKeyspace(String);

impl ScyllaOptions {
    /// The options of `config`.
    pub fn from_config(config: &Config) -> Result<Self, StoreError> {
        let c = &config.scylla;
        let keyspace = c.scylla_keyspace.clone();
        let valid = (1..=48).contains(&keyspace.len())
            && keyspace.starts_with(|ch: char| ch.is_ascii_alphabetic())
            && keyspace.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
        if !valid {
            return Err(StoreError::Backend(Box::new(BadKeyspace(keyspace))));
        }
        let replication = match c.datacenters().map_err(|e| StoreError::Backend(Box::new(e)))? {
            Some(dcs) => Replication::PerDatacenter(dcs),
            None => Replication::Simple(c.scylla_replication_factor),
        };
        let credentials = c
            .scylla_username
            .clone()
            .map(|u| (u, c.scylla_password.clone().unwrap_or_default()));
        Ok(Self {
            nodes: c
                .scylla_nodes
                .iter()
                .filter(|n| !n.trim().is_empty())
                .cloned()
                .collect(),
            keyspace,
            replication,
            local_datacenter: c.scylla_local_datacenter.clone(),
            consistency: c.scylla_consistency,
            credentials,
            connect_timeout: Duration::from_millis(c.scylla_connect_timeout_ms),
            request_timeout: c.request_timeout(),
            create_schema: c.scylla_create_schema,
            ttl_secs: config.ttl_secs(),
            sweep_interval_secs: config.messaging_cleanup_interval_secs,
            #[cfg(debug_assertions)]
            reset_keyspace: config.test_scylla_reset_keyspace,
            #[cfg(not(debug_assertions))]
            reset_keyspace: false,
            ping_delay: config.store_faults().ping_delay,
            append_delay: config.store_faults().append_delay,
            abort_after_deletion_decision: config.abort_after_account_deletion(),
            lost_outcome_of: None,
            node_tag_ttl: config.node_tag_ttl(),
        })
    }
}

/// The driver's consistency level for ours.
fn consistency(level: CqlConsistency) -> Consistency {
    match level {
        CqlConsistency::Quorum => Consistency::Quorum,
        CqlConsistency::All => Consistency::All,
        CqlConsistency::LocalQuorum => Consistency::LocalQuorum,
        CqlConsistency::EachQuorum => Consistency::EachQuorum,
    }
}

/// The serial level that matches a consistency level: local levels keep
/// lightweight transactions in the local datacenter.
fn serial_consistency(level: CqlConsistency) -> SerialConsistency {
    match level {
        CqlConsistency::LocalQuorum => SerialConsistency::LocalSerial,
        _ => SerialConsistency::Serial,
    }
}

/// Opens a session (no keyspace yet). Must run on the driver's runtime.
pub async fn connect(options: &ScyllaOptions) -> Result<Session, StoreError> {
    let mut policy = DefaultPolicy::builder().token_aware(true);
    if let Some(dc) = &options.local_datacenter {
        policy = policy.prefer_datacenter(dc.clone());
    }
    let profile = ExecutionProfile::builder()
        .consistency(consistency(options.consistency))
        .serial_consistency(Some(serial_consistency(options.consistency)))
        .request_timeout(Some(options.request_timeout))
        .load_balancing_policy(policy.build())
        .build();
    let mut builder = SessionBuilder::new()
        .known_nodes(&options.nodes)
        .connection_timeout(options.connect_timeout)
        .default_execution_profile_handle(profile.into_handle())
        .timestamp_generator(Arc::new(MonotonicTimestampGenerator::new()));
    if let Some((user, password)) = &options.credentials {
        builder = builder.user(user.clone(), password.clone());
    }
    builder.build().await.map_err(backend)
}
