//! What only the ScyllaDB store has (issue 13), against the test CQL node: moving a deployment
//! from the embedded store (`store copy`), the schema's checks and `schema apply` from several
//! processes at once, and its health and metrics. Without a node these tests are reported
//! ignored (build.rs sets `cql_node` only where one can be had).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::cql_node;
use crate::common::data::{self, member, queued_for};
use crate::common::gateway::Gateway;
use crate::common::server::{scylla_args, TestStore};
use crate::common::{TestResult, TestServer, PASSWORD};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Runs `obscura-relay` with `args` (no `OBSCURA_*` variable of ours reaches it); its output.
fn relay(args: &[String]) -> Res<std::process::Output> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_obscura-relay"));
    cmd.args(args).env("NO_COLOR", "1");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OBSCURA_") {
            cmd.env_remove(key);
        }
    }
    Ok(cmd.output()?)
}

fn texts_of(envs: &[crate::common::wire::Envelope]) -> Vec<String> {
    envs.iter().map(|e| e.text()).collect()
}

/// Runs `store copy` from `old`'s data dir into a leased (emptied) keyspace; the lease.
fn copy_to_scylla(old: &TestServer) -> Res<cql_node::Lease> {
    let lease = cql_node::lease()?;
    // A top-level flag, so before the subcommand.
    let mut args: Vec<String> = ["--test-scylla-reset-keyspace", "store", "copy", "--from"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(old.data_dir().display().to_string());
    args.extend(["--to".to_string(), "scylla".to_string()]);
    args.extend(scylla_args(&lease)?);
    let copied = relay(&args)?;
    let log = String::from_utf8_lossy(&copied.stderr).into_owned();
    assert!(copied.status.success(), "store copy failed: {log}");
    assert!(
        log.contains("copied 3 users, 3 devices") && log.contains("4 queued messages") && log.contains("1 revocations"),
        "{log}"
    );
    Ok(lease)
}

/// Goal (issue 13, moving a deployment): fill an embedded store through the API, copy it with
/// `store copy --to scylla`, start on ScyllaDB with the same blob directory, and the same
/// clients carry on: they log in and refresh, fetch bundles, receive their backlog in order
/// with the ids they saw before (acks they still owe apply), and restore their backup and
/// attachment.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_copy_from_embedded_carries_clients_over() -> TestResult {
    let mut old = TestServer::start_on(TestStore::Embedded, &[])?;
    let client = old.client();
    let (alice, bob) = (member(&client, "alice", 5)?, member(&client, "bob", 5)?);
    for n in 0..3 {
        data::send_text(&client, alice.token(), &bob.id, &format!("before-{n}"))?;
    }
    let mut gw = Gateway::connect(&old, bob.token())?;
    let seen = gw.collect_envelopes(3, Duration::from_secs(10), false)?;
    assert_eq!(texts_of(&seen), ["before-0", "before-1", "before-2"]);
    gw.ack_envelopes(&seen[..1])?;
    std::thread::sleep(Duration::from_secs(1)); // the ack batch is applied
    gw.close()?;
    for n in 0..2 {
        data::send_text(&client, alice.token(), &bob.id, &format!("offline-{n}"))?;
    }
    let backup: Vec<u8> = (0..64).collect();
    let resp = client
        .post("/v1/backup")
        .bearer(bob.token())
        .header("if-none-match", "*")
        .body(backup.clone())
        .send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    let attachment = b"a picture, roughly".to_vec();
    let upload = client
        .post("/v1/attachments")
        .bearer(alice.token())
        .header("content-type", "application/octet-stream")
        .body(attachment.clone())
        .send()?;
    let attachment_id = upload.expect_json(201)?["id"].as_str().ok_or("no id")?.to_string();
    let (carol, renewed) = changed_password(&client)?;
    let status = old.stop()?;
    assert!(status.success());

    let lease = copy_to_scylla(&old)?;
    let blobs = old.data_dir().join("blobs").display().to_string();
    let new = TestServer::start_on_keyspace(lease, &["--storage-local-dir", &blobs])?;
    let client = new.client();
    client.login_ok("alice", Some(&alice.device_id))?;
    client.refresh(&alice.device.refresh_token)?.expect_json(200)?;
    let bundles = data::fetch_bundles_ok(&client, alice.token(), bob.user_id())?;
    assert!(data::otpk_id(data::bundle_of(&bundles, &bob.device_id)?)?.is_some());
    data::send_text(&client, alice.token(), &bob.id, "after")?;
    let mut gw = Gateway::connect(&new, bob.token())?;
    let backlog = gw.collect_envelopes(5, Duration::from_secs(10), false)?;
    assert_eq!(
        texts_of(&backlog),
        ["before-1", "before-2", "offline-0", "offline-1", "after"]
    );
    assert_eq!(backlog[0].id, seen[1].id, "ids are kept");
    gw.ack_envelopes(&seen[1..])?; // acks owed from before the move
    gw.ack_envelopes(&backlog[2..])?;
    std::thread::sleep(Duration::from_secs(1));
    gw.close()?;
    assert!(queued_for(&new, &bob)?.is_empty(), "every ack applied");
    let restored = client.get("/v1/backup").bearer(bob.token()).send()?;
    assert_eq!((restored.status, restored.body.clone()), (200, backup));
    let fetched = client
        .get(&format!("/v1/attachments/{attachment_id}"))
        .bearer(bob.token())
        .send()?;
    assert_eq!((fetched.status, fetched.body.clone()), (200, attachment));
    assert_generation_carried(&client, &carol, &renewed)
}

const NEW_PASSWORD: &str = "a new correct horse";

/// Registers carol with a device, changes her password; her member and her new access token.
fn changed_password(client: &crate::common::Client) -> Res<(data::Member, String)> {
    let carol = member(client, "carol", 5)?;
    let changed = client.change_password(carol.token(), PASSWORD, NEW_PASSWORD)?;
    let renewed = crate::common::Auth::from_json(&changed.expect_json(200)?)?;
    Ok((carol, renewed.token))
}

/// The token generation and the revocation log came along: carol's token from before her
/// password change stays refused, the one after it works, and so does the new password.
fn assert_generation_carried(client: &crate::common::Client, carol: &data::Member, renewed: &str) -> TestResult {
    assert_eq!(client.me(carol.token())?.status, 401);
    assert_eq!(client.me(renewed)?.status, 200);
    client
        .login("carol", PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    client.login("carol", NEW_PASSWORD, None)?.expect_json(200)?;
    Ok(())
}

/// Drops the keyspace a test created when it ends, passed or not.
struct DropOnEnd<'a> {
    nodes: &'a str,
    keyspace: &'a str,
}

impl Drop for DropOnEnd<'_> {
    fn drop(&mut self) {
        if let Err(e) = drop_keyspace(self.nodes, self.keyspace) {
            eprintln!("dropping keyspace {}: {e}", self.keyspace);
        }
    }
}

fn drop_keyspace(nodes: &str, keyspace: &str) -> TestResult {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(nodes.split(','))
            .build()
            .await?;
        session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {keyspace}"), ())
            .await?;
        Ok(())
    })
}

/// Goal (issue 13, schema): a start on a keyspace without the schema stops with the command to
/// run; three `schema apply` at once on a new keyspace all succeed (the lock row makes one
/// apply it), a fourth changes nothing, and a server then starts without
/// `--scylla-create-schema`. Prints how long creating the keyspace and its tables took.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_schema_is_checked_and_applied_once_from_several_processes() -> TestResult {
    let nodes = cql_node::nodes()?;
    let keyspace = format!("obscura_apply_{}", &crate::common::random_uuid().replace('-', "")[..12]);
    let on = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(
            [
                "--scylla-nodes",
                &nodes,
                "--scylla-keyspace",
                &keyspace,
                "--scylla-replication-factor",
                "1",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args
    };
    let _drop = DropOnEnd {
        nodes: &nodes,
        keyspace: &keyspace,
    };
    let refused = TestServer::start_on(
        TestStore::Embedded,
        &on(&["--store", "scylla"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let message = refused.err().ok_or("a start without the schema must fail")?.to_string();
    assert!(message.contains("obscura-relay schema apply"), "{message}");
    let started = Instant::now();
    let applies: Vec<_> = (0..3)
        .map(|_| {
            let args = on(&["schema", "apply"]);
            std::thread::spawn(move || relay(&args).map_err(|e| e.to_string()))
        })
        .collect();
    for apply in applies {
        let out = apply.join().map_err(|_| "apply panicked")??;
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    eprintln!(
        "three concurrent `schema apply` on a new keyspace: {:?}",
        started.elapsed()
    );
    let again = relay(&on(&["schema", "apply"]))?;
    let said = String::from_utf8_lossy(&again.stderr);
    let newest = format!("schema version {}", newest_schema_version()?);
    assert!(said.contains(&newest), "this binary's version, {newest}: {said}");
    let args = on(&["--store", "scylla"]);
    let server = TestServer::start_on(
        TestStore::Embedded,
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )?;
    server.client().register_ok("schema_ok")?;
    drop(server);
    Ok(())
}

/// Goal (issue 13, health and metrics): on ScyllaDB `/readyz` is 200 with `database: ok` (a
/// query through the CQL session), and `/metrics` has query latency by statement.
#[test]
#[cfg_attr(
    not(cql_node),
    ignore = "no CQL node: set OBSCURA_TEST_CQL_NODES or provide ../shared/cassandra"
)]
fn cql_readyz_and_metrics_report_the_session() -> TestResult {
    let server = TestServer::start_on(TestStore::Scylla, &[])?;
    server.client().register_ok("metrics")?;
    let ready = server.mgmt_client().get("/readyz").send()?.expect_json(200)?;
    assert_eq!(ready, json!({"status": "ok", "database": "ok"}));
    let metrics = server.mgmt_client().get("/metrics").send()?.text();
    for needle in [
        "obscura_cql_query_duration_seconds_bucket{statement=\"ClaimUsername\",kind=\"single\",le=\"+Inf\"} 1",
        "obscura_cql_query_duration_seconds_count{statement=\"Ping\"",
        "# TYPE obscura_cql_query_errors_total counter",
    ] {
        assert!(metrics.contains(needle), "{needle} missing");
    }
    Ok(())
}

/// The number of the newest file in `schema/` (`005_….cql` is version 5).
fn newest_schema_version() -> Result<u32, Box<dyn std::error::Error>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema");
    let mut newest = 0;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if let Some(number) = name.split('_').next().and_then(|n| n.parse::<u32>().ok()) {
            newest = newest.max(number);
        }
    }
    Ok(newest)
}
