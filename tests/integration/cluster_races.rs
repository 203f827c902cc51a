//! Races between relay nodes that a review of the ScyllaDB store found (issue 21), each
//! provoked on purpose: real relays on one keyspace of the CQL node and one `redis-server`,
//! with the fault switches of test builds where a real process cannot hit the window reliably.
//! Every test needs the CQL node, so each is named `cql_*` and is reported as skipped without
//! one.

use std::time::Duration;

use crate::common::cluster::Deployment;
use crate::common::data::{self, member, post_messages, send_text, texts};
use crate::common::gateway::Gateway;
use crate::common::wire::{encode_send_request, Submission};
use crate::common::{random_uuid, TestResult, TestServer};

/// How long the fault switch holds an append after it took its mailbox positions: longer
/// than a sweep period, shorter than the store's late-commit window (two CQL request
/// timeouts plus the clock-skew bound, 11 s by default).
const APPEND_DELAY_MS: &str = "4000";

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_sweep_never_moves_a_floor_above_a_late_commit() -> TestResult {
    // Goal: the retention sweep never moves a mailbox floor above a position another node has
    // taken but not yet written (review item 1: it moved the floor to the first kept message
    // without the late-commit clamp, so the late message landed below the floor, unread).
    // Method: sweeps every second on both nodes; alice's send through B is held 4 s after it
    // took its position; carol's, through A a moment later, commits at once at a later
    // position, and a sweep runs meanwhile. Bob, connecting after both were answered, must get
    // both.
    let sweeps = ["--messaging-cleanup-interval-secs", "1"];
    let cluster = Deployment::start(1, &sweeps)?;
    let a = cluster.node(0);
    let mut delayed_args = cluster.node_args(&sweeps);
    delayed_args.extend(["--test-fault-append-delay-ms".to_string(), APPEND_DELAY_MS.to_string()]);
    let delayed_args: Vec<&str> = delayed_args.iter().map(String::as_str).collect();
    let b = TestServer::start_beside(a, &delayed_args)?;
    let alice = member(&a.client(), "alice", 5)?;
    let carol = member(&a.client(), "carol", 5)?;
    let bob = member(&a.client(), "bob", 5)?;
    let (to, token, slow_client) = (bob.id, alice.token().to_string(), b.client());
    let slow = std::thread::spawn(move || send_text(&slow_client, &token, &to, "late").map_err(|e| e.to_string()));
    std::thread::sleep(Duration::from_millis(300));
    send_text(&a.client(), carol.token(), &bob.id, "early")?;
    slow.join().map_err(|_| "sender panicked")??;
    let mut gw = Gateway::connect(a, bob.token())?;
    let envelopes = gw.drain(Duration::from_secs(2), Duration::from_secs(30))?;
    let mut got = texts(&envelopes);
    got.sort();
    assert_eq!(
        got,
        ["early", "late"],
        "a message committed late was swept under the floor"
    );
    Ok(())
}

/// Sends SIGSTOP or SIGCONT to `server`.
fn signal(server: &TestServer, which: &str) -> TestResult {
    let pid = server.pid().ok_or("not running")?;
    let status = std::process::Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill {which} {pid}");
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_paused_relay_never_writes_at_positions_of_a_tag_it_may_have_lost() -> TestResult {
    // Goal: a relay paused for longer than its node-tag lease does not, once it runs again,
    // write the rows of an append whose positions it took before the pause: another relay may
    // hold the tag by then and write the same positions (review item 4: a failed or unknown
    // renewal counted as renewed, and nothing checked at write time). Method: relay B (node-tag
    // lease 8 s, renewed every 2 s; 1.5 s request timeout) holds every append 2 s after it took
    // its positions (the test fault switch); alice sends through B, B is stopped (SIGSTOP) for
    // 9 s in that window and continued. The send must fail rather than be written, and its
    // retry (same Idempotency-Key, through B) must be delivered once.
    let cluster = Deployment::start(1, &[])?;
    let a = cluster.node(0);
    let mut args = cluster.node_args(&[]);
    args.extend(
        [
            "--test-node-tag-ttl-secs",
            "8",
            "--test-fault-append-delay-ms",
            "2000",
            "--scylla-request-timeout-ms",
            "1500",
        ]
        .map(String::from),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let b = TestServer::start_beside(a, &args)?;
    let alice = member(&a.client(), "alice", 5)?;
    let bob = member(&a.client(), "bob", 5)?;
    let key = random_uuid();
    let body = encode_send_request(&[Submission::to(&bob.id, b"paused")]);
    let (client, token, first_key, first_body) = (b.client(), alice.token().to_string(), key.clone(), body.clone());
    let first = std::thread::spawn(move || {
        post_messages(&client, &token, &first_key, first_body)
            .map(|r| r.status)
            .map_err(|e| e.to_string())
    });
    std::thread::sleep(Duration::from_millis(500));
    signal(&b, "-STOP")?;
    std::thread::sleep(Duration::from_secs(9));
    signal(&b, "-CONT")?;
    let status = first.join().map_err(|_| "sender panicked")??;
    assert_ne!(status, 200, "an append written after its relay's tag lease ran out");
    // The retry may meet B still reconnecting to the database after its pause.
    let mut retried = post_messages(&b.client(), alice.token(), &key, body.clone())?;
    for _ in 0..5 {
        if retried.status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
        retried = post_messages(&b.client(), alice.token(), &key, body.clone())?;
    }
    assert_eq!(retried.status, 200, "{retried:?}");
    let mut gw = Gateway::connect(a, bob.token())?;
    let envelopes = gw.drain(Duration::from_secs(2), Duration::from_secs(30))?;
    assert_eq!(texts(&envelopes), ["paused"]);
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_takeover_through_another_node_hides_no_later_message() -> TestResult {
    // Goal: after a device's takeover through node B (which empties its mailbox), a message
    // sent to it through node A is delivered (review item 6: A kept its cache of the mailbox's
    // buckets, so it did not write the bucket row B had deleted, and the message lay in a
    // bucket no read lists). Method: alice sends through A (A caches bob's bucket); bob takes
    // his device over through B; alice sends again through A; bob's socket gets the second.
    let cluster = Deployment::start(2, &[])?;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let alice = member(&a.client(), "alice", 5)?;
    let bob = member(&a.client(), "bob", 25)?;
    send_text(&a.client(), alice.token(), &bob.id, "before")?;
    data::upload_keys_ok(&b.client(), bob.token(), &data::upload_body(9, Some(1), 1, 1, 20))?;
    send_text(&a.client(), alice.token(), &bob.id, "after")?;
    let mut gw = Gateway::connect(b, bob.token())?;
    let envelopes = gw.drain(Duration::from_secs(2), Duration::from_secs(30))?;
    assert_eq!(texts(&envelopes), ["after"], "the message after the takeover is hidden");
    Ok(())
}
