//! HTTP/1.1 behaviour on the main port (BEHAVIOR §2 routing notes, §3.1, and the design's
//! invariant 3): keep-alive, in-order answers to pipelined requests, `Connection: close` and
//! HTTP/1.0, HEAD, 404 and 405-with-Allow (before authentication), x-request-id echo and
//! generation, malformed input answered with 400 and a closed connection, and idle
//! connections that are not kept forever.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::common::raw::{json_post, request_bytes, Closed, RawConn};
use crate::common::{random_uuid, uuid_version, Resp, TestResult, TestServer, PASSWORD};

#[test]
fn keep_alive_serves_several_requests_on_one_connection() -> TestResult {
    // Goal: a connection is reused for many requests of different kinds, errors included.
    // Method: one TcpStream; register, list devices, hit a 404 and a 405, fetch the document,
    // each answered before the next is sent.
    let server = TestServer::start()?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&json_post(
        "/v1/users",
        &json!({"username": "keepalive", "password": PASSWORD}).to_string(),
        &[],
    ))?;
    let reg = conn.read_response()?.expect_json(201)?;
    let token = reg["token"].as_str().ok_or("no token")?.to_string();
    let auth = format!("Bearer {token}");
    for _ in 0..3 {
        conn.send(&request_bytes("GET", "/v1/devices", &[("Authorization", &auth)], None))?;
        assert_eq!(conn.read_response()?.expect_json(200)?, json!({"devices": []}));
        conn.send(&request_bytes("GET", "/no/such/route", &[], None))?;
        conn.read_response()?.expect_error(404)?;
        conn.send(&request_bytes("GET", "/v1/sessions", &[], None))?;
        conn.read_response()?.expect_error(405)?;
        conn.send(&request_bytes("GET", "/v1/devices", &[], None))?;
        conn.read_response()?.expect_error(401)?;
        conn.send(&request_bytes("GET", "/openapi.yaml", &[], None))?;
        assert_eq!(conn.read_response()?.status, 200);
    }
    assert_eq!(
        conn.wait_closed(Duration::from_millis(200))?,
        Closed::StillOpen,
        "keep-alive connection was closed"
    );
    Ok(())
}

#[test]
fn pipelined_requests_are_answered_in_order() -> TestResult {
    // Goal: several requests written at once are answered in request order, even when an
    // early one (a login: a password hash) takes longer than the ones after it. Method: one
    // write of six requests with distinct x-request-ids; read six responses.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("pipeline")?;
    let auth = format!("Bearer {}", user.token);
    let login = json!({"username": "pipeline", "password": PASSWORD}).to_string();
    let mut batch = Vec::new();
    batch.extend(json_post("/v1/sessions", &login, &[("X-Request-Id", "p1")]));
    batch.extend(request_bytes(
        "GET",
        "/v1/devices",
        &[("Authorization", &auth), ("X-Request-Id", "p2")],
        None,
    ));
    batch.extend(request_bytes("GET", "/nope", &[("X-Request-Id", "p3")], None));
    batch.extend(json_post(
        "/v1/users",
        &json!({"username": "second", "password": "short"}).to_string(),
        &[("X-Request-Id", "p4")],
    ));
    batch.extend(json_post(
        "/v1/users",
        &json!({"username": "third", "password": PASSWORD}).to_string(),
        &[("X-Request-Id", "p5")],
    ));
    batch.extend(request_bytes("GET", "/openapi.yaml", &[("X-Request-Id", "p6")], None));
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&batch)?;
    let expected = [
        ("p1", 200),
        ("p2", 200),
        ("p3", 404),
        ("p4", 400),
        ("p5", 201),
        ("p6", 200),
    ];
    for (id, status) in expected {
        let resp = conn.read_response()?;
        assert_eq!(resp.header("x-request-id"), Some(id), "out of order: {resp:?}");
        assert_eq!(resp.status, status, "{id}: {resp:?}");
    }
    Ok(())
}

#[test]
fn pipelined_bodies_split_across_writes() -> TestResult {
    // Goal: request boundaries are found in the byte stream, not in the writes: two
    // registrations written as one buffer cut at arbitrary points are both served, in order.
    // Method: concatenate, write in 5-byte pieces with small pauses.
    let server = TestServer::start()?;
    let mut all = json_post(
        "/v1/users",
        &json!({"username": "split_one", "password": PASSWORD}).to_string(),
        &[("X-Request-Id", "s1")],
    );
    all.extend(json_post(
        "/v1/users",
        &json!({"username": "split_two", "password": PASSWORD}).to_string(),
        &[("X-Request-Id", "s2")],
    ));
    let mut conn = RawConn::connect(server.main_port)?;
    for piece in all.chunks(5) {
        conn.send(piece)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    for id in ["s1", "s2"] {
        let resp = conn.read_response()?;
        assert_eq!(resp.header("x-request-id"), Some(id));
        resp.expect_json(201)?;
    }
    Ok(())
}

#[test]
fn connection_close_and_http_1_0_end_the_connection() -> TestResult {
    // Goal: `Connection: close` and an HTTP/1.0 request without keep-alive are answered and
    // then the server closes the connection. Method: raw requests, then wait for the end.
    let server = TestServer::start()?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[("Connection", "close")], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    assert_ne!(conn.wait_closed(Duration::from_secs(5))?, Closed::StillOpen);

    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(b"GET /openapi.yaml HTTP/1.0\r\n\r\n")?;
    let resp = conn.read_response()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(resp.text().contains("openapi: 3.0.3"));
    assert_ne!(conn.wait_closed(Duration::from_secs(5))?, Closed::StillOpen);
    Ok(())
}

#[test]
fn head_on_a_get_route_has_no_body() -> TestResult {
    // Goal: §2 — HEAD on a GET-only route behaves like GET without a body. Method: HEAD
    // /openapi.yaml pipelined with a GET; the GET's response must follow the HEAD's head
    // directly (no body bytes in between).
    let server = TestServer::start()?;
    let mut conn = RawConn::connect(server.main_port)?;
    let mut batch = request_bytes("HEAD", "/openapi.yaml", &[("X-Request-Id", "h1")], None);
    batch.extend(request_bytes("GET", "/nope", &[("X-Request-Id", "h2")], None));
    conn.send(&batch)?;
    let head = conn.read_head_response()?;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("x-request-id"), Some("h1"));
    let next = conn.read_response()?;
    assert_eq!(
        next.header("x-request-id"),
        Some("h2"),
        "HEAD response carried a body: {next:?}"
    );
    next.expect_error(404)?;
    Ok(())
}

#[test]
fn unknown_routes_are_404_json() -> TestResult {
    // Goal: §2 with this server's JSON bodies — unknown paths are 404 `{"error": ...}` with an
    // x-request-id, whatever the method, and before authentication. Method: several paths.
    let server = TestServer::start()?;
    let client = server.client();
    let id = random_uuid();
    let paths = [
        "/",
        "/v1",
        "/v2/users",
        "/v1/user",
        "/v1/devices/x/y",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/v1/sessions/refresh/extra",
    ];
    for path in paths {
        for method in ["GET", "POST", "DELETE"] {
            let resp = client.request(method, path).send()?;
            assert_eq!(resp.status, 404, "{method} {path}: {resp:?}");
            resp.expect_error(404)?;
            assert!(resp.header("x-request-id").is_some());
        }
    }
    let resp = client.get(&format!("/v1/devices/{id}/name")).send()?;
    resp.expect_error(404)?;
    Ok(())
}

fn allow_set(resp: &Resp) -> BTreeSet<String> {
    resp.header_all("allow")
        .iter()
        .flat_map(|v| v.split(','))
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

#[test]
fn wrong_method_is_405_with_allow() -> TestResult {
    // Goal: §2 — a known path with a wrong method is 405 with an Allow header listing the
    // route's methods (HEAD/OPTIONS may be added), with a JSON error body, before
    // authentication. Method: each route with a method it lacks, without a token.
    let server = TestServer::start()?;
    let client = server.client();
    let device_path = format!("/v1/devices/{}", random_uuid());
    let cases: Vec<(&str, &str, &[&str])> = vec![
        ("GET", "/v1/users", &["POST"]),
        ("DELETE", "/v1/users", &["POST"]),
        ("GET", "/v1/sessions", &["POST", "DELETE"]),
        ("PUT", "/v1/sessions", &["POST", "DELETE"]),
        ("GET", "/v1/sessions/refresh", &["POST"]),
        ("DELETE", "/v1/sessions/refresh", &["POST"]),
        ("PUT", "/v1/devices", &["GET", "POST"]),
        ("DELETE", "/v1/devices", &["GET", "POST"]),
        ("PATCH", "/v1/devices", &["GET", "POST"]),
        ("POST", &device_path, &["GET", "PUT", "DELETE"]),
        ("PATCH", &device_path, &["GET", "PUT", "DELETE"]),
        ("POST", "/openapi.yaml", &["GET"]),
        ("DELETE", "/openapi.yaml", &["GET"]),
    ];
    for (method, path, allowed) in cases {
        let resp = client.request(method, path).send()?;
        assert_eq!(resp.status, 405, "{method} {path}: {resp:?}");
        resp.expect_error(405)?;
        assert!(resp.header("x-request-id").is_some());
        let got = allow_set(&resp);
        for m in allowed {
            assert!(got.contains(*m), "{method} {path}: Allow {got:?} lacks {m}");
        }
        for m in &got {
            assert!(
                allowed.contains(&m.as_str()) || m == "HEAD" || m == "OPTIONS",
                "{method} {path}: Allow {got:?} has extra {m}"
            );
        }
    }
    Ok(())
}

#[test]
fn request_id_is_echoed_on_every_kind_of_response() -> TestResult {
    // Goal: Q166, §3.1 — a client's x-request-id comes back unchanged on successes and on
    // every kind of error this landing produces. Method: one request per status.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("echo")?;
    let rid = "test-request-id-123";
    let reqs: Vec<(u16, crate::common::client::Req)> = vec![
        (
            201,
            client
                .post("/v1/users")
                .json(&json!({"username": "echo2", "password": PASSWORD})),
        ),
        (200, client.get("/v1/devices").bearer(&user.token)),
        (200, client.get("/openapi.yaml")),
        (
            400,
            client
                .post("/v1/users")
                .json(&json!({"username": "", "password": PASSWORD})),
        ),
        (
            400,
            client
                .post("/v1/users")
                .header("content-type", "application/json")
                .body("{"),
        ),
        (401, client.get("/v1/devices")),
        (404, client.get("/nowhere")),
        (
            404,
            client
                .get(&format!("/v1/devices/{}", random_uuid()))
                .bearer(&user.token),
        ),
        (405, client.get("/v1/users")),
        (
            409,
            client
                .post("/v1/users")
                .json(&json!({"username": "echo", "password": PASSWORD})),
        ),
        (415, client.post("/v1/users").body("x")),
        (400, client.post("/v1/users").json(&json!({}))),
    ];
    for (status, req) in reqs {
        let resp = req.header("x-request-id", rid).send()?;
        assert_eq!(resp.status, status, "{resp:?}");
        assert_eq!(resp.header("x-request-id"), Some(rid), "{resp:?}");
        assert_eq!(
            resp.header_all("x-request-id").len(),
            1,
            "one x-request-id only: {resp:?}"
        );
    }
    Ok(())
}

#[test]
fn request_id_is_generated_when_absent_or_unusable() -> TestResult {
    // Goal: Q167 and this server's rule — 1 to 128 visible ASCII bytes are echoed; no header,
    // an empty one, a longer one (129 or 200 bytes) or one with a space gets a fresh UUID v4,
    // different each time. Method: raw requests so the exact header bytes are sent.
    let server = TestServer::start()?;
    let visible: String = (0x21u8..=0x7e).map(char::from).collect(); // 94 characters
    let max = format!("{visible}{}", &visible[..34]); // 128
    assert_eq!(max.len(), 128);
    let mut seen = BTreeSet::new();
    let mut conn = RawConn::connect(server.main_port)?;
    for echo in [
        "a",
        max.as_str(),
        "0",
        "\"quoted\"",
        "550e8400-e29b-41d4-a716-446655440000",
    ] {
        conn.send(&request_bytes("GET", "/nope", &[("X-Request-Id", echo)], None))?;
        let resp = conn.read_response()?;
        assert_eq!(resp.header("x-request-id"), Some(echo), "{resp:?}");
    }
    let long129 = format!("{max}x");
    let long200 = "r".repeat(200);
    let cases: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some(&long129),
        Some(&long200),
        Some("has space"),
        Some("tab\there"),
        Some("caf\u{e9}"),
    ];
    for case in cases {
        let headers: Vec<(&str, &str)> = case.map(|v| vec![("X-Request-Id", v)]).unwrap_or_default();
        conn.send(&request_bytes("GET", "/nope", &headers, None))?;
        let resp = conn.read_response()?;
        let id = resp
            .header("x-request-id")
            .ok_or_else(|| format!("no x-request-id for {case:?}: {resp:?}"))?;
        assert_eq!(
            uuid_version(id),
            Some(4),
            "{case:?} should get a fresh UUID v4, got {id:?}"
        );
        assert!(seen.insert(id.to_string()), "request id {id} was generated twice");
    }
    // Generated ids also appear on successes and differ per request.
    let client = server.client();
    let a = client.get("/openapi.yaml").send()?;
    let b = client.get("/openapi.yaml").send()?;
    let (a, b) = (
        a.header("x-request-id").ok_or("none")?,
        b.header("x-request-id").ok_or("none")?,
    );
    assert_ne!(a, b);
    assert_eq!(uuid_version(a), Some(4));
    Ok(())
}

#[test]
fn garbage_is_400_and_the_connection_is_closed() -> TestResult {
    // Goal: invariant 3 — bytes that are not HTTP get a 400 JSON error and the connection is
    // then closed, not left hanging. Method: several malformed heads, one connection each.
    let server = TestServer::start()?;
    let cases: [&[u8]; 8] = [
        b"\x00\x01\x02\x03garbage\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET /openapi.yaml HTTP/1.1\r\nNoColonHere\r\n\r\n",
        b"GET /openapi.yaml HTTP/1.1\r\nBad Header: x\r\n\r\n",
        b"GET /openapi.yaml FTP/1.1\r\n\r\n",
        b"GET /openapi.yaml HTTP/1.1\r\nX-Nul: a\x00b\r\n\r\n",
        b"\xff\xfe\xfd\xfc\r\n\r\n",
    ];
    for bytes in cases {
        let mut conn = RawConn::connect(server.main_port)?;
        conn.send(bytes)?;
        let resp = conn
            .read_response()
            .map_err(|e| format!("{:?}: {e}", String::from_utf8_lossy(bytes)))?;
        assert_eq!(resp.status, 400, "{:?}: {resp:?}", String::from_utf8_lossy(bytes));
        resp.expect_error(400)?;
        let closed = conn.wait_closed(Duration::from_secs(5))?;
        assert_ne!(
            closed,
            Closed::StillOpen,
            "{:?}: connection left open",
            String::from_utf8_lossy(bytes)
        );
    }
    // Garbage without any line end at all is bounded by the head limits, not waited on forever.
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&[b'z'; 64 * 1024])?;
    let resp = conn.read_response()?;
    assert!((400..500).contains(&resp.status), "{resp:?}");
    resp.expect_error(resp.status)?;
    // The server is still fine.
    assert_eq!(server.client().get("/openapi.yaml").send()?.status, 200);
    Ok(())
}

#[test]
fn idle_connections_are_closed() -> TestResult {
    // Goal: connections are not kept forever: an idle keep-alive connection is closed after
    // `--http-keepalive-timeout-secs`, and a connection that never sends a byte is closed
    // after the head timeout (a 408 before closing is allowed). Method: keep-alive 1 s, head
    // timeout 500 ms; wait for the end of each connection.
    let server = TestServer::start_with(&[
        "--http-keepalive-timeout-secs",
        "1",
        "--http-request-head-timeout-ms",
        "500",
    ])?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    let closed = conn.wait_closed(Duration::from_secs(6))?;
    assert_ne!(closed, Closed::StillOpen, "idle keep-alive connection was not closed");
    if !conn.pending().is_empty() {
        conn.read_response()?.expect_error(408)?;
    }

    let mut silent = RawConn::connect(server.main_port)?;
    let closed = silent.wait_closed(Duration::from_secs(6))?;
    assert_ne!(closed, Closed::StillOpen, "silent connection was not closed");
    if !silent.pending().is_empty() {
        silent.read_response()?.expect_error(408)?;
    }
    Ok(())
}

#[test]
fn expect_continue_is_handled() -> TestResult {
    // Goal: a client that sends `Expect: 100-continue` is not stuck: the server either sends
    // `100 Continue` or simply reads the body, and the request is served. Method: send the
    // head, pause, send the body, read the final response (interim responses are skipped).
    let server = TestServer::start()?;
    let body = json!({"username": "expecting", "password": PASSWORD}).to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
            ("Expect", "100-continue"),
        ],
        None,
    ))?;
    std::thread::sleep(Duration::from_millis(200));
    conn.send(body.as_bytes())?;
    conn.read_response()?.expect_json(201)?;
    Ok(())
}

#[test]
fn query_strings_do_not_affect_routing() -> TestResult {
    // Goal: the path alone selects the route. Method: list devices and fetch the document with
    // query strings.
    let server = TestServer::start()?;
    let client = server.client();
    let user = client.register_ok("query")?;
    client
        .get("/v1/devices?page=2&x")
        .bearer(&user.token)
        .send()?
        .expect_json(200)?;
    assert_eq!(client.get("/openapi.yaml?download=1").send()?.status, 200);
    Ok(())
}

#[test]
fn unread_bodies_do_not_leak_into_the_next_request() -> TestResult {
    // Goal: when a request is rejected before its body is read (415, 401, 404, 405) the body
    // is skipped or the connection closed; its bytes are never parsed as the next request.
    // Method: each rejected request carries a body that is itself a complete request (a
    // smuggling attempt); it is pipelined with a marked request. After the expected rejection,
    // the next response, if any, must be the marked one — never an answer to the body.
    let server = TestServer::start()?;
    let smuggled = b"GET /v1/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled\r\n\r\n";
    let len = smuggled.len().to_string();
    let chunked_smuggle = {
        let mut c = format!("{:x}\r\n", smuggled.len()).into_bytes();
        c.extend_from_slice(smuggled);
        c.extend_from_slice(b"\r\n0\r\n\r\n");
        c
    };
    // (method, path, content type, chunked, expected status)
    let cases = [
        ("POST", "/v1/users", "text/plain", false, 415),
        ("POST", "/v1/devices", "application/json", false, 401),
        ("POST", "/nope", "application/json", false, 404),
        ("PUT", "/v1/users", "application/json", false, 405),
        ("POST", "/v1/users", "application/json", false, 400),
        ("POST", "/v1/users", "text/plain", true, 415),
        ("POST", "/v1/devices", "application/json", true, 401),
    ];
    let cases = cases.map(|(method, path, ct, chunked, status)| {
        let what = format!("{method} {path} {ct} chunked={chunked}");
        let bytes = if chunked {
            let headers = [("Content-Type", ct), ("Transfer-Encoding", "chunked")];
            request_bytes(method, path, &headers, Some(&chunked_smuggle))
        } else {
            request_bytes(
                method,
                path,
                &[("Content-Type", ct), ("Content-Length", &len)],
                Some(smuggled),
            )
        };
        (what, bytes, status)
    });
    for (what, bytes, status) in cases {
        let mut conn = RawConn::connect(server.main_port)?;
        let mut batch = bytes;
        batch.extend(request_bytes("GET", "/nope", &[("X-Request-Id", "marked")], None));
        conn.send(&batch)?;
        let first = conn.read_response()?;
        assert_eq!(first.status, status, "{what}: {first:?}");
        first.expect_error(status)?;
        assert_ne!(first.header("x-request-id"), Some("smuggled"), "{what}: {first:?}");
        match conn.read_response() {
            Ok(next) => {
                assert_eq!(
                    next.header("x-request-id"),
                    Some("marked"),
                    "{what}: the body was parsed as a request: {next:?}"
                );
                next.expect_error(404)?;
            }
            Err(e) => {
                assert!(
                    !e.to_string().contains("timed out"),
                    "{what}: connection left hanging: {e}"
                );
                // Closing instead of skipping is allowed, as long as nothing else was sent.
                assert!(
                    conn.pending().is_empty(),
                    "{what}: stray bytes {:?}",
                    String::from_utf8_lossy(conn.pending())
                );
            }
        }
    }
    Ok(())
}

#[test]
fn content_length_with_chunked_does_not_desynchronise() -> TestResult {
    // Goal: a request with both Content-Length and Transfer-Encoding: chunked (RFC 9112 §6.3:
    // reject, or use chunked and close) never lets the bytes after the chunked body be read
    // as another request. Method: a chunked registration whose Content-Length covers a
    // smuggled request as well; then check what, if anything, follows the first answer.
    let server = TestServer::start()?;
    let body = json!({"username": "te_cl", "password": PASSWORD}).to_string();
    let mut chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(b"GET /v1/users HTTP/1.1\r\nHost: x\r\nX-Request-Id: smuggled\r\n\r\n");
    let len = chunked.len().to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &len),
            ("Transfer-Encoding", "chunked"),
        ],
        Some(&chunked),
    ))?;
    let first = conn.read_response()?;
    assert!(first.status == 400 || first.status == 201, "{first:?}");
    if first.status == 400 {
        first.expect_error(400)?;
    }
    // Whatever the first answer, the smuggled request must not be answered.
    let _ = conn.wait_closed(Duration::from_millis(500))?;
    let rest = String::from_utf8_lossy(conn.pending()).into_owned();
    assert!(
        !rest.contains("smuggled"),
        "the smuggled request was answered: {rest:?}"
    );
    Ok(())
}

#[test]
fn long_pipelines_are_answered_completely_and_in_order() -> TestResult {
    // Goal: a client may pipeline many requests; all are answered, in order, without the
    // server dropping or reordering any (back-pressure, not loss). Method: 300 requests in one
    // write, alternating two routes, read back with their ids.
    let server = TestServer::start()?;
    let mut batch = Vec::new();
    for i in 0..300 {
        let id = format!("req-{i}");
        let path = if i % 2 == 0 { "/nope" } else { "/v1/devices" };
        batch.extend(request_bytes("GET", path, &[("X-Request-Id", &id)], None));
    }
    let mut conn = RawConn::connect(server.main_port)?;
    let mut writer = conn.stream.try_clone()?;
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &batch));
    for i in 0..300 {
        let resp = conn.read_response()?;
        assert_eq!(
            resp.header("x-request-id"),
            Some(format!("req-{i}").as_str()),
            "{resp:?}"
        );
        assert_eq!(resp.status, if i % 2 == 0 { 404 } else { 401 }, "{resp:?}");
    }
    sender.join().map_err(|_| "writer panicked")??;
    Ok(())
}

#[test]
fn many_concurrent_connections_are_served() -> TestResult {
    // Goal: connections spread over the shards are all served: 200 connections open at once,
    // each gets an answer to its own request. Method: open all, then write on each, then read
    // each.
    let server = TestServer::start()?;
    let mut conns = Vec::new();
    for _ in 0..200 {
        conns.push(RawConn::connect(server.main_port)?);
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        conn.send(&request_bytes(
            "GET",
            "/nope",
            &[("X-Request-Id", &format!("c{i}"))],
            None,
        ))?;
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        let resp = conn.read_response()?;
        assert_eq!(resp.header("x-request-id"), Some(format!("c{i}").as_str()));
        resp.expect_error(404)?;
    }
    Ok(())
}

#[test]
fn overlong_request_target_is_refused() -> TestResult {
    // Goal: a request line longer than the head limit is refused with a JSON 414 or 431, not
    // a hang or a silent close. Method: a 20 000-byte path.
    let server = TestServer::start()?;
    let path = format!("/v1/devices/{}", "a".repeat(20_000));
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", &path, &[], None))?;
    let resp = conn.read_response()?;
    assert!(resp.status == 414 || resp.status == 431, "{resp:?}");
    resp.expect_error(resp.status)?;
    Ok(())
}

#[test]
fn early_rejections_do_not_wait_for_the_body() -> TestResult {
    // Goal: a request refused before its body matters (415, 401, 404, 405) is answered as soon
    // as its head is read — the server must not hold the answer back until it has drained or
    // given up on a body the client has not sent yet (clients using `Expect: 100-continue`,
    // or that read before writing, would stall). Method: heads declaring a 100-byte body that
    // never comes; time each answer against a bound far above a normal response time.
    let server = TestServer::start()?;
    let json_ct = ("Content-Type", "application/json");
    let cases: Vec<(&str, &str, (&str, &str), u16)> = vec![
        ("POST", "/v1/users", ("Content-Type", "text/plain"), 415),
        ("POST", "/v1/devices", json_ct, 401),
        ("POST", "/nope", json_ct, 404),
        ("PUT", "/v1/users", json_ct, 405),
    ];
    for (method, path, ct, status) in cases {
        let mut conn = RawConn::connect(server.main_port)?;
        let started = std::time::Instant::now();
        conn.send(&request_bytes(method, path, &[ct, ("Content-Length", "100")], None))?;
        let resp = conn.read_response()?;
        let waited = started.elapsed();
        resp.expect_error(status)?;
        assert!(
            waited < Duration::from_millis(1500),
            "{method} {path}: the {status} took {waited:?}"
        );
    }
    Ok(())
}

#[test]
fn header_names_are_case_insensitive_and_values_trimmed() -> TestResult {
    // Goal: RFC 9110 §5.1/§5.5 — field names match regardless of case and optional whitespace
    // around a value is not part of it. Method: a raw registration and device listing with
    // upper-case names and padded values.
    let server = TestServer::start()?;
    let body = json!({"username": "shouty", "password": PASSWORD}).to_string();
    let len = body.len().to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[
            ("CONTENT-TYPE", "   application/json  "),
            ("CONTENT-LENGTH", &len),
            ("X-REQUEST-ID", "  loud  "),
        ],
        Some(body.as_bytes()),
    ))?;
    let resp = conn.read_response()?;
    assert_eq!(resp.header("x-request-id"), Some("loud"), "{resp:?}");
    let token = resp.expect_json(201)?["token"].as_str().ok_or("no token")?.to_string();
    conn.send(&request_bytes(
        "GET",
        "/v1/devices",
        &[("AUTHORIZATION", &format!("Bearer {token}  "))],
        None,
    ))?;
    conn.read_response()?.expect_json(200)?;
    Ok(())
}

#[test]
fn absolute_form_request_target_is_routed_by_path() -> TestResult {
    // Goal: RFC 9112 §3.2.2 — "a server MUST accept the absolute-form in requests"; the path
    // of `http://host/path` selects the route as the origin-form would. Method: fetch the
    // document and list devices with absolute-form targets.
    let server = TestServer::start()?;
    let token = server.client().register_ok("absolute")?.token;
    let mut conn = RawConn::connect(server.main_port)?;
    let target = format!("http://127.0.0.1:{}/openapi.yaml", server.main_port);
    conn.send(&request_bytes("GET", &target, &[], None))?;
    let resp = conn.read_response()?;
    assert_eq!(resp.status, 200, "{resp:?}");
    let target = format!("http://127.0.0.1:{}/v1/devices", server.main_port);
    conn.send(&request_bytes(
        "GET",
        &target,
        &[("Authorization", &format!("Bearer {token}"))],
        None,
    ))?;
    conn.read_response()?.expect_json(200)?;
    Ok(())
}
