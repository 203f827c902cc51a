//! Fuzzing the request head parser as the connection drives it: the bytes
//! arrive in arbitrary reads and the buffer is parsed again after each one,
//! until a head is complete or refused. The parser never panics, refuses
//! with 400, 431 or 501 only (501: a transfer coding it does not know, as
//! RFC 9112 §6.1 says), never accepts a head above its byte or line limits,
//! reaches the same verdict whatever the reads, and allocates in proportion
//! to the head limit. (Before the parser looked at the first
//! `header_bytes_max` bytes only, a long head that was also malformed got a
//! 431 or a 400 depending on where a read ended.)

use std::time::Duration;

use http::StatusCode;
use proptest::prelude::*;

use super::{parse_head, Framing, HeadError, RequestHead};

use crate::http::HttpLimits;
use crate::util::fuzz_harness::{bytes_from, config, measure};

fn limits(header_bytes_max: usize, headers_count_max: usize) -> HttpLimits {
    HttpLimits {
        header_bytes_max,
        headers_count_max,
        head_timeout: Duration::from_secs(1),
        keepalive_timeout: Duration::from_secs(1),
        write_timeout: Duration::from_secs(1),
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "Content-Length", "Transfer-Encoding", "Connection", "Host", "Authorization",
            "Content-Type", "Idempotency-Key", "Upgrade", "x-request-id",
        ])
        .prop_map(str::to_string),
        1 => "[!-~]{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "0",
            "5",
            "-1",
            "18446744073709551616",
            "chunked",
            "gzip",
            "close",
            "keep-alive",
            ""
        ])
        .prop_map(str::to_string),
        "[0-9]{1,22}",
        "[ -~\t]{0,40}",
    ]
}

/// Fragments of a request head: request lines, header lines, line ends.
fn head_piece() -> BoxedStrategy<Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "G\u{e9}T", ""]);
    let target = prop_oneof![
        "/[a-z0-9/{}?=&%.-]{0,30}",
        Just("http://relay.example/v1/users?x=1".to_string()),
        Just("*".to_string()),
        "[ -~]{0,12}",
    ];
    let version = prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.", "http/1.1"]);
    let line_end = prop::sample::select(vec!["\r\n", "\n", "\r", ""]);
    prop_oneof![
        (method, target, version, line_end.clone()).prop_map(|(m, t, v, e)| format!("{m} {t} {v}{e}").into_bytes()),
        (token(), value(), line_end).prop_map(|(n, v, e)| format!("{n}: {v}{e}").into_bytes()),
        Just(b"\r\n".to_vec()),
        prop::collection::vec(any::<u8>(), 0..6),
    ]
    .boxed()
}

/// A request with its head first: mostly a plausible request line.
fn request_bytes() -> impl Strategy<Value = Vec<u8>> {
    let line = prop::sample::select(vec![
        "GET / HTTP/1.1\r\n",
        "POST /v1/users HTTP/1.1\r\n",
        "GET /v1/gateway?ticket=x HTTP/1.0\r\n",
        "",
    ]);
    (line, bytes_from(head_piece(), 600)).prop_map(|(l, rest)| [l.as_bytes(), &rest].concat())
}

/// What parsing the buffer gave; heads compared by what the server uses.
#[derive(Debug, PartialEq)]
enum Verdict {
    Incomplete,
    Head(String, Option<String>, usize, usize, Framing, bool),
    Refused(HeadError),
}

fn verdict(parsed: Result<Option<(RequestHead, usize)>, HeadError>) -> Verdict {
    match parsed {
        Ok(None) => Verdict::Incomplete,
        Ok(Some((h, n))) => Verdict::Head(h.path, h.query, h.headers.len(), n, h.framing, h.keep_alive),
        Err(e) => Verdict::Refused(e),
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_request_head(
        bytes in request_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        header_bytes_max in 64usize..2048,
        headers_count_max in 1usize..16,
    ) {
        let limits = limits(header_bytes_max, headers_count_max);
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).chain([bytes.len()]).collect();
        at.sort_unstable();
        let slots = headers_count_max * std::mem::size_of::<httparse::Header<'_>>();
        let mut last = Verdict::Incomplete;
        for end in at {
            let buffered = &bytes[..end];
            let (parsed, usage) = measure(|| parse_head(buffered, &limits));
            let bound = slots + 2 * header_bytes_max + 1024;
            prop_assert!(usage.peak_bytes <= bound, "{usage:?} for a {end}-byte buffer");
            last = verdict(parsed);
            match &last {
                Verdict::Incomplete => prop_assert!(end <= header_bytes_max),
                Verdict::Head(_, _, headers, consumed, framing, _) => {
                    prop_assert!(*consumed <= end && *consumed <= header_bytes_max);
                    prop_assert!(*headers <= headers_count_max);
                    prop_assert!(*framing != Framing::Length(0));
                    break;
                }
                Verdict::Refused(e) => {
                    let status = e.status();
                    prop_assert!(status.is_client_error() || status == StatusCode::NOT_IMPLEMENTED, "{e:?}");
                    break;
                }
            }
        }
        // The reads do not matter: all of it at once gives the same verdict
        // (once the head is complete or refused, later bytes cannot change it).
        prop_assert_eq!(verdict(parse_head(&bytes, &limits)), last);
    }
}
