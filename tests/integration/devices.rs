//! Device CRUD (`/v1/devices…`, BEHAVIOR §5, TEST-CASES C22-C36): creation and its
//! device-scoped session, listing order and shape, get/rename/delete, ownership (404 for
//! foreign and unknown devices), path-id parsing, the device limit, the name length limit, and
//! the refresh tokens that die with their device. Key validation lives in `device_keys`.

use serde_json::{json, Value};

use crate::common::keys::{valid_device_request, DeviceKeys};
use crate::common::{jwt, now_secs, parse_created_at, random_uuid, uuid_version, Auth, TestResult, TestServer};

fn device_id(auth: &Auth) -> Result<String, Box<dyn std::error::Error>> {
    Ok(auth.device_id.clone().ok_or("no deviceId")?)
}

/// Checks a `DeviceResponse`: exactly deviceId, name, createdAt; createdAt strict and recent.
fn check_device_response(v: &Value, id: &str, name: Option<&str>) -> Result<f64, Box<dyn std::error::Error>> {
    let obj = v.as_object().ok_or_else(|| format!("device is not an object: {v}"))?;
    assert_eq!(obj.get("deviceId").and_then(Value::as_str), Some(id), "{v}");
    assert!(
        obj.contains_key("name"),
        "name must always be present (null when unset): {v}"
    );
    assert_eq!(obj.get("name").and_then(Value::as_str), name, "{v}");
    if name.is_none() {
        assert_eq!(obj.get("name"), Some(&Value::Null), "{v}");
    }
    let created = obj
        .get("createdAt")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("no createdAt: {v}"))?;
    let t = parse_created_at(created)
        .ok_or_else(|| format!("createdAt {created:?} is not RFC 3339 UTC with Z and trimmed fraction"))?;
    let now = now_secs() as f64;
    assert!(
        (now - 300.0..=now + 5.0).contains(&t),
        "createdAt {created} is not recent"
    );
    Ok(t)
}

#[test]
fn fresh_user_has_no_devices() -> TestResult {
    // Goal: C22 — a new user's list is exactly {"devices": []}. Method: register and list.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("alice")?;
    let body = client.list_devices(&user.token)?.expect_json(200)?;
    assert_eq!(body, json!({"devices": []}));
    Ok(())
}

#[test]
fn create_device_returns_device_scoped_session() -> TestResult {
    // Goal: A2, §5.1 — 201 with token, refreshToken, expiresAt and deviceId (a UUID v7); the
    // token carries sub = the user and device_id = the new device; the refresh token is
    // device-bound. Method: create one device, inspect, refresh.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("bob")?;
    let resp = client.create_device(&user.token, &valid_device_request(3))?;
    let body = resp.expect_json(201)?;
    let auth = Auth::from_json(&body)?;
    let id = device_id(&auth)?;
    assert_eq!(
        uuid_version(&id),
        Some(7),
        "device id should be a canonical UUID v7: {id}"
    );
    assert_eq!(auth.user_id, user.user_id);
    let claims = jwt::claims(&auth.token)?;
    assert_eq!(claims["device_id"].as_str(), Some(id.as_str()), "{claims}");
    assert_eq!(auth.refresh_token.len(), 43);

    let refreshed = client.refresh(&auth.refresh_token)?.expect_json(200)?;
    assert_eq!(refreshed["deviceId"].as_str(), Some(id.as_str()));
    Ok(())
}

#[test]
fn device_token_can_manage_devices_too() -> TestResult {
    // Goal: §5 — every device route accepts either scope and acts on the token's user; a
    // device may create siblings and delete itself. Method: use a device token for create,
    // list, get, rename, and self-delete.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("carol")?;
    let first = client.create_device_ok(&user.token, Some("first"))?;
    let second = client.create_device_ok(&first.token, Some("second"))?;
    assert_eq!(second.user_id, user.user_id);
    assert_eq!(client.list_devices_ok(&first.token)?.len(), 2);
    let first_id = device_id(&first)?;
    let second_id = device_id(&second)?;
    client.get_device(&second.token, &first_id)?.expect_json(200)?;
    client
        .rename_device(&second.token, &first_id, &json!({"name": "renamed"}))?
        .expect_json(200)?;
    let resp = client.delete_device(&first.token, &first_id)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    // The user token from before the deletion is revoked with it (issue 19).
    let left = client.list_devices_ok(&second.token)?;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["deviceId"].as_str(), Some(second_id.as_str()));
    Ok(())
}

#[test]
fn list_shows_devices_in_creation_order() -> TestResult {
    // Goal: C23-C24, §5.2 — two devices with the same key material both get 201; the list has
    // exactly both, oldest first, the unnamed one with `name: null`, createdAt in strict RFC
    // 3339 UTC form. Method: create three (unnamed, "My Phone", empty name) and list.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("dave")?;
    let a = device_id(&client.create_device_ok(&user.token, None)?)?;
    let b = device_id(&client.create_device_ok(&user.token, Some("My Phone"))?)?;
    let c = device_id(&client.create_device_ok(&user.token, Some(""))?)?;

    let devices = client.list_devices_ok(&user.token)?;
    assert_eq!(devices.len(), 3, "{devices:?}");
    let ta = check_device_response(&devices[0], &a, None)?;
    let tb = check_device_response(&devices[1], &b, Some("My Phone"))?;
    let tc = check_device_response(&devices[2], &c, Some(""))?;
    assert!(ta <= tb && tb <= tc, "createdAt must ascend: {devices:?}");

    // GET of each agrees with the list.
    for d in &devices {
        let id = d["deviceId"].as_str().ok_or("no id")?;
        let one = client.get_device(&user.token, id)?.expect_json(200)?;
        assert_eq!(&one, d);
    }
    Ok(())
}

#[test]
fn get_and_rename_own_device() -> TestResult {
    // Goal: C32-C34, §5.4 — GET shows name null; PUT {"name"} answers 200 with the updated
    // device and a later GET agrees; `{}` and `"name": null` clear the name; an empty string is
    // a name. Method: one device, a sequence of renames.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("erin")?;
    let id = device_id(&client.create_device_ok(&user.token, None)?)?;

    let got = client.get_device(&user.token, &id)?.expect_json(200)?;
    let created = check_device_response(&got, &id, None)?;

    let updated = client
        .rename_device(&user.token, &id, &json!({"name": "Updated Phone"}))?
        .expect_json(200)?;
    let t = check_device_response(&updated, &id, Some("Updated Phone"))?;
    assert_eq!(t, created, "renaming must not change createdAt");
    check_device_response(
        &client.get_device(&user.token, &id)?.expect_json(200)?,
        &id,
        Some("Updated Phone"),
    )?;

    let cleared = client.rename_device(&user.token, &id, &json!({}))?.expect_json(200)?;
    check_device_response(&cleared, &id, None)?;
    check_device_response(&client.get_device(&user.token, &id)?.expect_json(200)?, &id, None)?;

    client
        .rename_device(&user.token, &id, &json!({"name": "again"}))?
        .expect_json(200)?;
    let cleared = client
        .rename_device(&user.token, &id, &json!({"name": null}))?
        .expect_json(200)?;
    check_device_response(&cleared, &id, None)?;

    let empty = client
        .rename_device(&user.token, &id, &json!({"name": ""}))?
        .expect_json(200)?;
    check_device_response(&empty, &id, Some(""))?;

    // Unknown fields are ignored.
    let named = client
        .rename_device(&user.token, &id, &json!({"name": "x", "color": "blue"}))?
        .expect_json(200)?;
    check_device_response(&named, &id, Some("x"))?;
    Ok(())
}

#[test]
fn rename_body_rejections() -> TestResult {
    // Goal: §5.4, §3.2 — PUT needs a JSON body: none or a non-JSON content type → 415, broken
    // JSON → 400, a non-string name → 400 (issue 12; the reference answers 422); the name is unchanged afterwards. Method: one device,
    // each bad request.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("frank")?;
    let id = device_id(&client.create_device_ok(&user.token, Some("keep"))?)?;
    let path = format!("/v1/devices/{id}");
    client.put(&path).bearer(&user.token).send()?.expect_error(415)?;
    client
        .put(&path)
        .bearer(&user.token)
        .header("content-type", "text/plain")
        .body("{\"name\":\"x\"}")
        .send()?
        .expect_error(415)?;
    client
        .put(&path)
        .bearer(&user.token)
        .header("content-type", "application/json")
        .body("{\"name\":")
        .send()?
        .expect_error(400)?;
    client
        .rename_device(&user.token, &id, &json!({"name": 5}))?
        .expect_error(400)?;
    client
        .rename_device(&user.token, &id, &json!("name"))?
        .expect_error(400)?;
    check_device_response(
        &client.get_device(&user.token, &id)?.expect_json(200)?,
        &id,
        Some("keep"),
    )?;
    Ok(())
}

#[test]
fn foreign_and_unknown_devices_are_404() -> TestResult {
    // Goal: C35-C36, §5.3-5.5 — another user's device and a device that does not exist are
    // both `404 Not found` for GET, PUT and DELETE, and the foreign device is left untouched.
    // Method: two users; the second probes the first's device and a random id.
    let server = TestServer::start()?;
    let client = server.client();
    let owner = client.register_ok("grace")?;
    let intruder = client.register_ok("heidi")?;
    let intruder_device = client.create_device_ok(&intruder.token, None)?;
    let id = device_id(&client.create_device_ok(&owner.token, Some("mine"))?)?;
    let unknown = random_uuid();

    for token in [&intruder.token, &intruder_device.token] {
        for target in [id.as_str(), unknown.as_str()] {
            client.get_device(token, target)?.expect_error_text(404, "Not found")?;
            client
                .rename_device(token, target, &json!({"name": "stolen"}))?
                .expect_error_text(404, "Not found")?;
            client
                .delete_device(token, target)?
                .expect_error_text(404, "Not found")?;
        }
    }
    // The owner's own unknown id is 404 too.
    client
        .get_device(&owner.token, &unknown)?
        .expect_error_text(404, "Not found")?;
    // Nothing happened to the owner's device.
    check_device_response(
        &client.get_device(&owner.token, &id)?.expect_json(200)?,
        &id,
        Some("mine"),
    )?;
    assert_eq!(client.list_devices_ok(&intruder.token)?.len(), 1);
    Ok(())
}

#[test]
fn malformed_device_id_is_400() -> TestResult {
    // Goal: §3.2, §5.3 — a path id that is not a UUID is 400 (JSON error) on GET, PUT and
    // DELETE. Method: several malformed ids.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("ivan")?;
    for bad in [
        "not-a-uuid",
        "1234",
        "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        "0000000000000000000000000000000000",
        "%20",
    ] {
        client.get_device(&user.token, bad)?.expect_error(400)?;
        client
            .rename_device(&user.token, bad, &json!({"name": "x"}))?
            .expect_error(400)?;
        client.delete_device(&user.token, bad)?.expect_error(400)?;
    }
    Ok(())
}

#[test]
fn device_id_forms_are_parsed_leniently() -> TestResult {
    // Goal: §3.2 — path UUIDs are accepted hyphenated in any case, as 32 hex digits and as
    // urn:uuid:, and answered in canonical lower case. Method: GET one device by each form.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("judy")?;
    let id = device_id(&client.create_device_ok(&user.token, None)?)?;
    let simple = id.replace('-', "");
    let forms = [
        id.to_uppercase(),
        simple.clone(),
        simple.to_uppercase(),
        format!("urn:uuid:{id}"),
    ];
    for form in &forms {
        let got = client.get_device(&user.token, form)?.expect_json(200)?;
        assert_eq!(got["deviceId"].as_str(), Some(id.as_str()), "form {form}");
    }
    let renamed = client
        .rename_device(&user.token, &id.to_uppercase(), &json!({"name": "upper"}))?
        .expect_json(200)?;
    assert_eq!(renamed["deviceId"].as_str(), Some(id.as_str()));
    assert_eq!(client.delete_device(&user.token, &simple)?.status, 200);
    let user = client.login_ok("judy", None)?;
    assert!(client.list_devices_ok(&user.token)?.is_empty());
    Ok(())
}

#[test]
fn delete_device_removes_it() -> TestResult {
    // Goal: C26-C27, §5.5 — DELETE answers 200 with an empty body, the list then holds only the
    // other device, and the deleted one is 404 for GET, PUT and a second DELETE. Method: two
    // devices, delete the first.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("kate")?;
    let d1 = device_id(&client.create_device_ok(&user.token, None)?)?;
    let d2 = device_id(&client.create_device_ok(&user.token, Some("My Phone"))?)?;

    let resp = client.delete_device(&user.token, &d1)?;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.body.is_empty(), "delete body should be empty: {resp:?}");

    // The user token from before the deletion died with it (issue 19): a new login.
    let user = client.login_ok("kate", None)?;
    let devices = client.list_devices_ok(&user.token)?;
    assert_eq!(devices.len(), 1);
    check_device_response(&devices[0], &d2, Some("My Phone"))?;
    client
        .get_device(&user.token, &d1)?
        .expect_error_text(404, "Not found")?;
    client
        .rename_device(&user.token, &d1, &json!({"name": "ghost"}))?
        .expect_error_text(404, "Not found")?;
    client
        .delete_device(&user.token, &d1)?
        .expect_error_text(404, "Not found")?;
    Ok(())
}

#[test]
fn deleting_a_device_revokes_its_refresh_tokens() -> TestResult {
    // Goal: §1 cascade, §4.4 — refresh tokens bound to a deleted device (from its creation and
    // from a device-scoped login) are 401 afterwards, and so is the user-scoped session from
    // before the deletion (issue 19); a sibling device's session is unaffected. Method: create
    // two devices, log in with the first, delete it, try every refresh token.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("liam")?;
    let doomed = client.create_device_ok(&user.token, None)?;
    let sibling = client.create_device_ok(&user.token, None)?;
    let doomed_id = device_id(&doomed)?;
    let login = client.login_ok("liam", Some(&doomed_id))?;
    assert_eq!(login.device_id.as_deref(), Some(doomed_id.as_str()));

    assert_eq!(client.delete_device(&user.token, &doomed_id)?.status, 200);
    client
        .refresh(&doomed.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .refresh(&login.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client
        .refresh(&user.refresh_token)?
        .expect_error_text(401, "Unauthorized")?;
    client.refresh(&sibling.refresh_token)?.expect_json(200)?;

    // Logging in with the deleted device's id now falls back to a user-scoped session.
    let again = client.login_ok("liam", Some(&doomed_id))?;
    assert_eq!(again.device_id, None);
    Ok(())
}

#[test]
fn device_limit_is_enforced() -> TestResult {
    // Goal: C30-C31, §5.1 step 3 — with `--auth-max-devices-per-user 3` three creations get 201
    // and the fourth 403 with the exact text; the limit is checked before the signature; after
    // a deletion there is room again. Method: create up to and past the limit.
    let server = TestServer::start_with(&["--auth-max-devices-per-user", "3"])?;
    let client = server.client();
    let user = client.register_ok("mia")?;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(device_id(&client.create_device_ok(&user.token, None)?)?);
    }
    let limit = "Device limit reached. Maximum allowed is 3.";
    client
        .create_device(&user.token, &valid_device_request(0))?
        .expect_error_text(403, limit)?;
    // A bad signature is only discovered after the limit check.
    let keys = DeviceKeys::new(2);
    client
        .create_device(&user.token, &keys.request_with_signature(0, &[7u8; 64]))?
        .expect_error_text(403, limit)?;
    assert_eq!(client.list_devices_ok(&user.token)?.len(), 3);

    // The limit is per user.
    let other = client.register_ok("noah")?;
    client.create_device_ok(&other.token, None)?;

    assert_eq!(client.delete_device(&user.token, &ids[0])?.status, 200);
    let user = client.login_ok("mia", None)?;
    client.create_device_ok(&user.token, None)?;
    client
        .create_device(&user.token, &valid_device_request(0))?
        .expect_error_text(403, limit)?;
    Ok(())
}

#[test]
fn default_device_limit_is_ten() -> TestResult {
    // Goal: §5.1 — the default limit is 10. Method: ten creations pass, the eleventh is 403.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("olga")?;
    for _ in 0..10 {
        client.create_device_ok(&user.token, None)?;
    }
    client
        .create_device(&user.token, &valid_device_request(0))?
        .expect_error_text(403, "Device limit reached. Maximum allowed is 10.")?;
    Ok(())
}

#[test]
fn device_name_is_limited_to_100_characters() -> TestResult {
    // Goal: §5.1/§5.4 with this server's documented difference — a name over 100 characters is
    // 400 (the RI fails with 500) at creation and at rename; exactly 100 characters, counted as
    // characters rather than bytes, is fine. Method: names of 100 and 101 ASCII characters and
    // of 100 two-byte characters.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("pete")?;
    let mut body = valid_device_request(0);
    body["name"] = json!("n".repeat(101));
    client.create_device(&user.token, &body)?.expect_error(400)?;
    assert!(
        client.list_devices_ok(&user.token)?.is_empty(),
        "a rejected creation must leave no device"
    );

    let hundred = "n".repeat(100);
    let id = device_id(&client.create_device_ok(&user.token, Some(&hundred))?)?;
    check_device_response(
        &client.get_device(&user.token, &id)?.expect_json(200)?,
        &id,
        Some(&hundred),
    )?;

    client
        .rename_device(&user.token, &id, &json!({"name": "m".repeat(101)}))?
        .expect_error(400)?;
    client
        .rename_device(&user.token, &id, &json!({"name": "m".repeat(5000)}))?
        .expect_error(400)?;
    check_device_response(
        &client.get_device(&user.token, &id)?.expect_json(200)?,
        &id,
        Some(&hundred),
    )?;

    let wide = "é".repeat(100);
    let renamed = client
        .rename_device(&user.token, &id, &json!({"name": wide}))?
        .expect_json(200)?;
    check_device_response(&renamed, &id, Some(&wide))?;
    Ok(())
}
