//! Bounds on what a client may send (BEHAVIOR §3.6-3.7 and this server's own HTTP limits):
//! header bytes and count (431), body size (413, answered even while the client keeps
//! sending), chunked bodies (accepted, and bounded), and the timeouts that give 408 — slow
//! request heads, slow bodies against the standard and the global timer.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::raw::{json_post, request_bytes, Closed, RawConn};
use crate::common::{Resp, TestResult, TestServer, PASSWORD};

/// Sends `head` then `body` on a writer thread (ignoring write errors: the server may stop
/// reading once it has answered), while this thread reads the response.
fn send_streaming(port: u16, head: Vec<u8>, body: Vec<u8>, chunk: usize) -> Result<Resp, Box<dyn std::error::Error>> {
    let mut conn = RawConn::connect(port)?;
    conn.send(&head)?;
    let mut writer = conn.stream.try_clone()?;
    let sender = std::thread::spawn(move || {
        for part in body.chunks(chunk.max(1)) {
            if writer.write_all(part).is_err() {
                return;
            }
        }
        let _ = writer.flush();
    });
    let resp = conn.read_response();
    // The writer stops on its own: either it finished or the server closed the socket.
    let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    resp
}

/// A registration body padded with an ignored field to exactly `len` bytes.
fn registration_body(username: &str, len: usize) -> Vec<u8> {
    let base = json!({"username": username, "password": PASSWORD, "pad": ""}).to_string();
    let pad = len.saturating_sub(base.len());
    let body = json!({"username": username, "password": PASSWORD, "pad": "x".repeat(pad)})
        .to_string()
        .into_bytes();
    assert_eq!(body.len(), len.max(base.len()));
    body
}

fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn body_at_the_default_limit_is_accepted_and_one_byte_more_is_413() -> TestResult {
    // Goal: §3.6 — JSON bodies up to 2 MiB (2 097 152 bytes) are read; one byte more is 413
    // with a JSON error. Method: a registration padded to exactly the limit (201: a long,
    // ignored field), then one padded one byte beyond it.
    let server = TestServer::start()?;
    let client = server.client();
    let limit = 2 * 1024 * 1024;
    let resp = client
        .post("/v1/users")
        .header("content-type", "application/json")
        .body(registration_body("at_limit", limit))
        .send()?;
    resp.expect_json(201)?;

    let body = registration_body("over_limit", limit + 1);
    let head = request_bytes(
        "POST",
        "/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
        ],
        None,
    );
    let resp = send_streaming(server.main_port, head, body, 64 * 1024)?;
    resp.expect_error(413)?;
    client.login("over_limit", PASSWORD, None)?.expect_error(401)?;
    Ok(())
}

#[test]
fn oversized_body_gets_413_even_while_the_client_keeps_sending() -> TestResult {
    // Goal: with `--http-body-bytes-max 4096`, a client that declares and then sends 8 MiB
    // receives a complete 413 response (not a reset that destroys it), on every endpoint kind.
    // Method: stream the whole body from a writer thread while reading the answer.
    let server = TestServer::start_with(&["--http-body-bytes-max", "4096"])?;
    let client = server.client();
    let user = client.register_ok("alice")?;
    let big = vec![b' '; 8 * 1024 * 1024];
    let auth = format!("Bearer {}", user.token);
    for (path, with_auth) in [("/v1/users", false), ("/v1/sessions", false), ("/v1/devices", true)] {
        let mut headers = vec![("Content-Type", "application/json")];
        let len = big.len().to_string();
        headers.push(("Content-Length", &len));
        if with_auth {
            headers.push(("Authorization", &auth));
        }
        let head = request_bytes("POST", path, &headers, None);
        let resp = send_streaming(server.main_port, head, big.clone(), 16 * 1024)?;
        assert_eq!(resp.status, 413, "POST {path}: {resp:?}");
        resp.expect_error(413)?;
        assert!(
            resp.header("x-request-id").is_some(),
            "413 without x-request-id: {resp:?}"
        );
    }
    // Just under the configured limit is read normally.
    let body = registration_body("bob", 4096);
    client
        .post("/v1/users")
        .header("content-type", "application/json")
        .body(body)
        .send()?
        .expect_json(201)?;
    Ok(())
}

#[test]
fn declared_oversized_body_is_413_without_sending_it() -> TestResult {
    // Goal: a Content-Length above the limit is refused from the head alone, and the 413 is
    // written before any draining of the unread body: a client that waits for an answer
    // before sending (as with `Expect: 100-continue`) gets it at once, not after the server's
    // drain period. Method: send only the head (with and without Expect) and time the answer
    // against a bound far above a normal response time.
    let server = TestServer::start_with(&["--http-body-bytes-max", "4096"])?;
    for expect in [None, Some("100-continue")] {
        let mut headers = vec![("Content-Type", "application/json"), ("Content-Length", "1000000")];
        if let Some(e) = expect {
            headers.push(("Expect", e));
        }
        let mut conn = RawConn::connect(server.main_port)?;
        let started = Instant::now();
        conn.send(&request_bytes("POST", "/v1/users", &headers, None))?;
        let resp = conn.read_response()?;
        let waited = started.elapsed();
        resp.expect_error(413)?;
        assert!(
            waited < Duration::from_millis(1500),
            "Expect {expect:?}: the 413 took {waited:?}; it should not wait for a body that was refused"
        );
    }
    Ok(())
}

#[test]
fn chunked_request_bodies_are_accepted() -> TestResult {
    // Goal: a request body in chunked transfer encoding is read like any other. Method:
    // register with a body split into 7-byte chunks, then log in with a chunked body whose
    // chunk sizes use upper-case hex and a chunk extension.
    let server = TestServer::start()?;
    let body = json!({"username": "chunky", "password": PASSWORD}).to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        Some(&chunked(body.as_bytes(), 7)),
    ))?;
    conn.read_response()?.expect_json(201)?;

    // Same connection: a chunked login with an extension and upper-case sizes.
    let bytes = body.as_bytes();
    let (a, b) = bytes.split_at(26);
    let mut framed = format!("{:X};ext=1\r\n", a.len()).into_bytes();
    framed.extend_from_slice(a);
    framed.extend_from_slice(format!("\r\n{:X}\r\n", b.len()).as_bytes());
    framed.extend_from_slice(b);
    framed.extend_from_slice(b"\r\n0\r\n\r\n");
    conn.send(&request_bytes(
        "POST",
        "/v1/sessions",
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        Some(&framed),
    ))?;
    conn.read_response()?.expect_json(200)?;
    Ok(())
}

#[test]
fn chunked_request_bodies_are_bounded() -> TestResult {
    // Goal: the body limit also applies without a Content-Length: a chunked body that grows
    // past `--http-body-bytes-max` is 413, delivered while the client is still sending.
    // Method: 4 KiB limit, a 4 MiB chunked body streamed in 8 KiB chunks.
    let server = TestServer::start_with(&["--http-body-bytes-max", "4096"])?;
    let head = request_bytes(
        "POST",
        "/v1/users",
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        None,
    );
    let body = chunked(&vec![b' '; 4 * 1024 * 1024], 8192);
    let resp = send_streaming(server.main_port, head, body, 8192)?;
    resp.expect_error(413)?;

    // A chunked body within the limit still works.
    let small = json!({"username": "small", "password": PASSWORD}).to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "POST",
        "/v1/users",
        &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")],
        Some(&chunked(small.as_bytes(), 10)),
    ))?;
    conn.read_response()?.expect_json(201)?;
    Ok(())
}

#[test]
fn oversized_header_block_is_431() -> TestResult {
    // Goal: a request head over `--http-header-bytes-max` (default 16 384) is 431 with a JSON
    // error; one comfortably under it is served. Method: one 20 000-byte header, then a
    // 10 000-byte one.
    let server = TestServer::start()?;
    let big = "a".repeat(20_000);
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[("X-Big", &big)], None))?;
    let resp = conn.read_response()?;
    resp.expect_error(431)?;
    assert!(
        resp.header("x-request-id").is_some(),
        "431 without x-request-id: {resp:?}"
    );

    let fine = "a".repeat(10_000);
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[("X-Big", &fine)], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    Ok(())
}

#[test]
fn header_byte_limit_follows_the_flag() -> TestResult {
    // Goal: `--http-header-bytes-max` is configurable, and a huge header sent in pieces is
    // still refused. Method: limit 1024; 600 bytes pass, 2000 and a 1 MiB header dribbled in
    // 8 KiB writes get 431.
    let server = TestServer::start_with(&["--http-header-bytes-max", "1024"])?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "GET",
        "/openapi.yaml",
        &[("X-Pad", &"p".repeat(600))],
        None,
    ))?;
    assert_eq!(conn.read_response()?.status, 200);

    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes(
        "GET",
        "/openapi.yaml",
        &[("X-Pad", &"p".repeat(2000))],
        None,
    ))?;
    conn.read_response()?.expect_error(431)?;

    // The head never ends: the server must answer once the limit is passed, not wait for it.
    let head = b"GET /openapi.yaml HTTP/1.1\r\nHost: x\r\nX-Endless: ".to_vec();
    let resp = send_streaming(server.main_port, head, vec![b'e'; 1024 * 1024], 8192)?;
    resp.expect_error(431)?;
    Ok(())
}

#[test]
fn too_many_headers_is_431() -> TestResult {
    // Goal: more headers than `--http-headers-count-max` (default 100) is 431; a request with
    // 50 is fine. Method: 150 small headers, then 50.
    let server = TestServer::start()?;
    let many: Vec<(String, String)> = (0..150).map(|i| (format!("X-H{i}"), "v".to_string())).collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &refs, None))?;
    conn.read_response()?.expect_error(431)?;

    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &refs[..50], None))?;
    assert_eq!(conn.read_response()?.status, 200);

    // The flag moves the bound.
    drop(conn);
    let server = TestServer::start_with(&["--http-headers-count-max", "10"])?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &refs[..20], None))?;
    conn.read_response()?.expect_error(431)?;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &refs[..3], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    Ok(())
}

#[test]
fn slow_request_head_gets_408_and_is_closed() -> TestResult {
    // Goal: a client that has not sent a complete request head within
    // `--http-request-head-timeout-ms` gets 408 (JSON error) and the connection is closed.
    // Method: 500 ms head timeout; send half a head and wait.
    let server = TestServer::start_with(&["--http-request-head-timeout-ms", "500"])?;
    let mut conn = RawConn::connect(server.main_port)?;
    let started = Instant::now();
    conn.send(b"GET /v1/devices HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")?;
    let resp = conn.read_response()?;
    resp.expect_error(408)?;
    assert!(
        resp.header("x-request-id").is_some(),
        "408 without x-request-id: {resp:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "408 came before the timeout: {:?}",
        started.elapsed()
    );
    let closed = conn.wait_closed(Duration::from_secs(5))?;
    assert_ne!(closed, Closed::StillOpen, "connection left open after the 408");

    // A client that dribbles its head byte by byte (each byte well within any per-read
    // timeout, the whole head never complete) is cut off as well.
    let mut conn = RawConn::connect(server.main_port)?;
    let mut writer = conn.stream.try_clone()?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop_writer = stop.clone();
    let dribbler = std::thread::spawn(move || {
        let head = b"GET /openapi.yaml HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        for byte in head.iter().chain(std::iter::repeat(&b's')).take(200) {
            if stop_writer.load(std::sync::atomic::Ordering::Relaxed) || writer.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let started = Instant::now();
    let resp = conn.read_response();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = dribbler.join();
    let resp = resp?;
    resp.expect_error(408)?;
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "dribbled head answered only after {:?}",
        started.elapsed()
    );

    // A complete, prompt request is unaffected.
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&request_bytes("GET", "/openapi.yaml", &[], None))?;
    assert_eq!(conn.read_response()?.status, 200);
    Ok(())
}

#[test]
fn slow_body_gets_408_from_the_standard_timeout() -> TestResult {
    // Goal: O150 analogue, §3.7 — with `--server-request-timeout-secs 1`, a registration whose
    // body only arrives after 2 s is 408 with a JSON error and the x-request-id. Method: send
    // the head, wait 2 s, send the body, read.
    let server = TestServer::start_with(&["--server-request-timeout-secs", "1"])?;
    slow_registration_is_408(&server, "slow_standard")
}

#[test]
fn slow_body_gets_408_from_the_global_timeout() -> TestResult {
    // Goal: O153 analogue, §3.7 — the global timer bounds every route even when the route's own
    // timer is longer: global 1 s, standard 30 s, body after 2 s → 408. Method: as above.
    let server = TestServer::start_with(&[
        "--server-global-timeout-secs",
        "1",
        "--server-request-timeout-secs",
        "30",
    ])?;
    slow_registration_is_408(&server, "slow_global")
}

fn slow_registration_is_408(server: &TestServer, username: &str) -> TestResult {
    let body = json!({"username": username, "password": PASSWORD}).to_string();
    let mut conn = RawConn::connect(server.main_port)?;
    let head = request_bytes(
        "POST",
        "/v1/users",
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", &body.len().to_string()),
            ("X-Request-Id", "slow-body-1"),
        ],
        None,
    );
    conn.send(&head)?;
    std::thread::sleep(Duration::from_secs(2));
    let _ = conn.stream.write_all(body.as_bytes());
    let resp = conn.read_response()?;
    resp.expect_error(408)?;
    assert_eq!(resp.header("x-request-id"), Some("slow-body-1"), "{resp:?}");
    // The account must not exist: the request was abandoned, not completed late.
    server.client().login(username, PASSWORD, None)?.expect_error(401)?;
    Ok(())
}

#[test]
fn body_within_the_timeout_is_served() -> TestResult {
    // Goal: the control for the 408 tests — a body that arrives well inside the timeout is
    // served normally. Method: timeout 5 s, body 300 ms after the head.
    let server = TestServer::start_with(&["--server-request-timeout-secs", "5"])?;
    let body = json!({"username": "prompt", "password": PASSWORD}).to_string();
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
    std::thread::sleep(Duration::from_millis(300));
    conn.send(body.as_bytes())?;
    conn.read_response()?.expect_json(201)?;
    // The same connection serves the next request.
    conn.send(&json_post("/v1/sessions", &body, &[]))?;
    conn.read_response()?.expect_json(200)?;
    Ok(())
}
