//! Message retention (BEHAVIOR §12, §8.5; TEST-CASES P155): the cleanup job keeps the newest
//! `--messaging-inbox-max-size` messages of each device (oldest pruned first), and messages
//! past `--ttl-days` are never delivered.

use std::time::{Duration, Instant};

use crate::common::data::{self, member, send_text, texts};
use crate::common::gateway::Gateway;
use crate::common::TestResult;

#[test]
fn inbox_overflow_prunes_the_oldest() -> TestResult {
    // Goal: P155 — with `--messaging-inbox-max-size 3` and a 1 s cleanup interval, 5 messages to
    // one device end as the newest 3 (the first delivered is the 3rd sent), while another
    // device under the limit keeps both of its messages. Method: send one message per request,
    // then poll fresh sockets (never acking) until the sweep has run.
    let server = data::server_with(&[
        "--messaging-cleanup-interval-secs",
        "1",
        "--messaging-inbox-max-size",
        "3",
    ])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let carol = member(&client, "carol", 0)?;
    for i in 1..=5 {
        send_text(&client, alice.token(), &bob.id, &format!("msg_{i}"))?;
    }
    send_text(&client, alice.token(), &carol.id, "c1")?;
    send_text(&client, alice.token(), &carol.id, "c2")?;
    let deadline = Instant::now() + Duration::from_secs(6);
    let got = loop {
        let mut gw = Gateway::connect(&server, bob.token())?;
        let got = texts(&gw.drain(Duration::from_millis(300), Duration::from_secs(3))?);
        gw.close()?;
        if got.len() <= 3 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(got, vec!["msg_3", "msg_4", "msg_5"]);
    let mut gw = Gateway::connect(&server, carol.token())?;
    assert_eq!(
        texts(&gw.collect_envelopes(2, Duration::from_secs(5), false)?),
        vec!["c1", "c2"]
    );
    Ok(())
}

#[test]
fn expired_messages_are_not_delivered() -> TestResult {
    // Goal: §8.5, §12 — messages are hidden from delivery as soon as they expire: with
    // `--ttl-days 0` a message is accepted (200) but a connected device and a later socket
    // never receive it. Method: a live socket and a fresh one, each watched for 700 ms; the
    // control is the same flow on a default server.
    let server = data::server_with(&["--ttl-days", "0"])?;
    let client = server.client();
    let alice = member(&client, "alice", 20)?;
    let bob = member(&client, "bob", 20)?;
    let mut live = Gateway::connect(&server, bob.token())?;
    send_text(&client, alice.token(), &bob.id, "born expired")?;
    let got = live.drain(Duration::from_millis(700), Duration::from_secs(2))?;
    assert!(got.is_empty(), "{:?}", texts(&got));
    let mut fresh = Gateway::connect(&server, bob.token())?;
    let got = fresh.drain(Duration::from_millis(700), Duration::from_secs(2))?;
    assert!(got.is_empty(), "{:?}", texts(&got));
    drop((live, fresh));
    drop(server);

    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 20)?;
    let bob = member(&client, "bob", 20)?;
    let mut live = Gateway::connect(&server, bob.token())?;
    send_text(&client, alice.token(), &bob.id, "fresh")?;
    assert_eq!(
        texts(&live.collect_envelopes(1, Duration::from_secs(5), false)?),
        vec!["fresh"]
    );
    Ok(())
}
