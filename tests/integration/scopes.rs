//! Authentication and token scope on the data-plane routes (BEHAVIOR §3.3-3.4, §6.3, §6.4, §7.1,
//! §8.1; TEST-CASES A4, A15, B16-B19 for `POST /v1/devices/keys`, `GET /v1/users/{id}`,
//! `POST /v1/messages`, `POST /v1/gateway/ticket`, `PUT /v1/push-tokens`, attachments and
//! backup): no token → 401, a user token → 403
//! `Device-scoped token required`, a device token (from device creation or from a login bound
//! to the device) → the route works; and the order of those checks against body errors.

use serde_json::json;

use crate::common::data::{self, member, upload_body};
use crate::common::wire::{self, Submission};
use crate::common::{random_uuid, TestResult, PASSWORD};

const SCOPE: &str = "Device-scoped token required";

#[test]
fn data_routes_need_a_bearer_token() -> TestResult {
    // Goal: B16-B18 for the data plane — without Authorization, with a non-JWT token and with a
    // scheme other than `Bearer `, each route answers 401 `Unauthorized`, whatever the body.
    // Method: each route × each bad header, with a body that would otherwise be valid.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let keys = upload_body(1, None, 2, 100, 1).to_string().into_bytes();
    let msg = wire::encode_send_request(&[Submission::to(&alice.id, b"x")]);
    let routes: Vec<(&str, String, Vec<u8>)> = vec![
        ("GET", format!("/v1/users/{}", alice.user_id()), vec![]),
        ("POST", "/v1/devices/keys".into(), keys),
        ("POST", "/v1/messages".into(), msg),
        ("POST", "/v1/gateway/ticket".into(), vec![]),
        ("PUT", "/v1/push-tokens".into(), br#"{"token":"t"}"#.to_vec()),
        ("POST", "/v1/attachments".into(), vec![7; 14]),
        ("GET", format!("/v1/attachments/{}", random_uuid()), vec![]),
        ("GET", "/v1/backup".into(), vec![]),
        ("HEAD", "/v1/backup".into(), vec![]),
        ("POST", "/v1/backup".into(), vec![7; 64]),
    ];
    let bad: Vec<Option<String>> = vec![
        None,
        Some("Bearer invalid-token".into()),
        Some(format!("NotBearer {}", alice.token())),
        Some(format!("bearer {}", alice.token())),
    ];
    for (method, path, body) in &routes {
        for header in &bad {
            let mut req = client
                .request(method, path)
                .header("content-type", "application/json")
                .header("Idempotency-Key", &random_uuid())
                .body(body.clone());
            if let Some(h) = header {
                req = req.header("authorization", h);
            }
            let resp = req.header("If-None-Match", "*").send()?;
            assert_eq!(resp.status, 401, "{method} {path} with {header:?}: {resp:?}");
            if *method != "HEAD" {
                resp.expect_error_text(401, "Unauthorized")?;
            }
        }
    }
    Ok(())
}

#[test]
fn user_tokens_get_403_on_device_routes() -> TestResult {
    // Goal: B19, D46 — a valid user token with a well-formed request gets 403 `Device-scoped
    // token required` on each device-only route, and nothing happens (no keys change, no
    // message is queued). Method: the four routes with alice's user token; then check bob's
    // queue and alice's bundle.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 2)?;
    let bob = member(&client, "bob", 0)?;
    let user = &alice.user.token;

    data::upload_keys(&client, user, &upload_body(1, None, 2, 100, 1))?.expect_error_text(403, SCOPE)?;
    data::fetch_bundles(&client, user, bob.user_id())?.expect_error_text(403, SCOPE)?;
    data::send(&client, user, &[Submission::to(&bob.id, b"from a user token")])?.expect_error_text(403, SCOPE)?;
    client
        .post("/v1/gateway/ticket")
        .bearer(user)
        .send()?
        .expect_error_text(403, SCOPE)?;

    // Scope comes before the Idempotency-Key check (§7.1 steps 2-3).
    client
        .post("/v1/messages")
        .bearer(user)
        .body(wire::encode_send_request(&[]))
        .send()?
        .expect_error_text(403, SCOPE)?;

    for method in ["GET", "HEAD", "POST"] {
        let resp = client
            .request(method, "/v1/backup")
            .bearer(user)
            .header("If-None-Match", "*")
            .body(vec![7u8; 64])
            .send()?;
        assert_eq!(resp.status, 403, "{method} /v1/backup: {resp:?}");
        if method != "HEAD" {
            resp.expect_error_text(403, SCOPE)?;
        }
    }

    // Nothing happened: the refill did not rotate alice's SPK, bob's queue is empty.
    let bundles = data::fetch_bundles_ok(&client, bob.token(), alice.user_id())?;
    assert_eq!(bundles[0]["signedPreKey"]["keyId"], json!(1), "{bundles:?}");
    assert!(data::queued_for(&server, &bob)?.is_empty());
    Ok(())
}

#[test]
fn body_rejections_of_key_upload_come_before_the_scope_check() -> TestResult {
    // Goal: §3.4 — body extraction (step 6) precedes the scope check (step 7): a user token with
    // an unparsable body gets the JSON rejection (400), with a wrong-shape body 400 too, with a
    // wrong content type 415; a valid body gets 403 before any key validation (a bad signature
    // still answers 403). Method: each variant with a user token.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let user = &alice.user.token;
    let broken = client
        .post("/v1/devices/keys")
        .bearer(user)
        .header("content-type", "application/json")
        .body("{broken")
        .send()?;
    broken.expect_error(400)?;
    client
        .post("/v1/devices/keys")
        .bearer(user)
        .json(&json!({"oneTimePreKeys": []}))
        .send()?
        .expect_error(400)?;
    client
        .post("/v1/devices/keys")
        .bearer(user)
        .header("content-type", "text/plain")
        .body(upload_body(1, None, 2, 1, 0).to_string())
        .send()?
        .expect_error(415)?;
    let mut bad_sig = upload_body(1, None, 2, 1, 0);
    bad_sig["signedPreKey"]["signature"] = json!(crate::common::keys::b64(&[0u8; 64]));
    data::upload_keys(&client, user, &bad_sig)?.expect_error_text(403, SCOPE)?;
    Ok(())
}

#[test]
fn device_tokens_from_creation_and_from_login_fetch_own_bundles() -> TestResult {
    // Goal: A4, A15 — the device token from device creation, and the token of a login bound to
    // the device, are device-scoped: `GET /v1/users/{ownUserId}` answers 200 with the device's
    // bundle; a login without deviceId gives a user token (403). Method: one user, one device.
    let server = data::server_with(&[])?;
    let client = server.client();
    let alice = member(&client, "alice", 3)?;
    let own = data::fetch_bundles_ok(&client, alice.token(), alice.user_id())?;
    assert_eq!(own.len(), 1, "{own:?}");
    assert_eq!(own[0]["deviceId"].as_str(), Some(alice.device_id.as_str()));

    let bound = client
        .login("alice", PASSWORD, Some(&alice.device_id))?
        .expect_json(200)?;
    assert_eq!(bound["deviceId"].as_str(), Some(alice.device_id.as_str()));
    let token = bound["token"].as_str().ok_or("no token")?;
    let again = data::fetch_bundles_ok(&client, token, alice.user_id())?;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0]["deviceId"].as_str(), Some(alice.device_id.as_str()));

    let unbound = client.login_ok("alice", None)?;
    data::fetch_bundles(&client, &unbound.token, alice.user_id())?.expect_error_text(403, SCOPE)?;
    Ok(())
}
