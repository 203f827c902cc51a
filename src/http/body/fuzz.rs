//! Fuzzing the body decoder (Content-Length and chunked framing) from memory:
//! arbitrary bytes and valid encodings (random chunk sizes, extensions,
//! trailers) arriving in arbitrary reads. The decoder never panics, fails
//! only as TooLarge (413), Malformed or Incomplete (400), never returns more
//! than its limit, never reads past the body (the next pipelined request
//! stays in the buffer), gives back exactly what was encoded, and holds at
//! most twice its limit plus its read buffers.

use proptest::prelude::*;

use super::{Body, BodyError};
use crate::http::request::Framing;
use crate::http::wire::Wire;
use crate::limits::{HTTP_CHUNK_LINE_BYTES_MAX, HTTP_FIRST_READ_BYTES, HTTP_READ_CHUNK_BYTES};
use crate::util::fuzz_harness::{bytes_from, config, measure, ready, Scripted};

/// What follows a body on a keep-alive connection.
const NEXT_REQUEST: &[u8] = b"GET /next HTTP/1.1\r\n\r\n";

/// The most a decoder may hold besides its output: a few read buffers (a
/// piece handed out keeps its buffer's capacity, the bytes after it get a
/// new one, which the next read grows), whatever the limit. Measured: 3
/// read buffers and a byte.
const BUFFERS_BYTES: usize = 4 * (HTTP_READ_CHUNK_BYTES + HTTP_CHUNK_LINE_BYTES_MAX) + HTTP_FIRST_READ_BYTES;

/// `body` chunked: sizes from `sizes` (cycled), with extensions and trailers
/// as `fancy` says.
fn chunked(body: &[u8], sizes: &[usize], fancy: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = body;
    for size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (chunk, tail) = rest.split_at((*size).clamp(1, rest.len()));
        let extension = if fancy { ";name=value" } else { "" };
        out.extend(format!("{:X}{extension}\r\n", chunk.len()).into_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        rest = tail;
    }
    out.extend_from_slice(if fancy {
        b"0\r\nTrailer: x\r\n\r\n"
    } else {
        b"0\r\n\r\n"
    });
    out
}

fn chunked_piece() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        "[0-9a-fA-F]{1,17}(;[a-z=]{0,8})?\r\n".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..40),
        Just(b"\r\n".to_vec()),
        Just(b"0\r\n\r\n".to_vec()),
    ]
    .boxed()
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::Chunked),
        Just(Framing::Empty),
        (1u64..6000).prop_map(Framing::Length),
        any::<u64>().prop_map(Framing::Length)
    ]
}

/// Reads a whole body the way a buffering handler does.
fn read(bytes: &[u8], cuts: &[usize], framing: Framing, limit: usize) -> (Result<Vec<u8>, BodyError>, Vec<u8>, usize) {
    let mut wire = Wire::new(Scripted::new(bytes, cuts));
    let (result, usage) = measure(|| ready(Body::new(&mut wire, framing).read_to_vec(limit)));
    (result, wire.buffered().to_vec(), usage.peak_bytes)
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes under any framing: a value within the limit or a 4xx error,
    /// and memory within twice the limit plus the read buffers.
    #[test]
    fn fuzz_body_any_bytes(
        bytes in bytes_from(chunked_piece(), 8192),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        framing in framing(),
        limit in 1usize..6000,
    ) {
        let (result, _, peak) = read(&bytes, &cuts, framing, limit);
        match result {
            Ok(body) => prop_assert!(body.len() <= limit),
            Err(BodyError::TooLarge(_) | BodyError::Malformed | BodyError::Incomplete) => {}
            Err(e) => prop_assert!(false, "{e}"),
        }
        prop_assert!(peak <= 2 * limit + BUFFERS_BYTES, "{peak} bytes with limit {limit}");
    }

    /// A valid body, chunked or with a length, followed by the next request:
    /// exactly the body (or TooLarge), and not a byte of the next request.
    #[test]
    fn fuzz_body_round_trip(
        body in prop::collection::vec(any::<u8>(), 0..5000),
        sizes in prop::collection::vec(1usize..3000, 1..8),
        use_chunked in any::<bool>(),
        fancy in any::<bool>(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        limit in 1usize..6000,
    ) {
        let (encoded, framing) = if use_chunked {
            (chunked(&body, &sizes, fancy), Framing::Chunked)
        } else if body.is_empty() {
            (Vec::new(), Framing::Empty)
        } else {
            (body.clone(), Framing::Length(body.len() as u64))
        };
        let bytes = [encoded, NEXT_REQUEST.to_vec()].concat();
        let (result, left, _) = read(&bytes, &cuts, framing, limit);
        match result {
            Ok(read) => {
                prop_assert_eq!(read, body);
                prop_assert!(NEXT_REQUEST.starts_with(&left), "read past the body: {left:?}");
            }
            Err(BodyError::TooLarge(_)) => prop_assert!(body.len() > limit),
            Err(e) => prop_assert!(false, "{e} for a valid body"),
        }
    }

    /// Streaming handlers: chunk by chunk the same bytes come, each chunk no
    /// larger than a read buffer.
    #[test]
    fn fuzz_body_streamed(
        body in prop::collection::vec(any::<u8>(), 0..20_000),
        sizes in prop::collection::vec(1usize..30_000, 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let bytes = [chunked(&body, &sizes, false), NEXT_REQUEST.to_vec()].concat();
        let mut wire = Wire::new(Scripted::new(&bytes, &cuts));
        let mut streamed = Vec::new();
        let mut body_reader = Body::new(&mut wire, Framing::Chunked);
        while let Some(chunk) = ready(body_reader.next_chunk()).map_err(|e| TestCaseError::fail(e.to_string()))? {
            prop_assert!(chunk.len() <= 2 * HTTP_READ_CHUNK_BYTES + HTTP_CHUNK_LINE_BYTES_MAX, "{}", chunk.len());
            streamed.extend(chunk);
        }
        prop_assert_eq!(streamed, body);
    }
}
