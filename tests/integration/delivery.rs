//! Delivery over the gateway (BEHAVIOR §8.5, §8.8, §18.4-18.5; TEST-CASES F54, F64, G66,
//! G73-G77 and the delivery lines): envelope fields, per-device routing, backlogs of
//! every size (125 and 10 000 messages) in order, batching under `--ws-max-batch-bytes`,
//! back-pressure with a small outbound buffer, ordering across several senders and within one,
//! concurrent senders with nothing lost or doubled on a live socket, redelivery of unacked
//! messages on a new connection (and never twice on one), and several connections of one
//! device.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::data::{self, add_device, member, queued_for, send_all, send_text, texts, Member};
use crate::common::gateway::Gateway;
use crate::common::wire::{Envelope, FramePayload, Submission};
use crate::common::{TestResult, TestServer};

const WAIT: Duration = Duration::from_secs(10);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends `texts` from `from` to `to` in requests of `per_request` submissions, in order.
fn send_texts(server: &TestServer, from: &Member, to: &Member, texts: &[String], per_request: usize) -> TestResult {
    let client = server.client();
    for chunk in texts.chunks(per_request.max(1)) {
        let subs: Vec<Submission> = chunk.iter().map(|t| Submission::to(&to.id, t.as_bytes())).collect();
        send_all(&client, from.token(), &subs)?;
    }
    Ok(())
}

fn numbered(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:05}")).collect()
}

/// Asserts the §8.5 packing rule on every batch a socket saw: a batch of more than one
/// envelope never exceeds `max` bytes of encoded envelopes.
fn check_batches(gw: &Gateway, max: usize) {
    for sizes in &gw.batch_sizes {
        let sum: usize = sizes.iter().sum();
        assert!(
            sizes.len() == 1 || sum <= max,
            "a batch of {} envelopes has {sum} bytes > {max}: {:?}",
            sizes.len(),
            gw.batch_sizes
        );
    }
}

fn distinct_ids(envs: &[Envelope]) -> usize {
    envs.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>().len()
}

#[test]
fn envelope_carries_sender_ids_time_and_payload() -> TestResult {
    // Goal: F54, §8.5, §18.5 — a connected recipient receives an envelope whose `message` is
    // the bytes sent, `sender_id` the sending user's 16 bytes, `sender_device_id` the sending
    // device's 16 bytes, `id` a 16-byte UUID v7, `timestamp` the receive time in ms; messages of
    // one request share their timestamp and keep their order. Method: alice sends two binary
    // messages in one request to bob's open socket.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let payload: Vec<u8> = (0..=255u8).collect();
    let before = now_ms();
    send_all(
        &client,
        alice.token(),
        &[
            Submission::to(&bob.id, &payload),
            Submission::to(&bob.id, b"\x00second"),
        ],
    )?;
    let after = now_ms();
    let got = gw.collect_envelopes(2, WAIT, true)?;
    assert_eq!(got[0].message, payload);
    assert_eq!(got[1].message, b"\x00second");
    for e in &got {
        assert_eq!(e.sender_id, alice.user_bytes, "sender_id must be the sending user");
        assert_eq!(
            e.sender_device_id, alice.id,
            "sender_device_id must be the sending device"
        );
        let id = e.uuid().ok_or("message id is not 16 bytes")?;
        assert_eq!(id.get_version_num(), 7, "message ids are UUID v7: {id}");
        assert!(
            (before.saturating_sub(1000)..=after + 1000).contains(&e.timestamp),
            "timestamp {} not within [{before}, {after}] ms",
            e.timestamp
        );
    }
    assert_eq!(got[0].timestamp, got[1].timestamp, "one request, one timestamp");
    assert_ne!(got[0].id, got[1].id);
    assert!(got[0].id < got[1].id, "v7 ids follow the order of the request");
    Ok(())
}

#[test]
fn a_message_reaches_only_its_target_device() -> TestResult {
    // Goal: F64 — a message to bob's second device arrives on that device's socket and not on
    // his first device's socket. Method: both connected; afterwards the first device sends
    // itself a marker, which must be the next (only) envelope it sees.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob1 = member(&client, "bob", 0)?;
    let bob2 = add_device(&client, &bob1.user, 2, 0)?;
    let mut gw1 = Gateway::connect(&server, bob1.token())?;
    let mut gw2 = Gateway::connect(&server, bob2.token())?;
    send_text(&client, alice.token(), &bob2.id, "for device 2")?;
    assert_eq!(texts(&gw2.collect_envelopes(1, WAIT, true)?), vec!["for device 2"]);
    send_text(&client, bob1.token(), &bob1.id, "marker")?;
    assert_eq!(texts(&gw1.collect_envelopes(1, WAIT, true)?), vec!["marker"]);
    Ok(())
}

#[test]
fn queued_backlog_of_125_is_delivered_in_order() -> TestResult {
    // Goal: G66, G77 — 125 messages queued before connecting are all delivered (125 distinct
    // ids) in send order, across several fetches of the default size 50; 30 small messages on
    // a second device likewise. Method: requests of 25 and 30, then connect.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let carol = member(&client, "carol", 0)?;
    let sent = numbered("m", 125);
    send_texts(&server, &alice, &bob, &sent, 25)?;
    let small = numbered("s", 30);
    send_texts(&server, &alice, &carol, &small, 30)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(125, WAIT, true)?;
    assert_eq!(distinct_ids(&got), 125);
    assert_eq!(texts(&got), sent);
    let mut gw = Gateway::connect(&server, carol.token())?;
    assert_eq!(texts(&gw.collect_envelopes(30, WAIT, false)?), small);
    Ok(())
}

#[test]
fn small_outbound_buffer_loses_nothing() -> TestResult {
    // Goal: G73 — with `--ws-outbound-buffer-size 10` (and fetch size 5, so frames are many),
    // 100 messages sent to a connected device all arrive, in order. Method: 10 requests of 10
    // while the socket reads.
    let server = data::server_with(&["--ws-outbound-buffer-size", "10", "--ws-message-fetch-batch-size", "5"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let sent = numbered("m", 100);
    send_texts(&server, &alice, &bob, &sent, 10)?;
    let got = gw.collect_envelopes(100, WAIT, true)?;
    assert_eq!(texts(&got), sent);
    Ok(())
}

#[test]
fn batches_respect_the_byte_cap() -> TestResult {
    // Goal: G74 — with fetch size 20 and `--ws-max-batch-bytes 1024`, 20 queued messages of
    // 100 bytes all arrive with exactly the sent contents, in batches whose envelopes sum to at
    // most 1024 bytes (so more than one batch). Method: queue, connect, collect, inspect sizes.
    let server = data::server_with(&["--ws-message-fetch-batch-size", "20", "--ws-max-batch-bytes", "1024"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let sent: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100]).collect();
    let subs: Vec<Submission> = sent.iter().map(|m| Submission::to(&bob.id, m)).collect();
    send_all(&client, alice.token(), &subs)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(20, WAIT, false)?;
    assert_eq!(got.iter().map(|e| e.message.clone()).collect::<Vec<_>>(), sent);
    check_batches(&gw, 1024);
    assert!(gw.batch_sizes.len() > 1, "20 × ~150 bytes cannot fit one 1 KiB batch");
    Ok(())
}

#[test]
fn an_envelope_above_the_cap_is_sent_alone() -> TestResult {
    // Goal: G75, G76 — with `--ws-max-batch-bytes 1024` a single 4096-byte message is delivered
    // intact, alone in its batch; with 2048, 15 messages mixing 3000-byte and small payloads all
    // arrive intact and in order, every multi-envelope batch within the cap. Method: two
    // servers.
    let server = data::server_with(&["--ws-max-batch-bytes", "1024"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let big: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    send_all(&client, alice.token(), &[Submission::to(&bob.id, &big)])?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(1, WAIT, false)?;
    assert_eq!(got[0].message, big);
    assert_eq!(gw.batch_sizes.len(), 1);
    assert_eq!(gw.batch_sizes[0].len(), 1);
    drop(gw);
    drop(server);

    let server = data::server_with(&["--ws-max-batch-bytes", "2048"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let sent: Vec<Vec<u8>> = (0..15u8)
        .map(|i| if i % 3 == 0 { vec![i; 3000] } else { vec![i; 10] })
        .collect();
    let subs: Vec<Submission> = sent.iter().map(|m| Submission::to(&bob.id, m)).collect();
    send_all(&client, alice.token(), &subs)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(15, WAIT, false)?;
    assert_eq!(got.iter().map(|e| e.message.clone()).collect::<Vec<_>>(), sent);
    check_batches(&gw, 2048);
    Ok(())
}

#[test]
fn large_message_arrives_intact() -> TestResult {
    // Goal: §3.6 — a message of 1.5 MiB (under the 2 MiB body cap) is accepted and delivered
    // byte for byte. Method: send, connect, compare.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let big: Vec<u8> = (0..1536 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    send_all(&client, alice.token(), &[Submission::to(&bob.id, &big)])?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(1, WAIT, false)?;
    assert!(got[0].message == big, "the 1.5 MiB payload changed in transit");
    Ok(())
}

#[test]
fn messages_from_several_senders_arrive_in_acceptance_order() -> TestResult {
    // Goal: the ordering line — messages from several senders to one device arrive in
    // the order they were accepted (each send waits for its 200 before the next starts), and
    // one request's submissions in request order; the same on a live socket and on a later
    // backlog connection. Method: three senders (one of them a second device of a sender) take
    // turns, 20 requests of 2 submissions; bob is connected throughout; then a fresh socket
    // reads the (unacked) backlog.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let alice2 = add_device(&client, &alice.user, 2, 0)?;
    let carol = member(&client, "carol", 0)?;
    let bob = member(&client, "bob", 0)?;
    let mut live = Gateway::connect(&server, bob.token())?;
    let senders = [&alice, &alice2, &carol];
    let mut expected = Vec::new();
    for i in 0..20 {
        let s = senders[i % 3];
        let pair = [format!("r{i:02}a"), format!("r{i:02}b")];
        let subs: Vec<Submission> = pair.iter().map(|t| Submission::to(&bob.id, t.as_bytes())).collect();
        send_all(&client, s.token(), &subs)?;
        expected.extend(pair);
    }
    let got = live.collect_envelopes(40, WAIT, false)?;
    assert_eq!(texts(&got), expected, "live order");
    for (e, i) in got.iter().zip(0..) {
        let s = senders[(i / 2) % 3];
        assert_eq!(e.sender_device_id, s.id, "envelope {i} names the wrong sending device");
    }
    live.close()?;
    let backlog = queued_for(&server, &bob)?;
    assert_eq!(texts(&backlog), expected, "backlog order");
    Ok(())
}

#[test]
fn offline_backlog_of_ten_thousand_is_complete_and_ordered() -> TestResult {
    // Goal: the backlog line — 10 000 messages queued while the device is offline
    // (100 requests of 100 submissions) are all delivered after it connects, exactly once and
    // in send order, the client acking as it goes; afterwards the queue is empty. Method:
    // numbered payloads; compare the whole sequence.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "50"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let sent = numbered("n", 10_000);
    let started = Instant::now();
    send_texts(&server, &alice, &bob, &sent, 100)?;
    let queued_in = started.elapsed();
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(10_000, Duration::from_secs(60), true)?;
    let delivered_in = started.elapsed() - queued_in;
    assert_eq!(distinct_ids(&got), 10_000);
    let got = texts(&got);
    if let Some(i) = (0..got.len()).find(|&i| got[i] != sent[i]) {
        return Err(format!(
            "order breaks at {i}: got {:?}, expected {:?}",
            &got[i..(i + 3).min(got.len())],
            &sent[i]
        )
        .into());
    }
    gw.close()?;
    data::wait_queue_empty(&server, &bob, Duration::from_secs(5))?;
    eprintln!("queued 10 000 in {queued_in:?}, delivered in {delivered_in:?}");
    Ok(())
}

#[test]
fn unacked_messages_come_again_on_a_new_connection_only() -> TestResult {
    // Goal: §8.5 delivery guarantee — unacked messages are delivered again on the next session
    // (same ids, same order) but at most once per session; acked ones never again. Method: five
    // messages; socket 1 reads without acking and then gets a new message (only the new one);
    // socket 2 gets all six again and acks them; after the ack flush the queue is empty.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let five = numbered("u", 5);
    send_texts(&server, &alice, &bob, &five, 1)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let first = gw.collect_envelopes(5, WAIT, false)?;
    assert_eq!(texts(&first), five);
    send_text(&client, alice.token(), &bob.id, "sixth")?;
    assert_eq!(
        texts(&gw.collect_envelopes(1, WAIT, false)?),
        vec!["sixth"],
        "a session must not deliver a message twice"
    );
    gw.close()?;

    let mut gw = Gateway::connect(&server, bob.token())?;
    let again = gw.collect_envelopes(6, WAIT, true)?;
    let ids = |e: &[Envelope]| e.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&again[..5]), ids(&first), "redelivery keeps ids and order");
    assert_eq!(again[5].text(), "sixth");
    gw.close()?;
    data::wait_queue_empty(&server, &bob, Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn several_connections_of_one_device_share_the_queue() -> TestResult {
    // Goal: §8.8 — two connections of one device are both kept and both receive every pending
    // message (and live ones); an ack on one deletes for both, so a third connection gets
    // nothing. Method: 3 queued, connect twice, a 4th live, ack all on the first socket only.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let three = numbered("p", 3);
    send_texts(&server, &alice, &bob, &three, 3)?;
    let mut a = Gateway::connect(&server, bob.token())?;
    let mut b = Gateway::connect(&server, bob.token())?;
    let mut seen_a = a.collect_envelopes(3, WAIT, false)?;
    let seen_b = b.collect_envelopes(3, WAIT, false)?;
    assert_eq!(texts(&seen_a), three);
    assert_eq!(texts(&seen_b), three);
    assert_eq!(seen_a, seen_b, "both sockets see the same envelopes");
    send_text(&client, alice.token(), &bob.id, "live")?;
    seen_a.extend(a.collect_envelopes(1, WAIT, false)?);
    assert_eq!(texts(&b.collect_envelopes(1, WAIT, false)?), vec!["live"]);
    assert_eq!(seen_a[3].text(), "live");

    // Ack everything on `a` only.
    a.ack_envelopes(&seen_a)?;
    b.expect_pong(b"b is still open", WAIT)?;
    data::wait_queue_empty(&server, &bob, Duration::from_secs(5))?;
    Ok(())
}

#[test]
fn concurrent_senders_lose_and_double_nothing() -> TestResult {
    // Goal: the concurrency line and "ordering never skips a late commit" — 4 senders
    // posting at once to one connected device: every message arrives exactly once on the live
    // socket (no reconnect needed), each sender's messages in its send order. Method: 4 threads
    // × 25 requests × 4 submissions; the receiver acks as it reads; then a marker must be the
    // next envelope.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let bob = member(&client, "bob", 0)?;
    let senders: Vec<Member> = (0..4)
        .map(|i| member(&client, &format!("sender{i}"), 0))
        .collect::<Result<_, _>>()?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    std::thread::scope(|s| -> TestResult {
        let handles: Vec<_> = senders
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let (server, bob) = (&server, &bob);
                s.spawn(move || -> Result<(), String> {
                    let texts: Vec<String> = (0..100).map(|i| format!("s{k}-{i:03}")).collect();
                    send_texts(server, m, bob, &texts, 4).map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| "sender panicked")??;
        }
        Ok(())
    })?;
    let got = gw.collect_envelopes(400, Duration::from_secs(20), true)?;
    assert_eq!(distinct_ids(&got), 400);
    let mut per_sender: BTreeMap<Vec<u8>, Vec<String>> = BTreeMap::new();
    for e in &got {
        per_sender.entry(e.sender_device_id.clone()).or_default().push(e.text());
    }
    for (k, m) in senders.iter().enumerate() {
        let expected: Vec<String> = (0..100).map(|i| format!("s{k}-{i:03}")).collect();
        assert_eq!(per_sender.get(m.id.as_slice()), Some(&expected), "sender {k}");
    }
    send_text(&client, bob.token(), &bob.id, "marker")?;
    assert_eq!(texts(&gw.collect_envelopes(1, WAIT, true)?), vec!["marker"]);
    Ok(())
}

/// The next envelope batch within `WAIT` (status frames skipped), and when it came.
fn next_batch(gw: &mut Gateway) -> Result<(Vec<String>, Instant), Box<dyn std::error::Error>> {
    loop {
        match gw.next_frame(WAIT)? {
            Some(FramePayload::EnvelopeBatch(envelopes)) => return Ok((texts(&envelopes), Instant::now())),
            Some(FramePayload::PreKeyStatus { .. }) => {}
            other => return Err(format!("expected an envelope batch, got {other:?}").into()),
        }
    }
}

#[test]
fn delivery_interval_gathers_new_messages_into_one_frame() -> TestResult {
    // Goal: with `--ws-delivery-interval-ms`, a message that arrives on a quiet socket goes out
    // at once, and messages that arrive within the interval after a frame wait and go out
    // together in the next frame, no sooner than the interval. Method: interval 400 ms; a first
    // message, then two more sent right after its frame, in separate requests.
    let server = data::server_with(&["--ws-delivery-interval-ms", "400"])?;
    let client = server.client();
    let (alice, bob) = (member(&client, "alice", 0)?, member(&client, "bob", 0)?);
    let mut gw = Gateway::connect(&server, bob.token())?;
    let sent = Instant::now();
    send_text(&client, alice.token(), &bob.id, "first")?;
    let (first, first_at) = next_batch(&mut gw)?;
    assert_eq!(first, vec!["first"]);
    assert!(
        first_at - sent < Duration::from_millis(300),
        "a quiet socket gets it at once"
    );
    send_text(&client, alice.token(), &bob.id, "second")?;
    send_text(&client, alice.token(), &bob.id, "third")?;
    let (next, next_at) = next_batch(&mut gw)?;
    assert_eq!(next, vec!["second", "third"], "one frame for both");
    assert!(
        next_at - first_at >= Duration::from_millis(350),
        "not before the interval"
    );
    Ok(())
}
