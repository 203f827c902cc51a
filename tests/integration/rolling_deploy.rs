//! A rolling deploy (issue 20): a relay of the release before `proto/cluster.proto` and one of
//! this build share a keyspace and a Redis, and each kind of message between nodes crosses
//! both ways. The older binary is `OBSCURA_TEST_OLD_RELAY` at build time (`.ci/run` builds it
//! from the commit it pins); without it, or without a CQL node and `redis-server`, the test is
//! reported ignored, never passed.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::cluster::Deployment;
use crate::common::data::{self, member, send_text, texts, Member};
use crate::common::gateway::Gateway;
use crate::common::wire::FramePayload;
use crate::common::{TestResult, TestServer};

/// The relay binary of the previous release.
const OLD_RELAY: Option<&str> = option_env!("OBSCURA_TEST_OLD_RELAY");

/// How long a live delivery, a signal or a close may take.
const WAIT: Duration = Duration::from_secs(10);

/// The store re-read of revocations is pushed out of the way, so a refusal on the other node
/// is the cross-node message's doing; the prekey signal is not debounced for long.
const FLAGS: [&str; 4] = [
    "--auth-revocation-sync-interval-secs",
    "3600",
    "--ws-prekey-debounce-interval-ms",
    "50",
];

#[test]
#[cfg_attr(
    not(all(cql_node, redis_server, old_relay)),
    ignore = "needs a CQL node, redis-server and OBSCURA_TEST_OLD_RELAY (a relay of the previous release)"
)]
fn cql_old_and_new_nodes_understand_each_other() -> TestResult {
    // Goal: during a rolling deploy every kind of message between nodes crosses both ways
    // between a node of the previous release and one of this build: new messages (delivered
    // live), a prekey-low signal, a takeover's disconnect, and a device deletion (its token
    // refused on the other node at once, and the other node's answer arrives, so the deletion
    // is answered before the confirmation timeout runs out). Method: node 0 runs this build,
    // node 1 the previous release; each check runs from 0 to 1, then from 1 to 0.
    let old = Path::new(OLD_RELAY.ok_or("OBSCURA_TEST_OLD_RELAY was not set at build time")?);
    let mut cluster = Deployment::start(1, &FLAGS)?;
    cluster.add_node_from(old, &FLAGS)?;
    let (new, old) = (cluster.node(0), cluster.node(1));
    for (round, (from, to)) in [(new, old), (old, new)].into_iter().enumerate() {
        let alice = member(&from.client(), &format!("alice{round}"), 5)?;
        let bob = member(&to.client(), &format!("bob{round}"), 21)?;
        messages_and_signals_cross(from, to, &alice, &bob)?;
        a_takeover_crosses(from, to, &bob)?;
        a_deletion_crosses(from, to, &format!("carol{round}"))?;
    }
    Ok(())
}

/// Bob's socket on `to` receives alice's messages sent through `from`, and the prekey status
/// after two bundle fetches through `from`.
fn messages_and_signals_cross(from: &TestServer, to: &TestServer, alice: &Member, bob: &Member) -> TestResult {
    let mut socket = Gateway::connect(to, bob.token())?;
    socket.expect_pong(b"ready", WAIT)?;
    for i in 0..3 {
        send_text(&from.client(), alice.token(), &bob.id, &format!("m{i}"))?;
    }
    assert_eq!(texts(&socket.collect_envelopes(3, WAIT, true)?), ["m0", "m1", "m2"]);
    for _ in 0..2 {
        data::fetch_bundles_ok(&from.client(), alice.token(), bob.user_id())?;
    }
    let status = socket.next_frame(WAIT)?;
    assert!(
        matches!(status, Some(FramePayload::PreKeyStatus { count: 19, .. })),
        "{status:?}"
    );
    socket.close()
}

/// A takeover of bob's device through `from` closes its socket on `to`.
fn a_takeover_crosses(from: &TestServer, to: &TestServer, bob: &Member) -> TestResult {
    let mut socket = Gateway::connect(to, bob.token())?;
    socket.expect_pong(b"ready", WAIT)?;
    data::upload_keys_ok(&from.client(), bob.token(), &data::upload_body(9, Some(1), 1, 1, 20))?;
    assert!(socket.wait_closed(WAIT)?, "the takeover did not close the socket");
    Ok(())
}

/// A device of `name` deleted through `from` is refused on `to` at once, its socket there is
/// closed, and the deletion is answered before the confirmation timeout (2 s): `to` answered.
fn a_deletion_crosses(from: &TestServer, to: &TestServer, name: &str) -> TestResult {
    let client = from.client();
    let kept = member(&client, name, 2)?;
    let phone = data::add_device(&client, &kept.user, 2, 2)?;
    let mut socket = Gateway::connect(to, phone.token())?;
    socket.expect_pong(b"ready", WAIT)?;
    let started = Instant::now();
    let deleted = client.delete_device(kept.token(), &phone.device_id)?;
    let took = started.elapsed();
    assert_eq!(deleted.status, 200, "{deleted:?}");
    assert_eq!(
        to.client().me(phone.token())?.status,
        401,
        "refused at once on the other node"
    );
    assert!(
        took < Duration::from_millis(1500),
        "the other node did not confirm the deletion: {took:?}"
    );
    assert!(socket.wait_closed(WAIT)?, "the deletion did not close the socket");
    assert_eq!(to.client().me(kept.token())?.status, 200, "the kept device");
    Ok(())
}
