//! JSON body handling on every JSON endpoint of this landing (BEHAVIOR §3.2, §3.4 step 6, §16
//! row 4): content type (415), syntax (400) and shape (400, issue 12; the reference's 422) rejections — all with this
//! server's JSON `{"error"}` bodies — accepted content-type variants, and ignored unknown
//! fields. Size limits and chunked bodies are in `limits`.

use serde_json::json;

use crate::common::keys::valid_device_request;
use crate::common::raw::{request_bytes, RawConn};
use crate::common::{random_uuid, Client, TestResult, TestServer, PASSWORD};

/// How a shape rejection's text starts (a syntax rejection's: `Failed to parse`).
const SHAPE: &str = "Failed to deserialize the JSON body";

/// (method, path, needs a token) for each JSON endpoint.
fn json_endpoints(device_id: &str) -> Vec<(&'static str, String, bool)> {
    vec![
        ("POST", "/v1/users".into(), false),
        ("POST", "/v1/sessions".into(), false),
        ("POST", "/v1/sessions/refresh".into(), false),
        ("DELETE", "/v1/sessions".into(), true),
        ("POST", "/v1/devices".into(), true),
        ("PUT", format!("/v1/devices/{device_id}"), true),
    ]
}

fn send(
    client: &Client,
    method: &'static str,
    path: &str,
    token: Option<&str>,
    ct: Option<&str>,
    body: &[u8],
) -> Result<crate::common::Resp, Box<dyn std::error::Error>> {
    let mut req = client.request(method, path).body(body.to_vec());
    if let Some(t) = token {
        req = req.bearer(t);
    }
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    req.send()
}

#[test]
fn wrong_content_type_is_415() -> TestResult {
    // Goal: §3.2 — a JSON endpoint answers 415 (JSON error body) when Content-Type is missing
    // or not JSON, before looking at the body. Method: every endpoint with no content type,
    // text/plain, form encoding and an unrelated `+xml` type, each carrying valid JSON.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("alice")?;
    let device = client
        .create_device_ok(&user.token, None)?
        .device_id
        .ok_or("no device")?;
    for (method, path, auth) in json_endpoints(&device) {
        let token = auth.then_some(user.token.as_str());
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/xml"),
            Some("json"),
        ] {
            let resp = send(
                &client,
                method,
                &path,
                token,
                ct,
                br#"{"username":"x","password":"y","refreshToken":"z"}"#,
            )?;
            assert_eq!(resp.status, 415, "{method} {path} content-type {ct:?}: {resp:?}");
            resp.expect_error(415)?;
        }
        // 415 wins over a broken body.
        send(&client, method, &path, token, Some("text/plain"), b"{{{")?.expect_error(415)?;
    }
    Ok(())
}

#[test]
fn json_syntax_errors_are_400() -> TestResult {
    // Goal: §3.2 — syntactically invalid JSON is 400 on every JSON endpoint: truncated, empty,
    // trailing garbage, invalid UTF-8, not JSON at all. Method: each endpoint × each body.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("bob")?;
    let device = client
        .create_device_ok(&user.token, None)?
        .device_id
        .ok_or("no device")?;
    let bodies: [&[u8]; 6] = [
        b"{\"username\":",
        b"",
        br#"{"username":"a","password":"b"} trailing"#,
        b"{\"username\":\"\xff\xfe\"}",
        b"hello",
        b"{'single':'quotes'}",
    ];
    for (method, path, auth) in json_endpoints(&device) {
        let token = auth.then_some(user.token.as_str());
        for body in bodies {
            let resp = send(&client, method, &path, token, Some("application/json"), body)?;
            assert_eq!(
                resp.status,
                400,
                "{method} {path} body {:?}: {resp:?}",
                String::from_utf8_lossy(body)
            );
            resp.expect_error(400)?;
        }
    }
    // Nothing above registered anything or changed the device.
    assert_eq!(client.list_devices_ok(&user.token)?.len(), 1);
    Ok(())
}

#[test]
fn json_shape_errors_are_400() -> TestResult {
    // Goal: §3.2, issue 12 — valid JSON of the wrong shape (missing required fields, wrong
    // types, not an object) is 400 (the reference answers 422) with a JSON error body whose
    // text tells it from a syntax error. Method: per endpoint, a few wrong shapes.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("carol")?;
    let cases = vec![
        ("POST", "/v1/users", json!({"username": "dave"})),
        ("POST", "/v1/users", json!({"password": PASSWORD})),
        ("POST", "/v1/users", json!({"username": 12, "password": PASSWORD})),
        ("POST", "/v1/users", json!({"username": "dave", "password": null})),
        ("POST", "/v1/users", json!(null)),
        ("POST", "/v1/users", json!([])),
        // serde would read the struct from an array, field by field: not an object, so 400.
        ("POST", "/v1/users", json!(["dave", PASSWORD])),
        ("POST", "/v1/users", json!("dave")),
        ("POST", "/v1/sessions", json!({"username": "carol"})),
        (
            "POST",
            "/v1/sessions",
            json!({"username": "carol", "password": PASSWORD, "deviceId": 5}),
        ),
        (
            "POST",
            "/v1/sessions",
            json!({"username": ["carol"], "password": PASSWORD}),
        ),
        ("POST", "/v1/sessions/refresh", json!({})),
        ("POST", "/v1/sessions/refresh", json!({"refreshToken": null})),
        ("POST", "/v1/sessions/refresh", json!({"refreshToken": {"t": 1}})),
    ];
    for (method, path, body) in cases {
        let resp = client.request(method, path).json(&body).send()?;
        assert_eq!(resp.status, 400, "{method} {path} {body}: {resp:?}");
        let text = resp.expect_error(400)?;
        assert!(text.starts_with(SHAPE), "{method} {path} {body}: {text}");
    }
    client
        .delete("/v1/sessions")
        .bearer(&user.token)
        .json(&json!({"refreshToken": 1}))
        .send()?
        .expect_error(400)?;
    client
        .post("/v1/devices")
        .bearer(&user.token)
        .json(&json!({}))
        .send()?
        .expect_error(400)?;
    client
        .put(&format!("/v1/devices/{}", random_uuid()))
        .bearer(&user.token)
        .json(&json!({"name": true}))
        .send()?
        .expect_error(400)?;
    // The failed registrations created nobody.
    client.login("dave", PASSWORD, None)?.expect_error(401)?;
    Ok(())
}

#[test]
fn json_content_type_variants_are_accepted() -> TestResult {
    // Goal: §3.2 — `application/json` with parameters (`; charset=utf-8`) and `application/*+json`
    // are accepted. Method: register, log in and create a device with such types.
    let server = TestServer::start()?;
    let client = server.client();
    let body = json!({"username": "erin", "password": PASSWORD}).to_string();
    let resp = send(
        &client,
        "POST",
        "/v1/users",
        None,
        Some("application/json; charset=utf-8"),
        body.as_bytes(),
    )?;
    resp.expect_json(201)?;
    let resp = send(
        &client,
        "POST",
        "/v1/sessions",
        None,
        Some("application/vnd.obscura+json"),
        body.as_bytes(),
    )?;
    let login = crate::common::Auth::from_json(&resp.expect_json(200)?)?;
    let resp = send(
        &client,
        "POST",
        "/v1/sessions",
        None,
        Some("application/json;charset=UTF-8"),
        body.as_bytes(),
    )?;
    resp.expect_json(200)?;
    let device_body = valid_device_request(1).to_string();
    let resp = send(
        &client,
        "POST",
        "/v1/devices",
        Some(&login.token),
        Some("application/json; charset=utf-8"),
        device_body.as_bytes(),
    )?;
    resp.expect_json(201)?;
    Ok(())
}

#[test]
fn unknown_fields_are_ignored() -> TestResult {
    // Goal: §3.2 — unknown JSON fields are ignored everywhere. Method: extra fields on
    // register, login, refresh and logout.
    let server = TestServer::start()?;
    let client = server.client();
    let reg = client
        .post("/v1/users")
        .json(&json!({"username": "frank", "password": PASSWORD, "admin": true, "nested": {"a": [1]}}))
        .send()?;
    let reg = crate::common::Auth::from_json(&reg.expect_json(201)?)?;
    let login = client
        .post("/v1/sessions")
        .json(&json!({"username": "frank", "password": PASSWORD, "remember": "yes"}))
        .send()?;
    let login = crate::common::Auth::from_json(&login.expect_json(200)?)?;
    client
        .post("/v1/sessions/refresh")
        .json(&json!({"refreshToken": reg.refresh_token, "x": 1}))
        .send()?
        .expect_json(200)?;
    let resp = client
        .delete("/v1/sessions")
        .bearer(&login.token)
        .json(&json!({"refreshToken": login.refresh_token, "everywhere": true}))
        .send()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    client.refresh(&login.refresh_token)?.expect_error(401)?;
    Ok(())
}

#[test]
fn body_framing_errors_get_a_4xx() -> TestResult {
    // Goal: invariant 3 of the design — malformed framing gets a 4xx JSON error, never a hang
    // or a silent close: a non-numeric Content-Length, two conflicting Content-Lengths, and a
    // broken chunked encoding. Method: raw requests on fresh connections.
    let server = TestServer::start()?;
    let cases: Vec<Vec<u8>> = vec![
        request_bytes(
            "POST",
            "/v1/users",
            &[("Content-Type", "application/json"), ("Content-Length", "abc")],
            Some(b"{}"),
        ),
        request_bytes(
            "POST",
            "/v1/users",
            &[
                ("Content-Type", "application/json"),
                ("Content-Length", "2"),
                ("Content-Length", "3"),
            ],
            Some(b"{}"),
        ),
        request_bytes(
            "POST",
            "/v1/users",
            &[("Content-Type", "application/json"), ("Content-Length", "-1")],
            Some(b"{}"),
        ),
        request_bytes(
            "POST",
            "/v1/users",
            &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
            Some(b"zz\r\n{}\r\n0\r\n\r\n"),
        ),
    ];
    for bytes in cases {
        let mut conn = RawConn::connect(server.main_port)?;
        conn.send(&bytes)?;
        let resp = conn.read_response()?;
        assert!(
            (400..500).contains(&resp.status),
            "{:?}: {resp:?}",
            String::from_utf8_lossy(&bytes)
        );
        resp.expect_error(resp.status)?;
    }
    Ok(())
}
