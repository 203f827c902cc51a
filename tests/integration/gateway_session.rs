//! The life of a gateway session (BEHAVIOR §8.3, §8.8, §13, §5.5, §1; TEST-CASES G78-G81):
//! pongs while large batches stream, server pings, the silence timeout, Close 1001 on shutdown
//! (with pending acks applied), the RFC 6455 close handshake, frames the server must tolerate
//! (text, garbage, empty, non-ack payloads), an oversize frame that must not cost the device its
//! messages, and device deletion closing the device's sockets and removing its queue.

use std::time::{Duration, Instant};

use crate::common::data::{self, member, queued_for, send_all, send_text, texts};
use crate::common::gateway::{ticket, Event, Gateway, Handshake};
use crate::common::wire::{self, error_code, FramePayload, Submission};
use crate::common::TestResult;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn pong_arrives_while_large_batches_stream() -> TestResult {
    // Goal: G78, §8.8 — with 100 queued messages of 500 KiB and fetch size 100, a client Ping
    // with payload 01 02 03 sent after the first envelope arrives is answered by a Pong with the
    // same payload within 5 s, and every message still arrives. Method: queue in requests of 3,
    // connect, ping after the first envelope.
    let server = data::server_with(&["--ws-message-fetch-batch-size", "100"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let payload = |i: usize| -> Vec<u8> {
        let mut m = vec![(i % 256) as u8; 500 * 1024];
        m[..4].copy_from_slice(&(i as u32).to_be_bytes());
        m
    };
    let subs: Vec<Submission> = (0..100).map(|i| Submission::to(&bob.id, &payload(i))).collect();
    for chunk in subs.chunks(3) {
        send_all(&client, alice.token(), chunk)?;
    }
    let mut gw = Gateway::connect(&server, bob.token())?;
    let first = gw.collect_envelopes(1, Duration::from_secs(20), false)?;
    let started = Instant::now();
    gw.expect_pong(&[1, 2, 3], Duration::from_secs(5))?;
    let pong_after = started.elapsed();
    let rest = gw.collect_envelopes(99, Duration::from_secs(30), false)?;
    for (i, e) in first.iter().chain(rest.iter()).enumerate() {
        assert!(e.message == payload(i), "message {i} changed or arrived out of order");
    }
    eprintln!("pong after {pong_after:?}");
    Ok(())
}

#[test]
fn server_pings_and_drops_silent_clients() -> TestResult {
    // Goal: G79, G80, §8.8 — with `--ws-ping-interval-secs 1` the server sends a Ping (empty
    // payload) within 5 s; with ping timeout 1 s a client that stops reading (and so never
    // answers) is disconnected: after 4 s its stream yields a Close, an error or the end, while
    // a client that keeps reading (tungstenite answers pings) is still open. Method: two
    // devices on one server.
    let server = data::server_with(&["--ws-ping-interval-secs", "1", "--ws-ping-timeout-secs", "1"])?;
    let client = server.client();
    let active = member(&client, "active", 20)?;
    let silent = member(&client, "silent", 20)?;
    let mut quiet_gw = Gateway::connect(&server, silent.token())?;
    let mut gw = Gateway::connect(&server, active.token())?;
    let started = Instant::now();
    let mut pinged = None;
    while started.elapsed() < Duration::from_secs(4) {
        match gw.next_event(Duration::from_millis(100))? {
            Some(Event::Ping(p)) => {
                assert!(p.is_empty(), "server pings have an empty payload: {p:?}");
                pinged.get_or_insert(started.elapsed());
            }
            None => {}
            Some(other) => return Err(format!("unexpected {other:?}").into()),
        }
    }
    let pinged = pinged.ok_or("no Ping within 4 s")?;
    assert!(pinged < Duration::from_secs(5), "first ping after {pinged:?}");
    assert!(
        quiet_gw.wait_closed(Duration::from_secs(3))?,
        "a client silent for 4 s must have been disconnected"
    );
    gw.expect_pong(b"alive", WAIT)?;
    Ok(())
}

#[test]
fn shutdown_sends_close_1001() -> TestResult {
    // Goal: G81, §13 — on SIGTERM a connected client receives a Close frame with code 1001 and
    // reason `Server shutting down`, and the server exits promptly. Method: one idle socket,
    // SIGTERM, read.
    let mut server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    gw.expect_pong(b"ready", WAIT)?;
    let started = Instant::now();
    server.sigterm()?;
    assert!(gw.wait_closed(WAIT)?, "no close after SIGTERM");
    assert_eq!(
        gw.close,
        Some(Some((1001, "Server shutting down".to_string()))),
        "shutdown must close with 1001"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))?
        .ok_or("server still running")?;
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown with one open socket took {:?}",
        started.elapsed()
    );
    Ok(())
}

#[test]
fn acks_pending_at_shutdown_are_applied() -> TestResult {
    // Goal: §13 ("pending ack batches are flushed") and §8.7 — acks still waiting for their
    // (10 s) timer when SIGTERM arrives are applied before the server exits, and the exit is
    // prompt: after a restart nothing is redelivered. Method: ack 3, SIGTERM at once, time the
    // exit, restart on the same data, look at the queue.
    let mut server = data::server_with(&["--ws-ack-flush-interval-ms", "10000"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    send_all(
        &client,
        alice.token(),
        &(0..3)
            .map(|i| Submission::to(&bob.id, format!("s{i}").as_bytes()))
            .collect::<Vec<_>>(),
    )?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(3, WAIT, false)?;
    gw.ack_envelopes(&got)?;
    gw.expect_pong(b"acks are in", WAIT)?;
    // The client keeps reading (and so answers the server's Close) while the server stops.
    let reader = std::thread::spawn(move || {
        let _ = gw.wait_closed(Duration::from_secs(10));
        gw
    });
    let started = Instant::now();
    let status = server.stop()?;
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    let gw = reader.join().map_err(|_| "reader panicked")?;
    assert_eq!(gw.close, Some(Some((1001, "Server shutting down".to_string()))));
    drop(gw);
    server.respawn()?;
    let left = queued_for(&server, &bob)?;
    assert!(
        left.is_empty(),
        "acks pending at shutdown were lost: {:?} redelivered",
        texts(&left)
    );
    assert!(
        took < Duration::from_secs(3),
        "shutdown with pending acks took {took:?}"
    );
    Ok(())
}

#[test]
fn acks_are_applied_at_shutdown_even_if_the_client_never_answers() -> TestResult {
    // Goal: §13, §8.7 — pending ack batches are flushed at shutdown whatever the client does:
    // a client that acked and then stopped reading (so never answers the server's Close) does
    // not make the server drop its acks when the grace period (`--server-shutdown-timeout-secs
    // 1`) runs out. Method: ack 3 with a 10 s flush interval, SIGTERM without reading, restart,
    // look at the queue.
    let mut server = data::server_with(&[
        "--ws-ack-flush-interval-ms",
        "10000",
        "--server-shutdown-timeout-secs",
        "1",
    ])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let subs: Vec<Submission> = (0..3)
        .map(|i| Submission::to(&bob.id, format!("u{i}").as_bytes()))
        .collect();
    send_all(&client, alice.token(), &subs)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    let got = gw.collect_envelopes(3, WAIT, false)?;
    gw.ack_envelopes(&got)?;
    gw.expect_pong(b"acks are in", WAIT)?;
    let started = Instant::now();
    let status = server.stop()?;
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    gw.abandon();
    server.respawn()?;
    let left = queued_for(&server, &bob)?;
    assert!(
        left.is_empty(),
        "acks were dropped at shutdown: {:?} redelivered (stop took {took:?})",
        texts(&left)
    );
    Ok(())
}

#[test]
fn client_close_is_answered_with_a_close_frame() -> TestResult {
    // Goal: RFC 6455 §5.5.1 — an endpoint that receives a Close frame it did not initiate must
    // answer with a Close frame before closing the TCP connection. Method: send Close (code
    // 1000) and read what comes back.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    gw.expect_pong(b"ready", WAIT)?;
    gw.ws.close(Some(tungstenite::protocol::CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "bye".into(),
    }))?;
    assert!(gw.wait_closed(WAIT)?, "the server did not end the connection");
    assert!(
        gw.close.is_some(),
        "the server ended the connection without answering the Close frame (ended: {:?})",
        gw.ended
    );
    Ok(())
}

#[test]
fn tolerated_frames_leave_the_socket_open() -> TestResult {
    // Goal: §8.3 — text frames, binary frames that do not decode, an empty frame, frames whose
    // payload is not an ack (a status, a batch) and an empty ack are ignored: the socket stays
    // open (pings answered), delivery goes on, and a valid ack after them still works. Method:
    // send each in turn, then a message and its ack.
    let server = data::server_with(&["--ws-ack-flush-interval-ms", "20"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    gw.send_text("hello")?;
    gw.send_text("")?;
    gw.send_binary(vec![0xff, 0xff, 0xff, 0xff])?;
    gw.send_binary(vec![0x5a, 0x10, 0x0a])?; // ack, truncated
    gw.send_binary(vec![])?;
    gw.send_binary(wire::encode_frame(&FramePayload::PreKeyStatus {
        count: 1,
        threshold: 2,
    }))?;
    gw.send_binary(wire::encode_frame(&FramePayload::EnvelopeBatch(vec![wire::Envelope {
        id: vec![1; 16],
        ..Default::default()
    }])))?;
    gw.send_binary(wire::encode_ack::<Vec<u8>>(&[]))?;
    gw.expect_pong(&[9, 9], WAIT)?;
    send_text(&client, alice.token(), &bob.id, "still delivered")?;
    let got = gw.collect_envelopes(1, WAIT, true)?;
    assert_eq!(texts(&got), vec!["still delivered"]);
    gw.expect_pong(&[8], WAIT)?;
    gw.close()?;
    data::wait_queue_empty(&server, &bob, Duration::from_secs(3))?;
    Ok(())
}

#[test]
fn oversize_frame_costs_no_messages() -> TestResult {
    // Goal: §8.3 inbound limits — a client message above what the server accepts (2 MiB here,
    // above this server's 1 MiB default; the reference's 16 MiB frame cap is larger still) may
    // end the session, but the device's unacked messages are not lost: a new socket gets them
    // again. Method: receive 2 messages without acking, send a 2 MiB binary (write errors are
    // fine), then reconnect and read the queue.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let bob = member(&client, "bob", 0)?;
    send_all(
        &client,
        alice.token(),
        &[Submission::to(&bob.id, b"one"), Submission::to(&bob.id, b"two")],
    )?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    assert_eq!(texts(&gw.collect_envelopes(2, WAIT, false)?), vec!["one", "two"]);
    let _ = gw.send_binary(vec![0x5a; 2 * 1024 * 1024]);
    // Either outcome is allowed; just let the server act on it.
    let closed = gw.wait_closed(Duration::from_millis(500))?;
    eprintln!("closed on the oversize frame: {closed}");
    gw.abandon();
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["one", "two"]);
    Ok(())
}

#[test]
fn deleting_a_device_closes_its_sockets_and_drops_its_queue() -> TestResult {
    // Goal: §5.5 (this server follows the recommendation) and C29 — deleting a device closes
    // its open sockets (with a Close frame without status code, §8.8), its queue is gone, later
    // sends to it fail with INVALID_DEVICE, and its stale token cannot reach any messages
    // (ticket 401, handshake 401, or a socket that delivers nothing). Another device's socket
    // stays open. Method: bob has 2 queued messages and a socket; his user token deletes the
    // device.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 20)?;
    let bob = member(&client, "bob", 0)?;
    send_all(
        &client,
        alice.token(),
        &[Submission::to(&bob.id, b"one"), Submission::to(&bob.id, b"two")],
    )?;
    let mut gw = Gateway::connect(&server, bob.token())?;
    assert_eq!(texts(&gw.collect_envelopes(2, WAIT, false)?), vec!["one", "two"]);
    let mut alice_gw = Gateway::connect(&server, alice.token())?;

    let resp = client.delete_device(&bob.user.token, &bob.device_id)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(gw.wait_closed(WAIT)?, "the deleted device's socket must be closed");
    assert_eq!(gw.close, Some(None), "expected a Close frame without status code");
    alice_gw.expect_pong(b"unaffected", WAIT)?;

    let s = Submission::to(&bob.id, b"too late");
    let f = data::send_ok(&client, alice.token(), std::slice::from_ref(&s))?;
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].error_code, error_code::INVALID_DEVICE);

    let resp = client.post("/v1/gateway/ticket").bearer(bob.token()).send()?;
    match resp.status {
        401 => {}
        201 => {
            let t = resp.json()?["ticket"].as_str().unwrap_or_default().to_string();
            match Gateway::handshake(server.main_port, &t)? {
                Handshake::Refused(401, _) => {}
                Handshake::Refused(status, body) => {
                    return Err(format!("stale ticket answered {status}: {:?}", String::from_utf8_lossy(&body)).into())
                }
                Handshake::Upgraded(mut stale) => {
                    let got = stale.drain(Duration::from_millis(500), WAIT)?;
                    assert!(
                        got.is_empty(),
                        "a deleted device's queue must be gone: {:?}",
                        texts(&got)
                    );
                }
            }
        }
        other => return Err(format!("ticket for a deleted device answered {other}: {resp:?}").into()),
    }
    Ok(())
}

#[test]
fn deleting_a_device_drops_the_messages_it_sent() -> TestResult {
    // Goal: §1 cascade — deleting a device also deletes "all still-queued messages the device
    // sent to anybody"; messages from the user's other device stay. Method: alice's two devices
    // each send bob a message; delete the first; bob's queue holds only the second's.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let alice2 = data::add_device(&client, &alice.user, 2, 0)?;
    let bob = member(&client, "bob", 0)?;
    send_text(&client, alice.token(), &bob.id, "from the deleted device")?;
    send_text(&client, alice2.token(), &bob.id, "from the other device")?;
    let resp = client.delete_device(&alice.user.token, &alice.device_id)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert_eq!(texts(&queued_for(&server, &bob)?), vec!["from the other device"]);
    Ok(())
}

#[test]
fn takeover_closes_every_socket_of_the_device_with_a_bare_close() -> TestResult {
    // Goal: §6.3, §8.8 — a takeover closes all open sockets of the device (here two), each with
    // a Close frame without status code. Method: two sockets, takeover, read both.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let mut one = Gateway::connect(&server, bob.token())?;
    let mut two = Gateway::connect(&server, bob.token())?;
    one.expect_pong(b"1", WAIT)?;
    two.expect_pong(b"2", WAIT)?;
    data::upload_keys_ok(&client, bob.token(), &data::upload_body(9, Some(1), 1, 1, 20))?;
    for (name, gw) in [("first", &mut one), ("second", &mut two)] {
        assert!(gw.wait_closed(WAIT)?, "{name} socket not closed by the takeover");
        assert_eq!(
            gw.close,
            Some(None),
            "{name}: expected a Close frame without status code"
        );
    }
    // The device's token still gets a working socket afterwards.
    let t = ticket(&client, bob.token())?;
    let mut again = Gateway::open(server.main_port, &t)?;
    again.expect_pong(b"3", WAIT)?;
    Ok(())
}
