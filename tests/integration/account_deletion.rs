//! `DELETE /v1/users/me` (issue 15): every status it answers; the cascade (devices, keys,
//! mailboxes, messages the account sent that are still queued, backups and their blobs, sockets
//! closed with the device-deletion close); every token of the account refused on every route; a
//! deleted account failing exactly as an unknown one (counted password verifications, not
//! timing); the name free again; deletion racing sends to and from the account with nothing
//! left behind (read back from the store after the server stopped); and a crash right after the
//! decision, finished after a restart.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use obscura_relay::config::Durability;
use obscura_relay::shard::runtime::{block_on, ChosenDriver};
use obscura_relay::store::embedded::{EmbeddedOptions, EmbeddedStore};
use obscura_relay::store::{Accounts, Devices, Mailboxes};
use serde_json::json;
use uuid::Uuid;

use crate::common::blobs::{Backend, BlobServer};
use crate::common::data::{self, member, queued_for, send_text, texts, Member};
use crate::common::gateway::{Gateway, Handshake};
use crate::common::keys::DeviceKeys;
use crate::common::server::JWT_SECRET;
use crate::common::wire::{self, error_code, Submission};
use crate::common::{jwt, now_secs, random_uuid, Auth, Client, Resp, TestResult, TestServer, PASSWORD};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const WAIT: Duration = Duration::from_secs(5);
const DUMMY: &str = "obscura_password_verifications_total{hash=\"dummy\"}";
const STORED: &str = "obscura_password_verifications_total{hash=\"stored\"}";

/// Deletes `m`'s account with its user token, asserting 204 with no body.
fn delete_ok(client: &Client, m: &Member) -> TestResult {
    let resp = client.delete_account(&m.user.token, PASSWORD)?;
    assert_eq!(resp.status, 204, "{resp:?}");
    assert!(resp.body.is_empty(), "{resp:?}");
    Ok(())
}

/// Uploads a first backup for `m` (a device-scoped token), asserting 200.
fn backup(client: &Client, m: &Member) -> TestResult {
    let body: Vec<u8> = (0..40u8).collect();
    let resp = client
        .post("/v1/backup")
        .bearer(m.token())
        .header("if-none-match", "*")
        .body(body)
        .send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    Ok(())
}

#[test]
fn deletion_needs_the_password_and_a_well_formed_body() -> TestResult {
    // Goal: a wrong password is 401, a body that is not `{"password": "…"}` is 400, one without
    // a JSON content type 415, one over the body limit 413, no token is 401 — and none of them
    // deletes anything (the account still logs in). Method: one account,
    // each refusal in turn, then the real deletion (204) and the metric.
    let server = TestServer::start()?;
    let client = server.client();
    let kim = member(&client, "kim", 0)?;
    client
        .delete_account(&kim.user.token, "not the password")?
        .expect_error_text(401, "Unauthorized")?;
    let delete = |body: &str| {
        client
            .delete("/v1/users/me")
            .bearer(&kim.user.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for body in ["{}", r#"{"password": 12}"#, r#"["x"]"#, "{oops", ""] {
        let resp = delete(body)?;
        resp.expect_error(400)?;
    }
    let untyped = client
        .delete("/v1/users/me")
        .bearer(&kim.user.token)
        .body(json!({"password": PASSWORD}).to_string())
        .send()?;
    untyped.expect_error(415)?;
    delete(&" ".repeat(3 * 1024 * 1024))?.expect_error(413)?;
    let unauthenticated = client
        .delete("/v1/users/me")
        .json(&json!({"password": PASSWORD}))
        .send()?;
    unauthenticated.expect_error_text(401, "Unauthorized")?;
    client.login_ok("kim", None)?;
    assert_eq!(server.metric("obscura_accounts_deleted_total")?, 0.0);
    delete_ok(&client, &kim)?;
    assert_eq!(server.metric("obscura_accounts_deleted_total")?, 1.0);
    let log = std::fs::read_to_string(server.log_path())?;
    assert!(
        !log.contains(PASSWORD) && !log.contains("not the password"),
        "a password was logged"
    );
    Ok(())
}

#[test]
fn the_name_is_free_again_and_a_new_account_gets_a_new_id() -> TestResult {
    // Goal: after a deletion the old token answers 401 (a second DELETE too), the name logs in
    // as an unknown one would, registering it again gives a new user id, and the lookup finds
    // the new account. Method: delete, then register the same name.
    let server = TestServer::start()?;
    let client = server.client();
    let leo = member(&client, "leo", 0)?;
    delete_ok(&client, &leo)?;
    client.me(&leo.user.token)?.expect_error_text(401, "Unauthorized")?;
    client
        .delete_account(&leo.user.token, PASSWORD)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .delete_account(leo.token(), PASSWORD)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .login("leo", PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    let again = client.register_ok("leo")?;
    assert_ne!(again.user_id, leo.user.user_id, "a new account gets a new id");
    let found = client.lookup(&again.token, "leo")?.expect_json(200)?;
    assert_eq!(found["userId"].as_str(), Some(again.user_id.as_str()));
    client.me(&again.token)?.expect_json(200)?;
    Ok(())
}

#[test]
fn deletion_cascades_to_devices_messages_bundles_and_sockets() -> TestResult {
    // Goal: deleting an account deletes each device as DELETE /v1/devices/{id} does: the
    // sockets of every device close with the device-deletion close (no status code), the
    // messages it sent that a friend still has queued are gone, the friend's bundle fetch of it
    // is 404 (v1 and legacy), sends to its devices fail with INVALID_DEVICE, its backups and
    // their blobs are gone, a ticket taken before the deletion opens no socket (401); the
    // friend's own socket stays open. Method: mona (two devices, a
    // socket each, a backup, messages queued both ways) and her friend ned.
    let server = BlobServer::start(Backend::Local, &[])?;
    let client = server.client();
    let mona = member(&client, "mona", 5)?;
    let mona2 = data::add_device(&client, &mona.user, 2, 5)?;
    let ned = member(&client, "ned", 5)?;
    send_text(&client, mona.token(), &ned.id, "from mona 1")?;
    send_text(&client, mona2.token(), &ned.id, "from mona 2")?;
    send_text(&client, ned.token(), &mona.id, "to mona")?;
    backup(&client, &mona)?;
    let folder = format!("backups/{}/", mona.device_id);
    assert_eq!(server.keys(&folder)?.len(), 1);
    let mut sockets = [
        Gateway::connect(&server, mona.token())?,
        Gateway::connect(&server, mona2.token())?,
    ];
    let mut ned_gw = Gateway::connect(&server, ned.token())?;
    for gw in sockets.iter_mut() {
        gw.expect_pong(b"up", WAIT)?;
    }

    let early_ticket = crate::common::gateway::ticket(&client, mona2.token())?;
    delete_ok(&client, &mona)?;
    match Gateway::handshake(server.main_port, &early_ticket)? {
        Handshake::Refused(401, _) => {}
        other => return Err(format!("a ticket of the deleted account answered {}", describe(&other)).into()),
    }
    for (i, gw) in sockets.iter_mut().enumerate() {
        assert!(gw.wait_closed(WAIT)?, "socket {i} of the deleted account stayed open");
        assert_eq!(gw.close, Some(None), "socket {i}: expected the device-deletion close");
    }
    ned_gw.expect_pong(b"unaffected", WAIT)?;
    ned_gw.close()?;
    assert!(
        queued_for(&server, &ned)?.is_empty(),
        "messages of the deleted account are gone"
    );
    data::fetch_bundles(&client, ned.token(), mona.user_id())?.expect_error_text(404, "Not found")?;
    let legacy = client
        .get(&format!("/v1/keys/{}", mona.user_id()))
        .bearer(ned.token())
        .send()?;
    legacy.expect_error_text(404, "Not found")?;
    let subs = [Submission::to(&mona.id, b"late"), Submission::to(&mona2.id, b"late")];
    let failed = data::send_ok(&client, ned.token(), &subs)?;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed.iter().all(|f| f.error_code == error_code::INVALID_DEVICE),
        "{failed:?}"
    );
    server.wait_keys(&folder, |keys| keys.is_empty())?;
    Ok(())
}

/// A handshake's outcome, for a failure message.
fn describe(handshake: &Handshake) -> String {
    match handshake {
        Handshake::Refused(status, _) => format!("{status}"),
        Handshake::Upgraded(_) => "101 (a socket opened)".into(),
    }
}

/// Every route, as (method, path, JSON body) — requests a token of any scope may make.
fn routes(user_id: &str) -> Vec<(&'static str, String, Option<serde_json::Value>)> {
    let keys = DeviceKeys::new(7).request(1);
    vec![
        ("GET", "/v1/users/me".into(), None),
        ("DELETE", "/v1/users/me".into(), Some(json!({"password": PASSWORD}))),
        (
            "PUT",
            "/v1/users/me/password".into(),
            Some(json!({"currentPassword": PASSWORD, "newPassword": "another passphrase"})),
        ),
        ("GET", "/v1/usernames/olga".into(), None),
        ("GET", "/v1/devices".into(), None),
        ("POST", "/v1/devices".into(), Some(keys.clone())),
        ("GET", format!("/v1/devices/{}", random_uuid()), None),
        ("POST", "/v1/devices/keys".into(), Some(keys.clone())),
        ("POST", "/v1/keys".into(), Some(keys)),
        ("GET", format!("/v1/users/{user_id}"), None),
        ("GET", format!("/v1/keys/{user_id}"), None),
        ("POST", "/v1/gateway/ticket".into(), None),
        ("PUT", "/v1/push-tokens".into(), Some(json!({"token": "t"}))),
        ("GET", "/v1/backup".into(), None),
        ("DELETE", "/v1/sessions".into(), Some(json!({"refreshToken": "x"}))),
    ]
}

fn call(client: &Client, token: &str, method: &str, path: &str, body: &Option<serde_json::Value>) -> Res<Resp> {
    let req = client.request(method, path).bearer(token);
    match body {
        Some(b) => req.json(b).send(),
        None => req.send(),
    }
}

#[test]
fn every_token_of_a_deleted_account_is_refused_everywhere() -> TestResult {
    // Goal: after the deletion every access token of the account — user-scoped and
    // device-scoped, from registration, login and device creation — answers 401 on every route
    // (messages and the legacy `?token=` socket included), and every refresh token is revoked.
    // Method: olga with two devices and an extra login; each token on each route.
    let server = data::server_with(&[])?;
    let client = server.client();
    let olga = member(&client, "olga", 5)?;
    let olga2 = data::add_device(&client, &olga.user, 2, 5)?;
    let login = client.login_ok("olga", Some(&olga2.device_id))?;
    let user_login = client.login_ok("olga", None)?;
    delete_ok(&client, &olga)?;
    let tokens = [&olga.user, &olga.device, &olga2.device, &login, &user_login];
    for auth in tokens {
        for (method, path, body) in routes(olga.user_id()) {
            let resp = call(&client, &auth.token, method, &path, &body)?;
            assert_eq!(
                resp.status, 401,
                "{method} {path} with a token of the deleted account: {resp:?}"
            );
        }
        let resp = data::post_messages(&client, &auth.token, &random_uuid(), wire::encode_send_request(&[]))?;
        assert_eq!(resp.status, 401, "POST /v1/messages: {resp:?}");
        match Gateway::handshake_path(server.main_port, &format!("/v1/gateway?token={}", auth.token))? {
            Handshake::Refused(401, _) => {}
            Handshake::Refused(status, _) => return Err(format!("legacy socket answered {status}").into()),
            Handshake::Upgraded(_) => return Err("a deleted account's token opened a socket".into()),
        }
        client
            .refresh(&auth.refresh_token)?
            .expect_error_text(401, "Unauthorized")?;
    }
    Ok(())
}

/// The password-verification counters (stored hash, dummy hash).
fn verifications(server: &TestServer) -> Res<(f64, f64)> {
    Ok((server.metric(STORED)?, server.metric(DUMMY)?))
}

#[test]
fn a_deleted_account_fails_exactly_as_an_unknown_one() -> TestResult {
    // Goal: login, refresh and device creation of a deleted account fail as they do for an
    // account that never existed, through the same path: a login checks the password against
    // the dummy hash (counted as such, never against a stored one) and answers the same 401;
    // a refresh verifies no password and answers the same 401 as an unknown refresh token;
    // device creation with the deleted account's token answers the same 401 as a token crafted
    // for an account that never existed, and verifies no password either. Method: the
    // password-verification counters on /metrics around each call (not timing).
    let server = TestServer::start()?;
    let client = server.client();
    let pat = member(&client, "pat", 0)?;
    delete_ok(&client, &pat)?;

    let before = verifications(&server)?;
    let unknown = client.login("never_was", PASSWORD, None)?;
    let after_unknown = verifications(&server)?;
    let deleted = client.login("pat", PASSWORD, None)?;
    let after_deleted = verifications(&server)?;
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (deleted.status, deleted.body.clone())
    );
    deleted.expect_error_text(401, "Unauthorized")?;
    assert_eq!(
        after_unknown,
        (before.0, before.1 + 1.0),
        "an unknown login checks the dummy hash"
    );
    assert_eq!(
        after_deleted,
        (before.0, before.1 + 2.0),
        "so does a deleted account's login"
    );

    let unknown = client.refresh(&random_uuid())?;
    let deleted = client.refresh(&pat.user.refresh_token)?;
    assert_eq!((unknown.status, unknown.body.clone()), (deleted.status, deleted.body));
    assert_eq!(unknown.status, 401);

    let ghost = jwt::token(JWT_SECRET, &random_uuid(), None, now_secs() + 300);
    let body = DeviceKeys::new(4).request(1);
    let unknown = client.create_device(&ghost, &body)?;
    let deleted = client.create_device(&pat.user.token, &body)?;
    assert_eq!((unknown.status, unknown.body.clone()), (deleted.status, deleted.body));
    unknown.expect_error_text(401, "Unauthorized")?;
    assert_eq!(verifications(&server)?, after_deleted, "neither verifies a password");
    Ok(())
}

#[test]
fn a_legacy_account_can_be_deleted_too() -> TestResult {
    // Goal: an account registered through the legacy API deletes itself with its
    // device-scoped token: 204, then its legacy bundle is 404 and its name logs in as unknown.
    // Method: a legacy registration, a friend's legacy fetch before and after.
    let server = TestServer::start()?;
    let client = server.client();
    let mut body = DeviceKeys::new(5).request(3);
    body["username"] = json!("quinn");
    body["password"] = json!(PASSWORD);
    let quinn = Auth::from_json(&client.post("/v1/users").json(&body).send()?.expect_json(201)?)?;
    let friend = client.register_ok("friend")?;
    let fetch = || {
        client
            .get(&format!("/v1/keys/{}", quinn.user_id))
            .bearer(&friend.token)
            .send()
    };
    fetch()?.expect_json(200)?;
    let resp = client.delete_account(&quinn.token, PASSWORD)?;
    assert_eq!(resp.status, 204, "{resp:?}");
    fetch()?.expect_error_text(404, "Not found")?;
    client
        .login("quinn", PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    Ok(())
}

/// Sends `from` → `to` in a loop until `stop`, one message a request, counting requests; each
/// answer must be 200 (any failure INVALID_DEVICE) or, once the sender is deleted, 401.
fn keep_sending(
    base: String,
    from: &Member,
    to: &[[u8; 16]],
    tag: &str,
    stop: &AtomicBool,
    sent: &AtomicUsize,
) -> Res<()> {
    let client = Client::new(base);
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        let subs: Vec<Submission> = to
            .iter()
            .map(|d| Submission::to(d, format!("{tag}-{n}").as_bytes()))
            .collect();
        let resp = data::send(&client, from.token(), &subs)?;
        match resp.status {
            200 => {
                let failed = wire::decode_send_response(&resp.body)?;
                assert!(
                    failed.iter().all(|f| f.error_code == error_code::INVALID_DEVICE),
                    "{failed:?}"
                );
            }
            401 => {}
            _ => return Err(format!("{tag}: {resp:?}").into()),
        }
        n += 1;
        sent.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

/// What the store of `server` holds of a deleted account, read after the server stopped.
fn leftovers(server: &TestServer, user: Uuid, devices: &[Uuid]) -> Res<Vec<String>> {
    match server.keyspace() {
        Some(keyspace) => cql_leftovers(keyspace, user, devices),
        None => embedded_leftovers(&server.data_dir(), user, devices),
    }
}

/// The rows of the deleted account in `keyspace`, read with CQL: its user row unless it
/// carries the deletion marker, its username, its devices' rows and slots, and every message
/// row of `devices` (the raw rows: the store itself hides a deleted device's mailbox).
fn cql_leftovers(keyspace: &str, user: Uuid, devices: &[Uuid]) -> Res<Vec<String>> {
    let nodes = crate::common::cql_node::nodes()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_nodes(nodes.split(','))
            .build()
            .await?;
        let mut found = Vec::new();
        let live_user = format!("SELECT deleted_at_ms FROM {keyspace}.users WHERE id = ?");
        let rows = session.query_unpaged(live_user, (user,)).await?.into_rows_result()?;
        if rows.rows::<(Option<i64>,)>()?.any(|r| matches!(r, Ok((None,)))) {
            found.push("the user".to_string());
        }
        let name = format!("SELECT user_id FROM {keyspace}.usernames WHERE username = 'rosa'");
        let rows = session.query_unpaged(name, ()).await?.into_rows_result()?;
        if rows
            .rows::<(Option<Uuid>,)>()?
            .any(|r| matches!(r, Ok((Some(id),)) if id == user))
        {
            found.push("the username".into());
        }
        let slots = format!("SELECT device_id FROM {keyspace}.user_devices WHERE user_id = ?");
        let rows = session.query_unpaged(slots, (user,)).await?.into_rows_result()?;
        found.extend(
            rows.rows::<(Option<Uuid>,)>()?
                .flatten()
                .map(|(d,)| format!("slot {d:?}")),
        );
        let scans = [("devices", "id"), ("messages", "device_id")];
        for (table, column) in scans {
            let all = format!("SELECT {column} FROM {keyspace}.{table}");
            let rows = session.query_unpaged(all, ()).await?.into_rows_result()?;
            for (id,) in rows.rows::<(Uuid,)>()?.flatten() {
                if devices.contains(&id) {
                    found.push(format!("a {table} row of {id}"));
                }
            }
        }
        Ok(found)
    })
}

/// The same, read with the embedded store from its data dir.
fn embedded_leftovers(data_dir: &std::path::Path, user: Uuid, devices: &[Uuid]) -> Res<Vec<String>> {
    let options = EmbeddedOptions {
        durability: Durability::Fsync,
        read_threads: 1,
        faults: Default::default(),
        mailbox_index_max: 1024,
    };
    let (store, threads) = EmbeddedStore::open(data_dir, &options)?;
    let found = block_on(ChosenDriver::Epoll, async {
        let mut found = Vec::new();
        if store.user(user).await?.is_some() {
            found.push("the user".to_string());
        }
        if store.user_by_name("rosa").await?.is_some() {
            found.push("the username".into());
        }
        found.extend(store.devices_of(user).await?.iter().map(|d| format!("device {}", d.id)));
        for device in devices {
            if store.device(*device).await?.is_some() {
                found.push(format!("device row {device}"));
            }
            let queued = store.fetch(*device, None, 1000, 0).await?;
            if !queued.is_empty() {
                found.push(format!("{} messages for {device}", queued.len()));
            }
        }
        Ok::<_, obscura_relay::store::StoreError>(found)
    })??;
    drop(store);
    threads.join();
    Ok(found)
}

#[test]
fn deletion_racing_sends_leaves_nothing_behind() -> TestResult {
    // Goal: an account deleted while friends send to both its devices and one of its devices
    // sends to a friend leaves nothing behind: every send is answered 200 (INVALID_DEVICE once
    // the targets are gone) or 401 (the deleted sender), the friend's queue holds nothing the
    // deleted account sent, and the store — read back after the server stopped — holds no user,
    // device or queued message of it. Method: three sender threads around the DELETE.
    let mut server = data::server_with(&[])?;
    let client = server.client();
    let rosa = member(&client, "rosa", 0)?;
    let rosa2 = data::add_device(&client, &rosa.user, 2, 0)?;
    let (sam, tia) = (member(&client, "sam", 0)?, member(&client, "tia", 0)?);
    let stop = AtomicBool::new(false);
    let sent = AtomicUsize::new(0);
    let base = server.base_url();
    let runs = [
        (&sam, vec![rosa.id, rosa2.id], "sam"),
        (&tia, vec![rosa.id, rosa2.id], "tia"),
        (&rosa, vec![sam.id], "rosa"),
    ];
    std::thread::scope(|scope| -> TestResult {
        let senders: Vec<_> = runs
            .iter()
            .map(|(from, to, tag)| {
                let (base, stop, sent) = (base.clone(), &stop, &sent);
                scope.spawn(move || keep_sending(base, from, to, tag, stop, sent).map_err(|e| e.to_string()))
            })
            .collect();
        while sent.load(Ordering::SeqCst) < 30 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let deleted = delete_ok(&client, &rosa);
        let at_deletion = sent.load(Ordering::SeqCst);
        while sent.load(Ordering::SeqCst) < at_deletion + 30 {
            std::thread::sleep(Duration::from_millis(5));
        }
        stop.store(true, Ordering::SeqCst);
        for sender in senders {
            sender.join().map_err(|_| "a sender panicked")??;
        }
        deleted
    })?;
    let from_rosa: Vec<String> = texts(&queued_for(&server, &sam)?)
        .into_iter()
        .filter(|t| t.starts_with("rosa"))
        .collect();
    assert!(from_rosa.is_empty(), "sam still has {from_rosa:?}");
    server.stop()?;
    let user = Uuid::parse_str(rosa.user_id())?;
    let devices = [Uuid::from_bytes(rosa.id), Uuid::from_bytes(rosa2.id)];
    let left = leftovers(&server, user, &devices)?;
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}

#[test]
fn a_crash_right_after_the_decision_is_finished_after_a_restart() -> TestResult {
    // Goal: deletion is one decision. The process aborts (a fault compiled only into test
    // builds) right after the deletion commits, before any socket is closed or blob deleted;
    // after a restart nothing of the account is reachable — login, lookup, bundles, the
    // friend's queue — the name registers anew, and the clean-up finishes the blob deletion the
    // crash interrupted. Method: uma's two devices hold backups; the DELETE never gets an
    // answer; the server is started again on the same data dir.
    let mut server = BlobServer::start(Backend::Local, &["--test-fault-abort-after-account-deletion"])?;
    let client = server.client();
    let uma = member(&client, "uma", 5)?;
    let uma2 = data::add_device(&client, &uma.user, 2, 5)?;
    let vic = member(&client, "vic", 5)?;
    send_text(&client, uma.token(), &vic.id, "before the crash")?;
    let folders: Vec<String> = [&uma, &uma2]
        .iter()
        .map(|m| format!("backups/{}/", m.device_id))
        .collect();
    for m in [&uma, &uma2] {
        backup(&client, m)?;
    }
    for folder in &folders {
        assert_eq!(server.keys(folder)?.len(), 1, "{folder}");
    }
    let answered = client.delete_account(&uma.user.token, PASSWORD);
    assert!(answered.is_err(), "the process aborts before answering: {answered:?}");
    let status = server
        .server
        .wait_exit(Duration::from_secs(10))?
        .ok_or("the server did not abort")?;
    assert!(!status.success(), "{status}");
    for folder in &folders {
        assert_eq!(server.keys(folder)?.len(), 1, "the crash came before the blob deletes");
    }
    server.server.respawn()?;
    let client = server.client();
    client
        .login("uma", PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    client.lookup(vic.token(), "uma")?.expect_error_text(404, "Not found")?;
    data::fetch_bundles(&client, vic.token(), uma.user_id())?.expect_error_text(404, "Not found")?;
    assert!(queued_for(&server, &vic)?.is_empty());
    for folder in &folders {
        server.wait_keys(folder, |keys| keys.is_empty())?;
    }
    let again = client.register_ok("uma")?;
    assert_ne!(again.user_id, uma.user.user_id);
    Ok(())
}
