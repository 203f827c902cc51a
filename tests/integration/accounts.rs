//! Registration (`POST /v1/users`, BEHAVIOR §4.1-4.2, TEST-CASES A1, A5-A7, S170): the
//! response shape, username and password rules with their exact messages, and case-insensitive
//! uniqueness.

use crate::common::{jwt, now_secs, uuid_version, TestResult, TestServer, PASSWORD};

#[test]
fn register_returns_user_scoped_auth_response() -> TestResult {
    // Goal: A1 and §4.1 — 201 with token, refreshToken, expiresAt and no deviceId; the token is
    // user-scoped and its exp equals expiresAt. Method: register once, inspect body and claims.
    let server = TestServer::start()?;
    let client = server.client();
    let before = now_secs();
    let resp = client.register("alice", PASSWORD)?;
    let body = resp.expect_json(201)?;
    assert!(
        body.get("deviceId").is_none(),
        "deviceId must be absent (not null): {body}"
    );
    let token = body["token"].as_str().ok_or("token missing")?;
    assert!(!token.is_empty());
    let refresh = body["refreshToken"].as_str().ok_or("refreshToken missing")?;
    // §4.6: 32 random bytes, base64url without padding = 43 characters.
    assert_eq!(refresh.len(), 43, "refresh token {refresh:?}");
    assert!(
        refresh
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "refresh token {refresh:?}"
    );
    let expires_at = body["expiresAt"].as_i64().ok_or("expiresAt is not an integer")?;
    // Default access-token lifetime is 900 s.
    assert!(
        (before + 900 - 5..=now_secs() + 900 + 5).contains(&expires_at),
        "expiresAt {expires_at}"
    );

    let header = jwt::header(token)?;
    assert_eq!(header["alg"], "HS256", "JWT header {header}");
    let claims = jwt::claims(token)?;
    assert_eq!(claims["exp"].as_i64(), Some(expires_at), "claims {claims}");
    assert!(
        claims.get("device_id").is_none(),
        "user-scoped token has a device_id: {claims}"
    );
    let sub = claims["sub"].as_str().ok_or("sub missing")?;
    assert_eq!(
        uuid_version(sub),
        Some(7),
        "user id should be a canonical UUID v7: {sub}"
    );

    // The token works on an any-scope route.
    let devices = client.list_devices_ok(token)?;
    assert!(devices.is_empty());
    Ok(())
}

#[test]
fn two_registrations_get_distinct_users_and_tokens() -> TestResult {
    // Goal: each registration creates its own user and refresh token. Method: register two
    // users and compare ids and tokens.
    let server = TestServer::start()?;
    let client = server.client();
    let a = client.register_ok("first_user")?;
    let b = client.register_ok("second_user")?;
    assert_ne!(a.user_id, b.user_id);
    assert_ne!(a.refresh_token, b.refresh_token);
    Ok(())
}

#[test]
fn password_length_rules() -> TestResult {
    // Goal: A5-A7 and §4.2 rule 3 — fewer than 12 bytes is 400 with the fixed text, exactly 12
    // is accepted, and the length is counted in UTF-8 bytes. Method:
    // one registration per case.
    let server = TestServer::start()?;
    let client = server.client();
    let msg = "Password must be at least 12 characters long";

    let resp = client.register("shorty", "too_short")?;
    let text = resp.expect_error(400)?;
    assert!(text.contains("at least 12 characters"), "{text}");
    assert_eq!(text, msg);

    client.register("eleven", "12345678901")?.expect_error_text(400, msg)?;

    // Exactly 12 characters. (A7's legacy key fields are not ignored here on purpose: they make
    // a legacy registration, tested in `legacy`.)
    client.register("twelve", "123456789012")?.expect_json(201)?;

    // Five two-byte characters are 10 bytes: too short. Six are 12 bytes: long enough.
    client
        .register("bytes_short", &"é".repeat(5))?
        .expect_error_text(400, msg)?;
    client.register("bytes_ok", &"é".repeat(6))?.expect_json(201)?;
    Ok(())
}

#[test]
fn long_password_is_accepted() -> TestResult {
    // Goal: §4.2 — there is no maximum password length below the body cap. Method: register
    // with a 100 000-byte password and log in with it.
    let server = TestServer::start()?;
    let client = server.client();
    let password = "p".repeat(100_000);
    client.register("longpass", &password)?.expect_json(201)?;
    client.login("longpass", &password, None)?.expect_json(200)?;
    Ok(())
}

#[test]
fn username_rules() -> TestResult {
    // Goal: §4.2 rules 1-2 and S170 — empty/blank usernames and usernames outside
    // ^[a-zA-Z0-9_]{3,50}$ get 400 with the exact texts; the boundaries 3 and 50 pass. Method:
    // one registration per case.
    let server = TestServer::start()?;
    let client = server.client();
    let empty = "Username cannot be empty";
    let pattern = "Username must be between 3 and 50 characters and can only contain letters, numbers, and underscores";

    client.register("", PASSWORD)?.expect_error_text(400, empty)?;
    client.register("   ", PASSWORD)?.expect_error_text(400, empty)?;
    client.register("\t\n", PASSWORD)?.expect_error_text(400, empty)?;
    client.register("ab", PASSWORD)?.expect_error_text(400, pattern)?;
    client
        .register(&"a".repeat(51), PASSWORD)?
        .expect_error_text(400, pattern)?;
    client.register("bad-name", PASSWORD)?.expect_error_text(400, pattern)?;
    client.register("bad.name", PASSWORD)?.expect_error_text(400, pattern)?;
    client
        .register("with space", PASSWORD)?
        .expect_error_text(400, pattern)?;
    client.register(" padded", PASSWORD)?.expect_error_text(400, pattern)?;
    client.register("padded ", PASSWORD)?.expect_error_text(400, pattern)?;
    client.register("ünïcode", PASSWORD)?.expect_error_text(400, pattern)?;

    client.register("abc", PASSWORD)?.expect_json(201)?;
    client.register(&"Z".repeat(50), PASSWORD)?.expect_json(201)?;
    client.register("Mixed_Case_123", PASSWORD)?.expect_json(201)?;
    Ok(())
}

#[test]
fn username_is_checked_before_password() -> TestResult {
    // Goal: §4.2 validation order — the username rules come first. Method: an invalid username
    // with a too-short password reports the username problem.
    let server = TestServer::start()?;
    let client = server.client();
    client
        .register("", "short")?
        .expect_error_text(400, "Username cannot be empty")?;
    client.register("x", "short")?.expect_error_text(
        400,
        "Username must be between 3 and 50 characters and can only contain letters, numbers, and underscores",
    )?;
    Ok(())
}

#[test]
fn duplicate_username_is_409_case_insensitively() -> TestResult {
    // Goal: §4.2 — usernames are stored lower-cased and unique regardless of case: 409 with
    // `Username already exists`. Method: register `Alice`, then `alice` and `ALICE`; the first
    // account stays usable with any case at login.
    let server = TestServer::start()?;
    let client = server.client();
    let first = client.register_ok("Alice")?;
    client
        .register("alice", PASSWORD)?
        .expect_error_text(409, "Username already exists")?;
    client
        .register("ALICE", "another password")?
        .expect_error_text(409, "Username already exists")?;
    client
        .register("Alice", PASSWORD)?
        .expect_error_text(409, "Username already exists")?;

    let login = client.login_ok("aLiCe", None)?;
    assert_eq!(login.user_id, first.user_id, "login must find the lower-cased account");
    Ok(())
}

#[test]
fn concurrent_registrations_of_one_name_admit_exactly_one() -> TestResult {
    // Goal: username uniqueness holds under a race (requests land on different shards): of
    // eight simultaneous registrations of one name in different cases, exactly one is 201 and
    // the rest are 409. Method: eight threads released together.
    let server = TestServer::start()?;
    let client = server.client();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
    let handles: Vec<_> = ["racer", "Racer", "RACER", "rAcer", "raCer", "racEr", "raceR", "RaCeR"]
        .into_iter()
        .map(|name| {
            let client = client.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || -> Result<u16, String> {
                barrier.wait();
                client
                    .register(name, PASSWORD)
                    .map(|r| r.status)
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.join().map_err(|_| "thread panicked")??);
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    Ok(())
}
