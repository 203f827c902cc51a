//! Attachments (BEHAVIOR §9, §3.7, §12; TEST-CASES K107-K115, L116): uploads stream into blob
//! storage and downloads stream back, with the length checks, the `If-None-Match` shortcut, the
//! attachment timeout, expiry at read time and the expiry job. Tests that touch storage run on
//! both backends (local filesystem and S3 on moto).

use std::io::Write;
use std::time::{Duration, Instant};

use crate::common::blobs::{upload_head, Backend, BlobServer};
use crate::common::data::member;
use crate::common::raw::{request_bytes, RawConn};
use crate::common::{now_secs, random_uuid, uuid_version, Client, Resp, TestResult};
use crate::on_both_backends;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const PREFIX: &str = "attachments/";

on_both_backends!(
    upload_and_download_round_trip,
    interrupted_upload_leaves_nothing,
    expired_attachments_are_swept
);

fn upload(client: &Client, token: &str, body: &[u8]) -> Res<Resp> {
    client
        .post("/v1/attachments")
        .bearer(token)
        .header("content-type", "application/octet-stream")
        .body(body.to_vec())
        .send()
}

/// Uploads `body`, asserting 201; the new id.
fn upload_ok(client: &Client, token: &str, body: &[u8]) -> Res<String> {
    let v = upload(client, token, body)?.expect_json(201)?;
    Ok(v["id"].as_str().ok_or("no id")?.to_string())
}

fn download(client: &Client, token: &str, id: &str) -> Res<Resp> {
    client.get(&format!("/v1/attachments/{id}")).bearer(token).send()
}

fn upload_and_download_round_trip(backend: Backend) -> TestResult {
    // Goal: K107, K108, K113, K114 — 14 bytes upload to 201 with a fresh UUID v4 id and an
    // expiry `--ttl-days` ahead; the download is exactly those bytes with octet-stream and
    // `ETag: "<id>"`; a 1 MiB body (many socket reads, many chunks) round-trips too;
    // `If-None-Match: "<id>"` is 304 without a body, another value is a normal 200. Any token
    // scope may upload and download.
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let resp = upload(&client, &alice.user.token, b"14 bytes here!")?;
    let v = resp.expect_json(201)?;
    let id = v["id"].as_str().ok_or("no id")?;
    assert_eq!(uuid_version(id), Some(4), "{v}");
    let expires = v["expiresAt"].as_i64().ok_or("no expiresAt")?;
    assert!((expires - (now_secs() + 30 * 86_400)).abs() <= 5, "{v}");
    let got = download(&client, alice.token(), id)?;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(got.body, b"14 bytes here!");
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.header("etag"), Some(format!("\"{id}\"").as_str()));
    assert_eq!(got.header("content-length"), Some("14"));
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let big_id = upload_ok(&client, alice.token(), &big)?;
    assert_eq!(download(&client, alice.token(), &big_id)?.body, big);
    let cached = client
        .get(&format!("/v1/attachments/{id}"))
        .bearer(alice.token())
        .header("if-none-match", &format!("\"{id}\""))
        .send()?;
    assert_eq!(cached.status, 304, "{cached:?}");
    assert!(cached.body.is_empty());
    let other = client
        .get(&format!("/v1/attachments/{id}"))
        .bearer(alice.token())
        .header("if-none-match", "\"different-id\"")
        .send()?;
    assert_eq!((other.status, other.body.as_slice()), (200, &b"14 bytes here!"[..]));
    assert_eq!(server.keys(PREFIX)?.len(), 2);
    Ok(())
}

#[test]
fn length_checks_come_before_storage() -> TestResult {
    // Goal: K109, K110, K112 — with limits 5..100 bytes, `Content-Length: 101` is 413,
    // `Content-Length: 4` is 400 `Attachment too small`, 5 bytes are 201; a chunked body without
    // a length and a POST without any body framing are 411 `Length required`. Refused uploads
    // store nothing. Method: real bodies (ureq) and raw requests for the framings.
    let server = BlobServer::start(
        Backend::Local,
        &["--attachment-max-size-bytes", "100", "--attachment-min-size-bytes", "5"],
    )?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    upload(&client, alice.token(), &[1; 101])?.expect_error_text(413, "Payload too large")?;
    upload(&client, alice.token(), b"1234")?.expect_error_text(400, "Attachment too small")?;
    assert_eq!(server.keys(PREFIX)?, Vec::<String>::new());
    upload_ok(&client, alice.token(), b"12345")?;
    upload_ok(&client, alice.token(), &[1; 100])?;
    let auth = format!("Bearer {}", alice.token());
    let chunked = request_bytes(
        "POST",
        "/v1/attachments",
        &[("Authorization", &auth), ("Transfer-Encoding", "chunked")],
        Some(b"5\r\nhello\r\n0\r\n\r\n"),
    );
    let bare = request_bytes("POST", "/v1/attachments", &[("Authorization", &auth)], None);
    for request in [chunked, bare] {
        let mut conn = RawConn::connect(server.main_port)?;
        conn.send(&request)?;
        conn.read_response()?.expect_error_text(411, "Length required")?;
    }
    assert_eq!(server.keys(PREFIX)?.len(), 2);
    Ok(())
}

#[test]
fn unknown_malformed_and_unauthenticated() -> TestResult {
    // Goal: K111 and §9.2 — an unknown id is 404 `Not found`; a malformed id is 400; without a
    // token both routes are 401 (authentication comes before everything); an `If-None-Match` in
    // another form (weak, upper-case, `*`) gets no 304; the routes have no rate limit (a server
    // with a burst of 1 serves 30 downloads in a row).
    let server = BlobServer::start(
        Backend::Local,
        &["--rate-limit-per-second", "1", "--rate-limit-burst", "1"],
    )?;
    let client = server.client();
    let token = client.register_ok("alice")?.token;
    for _ in 0..30 {
        download(&client, &token, &random_uuid())?.expect_error_text(404, "Not found")?;
    }
    assert!(!download(&client, &token, "not-a-uuid")?.expect_error(400)?.is_empty());
    download(&client, "", &random_uuid())?.expect_error_text(401, "Unauthorized")?;
    upload(&client, "bogus", b"data")?.expect_error_text(401, "Unauthorized")?;
    let id = random_uuid();
    for tag in [format!("W/\"{id}\""), format!("\"{}\"", id.to_uppercase()), "*".into()] {
        let resp = client
            .get(&format!("/v1/attachments/{id}"))
            .bearer(&token)
            .header("if-none-match", &tag)
            .send()?;
        assert_eq!(resp.status, 404, "{tag}: {resp:?}");
    }
    let resp = client
        .get(&format!("/v1/attachments/{id}"))
        .bearer(&token)
        .header("if-none-match", &format!("\"{id}\""))
        .send()?;
    assert_eq!(resp.status, 304, "the shortcut needs no attachment: {resp:?}");
    Ok(())
}

fn interrupted_upload_leaves_nothing(backend: Backend) -> TestResult {
    // Goal: L116 over HTTP — a client that sends 6 MiB of a 12 MiB upload (on S3 that is a
    // whole part already uploaded) and then disconnects leaves no object and no open multipart
    // upload behind.
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let token = client.register_ok("alice")?.token;
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&upload_head("/v1/attachments", &token, 12 * 1024 * 1024, &[]))?;
    let chunk = vec![9u8; 64 * 1024];
    for _ in 0..96 {
        conn.stream.write_all(&chunk)?;
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(conn);
    server.wait_nothing_left(PREFIX)?;
    Ok(())
}

#[test]
fn slow_bodies_meet_the_attachment_timeout_only() -> TestResult {
    // Goal: §3.7 and §9.1 — with `--attachment-timeout-secs 1`, a body that stalls gets 408 and
    // leaves nothing stored; with a 1 s *backup* timeout and the default attachment timeout, a
    // body that takes 1.5 s still gets 201 (the two classes are independent).
    let server = BlobServer::start(Backend::Local, &["--attachment-timeout-secs", "1"])?;
    let token = server.client().register_ok("alice")?.token;
    let mut conn = slow_upload(server.main_port, &token, 100)?;
    let started = Instant::now();
    let resp = conn.read_response()?;
    assert_eq!(resp.status, 408, "{resp:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    server.wait_nothing_left(PREFIX)?;
    drop(server);

    let server = BlobServer::start(Backend::Local, &["--backup-timeout-secs", "1"])?;
    let token = server.client().register_ok("alice")?.token;
    let mut conn = slow_upload(server.main_port, &token, 100)?;
    std::thread::sleep(Duration::from_millis(1500));
    conn.send(&[1; 90])?;
    assert_eq!(conn.read_response()?.status, 201);
    Ok(())
}

#[test]
fn the_global_timeout_caps_the_attachment_timeout() -> TestResult {
    // Goal: O153 — with a 2 s global timeout (attachment timeout 120 s), an attachment body
    // that stalls gets 408 after about 2 s, not 120 s. Method: a stalled raw upload.
    let server = BlobServer::start(Backend::Local, &["--server-global-timeout-secs", "2"])?;
    let token = server.client().register_ok("alice")?.token;
    let mut conn = slow_upload(server.main_port, &token, 100)?;
    let started = Instant::now();
    assert_eq!(conn.read_response()?.status, 408);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "408 after {waited:?}");
    server.wait_nothing_left(PREFIX)?;
    Ok(())
}

/// Starts an upload of `length` bytes and sends only its first 10.
fn slow_upload(port: u16, token: &str, length: usize) -> Res<RawConn> {
    let mut conn = RawConn::connect(port)?;
    conn.send(&upload_head("/v1/attachments", token, length, &[]))?;
    conn.send(&[1; 10])?;
    Ok(conn)
}

fn expired_attachments_are_swept(backend: Backend) -> TestResult {
    // Goal: K115 and §9.2, §12 — with `--ttl-days 0` an attachment expires the second after its
    // upload: from then on its download is 404 even before any clean-up (interval 3600 s, the
    // blob is still stored); with a 1 s clean-up interval the job deletes blob and metadata.
    let server = BlobServer::start(backend, &["--ttl-days", "0"])?;
    let client = server.client();
    let token = client.register_ok("alice")?.token;
    let id = upload_ok(&client, &token, b"short-lived")?;
    wait_status(&client, &token, &id, 404)?;
    assert_eq!(server.keys(PREFIX)?, vec![format!("{PREFIX}{id}")], "no sweep yet");
    drop(server);

    let server = BlobServer::start(backend, &["--ttl-days", "0", "--attachment-cleanup-interval-secs", "1"])?;
    let client = server.client();
    let token = client.register_ok("alice")?.token;
    let id = upload_ok(&client, &token, b"short-lived")?;
    server
        .wait_keys(PREFIX, |keys| keys.is_empty())
        .map_err(|e| format!("{id}: {e}"))?;
    download(&client, &token, &id)?.expect_error_text(404, "Not found")?;
    Ok(())
}

/// Polls the download of `id` until it answers `status` (at most 5 s).
fn wait_status(client: &Client, token: &str, id: &str, status: u16) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = download(client, token, id)?;
        if resp.status == status {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("still {resp:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
