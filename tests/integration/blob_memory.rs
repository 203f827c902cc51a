//! Bodies stream (DESIGN "a 50 MB upload never sits whole in memory"): ten concurrent 50 MiB
//! attachment uploads to the local filesystem raise the server's peak RSS (VmHWM) by at most
//! 64 MiB, where buffering them would take 500 MiB.

use std::io::Write;
use std::time::Instant;

use crate::common::blobs::{upload_head, Backend, BlobServer};
use crate::common::raw::RawConn;
use crate::common::TestResult;

/// The attachment size: the default maximum, 50 MiB.
const UPLOAD_BYTES: usize = 50 * 1024 * 1024;
const UPLOADS: usize = 10;
/// The most the uploads may add to the server's peak RSS.
const GROWTH_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The peak resident set size of process `pid`, bytes (`VmHWM` in /proc/<pid>/status).
fn peak_rss(pid: u32) -> Result<u64, Box<dyn std::error::Error>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .ok_or("no VmHWM line")?;
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// Uploads `UPLOAD_BYTES` in 64 KiB writes on a raw connection; the response status.
fn upload(port: u16, token: &str) -> Result<u16, String> {
    let run = || -> Result<u16, Box<dyn std::error::Error>> {
        let mut conn = RawConn::connect(port)?;
        conn.stream
            .set_write_timeout(Some(std::time::Duration::from_secs(60)))?;
        conn.send(&upload_head("/v1/attachments", token, UPLOAD_BYTES, &[]))?;
        let chunk = vec![0x5Au8; 64 * 1024];
        for _ in 0..UPLOAD_BYTES / chunk.len() {
            conn.stream.write_all(&chunk)?;
        }
        Ok(conn.read_response()?.status)
    };
    run().map_err(|e| e.to_string())
}

#[test]
fn concurrent_large_uploads_stream() -> TestResult {
    // Goal: the streaming bound. Method: read the spawned server's VmHWM after start-up (and
    // one small upload, so the upload path's code and first buffers are counted before), run
    // ten 50 MiB uploads at once, read VmHWM again; the difference is what the uploads added.
    let server = BlobServer::start(Backend::Local, &[])?;
    let pid = server.pid().ok_or("no server pid")?;
    let token = server.client().register_ok("alice")?.token;
    let warm_up = server
        .client()
        .post("/v1/attachments")
        .bearer(&token)
        .body(vec![1; 1024])
        .send()?;
    assert_eq!(warm_up.status, 201, "{warm_up:?}");
    let before = peak_rss(pid)?;
    let started = Instant::now();
    let port = server.main_port;
    let uploads: Vec<_> = (0..UPLOADS)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || upload(port, &token))
        })
        .collect();
    for upload in uploads {
        let status = upload.join().map_err(|_| "upload thread panicked")??;
        assert_eq!(status, 201);
    }
    let after = peak_rss(pid)?;
    let growth = after.saturating_sub(before);
    eprintln!(
        "VmHWM {} MiB -> {} MiB (+{:.1} MiB) for {UPLOADS} x 50 MiB in {:?}",
        before >> 20,
        after >> 20,
        growth as f64 / (1024.0 * 1024.0),
        started.elapsed()
    );
    assert!(growth <= GROWTH_MAX_BYTES, "peak RSS grew by {growth} bytes");
    assert_eq!(server.keys("attachments/")?.len(), UPLOADS + 1);
    Ok(())
}
