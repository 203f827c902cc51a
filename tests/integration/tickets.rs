//! Gateway tickets and the handshake (BEHAVIOR §8.1-8.2; TEST-CASES H82, H84, H87): the ticket
//! answer, unknown / malformed / used / expired tickets (401 with this server's JSON error
//! body), single use under racing handshakes, a missing `ticket` parameter, the upgrade checks
//! in their documented order, and a failed upgrade not consuming the ticket.

use std::sync::Barrier;
use std::time::Duration;

use crate::common::data::{self, member};
use crate::common::gateway::{ticket, Gateway, Handshake};
use crate::common::raw::{request_bytes, RawConn};
use crate::common::{random_uuid, uuid_version, Resp, TestResult};

const WAIT: Duration = Duration::from_secs(5);

/// A raw `GET /v1/gateway…` with `headers`.
fn raw_get(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<Resp, Box<dyn std::error::Error>> {
    let mut conn = RawConn::connect(port)?;
    conn.send(&request_bytes("GET", path, headers, None))?;
    conn.read_response()
}

const UPGRADE: [(&str, &str); 4] = [
    ("Connection", "Upgrade"),
    ("Upgrade", "websocket"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
];

fn expect_refused(outcome: Handshake, status: u16) -> TestResult {
    match outcome {
        Handshake::Refused(s, body) => {
            assert_eq!(s, status, "body {:?}", String::from_utf8_lossy(&body));
            Ok(())
        }
        Handshake::Upgraded(_) => Err(format!("expected {status}, got 101").into()),
    }
}

#[test]
fn ticket_is_a_fresh_uuid_v4() -> TestResult {
    // Goal: H82, §8.1 — `POST /v1/gateway/ticket` with a device token → 201 with exactly
    // `{"ticket": "<canonical UUID v4>"}`, a new one each time; the ticket opens a socket.
    // Method: two tickets, then a handshake with one.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let v = client
        .post("/v1/gateway/ticket")
        .bearer(bob.token())
        .send()?
        .expect_json(201)?;
    let obj = v.as_object().ok_or("not an object")?;
    assert_eq!(obj.len(), 1, "{v}");
    let t = v["ticket"].as_str().ok_or("no ticket")?;
    assert_eq!(uuid_version(t), Some(4), "{t}");
    let t2 = ticket(&client, bob.token())?;
    assert_ne!(t, t2);
    let mut gw = Gateway::open(server.main_port, t)?;
    gw.expect_pong(b"ok", WAIT)?;
    Ok(())
}

#[test]
fn unknown_and_malformed_tickets_are_401() -> TestResult {
    // Goal: H84, §8.2 step 4 — a handshake with an unknown ticket, or one that is not a UUID,
    // answers 401 (with this server's JSON error body), never 500 and never 101. Method: raw
    // upgrade requests.
    let server = data::server_with(&[])?;
    for t in [random_uuid(), "not-a-uuid".to_string(), String::new()] {
        let resp = raw_get(server.main_port, &format!("/v1/gateway?ticket={t}"), &UPGRADE)?;
        resp.expect_error_text(401, "Unauthorized")?;
    }
    Ok(())
}

#[test]
fn missing_ticket_parameter_is_400() -> TestResult {
    // Goal: H87, §8.2 step 3 — no query at all or no known parameter is 400 starting `Failed
    // to deserialize query string`; no upgrade happens. `?token=invalid` is the legacy socket
    // (§17.2 item 8, served on purpose, unlike the RI): an invalid token is a 401. Method: raw
    // upgrade requests.
    let server = data::server_with(&[])?;
    for path in ["/v1/gateway", "/v1/gateway?tickets=x"] {
        let resp = raw_get(server.main_port, path, &UPGRADE)?;
        let text = resp.expect_error(400)?;
        assert!(text.starts_with("Failed to deserialize query string"), "{path}: {text}");
    }
    raw_get(server.main_port, "/v1/gateway?token=invalid", &UPGRADE)?.expect_error(401)?;
    Ok(())
}

#[test]
fn upgrade_checks_come_first_and_do_not_consume_the_ticket() -> TestResult {
    // Goal: §8.2 step 2 — a request that is not a valid upgrade is refused before the ticket is
    // looked at (400 without `Connection: upgrade`, without `Upgrade: websocket`, without a
    // key, with a version other than 13, in that order; 405 for POST), and such a failure does
    // not consume the ticket: a proper handshake with it afterwards is 101. Method: raw
    // requests with one header removed at a time, then tungstenite.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let t = ticket(&client, bob.token())?;
    let path = format!("/v1/gateway?ticket={t}");
    for skip in 0..UPGRADE.len() {
        let headers: Vec<(&str, &str)> = UPGRADE
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, h)| *h)
            .collect();
        let resp = raw_get(server.main_port, &path, &headers)?;
        resp.expect_error(400)?;
    }
    let mut v12 = UPGRADE.to_vec();
    v12[3] = ("Sec-WebSocket-Version", "12");
    raw_get(server.main_port, &path, &v12)?.expect_error(400)?;
    // A bad upgrade with a bad ticket is still 400: upgrade checks come first.
    raw_get(
        server.main_port,
        &format!("/v1/gateway?ticket={}", random_uuid()),
        &UPGRADE[1..],
    )?
    .expect_error(400)?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("POST", &path, &UPGRADE, Some(b"")))?;
    assert_eq!(conn.read_response()?.status, 405);

    let mut gw = Gateway::open(server.main_port, &t)?;
    gw.expect_pong(b"unconsumed", WAIT)?;
    Ok(())
}

#[test]
fn tickets_are_single_use() -> TestResult {
    // Goal: §8.2 step 5 — a ticket is deleted by the handshake it opens: a second handshake
    // with it is 401, even while the first socket is open and after it closed. Method: open,
    // retry, close, retry.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let t = ticket(&client, bob.token())?;
    let gw = Gateway::open(server.main_port, &t)?;
    expect_refused(Gateway::handshake(server.main_port, &t)?, 401)?;
    gw.close()?;
    expect_refused(Gateway::handshake(server.main_port, &t)?, 401)?;
    Ok(())
}

#[test]
fn tickets_expire() -> TestResult {
    // Goal: §8.1 — with `--ws-ticket-ttl-secs 1` a ticket unused for 2 s is 401, while a fresh
    // one works. Method: wait 2.1 s.
    let server = data::server_with(&["--ws-ticket-ttl-secs", "1"])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    let old = ticket(&client, bob.token())?;
    std::thread::sleep(Duration::from_millis(2100));
    expect_refused(Gateway::handshake(server.main_port, &old)?, 401)?;
    let fresh = ticket(&client, bob.token())?;
    Gateway::open(server.main_port, &fresh)?.expect_pong(b"fresh", WAIT)?;
    Ok(())
}

#[test]
fn racing_handshakes_on_one_ticket_upgrade_once() -> TestResult {
    // Goal: §8.2 notes — a ticket is consumed atomically: two handshakes started together with
    // the same ticket give exactly one 101 and one 401. Method: 5 rounds, two threads behind a
    // barrier each.
    let server = data::server_with(&[])?;
    let client = server.client();
    let bob = member(&client, "bob", 20)?;
    for round in 0..5 {
        let t = ticket(&client, bob.token())?;
        let barrier = Barrier::new(2);
        let outcomes: Vec<Result<u16, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..2)
                .map(|_| {
                    let (barrier, t, port) = (&barrier, &t, server.main_port);
                    s.spawn(move || -> Result<u16, String> {
                        barrier.wait();
                        match Gateway::handshake(port, t).map_err(|e| e.to_string())? {
                            Handshake::Upgraded(_) => Ok(101),
                            Handshake::Refused(status, _) => Ok(status),
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err("thread panicked".into())))
                .collect()
        });
        let mut statuses: Vec<u16> = outcomes.into_iter().collect::<Result<_, _>>()?;
        statuses.sort_unstable();
        assert_eq!(statuses, vec![101, 401], "round {round}");
    }
    Ok(())
}
