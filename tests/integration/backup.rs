//! Backups (BEHAVIOR §10, §12, §1 cascade; TEST-CASES M119-M139): one blob per device behind
//! optimistic locking — `If-None-Match: *` / `If-Match` preconditions, 412 and 409, stale
//! takeover, the clean-up of stale uploads, and that a failed, interrupted or overtaken upload
//! never replaces the last good backup. Tests that touch storage run on both backends.

use std::time::{Duration, Instant};

use crate::common::blobs::{upload_head, Backend, BlobServer};
use crate::common::data::{member, Member};
use crate::common::raw::{request_bytes, RawConn};
use crate::common::{Client, Resp, TestResult};
use crate::on_both_backends;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const SCOPE: &str = "Device-scoped token required";

on_both_backends!(
    versions_round_trip,
    takeover_of_a_stale_upload,
    failed_uploads_free_the_slot,
    cleanup_resets_stale_uploads,
    missing_blob_is_not_found,
    device_deletion_deletes_backups
);

/// `n` bytes of backup `tag` (at least the default 32-byte minimum).
fn backup_body(tag: u8, n: usize) -> Vec<u8> {
    (0..n).map(|i| tag.wrapping_add(i as u8)).collect()
}

fn post(client: &Client, token: &str, precondition: &[(&str, &str)], body: &[u8]) -> Res<Resp> {
    let mut req = client.post("/v1/backup").bearer(token).body(body.to_vec());
    for (name, value) in precondition {
        req = req.header(name, value);
    }
    req.send()
}

fn get(client: &Client, token: &str, if_none_match: Option<&str>) -> Res<Resp> {
    let mut req = client.get("/v1/backup").bearer(token);
    if let Some(tag) = if_none_match {
        req = req.header("if-none-match", tag);
    }
    req.send()
}

fn head(client: &Client, token: &str) -> Res<Resp> {
    client.request("HEAD", "/v1/backup").bearer(token).send()
}

/// Asserts a 200 upload answer and returns its ETag.
fn etag_of(resp: &Resp) -> Res<String> {
    assert_eq!(resp.status, 200, "{resp:?}");
    Ok(resp.header("etag").ok_or("no etag")?.to_string())
}

/// The folder of `m`'s backups in storage.
fn folder(m: &Member) -> String {
    format!("backups/{}/", m.device_id)
}

fn versions_round_trip(backend: Backend) -> TestResult {
    // Goal: M119-M124, M127, M131, M133-M136 and the scope rule — the whole life of one
    // device's backup through the API, and that storage ends holding only the current version.
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    get(&client, t, None)?.expect_error_text(404, "Not found")?;
    assert_eq!(head(&client, t)?.status, 404);
    for resp in [
        get(&client, &alice.user.token, None)?,
        post(
            &client,
            &alice.user.token,
            &[("if-none-match", "*")],
            &backup_body(0, 40),
        )?,
    ] {
        resp.expect_error_text(403, SCOPE)?;
    }
    assert_eq!(head(&client, &alice.user.token)?.status, 403);
    let v1 = backup_body(1, 40);
    post(&client, t, &[], &v1)?.expect_error_text(400, "Missing If-Match or If-None-Match header")?;
    post(&client, t, &[("if-none-match", "\"1\"")], &v1)?.expect_error_text(400, "Invalid If-None-Match header")?;
    post(&client, t, &[("if-match", "one")], &v1)?.expect_error_text(400, "Invalid version in If-Match header")?;
    // If-None-Match wins, but an If-Match beside it must still be a version (issue 12).
    let both = [("if-none-match", "*"), ("if-match", "one")];
    post(&client, t, &both, &v1)?.expect_error_text(400, "Invalid version in If-Match header")?;
    assert_eq!(etag_of(&post(&client, t, &[("if-none-match", "*")], &v1)?)?, "\"1\"");
    let got = get(&client, t, None)?;
    assert_eq!((got.status, got.header("etag")), (200, Some("\"1\"")));
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(got.body, v1);
    assert_eq!(get(&client, t, Some("\"1\""))?.status, 304);
    assert_eq!(get(&client, t, Some("\"0\""))?.body, v1);
    let v2 = backup_body(2, 77);
    assert_eq!(etag_of(&post(&client, t, &[("if-match", "1")], &v2)?)?, "\"2\"");
    let got = get(&client, t, None)?;
    assert_eq!(
        (got.header("etag"), got.body.as_slice()),
        (Some("\"2\""), v2.as_slice())
    );
    post(&client, t, &[("if-match", "\"1\"")], &v2)?.expect_error_text(412, "Precondition failed")?;
    let headed = head(&client, t)?;
    assert_eq!((headed.status, headed.header("etag")), (200, Some("\"2\"")));
    assert_eq!(headed.header("content-type"), Some("application/octet-stream"));
    assert_eq!(headed.header("content-length"), Some("77"));
    assert!(headed.body.is_empty());
    let keys = server.wait_keys(&folder(&alice), |keys| keys.len() == 1)?;
    assert!(keys[0].starts_with(&format!("{}v2-", folder(&alice))), "{keys:?}");
    let other = crate::common::data::add_device(&client, &alice.user, 2, 0)?;
    let both = [("if-none-match", "*"), ("if-match", "\"5\"")];
    assert_eq!(etag_of(&post(&client, other.token(), &both, &v1)?)?, "\"1\"");
    Ok(())
}

#[test]
fn size_limits_are_checked_before_anything_changes() -> TestResult {
    // Goal: M125, M126, M132 — with a 10-byte minimum an 8-byte upload is 400 `Backup too
    // small`, with a 100-byte maximum a 101-byte one is 413; with limits 10..20 a chunked upload
    // without length is 411, `Content-Length: 5` 400, 25 413, and 15 bytes streamed in pieces
    // 200. None of the refused uploads reserves a version (the first good upload is `"1"`).
    let server = BlobServer::start(
        Backend::Local,
        &["--backup-min-size-bytes", "10", "--backup-max-size-bytes", "100"],
    )?;
    let client = server.client();
    let t = member(&client, "alice", 0)?.device.token;
    let star = [("if-none-match", "*")];
    post(&client, &t, &star, &[1; 8])?.expect_error_text(400, "Backup too small")?;
    post(&client, &t, &star, &[1; 101])?.expect_error_text(413, "Payload too large")?;
    assert_eq!(etag_of(&post(&client, &t, &star, &[1; 100])?)?, "\"1\"");
    drop(server);

    let server = BlobServer::start(
        Backend::Local,
        &["--backup-min-size-bytes", "10", "--backup-max-size-bytes", "20"],
    )?;
    let client = server.client();
    let t = member(&client, "alice", 0)?.device.token;
    let auth = format!("Bearer {t}");
    let framed = |length: usize| upload_head("/v1/backup", &t, length, &[("If-None-Match", "*")]);
    let chunked = request_bytes(
        "POST",
        "/v1/backup",
        &[
            ("Authorization", &auth),
            ("If-None-Match", "*"),
            ("Transfer-Encoding", "chunked"),
        ],
        Some(b"f\r\n123456789012345\r\n0\r\n\r\n"),
    );
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&chunked)?;
    conn.read_response()?.expect_error_text(411, "Length required")?;
    for (length, body, status) in [(5, &b"12345"[..], 400), (25, &[7; 25][..], 413)] {
        let mut conn = RawConn::connect(server.main_port)?;
        conn.send(&framed(length))?;
        conn.send(body)?;
        assert_eq!(conn.read_response()?.status, status, "Content-Length {length}");
    }
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&framed(15))?;
    for piece in [&b"12345"[..], b"67890", b"abcde"] {
        std::thread::sleep(Duration::from_millis(50));
        conn.send(piece)?;
    }
    let resp = conn.read_response()?;
    assert_eq!((resp.status, resp.header("etag")), (200, Some("\"1\"")), "{resp:?}");
    assert_eq!(get(&client, &t, None)?.body, b"1234567890abcde");
    Ok(())
}

/// Starts an upload of `length` bytes with `precondition` and sends its first 10 bytes; returns
/// once the upload has begun in storage, so its version slot is reserved.
fn start_upload(server: &BlobServer, token: &str, precondition: (&str, &str), length: usize) -> Res<RawConn> {
    let mut conn = RawConn::connect(server.main_port)?;
    conn.send(&upload_head("/v1/backup", token, length, &[precondition]))?;
    conn.send(&[0xAA; 10])?;
    server.wait_upload_begun("backups/")?;
    Ok(conn)
}

fn takeover_of_a_stale_upload(backend: Backend) -> TestResult {
    // Goal: M128, M129, M139 and the lost race — with the default 30-minute threshold an
    // upload in progress makes another `If-Match: 1` a 409 `Upload already in progress` (and a
    // wrong version still 412), readers keep getting version 1, and then it commits itself.
    // With a 0-minute threshold a second upload takes the slot over (200, `"2"`); when the
    // overtaken upload's body completes, its commit loses: 409 `Concurrent modification`, the
    // winner stays current, storage ends with the winner's blob only, and a next upload right
    // away is version 3.
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    let v1 = backup_body(1, 40);
    etag_of(&post(&client, t, &[("if-none-match", "*")], &v1)?)?;
    let mut slow = start_upload(&server, t, ("If-Match", "1"), 50)?;
    post(&client, t, &[("if-match", "1")], &backup_body(2, 40))?
        .expect_error_text(409, "Upload already in progress")?;
    post(&client, t, &[("if-match", "7")], &backup_body(2, 40))?.expect_error_text(412, "Precondition failed")?;
    let during = get(&client, t, None)?;
    assert_eq!(
        (during.header("etag"), during.body.as_slice()),
        (Some("\"1\""), v1.as_slice())
    );
    assert_eq!(get(&client, t, Some("\"1\""))?.status, 304, "decided from metadata");
    slow.send(&[0xAA; 40])?;
    assert_eq!(etag_of(&slow.read_response()?)?, "\"2\"");
    assert_eq!(get(&client, t, None)?.body, vec![0xAA; 50]);
    drop(server);

    let server = BlobServer::start(backend, &["--backup-stale-threshold-mins", "0"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    etag_of(&post(&client, t, &[("if-none-match", "*")], &backup_body(1, 40))?)?;
    let mut overtaken = start_upload(&server, t, ("If-Match", "1"), 50)?;
    let winner = backup_body(3, 60);
    assert_eq!(etag_of(&post(&client, t, &[("if-match", "1")], &winner)?)?, "\"2\"");
    overtaken.send(&[0xAA; 40])?;
    overtaken
        .read_response()?
        .expect_error_text(409, "Concurrent modification")?;
    let got = get(&client, t, None)?;
    assert_eq!(
        (got.header("etag"), got.body.as_slice()),
        (Some("\"2\""), winner.as_slice())
    );
    let keys = server.wait_keys(&folder(&alice), |keys| keys.len() == 1)?;
    assert!(keys[0].starts_with(&format!("{}v2-", folder(&alice))), "{keys:?}");
    assert_eq!(
        get(&client, t, None)?.body,
        winner,
        "the loser deleted its own blob only"
    );
    let next = post(&client, t, &[("if-match", "2")], &backup_body(4, 40))?;
    assert_eq!(
        etag_of(&next)?,
        "\"3\"",
        "M128: back-to-back uploads with a 0 threshold"
    );
    Ok(())
}

fn failed_uploads_free_the_slot(backend: Backend) -> TestResult {
    // Goal: §10.2 (a failed upload never replaces the last good backup; we release its slot)
    // and §3.7 — after an upload whose client disconnects mid-body, and after one that hits the
    // 1 s backup timeout (408), the last good version stays current and readable, and the next
    // upload on it is accepted (not 409) without waiting for the stale threshold. The release
    // runs in the background, so the next upload is retried for up to 3 s while it answers 409.
    let server = BlobServer::start(backend, &["--backup-timeout-secs", "1"])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    let v1 = backup_body(1, 40);
    etag_of(&post(&client, t, &[("if-none-match", "*")], &v1)?)?;
    drop(start_upload(&server, t, ("If-Match", "1"), 64)?);
    assert_eq!(get(&client, t, None)?.body, v1);
    let v2 = backup_body(2, 40);
    assert_eq!(etag_of(&post_when_free(&client, t, "1", &v2)?)?, "\"2\"");
    let mut stalled = start_upload(&server, t, ("If-Match", "2"), 64)?;
    assert_eq!(stalled.read_response()?.status, 408);
    assert_eq!(get(&client, t, None)?.body, v2);
    assert_eq!(
        etag_of(&post_when_free(&client, t, "2", &backup_body(3, 40))?)?,
        "\"3\""
    );
    server.wait_keys(&folder(&alice), |keys| keys.len() == 1)?;
    Ok(())
}

/// Uploads `body` with `If-Match: version`, retrying for up to 3 s while the answer is 409.
fn post_when_free(client: &Client, token: &str, version: &str, body: &[u8]) -> Res<Resp> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let resp = post(client, token, &[("if-match", version)], body)?;
        if resp.status != 409 || Instant::now() > deadline {
            return Ok(resp);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cleanup_resets_stale_uploads(backend: Backend) -> TestResult {
    // Goal: M130 through the API — with a 0-minute threshold and a 1 s clean-up, an upload that
    // is still sending is reset by the job: when its body completes, its commit finds the slot
    // gone (409 `Concurrent modification`), version 1 stays current, and only v1 stays stored.
    let server = BlobServer::start(
        backend,
        &[
            "--backup-stale-threshold-mins",
            "0",
            "--backup-cleanup-interval-secs",
            "1",
        ],
    )?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    let v1 = backup_body(1, 40);
    etag_of(&post(&client, t, &[("if-none-match", "*")], &v1)?)?;
    let mut slow = start_upload(&server, t, ("If-Match", "1"), 50)?;
    std::thread::sleep(Duration::from_millis(1500));
    slow.send(&[0xAA; 40])?;
    slow.read_response()?
        .expect_error_text(409, "Concurrent modification")?;
    let got = get(&client, t, None)?;
    assert_eq!(
        (got.header("etag"), got.body.as_slice()),
        (Some("\"1\""), v1.as_slice())
    );
    let keys = server.wait_keys(&folder(&alice), |keys| keys.len() == 1)?;
    assert!(keys[0].starts_with(&format!("{}v1-", folder(&alice))), "{keys:?}");
    Ok(())
}

fn missing_blob_is_not_found(backend: Backend) -> TestResult {
    // Goal: M137, M138 — metadata at version 1 whose blob is gone from storage: GET and HEAD
    // answer 404 (a conditional GET for `"1"` is still 304: decided from metadata only).
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let t = alice.token();
    etag_of(&post(&client, t, &[("if-none-match", "*")], &backup_body(1, 40))?)?;
    let keys = server.keys(&folder(&alice))?;
    assert_eq!(keys.len(), 1, "{keys:?}");
    server.remove(&keys[0])?;
    get(&client, t, None)?.expect_error_text(404, "Not found")?;
    assert_eq!(head(&client, t)?.status, 404);
    assert_eq!(get(&client, t, Some("\"1\""))?.status, 304);
    Ok(())
}

fn device_deletion_deletes_backups(backend: Backend) -> TestResult {
    // Goal: §1 cascade — deleting a device deletes its backup row (and revokes its token: issue
    // 19) and, in the background, its blobs; another device's backup stays.
    let server = BlobServer::start(backend, &[])?;
    let client = server.client();
    let alice = member(&client, "alice", 0)?;
    let other = crate::common::data::add_device(&client, &alice.user, 2, 0)?;
    for m in [&alice, &other] {
        etag_of(&post(
            &client,
            m.token(),
            &[("if-none-match", "*")],
            &backup_body(1, 40),
        )?)?;
    }
    assert_eq!(client.delete_device(&alice.user.token, &alice.device_id)?.status, 200);
    get(&client, alice.token(), None)?.expect_error_text(401, "Unauthorized")?;
    server.wait_keys(&folder(&alice), |keys| keys.is_empty())?;
    assert_eq!(get(&client, other.token(), None)?.status, 200);
    assert_eq!(server.keys(&folder(&other))?.len(), 1);
    Ok(())
}
