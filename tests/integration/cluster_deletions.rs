//! A device deleted through one relay node is gone on the others (issue 19): its credentials
//! are refused on another node as soon as the deletion's event arrives, and a send through
//! another node that begins after the DELETE was answered fails for that device — also while
//! that node's Redis link is cut (it then reads its device checks through to the store). Every
//! test needs the CQL node, so each is named `cql_*` and is reported as skipped without one.

use std::time::Duration;

use crate::common::cluster::{Deployment, RedisProxy};
use crate::common::data::{self, member, send_ok, Member};
use crate::common::wire::{error_code, Submission};
use crate::common::{poll_until, TestResult, TestServer};
use crate::device_revocation::{bob_and_his_phone, every_authenticated_route, handshake_status, refused_everywhere};

/// How many times a deletion through one node races a send through another.
const ROUNDS: usize = 50;

/// The store re-read of revocations is pushed out of the tests' way, so what they see is the
/// cross-node event (or, for sends, the store itself).
const NO_BACKSTOP: [&str; 2] = ["--auth-revocation-sync-interval-secs", "3600"];

/// Waits until the first request with `token` on `node` is refused: the event has arrived.
fn wait_refused(node: &TestServer, token: &str, within: Duration) -> TestResult {
    poll_until("the deletion's event reaching the other node", within, || {
        Ok(node.client().me(token)?.status == 401)
    })
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_deleted_device_is_refused_on_another_node() -> TestResult {
    // Goal: a device deleted through node A has its access tokens, refresh tokens and ticket
    // refused on node B, with the store re-read of revocations out of the way (so the event is
    // what carries it), and the account's user token from before too. Method: bob's phone takes
    // a ticket; bob deletes it through A; on B, the phone's tokens and bob's old user token are
    // 401 on every route, the refresh tokens are 401 and the ticket opens no socket.
    let cluster = Deployment::start(2, &NO_BACKSTOP)?;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let stolen = bob_and_his_phone(a)?;
    let deleted = a.client().delete_device(stolen.kept.token(), &stolen.phone.device_id)?;
    assert_eq!(deleted.status, 200, "{deleted:?}");
    wait_refused(b, stolen.phone.token(), Duration::from_secs(2))?;
    let routes = every_authenticated_route(stolen.kept.user_id());
    for token in [
        stolen.phone.token(),
        stolen.phone_login.token.as_str(),
        stolen.kept.user.token.as_str(),
    ] {
        refused_everywhere(&b.client(), token, &routes)?;
    }
    for refresh in [
        &stolen.phone.device.refresh_token,
        &stolen.phone_login.refresh_token,
        &stolen.kept.user.refresh_token,
    ] {
        assert_eq!(b.client().refresh(refresh)?.status, 401);
    }
    let redeemed = handshake_status(b, &format!("/v1/gateway?ticket={}", stolen.phone_ticket))?;
    assert_eq!(
        redeemed, 401,
        "a ticket taken before the deletion, redeemed on another node"
    );
    assert_eq!(b.client().me(stolen.kept.token())?.status, 200, "the kept device");
    Ok(())
}

/// `ROUNDS` times: a new device of bob's is made known to `sender_node` (a send to it), deleted
/// through `deleter`, and at once sent to through `sender_node` together with a message to bob's
/// kept device. Returns how many sends to a deleted device were accepted; the kept device must
/// hold every other message.
fn race_deletions_and_sends(
    deleter: &TestServer,
    sender_node: &TestServer,
) -> Result<usize, Box<dyn std::error::Error>> {
    let (through_a, through_b) = (deleter.client(), sender_node.client());
    let alice = member(&through_b, "alice", 0)?;
    let bob = member(&through_a, "bob", 0)?;
    let mut accepted = 0;
    for round in 0..ROUNDS {
        let doomed: Member = data::add_device(&through_a, &bob.device, 3, 0)?;
        let warm = send_ok(&through_b, alice.token(), &[Submission::to(&doomed.id, b"warm")])?;
        assert!(warm.is_empty(), "round {round}: the new device is known: {warm:?}");
        let deleted = through_a.delete_device(bob.token(), &doomed.device_id)?;
        assert_eq!(deleted.status, 200, "{deleted:?}");
        let to_doomed = Submission::to(&doomed.id, b"too late");
        let to_kept = Submission::to(&bob.id, format!("kept {round}").as_bytes());
        let failed = send_ok(&through_b, alice.token(), &[to_doomed.clone(), to_kept])?;
        match failed.as_slice() {
            [f] if f.submission_id == to_doomed.submission_id => {
                assert_eq!(f.error_code, error_code::INVALID_DEVICE, "{f:?}");
            }
            [] => accepted += 1,
            other => panic!("round {round}: only the deleted device may fail: {other:?}"),
        }
    }
    let kept = data::queued_for(deleter, &bob)?;
    let expected: Vec<String> = (0..ROUNDS).map(|r| format!("kept {r}")).collect();
    assert_eq!(data::texts(&kept), expected, "the rest of each batch is delivered");
    Ok(accepted)
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_send_through_another_node_never_reaches_a_device_deleted_a_moment_ago() -> TestResult {
    // Goal: a send through node B that begins after the DELETE through node A was answered
    // fails with INVALID_DEVICE for that device and delivers the rest of its batch, although B
    // had the device in its cache. Method: `race_deletions_and_sends`, 50 rounds: none accepted.
    let cluster = Deployment::start(2, &NO_BACKSTOP)?;
    let accepted = race_deletions_and_sends(cluster.node(0), cluster.node(1))?;
    assert_eq!(accepted, 0, "sends accepted for a device deleted before they began");
    Ok(())
}

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server)),
    ignore = "needs a CQL node (OBSCURA_TEST_CQL_NODES or ../shared/cassandra) and redis-server"
)]
fn cql_a_node_without_its_subscription_reads_deletions_from_the_store() -> TestResult {
    // Goal: the same holds while node B's Redis link is cut, so no deletion event reaches it:
    // B stops trusting its device cache and checks targets in the store. Method: B reaches Redis
    // through a proxy; the proxy is cut and B's /readyz reports the link down; then the 50
    // rounds: none accepted. Once the link is restored, B is ready again.
    let mut cluster = Deployment::start(1, &NO_BACKSTOP)?;
    let proxy = RedisProxy::start(cluster.redis.port)?;
    let via_proxy = proxy.url();
    let mut extra = NO_BACKSTOP.to_vec();
    extra.extend(["--pubsub-url", via_proxy.as_str()]);
    cluster.add_node(&extra)?;
    let b = cluster.node(1);
    wait_readyz(b, 200)?;
    proxy.cut();
    wait_readyz(b, 503)?;
    let accepted = race_deletions_and_sends(cluster.node(0), b)?;
    assert_eq!(accepted, 0, "sends accepted for a device deleted before they began");
    proxy.restore();
    wait_readyz(b, 200)?;
    Ok(())
}

/// Waits until `node`'s `/readyz` answers `status`.
fn wait_readyz(node: &TestServer, status: u16) -> TestResult {
    poll_until(&format!("/readyz turning {status}"), Duration::from_secs(15), || {
        Ok(node.mgmt_client().get("/readyz").send()?.status == status)
    })
}
