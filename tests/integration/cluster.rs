//! Many relay nodes as one server (issue 14): relays sharing one keyspace on the CQL node, one
//! loopback `redis-server` and one blob directory (`common::cluster::Deployment`). Every test
//! needs the CQL node, so each is named `cql_*` and is reported as skipped where none can be had.

use std::time::{Duration, Instant};

use crate::common::cluster::{CqlCluster, Deployment};
use crate::common::data::{self, member, send_text, texts, Member};
use crate::common::gateway::{ticket, Gateway, Handshake};
use crate::common::{poll_until, random_uuid, TestResult};

/// The port of the three-node Cassandra cluster (storage 17442): clear of the shared test node.
const CQL_CLUSTER_PORT: u16 = 19_442;

/// How long a live delivery or a close may take.
const WAIT: Duration = Duration::from_secs(10);

/// Waits for `n` envelopes on `gw` and acks them; their texts.
fn receive(gw: &mut Gateway, n: usize) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(texts(&gw.collect_envelopes(n, WAIT, true)?))
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_message_through_one_node_reaches_a_socket_on_another() -> TestResult {
    // Goal: a message sent through node A is delivered live to a socket on node B and acked
    // there, and the ack holds everywhere. Method: bob's socket on B; alice sends through A;
    // bob receives without reconnecting and acks; a fresh socket on A finds his queue empty.
    let cluster = Deployment::start(2, &[])?;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let alice = member(&a.client(), "alice", 5)?;
    let bob = member(&b.client(), "bob", 5)?;
    let mut on_b = Gateway::connect(b, bob.token())?;
    on_b.expect_pong(b"ready", WAIT)?;
    for i in 0..5 {
        send_text(&a.client(), alice.token(), &bob.id, &format!("m{i}"))?;
    }
    assert_eq!(receive(&mut on_b, 5)?, ["m0", "m1", "m2", "m3", "m4"]);
    on_b.close()?;
    data::wait_queue_empty(a, &bob, WAIT)?;
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_takeover_and_deletion_close_sockets_on_other_nodes() -> TestResult {
    // Goal: a takeover through node C closes the device's socket on node B, and deleting the
    // device through node A closes its socket on node C (BEHAVIOR.md §6.3, §8.8). Method: three
    // nodes; each close must come as the Close frame without status code.
    let cluster = Deployment::start(3, &[])?;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let bob = member(&a.client(), "bob", 20)?;
    let mut on_b = Gateway::connect(b, bob.token())?;
    on_b.expect_pong(b"1", WAIT)?;
    data::upload_keys_ok(&c.client(), bob.token(), &data::upload_body(9, Some(1), 1, 1, 20))?;
    assert!(
        on_b.wait_closed(WAIT)?,
        "the takeover through C did not close B's socket"
    );
    assert_eq!(on_b.close, Some(None));
    let mut on_c = Gateway::connect(c, bob.token())?;
    on_c.expect_pong(b"2", WAIT)?;
    let deleted = a
        .client()
        .delete(&format!("/v1/devices/{}", bob.device_id))
        .bearer(&bob.user.token)
        .send()?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert!(on_c.wait_closed(WAIT)?, "deleting through A did not close C's socket");
    assert_eq!(on_c.close, Some(None));
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_ticket_from_one_node_is_redeemed_once_on_any() -> TestResult {
    // Goal: a gateway ticket issued by node A opens a socket on node B, once: C refuses it
    // afterwards (401), as B would. Method: the raw handshake on each node.
    let cluster = Deployment::start(3, &[])?;
    let bob = member(&cluster.node(0).client(), "bob", 5)?;
    let t = ticket(&cluster.node(0).client(), bob.token())?;
    let mut on_b = Gateway::open(cluster.node(1).main_port, &t)?;
    on_b.expect_pong(b"once", WAIT)?;
    let again = Gateway::handshake(cluster.node(2).main_port, &t)?;
    assert!(
        matches!(again, Handshake::Refused(401, _)),
        "a spent ticket was accepted by another node"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_redis_restart_loses_nothing() -> TestResult {
    // Goal: a Redis restart in the middle of a conversation delays delivery, never loses it.
    // Method: bob's socket on B; messages through A before, during (Redis down: they commit,
    // no event can travel) and after the outage all reach the same socket, in order, without
    // a reconnect: the resync after B's link comes back has the session read its mailbox.
    let mut cluster = Deployment::start(2, &[])?;
    let alice = member(&cluster.node(0).client(), "alice", 5)?;
    let bob = member(&cluster.node(1).client(), "bob", 5)?;
    let mut on_b = Gateway::connect(cluster.node(1), bob.token())?;
    on_b.expect_pong(b"ready", WAIT)?;
    let send = |cluster: &Deployment, text: &str| send_text(&cluster.node(0).client(), alice.token(), &bob.id, text);
    send(&cluster, "before")?;
    assert_eq!(receive(&mut on_b, 1)?, ["before"]);
    cluster.redis.kill()?;
    send(&cluster, "during 1")?;
    send(&cluster, "during 2")?;
    cluster.redis.restart()?;
    assert_eq!(receive(&mut on_b, 2)?, ["during 1", "during 2"]);
    wait_ready(&cluster, WAIT)?;
    send(&cluster, "after")?;
    assert_eq!(receive(&mut on_b, 1)?, ["after"]);
    Ok(())
}

/// Waits until every node's `/readyz` is 200 (its Redis link is back).
fn wait_ready(cluster: &Deployment, within: Duration) -> TestResult {
    for node in &cluster.nodes {
        poll_until("a node's /readyz coming back", within, || {
            Ok(node.mgmt_client().get("/readyz").send()?.status == 200)
        })?;
    }
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_late_commit_through_another_node_is_delivered_live() -> TestResult {
    // Goal: messages to one device appended through different nodes are all delivered live,
    // none skipped until a reconnect, and one sender's messages arrive in the order their sends
    // were answered. Method: node B holds every append 1.5 s after it took its mailbox positions
    // (a fault switch of test builds); alice sends "late" through B while carol's "early",
    // sent through A a moment later, commits at once at a later position and reaches bob's
    // socket on A first. "late" must still arrive on that socket. Then alice sends "next"
    // through A after "late" was answered: it comes after "late".
    let cluster = Deployment::start(1, &[])?;
    let a = cluster.node(0);
    let delayed = crate::common::TestServer::start_beside(
        a,
        &owned(&cluster.node_args(&["--test-fault-append-delay-ms", "1500"])),
    )?;
    let alice = member(&a.client(), "alice", 5)?;
    let carol = member(&a.client(), "carol", 5)?;
    let bob = member(&a.client(), "bob", 5)?;
    let mut on_a = Gateway::connect(a, bob.token())?;
    on_a.expect_pong(b"ready", WAIT)?;
    let (to, token) = (bob.id, alice.token().to_string());
    let slow_client = delayed.client();
    let slow = std::thread::spawn(move || send_text(&slow_client, &token, &to, "late").map_err(|e| e.to_string()));
    std::thread::sleep(Duration::from_millis(300));
    send_text(&a.client(), carol.token(), &bob.id, "early")?;
    assert_eq!(receive(&mut on_a, 1)?, ["early"]);
    slow.join().map_err(|_| "sender panicked")??;
    assert_eq!(receive(&mut on_a, 1)?, ["late"], "the late commit was skipped");
    send_text(&a.client(), alice.token(), &bob.id, "next")?;
    assert_eq!(receive(&mut on_a, 1)?, ["next"]);
    Ok(())
}

fn owned(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_killed_node_loses_no_acknowledged_message() -> TestResult {
    // Goal: a relay killed with SIGKILL under load loses no acknowledged message, and its
    // clients carry on on another node. Method: alice sends numbered messages through A as fast
    // as A answers while bob listens on A; A is SIGKILLed mid-stream; bob reconnects to B and
    // must get every message A answered 200 (at least once).
    let mut cluster = Deployment::start(2, &["--durability", "fsync"])?;
    let alice = member(&cluster.node(0).client(), "alice", 5)?;
    let bob = member(&cluster.node(0).client(), "bob", 5)?;
    let mut on_a = Gateway::connect(cluster.node(0), bob.token())?;
    on_a.expect_pong(b"ready", WAIT)?;
    let (client, token, to) = (cluster.node(0).client(), alice.token().to_string(), bob.id);
    let sender = std::thread::spawn(move || {
        let mut answered = Vec::new();
        for i in 0..2_000 {
            match send_text(&client, &token, &to, &format!("n{i}")) {
                Ok(()) => answered.push(format!("n{i}")),
                Err(_) => break,
            }
        }
        answered
    });
    std::thread::sleep(Duration::from_millis(700));
    cluster.nodes[0].kill()?;
    let answered = sender.join().map_err(|_| "sender panicked")?;
    assert!(!answered.is_empty(), "nothing was answered before the kill");
    drop(on_a);
    let got = backlog(cluster.node(1), &bob)?;
    let missing: Vec<&String> = answered.iter().filter(|m| !got.contains(m)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    Ok(())
}

/// Everything bob's device gets on a fresh socket on `node` until it stays quiet for 2 s.
fn backlog(node: &crate::common::TestServer, bob: &Member) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut gw = Gateway::connect(node, bob.token())?;
    let envelopes = gw.drain(Duration::from_secs(2), Duration::from_secs(60))?;
    gw.ack_envelopes(&envelopes)?;
    Ok(texts(&envelopes))
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_an_attachment_uploaded_through_one_node_downloads_through_another() -> TestResult {
    // Goal: every node of a deployment uses one blob store, so an attachment uploaded through
    // node A is downloaded through node B. Method: the nodes share one --storage-local-dir.
    let cluster = Deployment::start(2, &[])?;
    let bob = member(&cluster.node(0).client(), "bob", 1)?;
    let bytes = random_uuid().repeat(100).into_bytes();
    let uploaded = cluster
        .node(0)
        .client()
        .post("/v1/attachments")
        .bearer(bob.token())
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()?
        .expect_json(201)?;
    let id = uploaded["id"].as_str().ok_or("no id")?;
    let got = cluster
        .node(1)
        .client()
        .get(&format!("/v1/attachments/{id}"))
        .bearer(bob.token())
        .send()?;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, bytes);
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_sigterm_drains_a_node_and_its_clients_move_on() -> TestResult {
    // Goal: SIGTERM drains a node: its sockets close with 1001 (BEHAVIOR.md §8.8), it exits 0,
    // and the device's messages sent meanwhile through the other node wait for it there.
    // Method: bob's socket on A; SIGTERM A; the close; a message through B; bob on B gets it.
    let mut cluster = Deployment::start(2, &[])?;
    let alice = member(&cluster.node(1).client(), "alice", 5)?;
    let bob = member(&cluster.node(0).client(), "bob", 5)?;
    let mut on_a = Gateway::connect(cluster.node(0), bob.token())?;
    on_a.expect_pong(b"ready", WAIT)?;
    let status = cluster.nodes[0].stop()?;
    assert!(on_a.wait_closed(WAIT)?, "the draining node left the socket open");
    assert_eq!(on_a.close.clone().flatten().map(|(code, _)| code), Some(1001));
    assert!(status.success(), "exit {status}");
    send_text(&cluster.node(1).client(), alice.token(), &bob.id, "while away")?;
    assert_eq!(backlog(cluster.node(1), &bob)?, ["while away"]);
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_database_node_killed_under_load_loses_nothing() -> TestResult {
    // Goal: on a three-node Cassandra cluster (replication factor 3, LOCAL_QUORUM), one database
    // node killed with SIGKILL under load: sends keep being accepted and nothing acknowledged is
    // lost. Method: four senders send numbered messages for 6 s; node 3 is killed after 1.5 s; bob's
    // backlog must hold every message answered 200, and sends must have been answered after the
    // kill.
    let mut db = CqlCluster::start(3, CQL_CLUSTER_PORT)?;
    let store = db.store_args("obscura_cluster");
    let relay = crate::common::TestServer::start_on(crate::common::server::TestStore::Embedded, &owned(&store))?;
    let alice = member(&relay.client(), "alice", 5)?;
    let bob = member(&relay.client(), "bob", 5)?;
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| {
            let (client, token, to) = (relay.client(), alice.token().to_string(), bob.id);
            std::thread::spawn(move || send_numbered(&client, &token, &to, n, started))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1_500));
    let killed_at = started.elapsed();
    db.kill(3)?;
    let (mut answered, mut refused) = (Vec::new(), 0);
    for sender in senders {
        let (a, r) = sender.join().map_err(|_| "sender panicked")?;
        answered.extend(a);
        refused += r;
    }
    let after_kill = answered
        .iter()
        .filter(|(_, at)| *at > killed_at + Duration::from_secs(1))
        .count();
    assert!(
        after_kill > 0,
        "no send was accepted after the kill ({refused} refused)"
    );
    let got = backlog(&relay, &bob)?;
    let missing: Vec<&String> = answered.iter().map(|(t, _)| t).filter(|t| !got.contains(t)).collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    eprintln!(
        "{} answered ({after_kill} more than 1 s after the kill), {refused} refused, {} delivered",
        answered.len(),
        got.len()
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_an_account_deleted_through_one_node_is_gone_on_every_node() -> TestResult {
    // Goal (issue 15 across nodes): deleting an account through node A closes its socket on
    // node B at once, its token is refused on node C, and what it sent that is still queued is
    // not delivered through C. Method: alice queues a message for offline bob through A and
    // holds a socket on B; she deletes her account through A; C learns of deleted devices
    // within SCYLLA_DELETED_SENDERS_REFRESH_SECS (2 s), so bob's backlog on C is read after 3 s.
    let cluster = Deployment::start(3, &[])?;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let alice = member(&a.client(), "alice", 5)?;
    let bob = member(&a.client(), "bob", 5)?;
    send_text(&a.client(), alice.token(), &bob.id, "from alice")?;
    let mut on_b = Gateway::connect(b, alice.token())?;
    on_b.expect_pong(b"1", WAIT)?;
    let deleted = a.client().delete_account(alice.token(), crate::common::PASSWORD)?;
    assert_eq!(deleted.status, 204, "{deleted:?}");
    assert!(on_b.wait_closed(WAIT)?, "deleting through A did not close B's socket");
    let me = c.client().get("/v1/users/me").bearer(alice.token()).send()?;
    assert_eq!(me.status, 401, "a deleted account's token worked on C: {me:?}");
    std::thread::sleep(Duration::from_secs(3));
    let queued = data::queued_for(c, &bob)?;
    assert!(
        texts(&queued).is_empty(),
        "C delivered what the deleted account sent: {:?}",
        texts(&queued)
    );
    Ok(())
}

/// Concurrent senders of the database-failure test.
const SENDERS: usize = 4;

/// Sends messages `s<n>-0`, `s<n>-1`, … to `to` until 6 s after `started`: those answered 200
/// with when, and how many were not.
fn send_numbered(
    client: &crate::common::Client,
    token: &str,
    to: &[u8; 16],
    n: usize,
    started: Instant,
) -> (Vec<(String, Duration)>, usize) {
    let (mut answered, mut refused) = (Vec::new(), 0);
    for i in 0.. {
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
        let text = format!("s{n}-{i}");
        let sent = data::send(
            client,
            token,
            &[crate::common::wire::Submission::to(to, text.as_bytes())],
        );
        match sent {
            Ok(resp) if resp.status == 200 => answered.push((text, started.elapsed())),
            _ => refused += 1,
        }
    }
    (answered, refused)
}
