//! Login, refresh and logout (`/v1/sessions…`, BEHAVIOR §4.3-4.5, TEST-CASES A3, A8-A15):
//! identical 401s for unknown users and wrong passwords, device scoping at login, rotation with
//! reuse detection (a replayed refresh token revokes its whole family but no other session),
//! logout semantics, and expired refresh tokens.

use serde_json::json;

use crate::common::{jwt, random_uuid, TestResult, TestServer, PASSWORD};

#[test]
fn login_returns_user_scoped_session() -> TestResult {
    // Goal: A3, A13 — login without deviceId is 200 with no deviceId field and a working
    // user-scoped token for the same user. Method: register, log in, use the token.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("bob")?;
    let body = client.login("bob", PASSWORD, None)?.expect_json(200)?;
    assert!(body.get("deviceId").is_none(), "{body}");
    let login = crate::common::Auth::from_json(&body)?;
    assert_eq!(login.user_id, reg.user_id);
    assert!(jwt::claims(&login.token)?.get("device_id").is_none());
    assert_ne!(login.refresh_token, reg.refresh_token);
    client.list_devices_ok(&login.token)?;
    Ok(())
}

#[test]
fn login_failures_are_indistinguishable() -> TestResult {
    // Goal: §4.3 — an unknown username and a wrong password both give 401 `Unauthorized` with
    // the same body and content type. Method: compare the two responses byte for byte.
    let server = TestServer::start()?;
    let client = server.client();
    client.register_ok("carol")?;
    let wrong_password = client.login("carol", "not the right password", None)?;
    let unknown_user = client.login("nobody_here", "not the right password", None)?;
    wrong_password.expect_error_text(401, "Unauthorized")?;
    unknown_user.expect_error_text(401, "Unauthorized")?;
    assert_eq!(wrong_password.body, unknown_user.body);
    assert_eq!(
        wrong_password.header("content-type"),
        unknown_user.header("content-type")
    );
    // No format validation at login: a short password is just a wrong password.
    client
        .login("carol", "x", None)?
        .expect_error_text(401, "Unauthorized")?;
    client.login("", "", None)?.expect_error_text(401, "Unauthorized")?;
    Ok(())
}

#[test]
fn login_with_own_device_is_device_scoped() -> TestResult {
    // Goal: A14-A15 — login with the user's own deviceId answers 200 with that deviceId and a
    // token carrying the device_id claim; refreshing that session keeps the scope; the id may
    // be given in upper case. Method: register, create a device, log in with it, refresh.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("dave")?;
    let device = client.create_device_ok(&reg.token, None)?;
    let device_id = device.device_id.clone().ok_or("no device id")?;

    let login = client.login_ok("dave", Some(&device_id))?;
    assert_eq!(login.device_id.as_deref(), Some(device_id.as_str()));
    let claims = jwt::claims(&login.token)?;
    assert_eq!(claims["device_id"].as_str(), Some(device_id.as_str()), "{claims}");
    assert_eq!(claims["sub"].as_str(), Some(reg.user_id.as_str()));

    let refreshed = crate::common::Auth::from_json(&client.refresh(&login.refresh_token)?.expect_json(200)?)?;
    assert_eq!(refreshed.device_id.as_deref(), Some(device_id.as_str()));
    assert_eq!(
        jwt::claims(&refreshed.token)?["device_id"].as_str(),
        Some(device_id.as_str())
    );

    // The id is parsed as a UUID, not compared as text: the upper-case form names the same
    // device, and the answer carries the canonical lower-case form.
    let upper = client.login_ok("dave", Some(&device_id.to_uppercase()))?;
    assert_eq!(upper.device_id.as_deref(), Some(device_id.as_str()));
    Ok(())
}

#[test]
fn login_with_foreign_or_unknown_device_is_user_scoped() -> TestResult {
    // Goal: §4.3 — a deviceId that does not exist or belongs to someone else still logs in,
    // user-scoped, without deviceId in the response. Method: two users; log in as the first
    // with the second's device id and with a random id.
    let server = TestServer::start()?;
    let client = server.client();
    client.register_ok("erin")?;
    let other = client.register_ok("frank")?;
    let foreign = client
        .create_device_ok(&other.token, None)?
        .device_id
        .ok_or("no device id")?;

    for id in [foreign.as_str(), random_uuid().as_str()] {
        let body = client.login("erin", PASSWORD, Some(id))?.expect_json(200)?;
        assert!(body.get("deviceId").is_none(), "deviceId {id}: {body}");
        let token = body["token"].as_str().ok_or("no token")?;
        assert!(jwt::claims(token)?.get("device_id").is_none());
    }
    Ok(())
}

#[test]
fn login_with_malformed_device_id_is_400_before_credentials() -> TestResult {
    // Goal: §4.3 — a deviceId that is not a UUID is 400 `Invalid device_id`, checked before
    // the credentials. Method: malformed ids with right and wrong passwords and unknown users.
    let server = TestServer::start()?;
    let client = server.client();
    client.register_ok("grace")?;
    client
        .login("grace", PASSWORD, Some("not-a-uuid"))?
        .expect_error_text(400, "Invalid device_id")?;
    client
        .login("grace", "wrong password!", Some("1234"))?
        .expect_error_text(400, "Invalid device_id")?;
    client
        .login("nobody", "wrong password!", Some(""))?
        .expect_error_text(400, "Invalid device_id")?;
    // A deviceId of JSON null is the same as leaving it out.
    let resp = client
        .post("/v1/sessions")
        .json(&json!({"username": "grace", "password": PASSWORD, "deviceId": null}))
        .send()?;
    assert!(resp.expect_json(200)?.get("deviceId").is_none());
    Ok(())
}

#[test]
fn refresh_rotates_tokens() -> TestResult {
    // Goal: A8-A9, §4.4 — refresh answers 200 with a new token and a different refresh token;
    // the consumed one is then 401. Method: register, refresh, replay.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("heidi")?;
    let body = client.refresh(&reg.refresh_token)?.expect_json(200)?;
    assert!(
        body.get("deviceId").is_none(),
        "user-scoped refresh stays user-scoped: {body}"
    );
    let next = crate::common::Auth::from_json(&body)?;
    assert!(!next.token.is_empty());
    assert_ne!(next.refresh_token, reg.refresh_token);
    assert_eq!(next.user_id, reg.user_id);
    client.list_devices_ok(&next.token)?;

    client
        .refresh(&reg.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    Ok(())
}

#[test]
fn refresh_reuse_revokes_the_family_only() -> TestResult {
    // Goal: reuse detection — presenting an already-rotated refresh token is 401 and revokes
    // every token descended from it, while another login of the same user keeps working.
    // Method: session A rotates twice (A0→A1→A2), an independent login B exists; replay A0,
    // then A2 and B are tried.
    let server = TestServer::start()?;
    let client = server.client();
    let a0 = client.register_ok("ivan")?;
    let b = client.login_ok("ivan", None)?;
    let a1 = crate::common::Auth::from_json(&client.refresh(&a0.refresh_token)?.expect_json(200)?)?;
    let a2 = crate::common::Auth::from_json(&client.refresh(&a1.refresh_token)?.expect_json(200)?)?;

    client
        .refresh(&a0.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .refresh(&a2.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .refresh(&a1.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;

    // The other session is a different family: still valid, and it rotates normally.
    let b1 = crate::common::Auth::from_json(&client.refresh(&b.refresh_token)?.expect_json(200)?)?;
    client.refresh(&b1.refresh_token)?.expect_json(200)?;
    // Access tokens are stateless; the revoked family's last one still works until it expires.
    client.list_devices_ok(&a2.token)?;
    Ok(())
}

#[test]
fn reuse_of_a_device_session_does_not_touch_the_user_session() -> TestResult {
    // Goal: families are per session, including device-bound ones. Method: replay a rotated
    // device refresh token; the user-scoped session from registration still refreshes.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("judy")?;
    let dev = client.create_device_ok(&reg.token, None)?;
    let dev1 = client.refresh(&dev.refresh_token)?.expect_json(200)?;
    let dev1_refresh = dev1["refreshToken"].as_str().ok_or("no refreshToken")?.to_string();
    assert_eq!(dev1["deviceId"].as_str(), dev.device_id.as_deref());

    client.refresh(&dev.refresh_token)?.expect_error(401)?;
    client.refresh(&dev1_refresh)?.expect_error(401)?;
    client.refresh(&reg.refresh_token)?.expect_json(200)?;
    Ok(())
}

#[test]
fn refresh_with_unknown_or_malformed_token_is_401() -> TestResult {
    // Goal: §4.4 — tokens the server never issued are 401, and body-shape errors are 400
    // (issue 12; the reference answers 422).
    // Method: a random 43-character token, an empty one, a missing field, a wrong type.
    let server = TestServer::start()?;
    let client = server.client();
    client
        .refresh("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")?
        .expect_error_text(401, "Unauthorized")?;
    client.refresh("")?.expect_error_text(401, "Unauthorized")?;
    client
        .post("/v1/sessions/refresh")
        .json(&json!({}))
        .send()?
        .expect_error(400)?;
    client
        .post("/v1/sessions/refresh")
        .json(&json!({"refreshToken": 42}))
        .send()?
        .expect_error(400)?;
    Ok(())
}

#[test]
fn logout_revokes_only_that_refresh_token() -> TestResult {
    // Goal: A10-A11, §4.5 — logout is 200 with an empty body, the logged-out refresh token can
    // no longer refresh, the access token keeps working, and another session is untouched.
    // Method: two logins of one user; log out the first.
    let server = TestServer::start()?;
    let client = server.client();
    let first = client.register_ok("mallory")?;
    let second = client.login_ok("mallory", None)?;

    let resp = client.logout(&first.token, &first.refresh_token)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.body.is_empty(), "logout body should be empty: {resp:?}");

    client
        .refresh(&first.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client.list_devices_ok(&first.token)?;
    client.refresh(&second.refresh_token)?.expect_json(200)?;
    Ok(())
}

#[test]
fn logout_is_200_for_unknown_and_foreign_tokens() -> TestResult {
    // Goal: §4.5 — unknown, already-revoked and foreign refresh tokens still give 200, and a
    // foreign token is not deleted. Method: user A logs out with B's refresh token; B's token
    // still refreshes.
    let server = TestServer::start()?;
    let client = server.client();
    let a = client.register_ok("niaj")?;
    let b = client.register_ok("olivia")?;
    assert_eq!(client.logout(&a.token, "unknown-refresh-token")?.status, 200);
    assert_eq!(client.logout(&a.token, &b.refresh_token)?.status, 200);
    client.refresh(&b.refresh_token)?.expect_json(200)?;
    assert_eq!(client.logout(&a.token, &a.refresh_token)?.status, 200);
    assert_eq!(
        client.logout(&a.token, &a.refresh_token)?.status,
        200,
        "a second logout is still 200"
    );
    Ok(())
}

#[test]
fn logout_requires_authentication_before_body() -> TestResult {
    // Goal: B16, §3.4 — logout without a valid bearer token is 401 even with a broken body; with
    // a valid token a missing body is a JSON rejection (415). Method: vary auth and body.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("peggy")?;
    client
        .delete("/v1/sessions")
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    client
        .delete("/v1/sessions")
        .header("content-type", "application/json")
        .body("{not json")
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    client
        .delete("/v1/sessions")
        .header("authorization", "Bearer invalid-token")
        .json(&json!({"refreshToken": user.refresh_token}))
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    client
        .delete("/v1/sessions")
        .bearer(&user.token)
        .send()?
        .expect_error(415)?;
    client
        .delete("/v1/sessions")
        .bearer(&user.token)
        .json(&json!({}))
        .send()?
        .expect_error(400)?;
    // None of that revoked anything.
    client.refresh(&user.refresh_token)?.expect_json(200)?;
    Ok(())
}

#[test]
fn refresh_tokens_expire_with_zero_ttl_days() -> TestResult {
    // Goal: A12 — with `--auth-refresh-token-ttl-days 0` every refresh token is already expired,
    // so refreshing a second after registration is 401. Method: register, wait 1.1 s, refresh.
    let server = TestServer::start_with(&["--auth-refresh-token-ttl-days", "0"])?;
    let client = server.client();
    let reg = client.register_ok("quentin")?;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    client
        .refresh(&reg.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    // Access tokens are unaffected by the refresh-token lifetime.
    client.list_devices_ok(&reg.token)?;
    Ok(())
}

#[test]
fn access_token_ttl_follows_the_flag() -> TestResult {
    // Goal: §3.3 — expiresAt = issue time + `--auth-token-ttl-secs`, for register, login,
    // refresh and device creation alike. Method: TTL 120 s, check each response.
    let server = TestServer::start_with(&["--auth-token-ttl-secs", "120"])?;
    let client = server.client();
    let now = crate::common::now_secs();
    let reg = client.register_ok("rupert")?;
    let login = client.login_ok("rupert", None)?;
    let refreshed = crate::common::Auth::from_json(&client.refresh(&login.refresh_token)?.expect_json(200)?)?;
    let device = client.create_device_ok(&reg.token, None)?;
    for auth in [&reg, &login, &refreshed, &device] {
        assert!(
            (now + 115..=crate::common::now_secs() + 125).contains(&auth.expires_at),
            "{auth:?}"
        );
        assert_eq!(jwt::claims(&auth.token)?["exp"].as_i64(), Some(auth.expires_at));
    }
    Ok(())
}

#[test]
fn concurrent_refreshes_of_one_token_admit_exactly_one() -> TestResult {
    // Goal: rotation is atomic: of six simultaneous refreshes with the same token exactly one
    // gets 200; the others are 401. Method: six threads released together.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("racing_refresh")?;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            let barrier = barrier.clone();
            let token = reg.refresh_token.clone();
            std::thread::spawn(move || -> Result<u16, String> {
                barrier.wait();
                client.refresh(&token).map(|r| r.status).map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.join().map_err(|_| "thread panicked")??);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![200, 401, 401, 401, 401, 401]);
    Ok(())
}

#[test]
fn logout_accepts_a_device_token() -> TestResult {
    // Goal: §4.5 — logout takes a bearer token of any scope and revokes refresh tokens of the
    // token's user. Method: log out the user-scoped session with a device token.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client.register_ok("device_logout")?;
    let device = client.create_device_ok(&reg.token, None)?;
    assert_eq!(client.logout(&device.token, &reg.refresh_token)?.status, 200);
    client
        .refresh(&reg.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client.refresh(&device.refresh_token)?.expect_json(200)?;
    Ok(())
}
