//! Bearer authentication (BEHAVIOR §3.3-3.4, TEST-CASES B16-B18): header parsing, HS256 JWT
//! validation (secret, algorithm, expiry with its 60 s leeway, claim shapes) and the rule that
//! authentication is checked before the body. Tokens are crafted by hand with the test
//! server's known secret (`common::jwt`), with a crafted valid token as the positive control.

use serde_json::json;

use crate::common::server::JWT_SECRET;
use crate::common::{jwt, keys, now_secs, random_uuid, TestResult, TestServer};

/// Every route of this landing that needs a bearer token, with a body where it takes one.
fn protected_routes() -> Vec<(&'static str, String)> {
    let id = random_uuid();
    vec![
        ("GET", "/v1/devices".to_string()),
        ("POST", "/v1/devices".to_string()),
        ("GET", format!("/v1/devices/{id}")),
        ("PUT", format!("/v1/devices/{id}")),
        ("DELETE", format!("/v1/devices/{id}")),
        ("DELETE", "/v1/sessions".to_string()),
    ]
}

#[test]
fn protected_routes_need_a_bearer_token() -> TestResult {
    // Goal: B16-B18 — without Authorization, with a non-JWT token, with a scheme other than the
    // exact `Bearer `, every protected route answers 401 `Unauthorized` (auth comes before the
    // body, so the bodies here do not matter). Method: each route × each bad header.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("trent")?;
    let bad_headers: Vec<Option<String>> = vec![
        None,
        Some("Bearer invalid-token".into()),
        Some(format!("NotBearer {}", user.token)),
        Some(format!("bearer {}", user.token)),
        Some(format!("BEARER {}", user.token)),
        Some(format!("Basic {}", user.token)),
        Some(user.token.clone()),
        Some("Bearer ".into()),
        Some("Bearer".into()),
    ];
    for (method, path) in protected_routes() {
        for header in &bad_headers {
            let mut req = client
                .request(method, &path)
                .header("content-type", "application/json")
                .body("{}");
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let resp = req.send()?;
            assert_eq!(resp.status, 401, "{method} {path} with {header:?}: {resp:?}");
            resp.expect_error_text(401, "Unauthorized")?;
        }
    }
    Ok(())
}

#[test]
fn crafted_token_with_the_server_secret_is_accepted() -> TestResult {
    // Goal: positive control for the crafted-token tests below, and §3.3 "nothing is looked up
    // in storage". Method: sign {sub, exp} with the server's secret for a registered user and
    // for a user id that was never registered; both list devices (the second, an empty list).
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("victor")?;
    client.create_device_ok(&user.token, Some("phone"))?;
    let token = jwt::token(JWT_SECRET, &user.user_id, None, now_secs() + 300);
    assert_eq!(client.list_devices_ok(&token)?.len(), 1);
    let ghost = jwt::token(JWT_SECRET, &random_uuid(), None, now_secs() + 300);
    assert!(client.list_devices_ok(&ghost)?.is_empty());
    Ok(())
}

/// A secret of the server in `token_signed_with_another_secret_is_401`, not the harness's.
const REAL_SECRET: &str = "the-real-secret-of-this-one-server-and-no-other";

#[test]
fn token_signed_with_another_secret_is_401() -> TestResult {
    // Goal: §3.3 — the signature must verify with `--auth-jwt-secret`. Method: a server with
    // its own secret; a real token from it works, a crafted one with a different secret does
    // not, and neither does a real token with its signature altered.
    let server = TestServer::start_with(&["--auth-jwt-secret", REAL_SECRET])?;
    let client = server.client();
    let user = client.register_ok("walter")?;
    client.list_devices_ok(&user.token)?;
    let forged = jwt::token(JWT_SECRET, &user.user_id, None, now_secs() + 300);
    client.list_devices(&forged)?.expect_error_text(401, "Unauthorized")?;
    let right = jwt::token(REAL_SECRET, &user.user_id, None, now_secs() + 300);
    client.list_devices_ok(&right)?;

    let mut tampered = user.token.clone();
    let last = tampered.pop().ok_or("empty token")?;
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    client.list_devices(&tampered)?.expect_error_text(401, "Unauthorized")?;
    Ok(())
}

#[test]
fn expiry_honours_the_60_second_leeway() -> TestResult {
    // Goal: §3.3 — a token is accepted while now ≤ exp + 60. Method: crafted tokens that
    // expired 20 s ago (accepted) and 150 s ago (401), so no waiting is needed.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("xavier")?;
    let recent = jwt::token(JWT_SECRET, &user.user_id, None, now_secs() - 20);
    client.list_devices_ok(&recent)?;
    let expired = jwt::token(JWT_SECRET, &user.user_id, None, now_secs() - 150);
    client.list_devices(&expired)?.expect_error_text(401, "Unauthorized")?;
    Ok(())
}

#[test]
fn malformed_claims_and_algorithms_are_401() -> TestResult {
    // Goal: §3.3 validation — only HS256; exp required and numeric; an `aud` claim is
    // rejected; sub and device_id must be UUIDs. Method: one crafted token per defect, all
    // signed with the right secret.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("yvonne")?;
    let sub = user.user_id.as_str();
    let exp = now_secs() + 300;
    let hs256 = json!({"typ": "JWT", "alg": "HS256"});
    let cases = vec![
        (
            "alg none",
            jwt::sign(
                &json!({"typ": "JWT", "alg": "none"}),
                &json!({"sub": sub, "exp": exp}),
                JWT_SECRET,
            ),
        ),
        (
            "alg HS512",
            jwt::sign(
                &json!({"typ": "JWT", "alg": "HS512"}),
                &json!({"sub": sub, "exp": exp}),
                JWT_SECRET,
            ),
        ),
        ("no exp", jwt::sign(&hs256, &json!({"sub": sub}), JWT_SECRET)),
        (
            "string exp",
            jwt::sign(&hs256, &json!({"sub": sub, "exp": "tomorrow"}), JWT_SECRET),
        ),
        (
            "aud",
            jwt::sign(&hs256, &json!({"sub": sub, "exp": exp, "aud": "obscura"}), JWT_SECRET),
        ),
        (
            "sub not uuid",
            jwt::sign(&hs256, &json!({"sub": "yvonne", "exp": exp}), JWT_SECRET),
        ),
        ("no sub", jwt::sign(&hs256, &json!({"exp": exp}), JWT_SECRET)),
        (
            "device_id not uuid",
            jwt::sign(
                &hs256,
                &json!({"sub": sub, "exp": exp, "device_id": "phone"}),
                JWT_SECRET,
            ),
        ),
        ("two segments", {
            let t = jwt::token(JWT_SECRET, sub, None, exp);
            t.rsplit_once('.').map(|(head, _)| head.to_string()).unwrap_or_default()
        }),
    ];
    for (what, token) in cases {
        let resp = client.list_devices(&token)?;
        assert_eq!(resp.status, 401, "{what}: {resp:?}");
        resp.expect_error_text(401, "Unauthorized")?;
    }
    Ok(())
}

#[test]
fn authentication_is_checked_before_the_body() -> TestResult {
    // Goal: §3.4 — an unauthenticated request with a broken body, a wrong content type or no
    // body gets 401, not 400/415. Method: POST /v1/devices and PUT /v1/devices/{id}
    // without a token and with each kind of bad body.
    let server = TestServer::start()?;
    let client = server.client();
    let put_path = format!("/v1/devices/{}", random_uuid());
    for (method, path) in [("POST", "/v1/devices"), ("PUT", put_path.as_str())] {
        client
            .request(method, path)
            .send()?
            .expect_error_text(401, "Unauthorized")?;
        client
            .request(method, path)
            .header("content-type", "application/json")
            .body("{broken")
            .send()?
            .expect_error_text(401, "Unauthorized")?;
        client
            .request(method, path)
            .header("content-type", "text/plain")
            .body("hi")
            .send()?
            .expect_error_text(401, "Unauthorized")?;
        client
            .request(method, path)
            .header("content-type", "application/json")
            .body("{\"unexpected\": true}")
            .send()?
            .expect_error_text(401, "Unauthorized")?;
    }
    // And a malformed path id is also behind authentication.
    client
        .get("/v1/devices/not-a-uuid")
        .send()?
        .expect_error_text(401, "Unauthorized")?;
    // With a valid token, the same broken body is the JSON rejection instead.
    let user = client.register_ok("zara")?;
    client
        .post("/v1/devices")
        .bearer(&user.token)
        .header("content-type", "application/json")
        .body("{broken")
        .send()?
        .expect_error(400)?;
    // A valid body with a valid token still works (the control).
    client
        .create_device(&user.token, &keys::valid_device_request(0))?
        .expect_json(201)?;
    Ok(())
}
