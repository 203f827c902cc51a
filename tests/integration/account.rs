//! The caller's own account (issue 15): `GET /v1/users/me`, `PUT /v1/users/me/password` and
//! the username lookup `GET /v1/usernames/{username}` with its own rate-limit tier. Every status
//! these routes answer, the pair a password change answers (in the caller's scope), and what a
//! password change revokes: every older access token (user- and device-scoped, one issued in the
//! same second included), every older refresh token, and the account's open sockets, closed as a
//! takeover closes them. Deletion is `account_deletion.rs`'s.

use std::time::Duration;

use serde_json::json;

use crate::common::data::{self, member};
use crate::common::gateway::{ticket, Gateway, Handshake};
use crate::common::keys::DeviceKeys;
use crate::common::{jwt, random_uuid, Auth, Client, TestResult, TestServer, PASSWORD};

const WAIT: Duration = Duration::from_secs(5);
const NEW_PASSWORD: &str = "a brand new passphrase";

/// Logs `username` in with `password` (user-scoped), asserting 200.
fn login_with(client: &Client, username: &str, password: &str) -> Result<Auth, Box<dyn std::error::Error>> {
    Auth::from_json(&client.login(username, password, None)?.expect_json(200)?)
}

/// Looks `username` up until the first 429 (at most 100 times); returns how many passed and
/// how long that took.
fn lookups_until_limited(
    client: &Client,
    token: &str,
    username: &str,
) -> Result<(u32, Duration), Box<dyn std::error::Error>> {
    let started = std::time::Instant::now();
    for passed in 0..100 {
        let resp = client.lookup(token, username)?;
        if resp.status == 429 {
            assert!(resp.header("retry-after").is_some(), "{resp:?}");
            resp.expect_error(429)?;
            return Ok((passed, started.elapsed()));
        }
        assert!(matches!(resp.status, 200 | 404), "{resp:?}");
    }
    Err("100 lookups and no 429".into())
}

/// Asserts a burst of `burst` passed, allowing one more per second the burst took.
fn burst_was(passed: u32, took: Duration, burst: u32) {
    let refilled = took.as_secs() as u32 + 1;
    assert!(
        (burst..=burst + refilled).contains(&passed),
        "{passed} lookups passed in {took:?}, burst {burst}"
    );
}

/// Asserts `GET /v1/users/me` answers exactly `{"userId", "username"}`.
fn expect_me(client: &Client, token: &str, user_id: &str, username: &str) -> TestResult {
    let v = client.me(token)?.expect_json(200)?;
    assert_eq!(v, json!({"userId": user_id, "username": username}));
    Ok(())
}

#[test]
fn me_names_the_caller_with_any_token() -> TestResult {
    // Goal: GET /v1/users/me answers the caller's id and stored (lower-cased) name for a
    // user-scoped, a device-scoped and a legacy token; without a valid token it is 401; a
    // crafted valid token of an account that never existed is 401 too. Method: one v1 and one
    // legacy account.
    let server = TestServer::start()?;
    let client = server.client();
    let alice = member(&client, "Alice_Smith", 0)?;
    expect_me(&client, &alice.user.token, alice.user_id(), "alice_smith")?;
    expect_me(&client, alice.token(), alice.user_id(), "alice_smith")?;
    let mut legacy = DeviceKeys::new(3).request(5);
    legacy["username"] = json!("oldtimer");
    legacy["password"] = json!(PASSWORD);
    let old = Auth::from_json(&client.post("/v1/users").json(&legacy).send()?.expect_json(201)?)?;
    expect_me(&client, &old.token, &old.user_id, "oldtimer")?;
    client
        .get("/v1/users/me")
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    client.me("garbage")?.expect_error_text(401, "Unauthorized")?;
    let ghost = jwt::token(
        crate::common::server::JWT_SECRET,
        &random_uuid(),
        None,
        crate::common::now_secs() + 300,
    );
    client.me(&ghost)?.expect_error_text(401, "Unauthorized")?;
    let resp = client.post("/v1/users/me").bearer(alice.token()).send()?;
    resp.expect_error(405)?;
    assert_eq!(resp.header("allow"), Some("GET,HEAD,DELETE"));
    Ok(())
}

#[test]
fn password_change_answers_a_pair_in_the_callers_scope() -> TestResult {
    // Goal: 200 with an AuthResponse for the caller: no `deviceId` for a user-scoped caller, the
    // same `deviceId` for a device-scoped one; the new pair works; the new password logs in and
    // the old one does not; the change is counted. Method: two changes, one per scope.
    let server = TestServer::start()?;
    let client = server.client();
    let bob = member(&client, "bob", 0)?;
    let by_user = client.change_password(&bob.user.token, PASSWORD, NEW_PASSWORD)?;
    let pair = Auth::from_json(&by_user.expect_json(200)?)?;
    assert_eq!(pair.device_id, None, "a user-scoped caller gets a user-scoped pair");
    assert_eq!(pair.user_id, bob.user.user_id);
    expect_me(&client, &pair.token, bob.user_id(), "bob")?;
    let again = "yet another passphrase";
    let by_device = client.change_password(bob.token(), NEW_PASSWORD, again);
    // bob's device token predates the first change: refused.
    by_device?.expect_error_text(401, "Unauthorized")?;
    let device = Auth::from_json(
        &client
            .login("bob", NEW_PASSWORD, Some(&bob.device_id))?
            .expect_json(200)?,
    )?;
    let resp = client.change_password(&device.token, NEW_PASSWORD, again)?;
    let scoped = Auth::from_json(&resp.expect_json(200)?)?;
    assert_eq!(
        scoped.device_id.as_deref(),
        Some(bob.device_id.as_str()),
        "bound to the same device"
    );
    let claims = jwt::claims(&scoped.token)?;
    assert_eq!(claims["device_id"].as_str(), Some(bob.device_id.as_str()));
    client.create_device_ok(&scoped.token, None).map(|_| ())?;
    client
        .login("bob", PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .login("bob", NEW_PASSWORD, None)?
        .expect_error_text(401, "Unauthorized")?;
    login_with(&client, "bob", again)?;
    let refreshed = Auth::from_json(&client.refresh(&scoped.refresh_token)?.expect_json(200)?)?;
    expect_me(&client, &refreshed.token, bob.user_id(), "bob")?;
    assert_eq!(server.metric("obscura_password_changes_total")?, 2.0);
    Ok(())
}

#[test]
fn password_change_refuses_wrong_weak_and_malformed_requests() -> TestResult {
    // Goal: a wrong currentPassword is 401, a newPassword registration would refuse is 400 with
    // registration's text, a body that is not a JSON object of the request's shape is 400 (an
    // array too, which serde alone would take), a body without a JSON content type is 415, one
    // over the body limit 413, a missing token is 401; none of them changes anything (the old password still logs in, the old token still
    // works). Method: one account, each refusal in turn.
    let server = TestServer::start()?;
    let client = server.client();
    let carol = client.register_ok("carol")?;
    let t = &carol.token;
    client
        .change_password(t, "not the password", NEW_PASSWORD)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .change_password(t, PASSWORD, "short")?
        .expect_error_text(400, "Password must be at least 12 characters long")?;
    let put = |body: &str| {
        client
            .put("/v1/users/me/password")
            .bearer(t)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for body in [
        "{}".to_string(),
        json!({"currentPassword": PASSWORD}).to_string(),
        json!({"currentPassword": 5, "newPassword": NEW_PASSWORD}).to_string(),
        json!([PASSWORD, NEW_PASSWORD]).to_string(),
        "{not json".to_string(),
    ] {
        put(&body)?.expect_error(400)?;
    }
    let request = json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}).to_string();
    let untyped = client.put("/v1/users/me/password").bearer(t).body(request).send()?;
    untyped.expect_error(415)?;
    put(&" ".repeat(3 * 1024 * 1024))?.expect_error(413)?;
    let unauthenticated = client
        .put("/v1/users/me/password")
        .json(&json!({"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD}))
        .send()?;
    unauthenticated.expect_error_text(401, "Unauthorized")?;
    expect_me(&client, t, &carol.user_id, "carol")?;
    client.login_ok("carol", None)?;
    assert_eq!(server.metric("obscura_password_changes_total")?, 0.0);
    Ok(())
}

/// Asserts `token` is refused on an any-scope route and on a device-scope route.
fn refused(client: &Client, token: &str, what: &str) -> TestResult {
    let resp = client.list_devices(token)?;
    assert_eq!(resp.status, 401, "{what} on GET /v1/devices: {resp:?}");
    let resp = client.post("/v1/gateway/ticket").bearer(token).send()?;
    assert_eq!(resp.status, 401, "{what} on POST /v1/gateway/ticket: {resp:?}");
    Ok(())
}

/// One attempt of `older_tokens_are_refused_even_from_the_same_second`; `Ok(false)` when the
/// token taken just before the change and the change's own token fall in different seconds.
fn refuse_within_one_second(client: &Client, name: &str) -> Result<bool, Box<dyn std::error::Error>> {
    let dave = member(client, name, 0)?;
    let other_login = client.login_ok(name, None)?;
    let just_before = client.login_ok(name, Some(&dave.device_id))?;
    let resp = client.change_password(&dave.user.token, PASSWORD, NEW_PASSWORD)?;
    let pair = Auth::from_json(&resp.expect_json(200)?)?;
    if pair.expires_at != just_before.expires_at {
        return Ok(false);
    }
    for (what, old) in [
        ("the registration's user token", &dave.user),
        ("the device's token", &dave.device),
        ("a second login's user token", &other_login),
        ("a device token from the same second", &just_before),
    ] {
        refused(client, &old.token, what)?;
        let resp = client.refresh(&old.refresh_token)?;
        assert_eq!(resp.status, 401, "refresh of {what}: {resp:?}");
    }
    client.list_devices_ok(&pair.token)?;
    let after = login_with(client, name, NEW_PASSWORD)?;
    client.list_devices_ok(&after.token)?;
    Ok(true)
}

#[test]
fn older_tokens_are_refused_even_from_the_same_second() -> TestResult {
    // Goal: after a password change every access token issued before it is refused (401) —
    // user- and device-scoped, including one issued in the same second as the change, which an
    // issue time in seconds could not tell apart — and every refresh token issued before it is
    // revoked; the new pair and a fresh login work. Method: a device login right before the
    // change; the attempt counts only if that token and the change's token expire in the same
    // second (so were issued in the same second); retried on a second boundary.
    let server = TestServer::start()?;
    let client = server.client();
    for attempt in 0..5 {
        if refuse_within_one_second(&client, &format!("dave{attempt}"))? {
            return Ok(());
        }
    }
    Err("five attempts straddled a second boundary".into())
}

#[test]
fn password_change_closes_the_accounts_sockets_as_a_takeover_does() -> TestResult {
    // Goal: a password change closes every open socket of every device of the account with the
    // Close frame a takeover sends (no status code); a ticket taken before the change no longer
    // opens one (401); another account's socket stays open, and the new pair gets a working
    // socket. Method: erin has two devices with a socket each.
    let server = data::server_with(&[])?;
    let client = server.client();
    let erin = member(&client, "erin", 0)?;
    let erin2 = data::add_device(&client, &erin.user, 2, 0)?;
    let frank = member(&client, "frank", 0)?;
    let mut sockets = [
        Gateway::connect(&server, erin.token())?,
        Gateway::connect(&server, erin2.token())?,
    ];
    let mut bystander = Gateway::connect(&server, frank.token())?;
    for gw in sockets.iter_mut() {
        gw.expect_pong(b"up", WAIT)?;
    }
    let early_ticket = ticket(&client, erin.token())?;
    let resp = client.change_password(erin2.token(), PASSWORD, NEW_PASSWORD)?;
    let pair = Auth::from_json(&resp.expect_json(200)?)?;
    for (i, gw) in sockets.iter_mut().enumerate() {
        assert!(gw.wait_closed(WAIT)?, "socket {i} not closed by the password change");
        assert_eq!(
            gw.close,
            Some(None),
            "socket {i}: expected a Close frame without status code"
        );
    }
    bystander.expect_pong(b"unaffected", WAIT)?;
    match Gateway::handshake(server.main_port, &early_ticket)? {
        Handshake::Refused(401, _) => {}
        Handshake::Refused(status, _) => return Err(format!("an older ticket answered {status}").into()),
        Handshake::Upgraded(_) => return Err("a ticket issued before the change opened a socket".into()),
    }
    let mut again = Gateway::open(server.main_port, &ticket(&client, &pair.token)?)?;
    again.expect_pong(b"back", WAIT)?;
    Ok(())
}

#[test]
fn lookup_finds_exact_names_only() -> TestResult {
    // Goal: GET /v1/usernames/{username} answers 200 {"userId"} for an exact name in any case
    // (as login matches), 404 for a prefix or an unknown name, 400 for a path that is not a
    // valid username, 401 without a valid token; user and device tokens both work. Method: a
    // few names on one server (fewer than the default lookup burst).
    let server = TestServer::start()?;
    let client = server.client();
    let grace = member(&client, "Grace_1", 0)?;
    let t = &grace.user.token;
    for name in ["grace_1", "GRACE_1", "Grace_1"] {
        let v = client.lookup(t, name)?.expect_json(200)?;
        assert_eq!(v, json!({"userId": grace.user_id()}), "{name}");
    }
    assert_eq!(
        client.lookup(grace.token(), "grace_1")?.expect_json(200)?["userId"],
        grace.user_id()
    );
    for name in ["grace", "grace_", "grace_12", "nobody"] {
        client.lookup(t, name)?.expect_error_text(404, "Not found")?;
    }
    for name in ["gr", "gr%20ace", "grace-1", &"g".repeat(51)] {
        let text = client.lookup(t, name)?.expect_error(400)?;
        assert!(text.contains("between 3 and 50"), "{name}: {text}");
    }
    client
        .get("/v1/usernames/grace_1")
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    client.get("/v1/usernames/").bearer(t).send()?.expect_error(404)?;
    Ok(())
}

#[test]
fn lookup_has_its_own_rate_limit_tier() -> TestResult {
    // Goal: lookups draw from their own tier, by default 30 at once and then one a second per
    // client: the 31st lookup in a burst is 429 with Retry-After while the standard and auth
    // tiers still pass; `--rate-limit-lookup-burst` sets the burst. Method: a server on the
    // default lookup tier (the suite raises only the other tiers), then one with burst 2.
    let server = TestServer::start()?;
    let client = server.client();
    let henry = client.register_ok("henry")?;
    let (passed, took) = lookups_until_limited(&client, &henry.token, "henry")?;
    burst_was(passed, took, 30);
    client.list_devices_ok(&henry.token)?;
    client.me(&henry.token)?.expect_json(200)?;

    let strict = TestServer::start_with(&["--rate-limit-lookup-per-second", "1", "--rate-limit-lookup-burst", "2"])?;
    let client = strict.client();
    let ivy = client.register_ok("ivy")?;
    let (passed, took) = lookups_until_limited(&client, &ivy.token, "nobody")?;
    burst_was(passed, took, 2);
    std::thread::sleep(Duration::from_millis(1100));
    client.lookup(&ivy.token, "ivy")?.expect_json(200)?;
    Ok(())
}

#[test]
fn account_routes_are_in_the_auth_tier() -> TestResult {
    // Goal: GET /v1/users/me, PUT /v1/users/me/password and DELETE /v1/users/me are limited by
    // the auth tier: with burst 2 (registration takes one), the tier's third request is 429.
    // Method: one client.
    let server = TestServer::start_with(&["--auth-rate-limit-per-second", "1", "--auth-rate-limit-burst", "2"])?;
    let client = server.client();
    let jack = client.register_ok("jack")?;
    client.me(&jack.token)?.expect_json(200)?;
    client
        .delete_account(&jack.token, "wrong password")?
        .expect_error(429)?;
    client
        .change_password(&jack.token, PASSWORD, NEW_PASSWORD)?
        .expect_error(429)?;
    client.list_devices_ok(&jack.token)?;
    client.me(&jack.token)?.expect_error(429)?;
    Ok(())
}

#[test]
fn revocations_survive_a_restart() -> TestResult {
    // Goal: the refusal of older tokens does not depend on the process that decided it: after a
    // restart, tokens issued before a password change and tokens of a deleted account are still
    // 401 (the node loads the recent revocations before it accepts requests), while the new
    // pair works. Method: a change and a deletion, a restart, then the old tokens.
    let mut server = TestServer::start()?;
    let client = server.client();
    let kate = member(&client, "kate", 0)?;
    let lars = member(&client, "lars", 0)?;
    let resp = client.change_password(kate.token(), PASSWORD, NEW_PASSWORD)?;
    let pair = Auth::from_json(&resp.expect_json(200)?)?;
    let resp = client.delete_account(&lars.user.token, PASSWORD)?;
    assert_eq!(resp.status, 204, "{resp:?}");
    server.restart()?;
    let client = server.client();
    for (what, token) in [
        ("kate's old user token", &kate.user.token),
        ("kate's old device token", &kate.device.token),
        ("lars's user token", &lars.user.token),
        ("lars's device token", &lars.device.token),
    ] {
        refused(&client, token, what)?;
    }
    client.list_devices_ok(&pair.token)?;
    client
        .post("/v1/gateway/ticket")
        .bearer(&pair.token)
        .send()?
        .expect_json(201)?;
    Ok(())
}
