//! The relay's CQL schema: the files of `schema/` at the top of the
//! repository, embedded in the binary, applied in order and recorded in the
//! keyspace's `schema_meta` table.
//!
//! [`apply`] creates the keyspace if absent (with tablets off where the
//! server is ScyllaDB, since tablets disable lightweight transactions on
//! some of its versions) and applies every version above the recorded one,
//! under a lock row taken with a lightweight transaction, so several nodes
//! starting at once apply it once; every statement is idempotent anyway.
//! [`check`] is what a start without `--scylla-create-schema` does: it
//! refuses a missing or older schema with the command to run. A binary runs
//! on its own version and on the next one (changes are additive), so a
//! rolling upgrade works.

use std::time::{Duration, Instant};

use scylla::client::session::Session;
use sha2::Digest;
use uuid::Uuid;

use super::cql::backend;
use super::session::ScyllaOptions;
use crate::store::StoreError;

/// The schema version this binary is written for.
pub const VERSION: i32 = 5;

/// Every version's CQL, in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../../../schema/001_initial.cql")),
    (2, include_str!("../../../schema/002_accounts.cql")),
    (3, include_str!("../../../schema/003_node_tags.cql")),
    (4, include_str!("../../../schema/004_user_scope.cql")),
    (5, include_str!("../../../schema/005_rotation_marks.cql")),
];

/// The table that records the version (and holds the apply lock).
const META_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_meta (name text PRIMARY KEY, version int, holder uuid)";

/// The CQL that creates `schema_meta` in `keyspace`. Every other table is
/// created under the lock this one holds, but this one is created by every
/// node that starts at once: ScyllaDB serializes schema changes (Raft),
/// while Cassandra gives each concurrent creation its own table id and
/// refuses all but one ("Column family ID mismatch"), so there the id is
/// fixed, derived from the keyspace's name, and concurrent creations agree.
fn meta_table(keyspace: &str, scylla: bool) -> String {
    let create = META_TABLE.replace("schema_meta", &format!("{keyspace}.schema_meta"));
    if scylla {
        return create;
    }
    let digest = sha2::Sha256::digest(format!("obscura-relay schema_meta {keyspace}").as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_sha1_bytes(id).into_uuid();
    format!("{create} WITH ID = {id}")
}

/// How long a lock row lives if its holder dies, seconds.
const LOCK_TTL_SECS: u32 = 120;

/// How long [`apply`] waits for another node's apply.
const LOCK_WAIT: Duration = Duration::from_secs(300);

/// Why the schema cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// No relay schema in the keyspace.
    #[error(
        "keyspace {keyspace} holds no relay schema: run `obscura-relay schema apply --store scylla \
         --scylla-nodes <nodes> --scylla-keyspace {keyspace}`, or start with --scylla-create-schema true"
    )]
    Missing {
        /// The keyspace.
        keyspace: String,
    },
    /// An older schema than this binary needs.
    #[error(
        "keyspace {keyspace} has schema version {found}, this binary needs {wanted}: run `obscura-relay \
         schema apply --store scylla --scylla-nodes <nodes> --scylla-keyspace {keyspace}`, or start with \
         --scylla-create-schema true"
    )]
    Older {
        /// The keyspace.
        keyspace: String,
        /// The recorded version.
        found: i32,
        /// This binary's version.
        wanted: i32,
    },
    /// A schema more than one version ahead of this binary.
    #[error("keyspace {keyspace} has schema version {found}; this binary runs on {wanted} or {next}: upgrade it")]
    Newer {
        /// The keyspace.
        keyspace: String,
        /// The recorded version.
        found: i32,
        /// This binary's version.
        wanted: i32,
        /// The next one.
        next: i32,
    },
    /// Another node held the apply lock for too long.
    #[error("another node has held the schema lock of keyspace {0} for over {LOCK_WAIT:?}")]
    LockTimeout(String),
}

fn schema_error(e: SchemaError) -> StoreError {
    StoreError::Backend(Box::new(e))
}

/// The statements of one schema file: separated by lines that hold only
/// `;`, comment lines dropped.
pub fn statements(file: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in file.lines() {
        let trimmed = line.trim();
        if trimmed == ";" {
            if !current.trim().is_empty() {
                out.push(current.trim().to_string());
            }
            current.clear();
        } else if !trimmed.starts_with("--") {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

async fn run(session: &Session, cql: &str) -> Result<(), StoreError> {
    session.query_unpaged(cql, ()).await.map_err(backend)?;
    Ok(())
}

/// Whether the server is ScyllaDB (it has `system.scylla_local`).
async fn is_scylla(session: &Session) -> Result<bool, StoreError> {
    let rows = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = 'system' AND table_name = 'scylla_local'",
            (),
        )
        .await
        .map_err(backend)?
        .into_rows_result()
        .map_err(backend)?;
    Ok(rows.rows_num() > 0)
}

/// Creates the keyspace if absent; on ScyllaDB with tablets off where the
/// server knows the option (an older one refuses it and gets none).
async fn create_keyspace(session: &Session, options: &ScyllaOptions) -> Result<(), StoreError> {
    let plain = format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {}",
        options.keyspace,
        options.replication.cql()
    );
    if is_scylla(session).await? {
        let with_tablets = format!("{plain} AND tablets = {{'enabled': false}}");
        match session.query_unpaged(with_tablets, ()).await {
            Ok(_) => return Ok(()),
            Err(e) if e.to_string().contains("tablets") => {}
            Err(e) => return Err(backend(e)),
        }
    }
    run(session, &plain).await
}

/// The version recorded in the session's keyspace (`None`: no schema).
async fn recorded_version(session: &Session, keyspace: &str) -> Result<Option<i32>, StoreError> {
    let tables = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'schema_meta'",
            (keyspace,),
        )
        .await
        .map_err(backend)?
        .into_rows_result()
        .map_err(backend)?;
    if tables.rows_num() == 0 {
        return Ok(None);
    }
    let version = session
        .query_unpaged(
            format!("SELECT version FROM {keyspace}.schema_meta WHERE name = 'version'"),
            (),
        )
        .await
        .map_err(backend)?
        .into_rows_result()
        .map_err(backend)?
        .maybe_first_row::<(Option<i32>,)>()
        .map_err(backend)?;
    Ok(version.and_then(|(v,)| v))
}

/// Refuses a keyspace whose schema this binary cannot run on.
pub async fn check(session: &Session, keyspace: &str) -> Result<i32, StoreError> {
    let found = recorded_version(session, keyspace).await?;
    let keyspace = keyspace.to_string();
    match found {
        None => Err(schema_error(SchemaError::Missing { keyspace })),
        Some(found) if found < VERSION => Err(schema_error(SchemaError::Older {
            keyspace,
            found,
            wanted: VERSION,
        })),
        Some(found) if found > VERSION + 1 => Err(schema_error(SchemaError::Newer {
            keyspace,
            found,
            wanted: VERSION,
            next: VERSION + 1,
        })),
        Some(found) => Ok(found),
    }
}

/// Creates the keyspace if absent and brings its schema up to this
/// binary's version; returns the version now recorded.
pub async fn apply(session: &Session, options: &ScyllaOptions) -> Result<i32, StoreError> {
    apply_up_to(session, options, VERSION).await?;
    check(session, &options.keyspace).await
}

/// Creates the keyspace if absent and applies every version up to `target`
/// (tests: a keyspace as an older binary left it); returns the version
/// now recorded.
pub async fn apply_up_to(session: &Session, options: &ScyllaOptions, target: i32) -> Result<i32, StoreError> {
    let keyspace = &options.keyspace;
    create_keyspace(session, options).await?;
    run(session, &meta_table(keyspace, is_scylla(session).await?)).await?;
    let holder = Uuid::new_v4();
    let started = Instant::now();
    loop {
        if let Some(found) = recorded_version(session, keyspace).await? {
            if found >= target {
                return Ok(found);
            }
        }
        if take_lock(session, keyspace, holder).await? {
            break;
        }
        if started.elapsed() > LOCK_WAIT {
            return Err(schema_error(SchemaError::LockTimeout(keyspace.clone())));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let applied = migrate(session, keyspace, target).await;
    let released = session
        .query_unpaged(
            format!("DELETE FROM {keyspace}.schema_meta WHERE name = 'lock' IF holder = ?"),
            (holder,),
        )
        .await;
    applied?;
    released.map_err(backend)?;
    Ok(recorded_version(session, keyspace).await?.unwrap_or(0))
}

async fn take_lock(session: &Session, keyspace: &str, holder: Uuid) -> Result<bool, StoreError> {
    let cql = format!(
        "INSERT INTO {keyspace}.schema_meta (name, holder) VALUES ('lock', ?) IF NOT EXISTS USING TTL {LOCK_TTL_SECS}"
    );
    let result = session.query_unpaged(cql, (holder,)).await.map_err(backend)?;
    let rows = result.into_rows_result().map_err(backend)?;
    let row = rows.maybe_first_row::<scylla::value::Row>().map_err(backend)?;
    Ok(matches!(
        row.and_then(|r| r.columns.into_iter().next().flatten()),
        Some(scylla::value::CqlValue::Boolean(true))
    ))
}

/// The table and column an `ALTER TABLE <table> ADD <column> <type>`
/// statement adds, if it is one.
fn added_column(statement: &str) -> Option<(&str, &str)> {
    let words: Vec<&str> = statement.split_whitespace().collect();
    match words.as_slice() {
        [alter, table_kw, table, add, column, _type, ..]
            if alter.eq_ignore_ascii_case("ALTER")
                && table_kw.eq_ignore_ascii_case("TABLE")
                && add.eq_ignore_ascii_case("ADD") =>
        {
            Some((table, column))
        }
        _ => None,
    }
}

/// Whether `keyspace.table` has `column`.
async fn has_column(session: &Session, keyspace: &str, table: &str, column: &str) -> Result<bool, StoreError> {
    let rows = session
        .query_unpaged(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
            (keyspace, table, column),
        )
        .await
        .map_err(backend)?
        .into_rows_result()
        .map_err(backend)?;
    Ok(rows.rows_num() > 0)
}

/// Runs one schema statement; an `ALTER TABLE … ADD` whose column exists
/// already (an apply that stopped half way) is skipped, since CQL has no
/// `ADD IF NOT EXISTS`.
async fn run_idempotent(session: &Session, keyspace: &str, statement: &str) -> Result<(), StoreError> {
    if let Some((table, column)) = added_column(statement) {
        if has_column(session, keyspace, table, column).await? {
            return Ok(());
        }
    }
    run(session, statement).await
}

/// Applies every version above the recorded one, up to `target` (the lock
/// is held).
async fn migrate(session: &Session, keyspace: &str, target: i32) -> Result<(), StoreError> {
    let found = recorded_version(session, keyspace).await?.unwrap_or(0);
    session.use_keyspace(keyspace, false).await.map_err(backend)?;
    for (version, file) in MIGRATIONS.iter().filter(|(v, _)| *v > found && *v <= target) {
        for statement in statements(file) {
            run_idempotent(session, keyspace, &statement).await?;
        }
        session.await_schema_agreement().await.map_err(backend)?;
        session
            .query_unpaged("UPDATE schema_meta SET version = ? WHERE name = 'version'", (*version,))
            .await
            .map_err(backend)?;
        tracing::info!(keyspace, version, "schema version applied");
    }
    Ok(())
}

/// `obscura-relay schema apply`: connects with `config`'s options and
/// applies the schema; returns the version now recorded.
pub fn apply_with(config: &crate::config::Config) -> Result<i32, StoreError> {
    let options = ScyllaOptions::from_config(config)?;
    let runtime = crate::offload::side_runtime::SideRuntime::start_named("cql-runtime", 1)
        .map_err(|e| StoreError::Backend(Box::new(e)))?;
    runtime
        .block_on(async move {
            let session = super::session::connect(&options).await?;
            apply(&session, &options).await
        })
        .map_err(|_| StoreError::Closed)?
}

/// Empties every table of the keyspace but the schema's own record (test
/// builds: keyspaces leased by tests). Tables that read empty are left
/// alone, since TRUNCATE is slow.
pub async fn empty_keyspace(session: &Session, keyspace: &str) -> Result<(), StoreError> {
    let tables = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .map_err(backend)?
        .into_rows_result()
        .map_err(backend)?
        .rows::<(String,)>()
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    for (table,) in tables.into_iter().filter(|(t,)| t != "schema_meta") {
        // A read that fails (too many tombstones, say) counts as not empty.
        let any = session
            .query_unpaged(format!("SELECT * FROM {keyspace}.{table} LIMIT 1"), ())
            .await
            .ok()
            .and_then(|r| r.into_rows_result().ok())
            .is_none_or(|rows| rows.rows_num() > 0);
        if any {
            run(session, &format!("TRUNCATE {keyspace}.{table}")).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Goal: every embedded schema file splits into idempotent statements
    /// (each `CREATE … IF NOT EXISTS`, or an `ALTER TABLE … ADD` that the
    /// runner skips when its column exists), later versions only add
    /// (no DROP, no type change), and versions count up from 1.
    #[test]
    fn schema_files_are_idempotent_statements() {
        for (i, (version, file)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i32 + 1);
            let parts = statements(file);
            assert!(!parts.is_empty());
            for s in parts {
                let create = s.starts_with("CREATE ") && s.contains("IF NOT EXISTS");
                assert!(create || added_column(&s).is_some(), "not idempotent: {s}");
                assert!(!s.contains("DROP") && !s.contains(" TYPE "), "not additive: {s}");
                assert!(!s.contains("tablets"), "tablets only where the server is ScyllaDB: {s}");
            }
        }
        assert_eq!(
            added_column("ALTER TABLE users ADD token_generation int"),
            Some(("users", "token_generation"))
        );
        assert_eq!(added_column("CREATE TABLE IF NOT EXISTS t (a int PRIMARY KEY)"), None);
        assert_eq!(MIGRATIONS.last().map(|(v, _)| *v), Some(VERSION));
    }
}
