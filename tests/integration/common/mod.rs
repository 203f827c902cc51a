//! Harness shared by every integration test: the server process (`server`), an HTTP client with
//! API helpers (`client`), raw-socket requests (`raw`), device key material (`keys`) and
//! hand-made JWTs (`jwt`); for the data plane a protobuf codec (`wire`), a WebSocket client
//! (`gateway`) and helpers for keys, bundles and messages (`data`); for attachments and backups
//! blob storage, local or a loopback S3 (`blobs`). Nothing here talks to anything but what it
//! started on 127.0.0.1.
#![allow(dead_code)]

pub mod blobs;
pub mod client;
pub mod cluster;
#[path = "../../../src/store/scylla/test_node.rs"]
pub mod cql_node;
pub mod data;
pub mod fcm;
pub mod gateway;
pub mod jwt;
pub mod keys;
pub mod raw;
pub mod server;
pub mod wire;

pub use client::{Auth, Client, Resp};
pub use server::TestServer;

/// What every test returns; `?` works on any error type.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The password used for every account unless a test needs another one (≥ 12 bytes).
pub const PASSWORD: &str = "correct horse battery";

/// Polls `done` every 20 ms until it holds; an error naming `what` after `within`.
pub fn poll_until(
    what: &str,
    within: std::time::Duration,
    mut done: impl FnMut() -> Result<bool, Box<dyn std::error::Error>>,
) -> TestResult {
    let deadline = std::time::Instant::now() + within;
    while !done()? {
        if std::time::Instant::now() > deadline {
            return Err(format!("{what} did not happen within {within:?}").into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A random, valid, canonical lower-case UUID v4 (names nothing on the server).
pub fn random_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// True if `s` is a canonical lower-case hyphenated UUID (8-4-4-4-12).
pub fn is_canonical_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && s.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The version nibble of a canonical UUID (4 for v4, 7 for v7), if `s` is one.
pub fn uuid_version(s: &str) -> Option<u32> {
    if !is_canonical_uuid(s) {
        return None;
    }
    s.chars().nth(14).and_then(|c| c.to_digit(16))
}

/// Parses the strict RFC 3339 UTC form the API promises for `createdAt`
/// (`YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z`, fraction without trailing zeros) into Unix seconds.
/// Returns `None` for anything else.
pub fn parse_created_at(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || *b.last()? != b'Z' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.is_empty() || !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let rest = &s[19..s.len() - 1];
    let fraction = if rest.is_empty() {
        0.0
    } else {
        let frac = rest.strip_prefix('.')?;
        if frac.is_empty() || frac.len() > 6 || !frac.bytes().all(|c| c.is_ascii_digit()) || frac.ends_with('0') {
            return None;
        }
        format!("0.{frac}").parse::<f64>().ok()?
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second) as f64 + fraction)
}

#[test]
fn harness_parse_created_at_accepts_only_the_promised_form() {
    // Goal: the helper itself is right, so device tests can trust it. Method: known values.
    assert_eq!(parse_created_at("1970-01-01T00:00:00Z"), Some(0.0));
    assert_eq!(parse_created_at("2026-03-08T12:00:01Z"), Some(1_772_971_201.0));
    assert!(parse_created_at("2026-03-08T12:00:00.12345Z").is_some());
    assert!(parse_created_at("2026-03-08T12:00:00.120Z").is_none());
    assert!(parse_created_at("2026-03-08T12:00:00+00:00").is_none());
    assert!(parse_created_at("2026-03-08 12:00:00Z").is_none());
    assert!(parse_created_at("2026-03-08T12:00:00.Z").is_none());
}
