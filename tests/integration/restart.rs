//! Persistence across restarts and graceful shutdown (BEHAVIOR §13 lifecycle, STYLE's
//! recovery tests): accounts, devices and refresh-token state (including rotation and reuse
//! families) survive a SIGTERM and restart on the same data dir; SIGTERM lets an in-flight
//! request finish and then the process exits 0, also with idle keep-alive connections open.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

use crate::common::raw::{request_bytes, RawConn};
use crate::common::{Auth, TestResult, TestServer, PASSWORD};

#[test]
fn restart_keeps_accounts_devices_and_sessions() -> TestResult {
    // Goal: everything the API wrote is there after a restart: logins (any case), device lists
    // (ids, names, createdAt, order), live refresh tokens, dead ones (consumed, logged out,
    // deleted device), reuse families, and username uniqueness. Method: build that state,
    // SIGTERM + restart on the same data dir, check each piece.
    everything_survives(false)
}

#[test]
fn crash_keeps_every_acknowledged_write() -> TestResult {
    // Goal: with `--durability buffered` every answered write survives a crash of the process
    // (DESIGN, storage). Method: the same state and checks as the graceful restart, but the
    // server is SIGKILLed instead of stopped.
    everything_survives(true)
}

fn everything_survives(crash: bool) -> TestResult {
    let mut server = TestServer::start()?;
    let client = server.client();
    let alice = client.register_ok("Alice")?;
    let bob = client.register_ok("bob")?;
    let a_phone = client.create_device_ok(&alice.token, Some("phone"))?;
    let a_laptop = client.create_device_ok(&alice.token, None)?;
    let a_doomed = client.create_device_ok(&alice.token, Some("doomed"))?;
    let b_dev = client.create_device_ok(&bob.token, Some("bob's"))?;
    let laptop_id = a_laptop.device_id.clone().ok_or("no id")?;
    client
        .rename_device(&alice.token, &laptop_id, &json!({"name": "laptop"}))?
        .expect_json(200)?;
    assert_eq!(
        client
            .delete_device(&alice.token, a_doomed.device_id.as_deref().ok_or("no id")?)?
            .status,
        200
    );
    // Alice's user session from before the deletion died with it (issue 19): a new login.
    let alice = client.login_ok("alice", None)?;

    // Refresh-token state: alice's user session rotated once; bob's device session logged out;
    // a second alice session rotated once (its first token will be replayed after restart).
    let a1 = Auth::from_json(&client.refresh(&alice.refresh_token)?.expect_json(200)?)?;
    assert_eq!(client.logout(&bob.token, &b_dev.refresh_token)?.status, 200);
    let second = client.login_ok("alice", None)?;
    let second1 = Auth::from_json(&client.refresh(&second.refresh_token)?.expect_json(200)?)?;

    let alice_devices = client.list_devices_ok(&alice.token)?;
    let bob_devices = client.list_devices_ok(&bob.token)?;
    assert_eq!(alice_devices.len(), 2);

    if crash {
        server.crash_restart()?;
    } else {
        server.restart()?;
    }
    let client = server.client();

    // Logins and ids.
    assert_eq!(client.login_ok("ALICE", None)?.user_id, alice.user_id);
    assert_eq!(client.login_ok("bob", None)?.user_id, bob.user_id);
    client.login("alice", "wrong password!!", None)?.expect_error(401)?;
    let phone_id = a_phone.device_id.clone().ok_or("no id")?;
    let scoped = client.login_ok("alice", Some(&phone_id))?;
    assert_eq!(scoped.device_id.as_deref(), Some(phone_id.as_str()));
    assert_eq!(
        client.login_ok("alice", a_doomed.device_id.as_deref())?.device_id,
        None,
        "deleted device came back"
    );

    // Devices, byte for byte; access tokens issued before the restart still work.
    assert_eq!(client.list_devices_ok(&alice.token)?, alice_devices);
    assert_eq!(client.list_devices_ok(&bob.token)?, bob_devices);
    client
        .get_device(&alice.token, a_doomed.device_id.as_deref().ok_or("no id")?)?
        .expect_error(404)?;

    // Refresh tokens.
    // (The rotated token is replayed only after its successor was used: a replay revokes the
    // whole family.)
    let a2 = client.refresh(&a1.refresh_token)?.expect_json(200)?;
    assert!(a2.get("deviceId").is_none());
    client.refresh(&alice.refresh_token)?.expect_error(401)?;
    let phone2 = client.refresh(&a_phone.refresh_token)?.expect_json(200)?;
    assert_eq!(phone2["deviceId"].as_str(), Some(phone_id.as_str()));
    client.refresh(&b_dev.refresh_token)?.expect_error(401)?;
    client.refresh(&a_doomed.refresh_token)?.expect_error(401)?;
    // Replaying the rotated token of the second session revokes its family, persisted or not.
    client.refresh(&second.refresh_token)?.expect_error(401)?;
    client.refresh(&second1.refresh_token)?.expect_error(401)?;

    // Uniqueness and new writes.
    client
        .register("alice", PASSWORD)?
        .expect_error_text(409, "Username already exists")?;
    let carol = client.register_ok("carol")?;
    client.create_device_ok(&carol.token, None)?;
    client.create_device_ok(&alice.token, Some("after restart"))?;
    assert_eq!(client.list_devices_ok(&alice.token)?.len(), 3);
    Ok(())
}

#[test]
fn repeated_restarts_lose_nothing() -> TestResult {
    // Goal: recovery is repeatable: write, restart, write more, restart... and every earlier
    // write is still there each time. Method: four rounds of a user with a device and a
    // rotated refresh token, checking all previous rounds after each restart; the restarts
    // alternate between a crash (SIGKILL) and a graceful stop (SIGTERM).
    let mut server = TestServer::start()?;
    let mut rounds: Vec<(String, Auth, Vec<serde_json::Value>, String)> = Vec::new();
    for round in 0..4 {
        let client = server.client();
        let name = format!("round_{round}");
        let user = client.register_ok(&name)?;
        client.create_device_ok(&user.token, Some(&format!("device {round}")))?;
        let next = Auth::from_json(&client.refresh(&user.refresh_token)?.expect_json(200)?)?;
        let devices = client.list_devices_ok(&user.token)?;
        rounds.push((name, user, devices, next.refresh_token));

        if round % 2 == 0 {
            server.crash_restart()?;
        } else {
            server.restart()?;
        }
        let client = server.client();
        for (name, user, devices, refresh) in rounds.iter_mut() {
            assert_eq!(
                client.login_ok(name, None)?.user_id,
                user.user_id,
                "{name} after restart {round}"
            );
            assert_eq!(
                &client.list_devices_ok(&user.token)?,
                devices,
                "{name} after restart {round}"
            );
            let rotated = Auth::from_json(&client.refresh(refresh)?.expect_json(200)?)?;
            *refresh = rotated.refresh_token;
        }
    }
    Ok(())
}

#[test]
fn sigterm_exits_zero() -> TestResult {
    // Goal: §13 shutdown — SIGTERM on an idle server ends it with status 0. Method: start,
    // SIGTERM, wait.
    let mut server = TestServer::start()?;
    server.client().register_ok("someone")?;
    let status = server.stop()?;
    assert!(status.success(), "exit status {status}");
    Ok(())
}

#[test]
fn sigterm_lets_the_in_flight_request_finish() -> TestResult {
    // Goal: §13 shutdown drains: a request whose head has arrived when SIGTERM comes is still
    // answered (201), the process then exits 0, and what it wrote is durable. Method: send a
    // registration's head and half its body, SIGTERM, send the rest, read the answer, wait
    // for the exit, start again on the same data dir and log in.
    let mut server = TestServer::start()?;
    let body = json!({"username": "inflight", "password": PASSWORD}).to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
        ],
        None,
    ))?;
    conn.send(first)?;
    std::thread::sleep(Duration::from_millis(200));
    server.sigterm()?;
    std::thread::sleep(Duration::from_millis(300));
    conn.stream.write_all(rest)?;
    let resp = conn.read_response()?;
    resp.expect_json(201)?;

    let status = server
        .wait_exit(Duration::from_secs(10))?
        .ok_or("server still running 10 s after SIGTERM")?;
    assert!(status.success(), "exit status {status}");

    server.respawn()?;
    server.client().login_ok("inflight", None)?;
    Ok(())
}

#[test]
fn idle_keep_alive_connections_do_not_block_shutdown() -> TestResult {
    // Goal: an idle keep-alive connection is closed at shutdown rather than waited on until
    // its idle timeout (60 s by default). Method: finish one request on a connection, keep it
    // open, SIGTERM, and expect exit 0 within 10 s and the connection ended.
    let mut server = TestServer::start()?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    let mut silent = RawConn::connect(server.main_port)?; // connected, never sends a byte

    server.sigterm()?;
    let status = server
        .wait_exit(Duration::from_secs(10))?
        .ok_or("server still running 10 s after SIGTERM")?;
    assert!(status.success(), "exit status {status}");
    assert_ne!(
        conn.wait_closed(Duration::from_secs(2))?,
        crate::common::raw::Closed::StillOpen
    );
    assert_ne!(
        silent.wait_closed(Duration::from_secs(2))?,
        crate::common::raw::Closed::StillOpen
    );
    Ok(())
}
