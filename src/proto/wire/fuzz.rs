//! Fuzzing the protobuf decoding of every inbound message: `SendMessageRequest`
//! (`POST /v1/messages`) and `WebSocketFrame`/`AckMessage` (gateway), over
//! arbitrary bytes and over messages built from fields and then broken.
//! The reader here must agree with prost wherever the server relies on it,
//! never panic, and keep what the server builds within its bounds: a send
//! decodes only after its submissions were counted, and ack ids cost at
//! most the frame's size. prost is used as the reference reader (its
//! `encoding` module lists a frame's fields independently of ours).

use bytes::Bytes;
use proptest::prelude::*;
use prost::encoding::{decode_key, skip_field, DecodeContext};
use prost::Message;

use super::{ack_ids, submissions};
use crate::proto::send_message_request::Submission;
use crate::proto::web_socket_frame::Payload;
use crate::proto::{SendMessageRequest, WebSocketFrame};
use crate::util::fuzz_harness::{bytes_from, config, measure};

/// `--messaging-send-batch-limit`'s default.
const BATCH_LIMIT: usize = 100;

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn key(field: u32, wire_type: u8) -> Vec<u8> {
    varint(u64::from(field) << 3 | u64::from(wire_type))
}

fn length_delimited(field: u32, payload: &[u8]) -> Vec<u8> {
    [key(field, 2), varint(payload.len() as u64), payload.to_vec()].concat()
}

/// Ids of every length, mostly 16 bytes.
fn id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::collection::vec(any::<u8>(), 16),
        1 => prop::collection::vec(any::<u8>(), 0..24),
    ]
}

/// A field no message of ours knows, of any wire type, groups included.
fn unknown_field() -> impl Strategy<Value = Vec<u8>> {
    let field = 14u32..40;
    prop_oneof![
        (field.clone(), any::<u64>()).prop_map(|(f, v)| [key(f, 0), varint(v)].concat()),
        (field.clone(), any::<[u8; 8]>()).prop_map(|(f, v)| [key(f, 1), v.to_vec()].concat()),
        (field.clone(), any::<[u8; 4]>()).prop_map(|(f, v)| [key(f, 5), v.to_vec()].concat()),
        (field.clone(), prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(f, v)| length_delimited(f, &v)),
        (field.clone(), any::<u64>()).prop_map(|(f, v)| [key(f, 3), key(f + 1, 0), varint(v), key(f, 4)].concat()),
        (field, 0u8..8).prop_map(|(f, wire_type)| key(f, wire_type)),
        prop::collection::vec(any::<u8>(), 0..4),
    ]
}

fn submission() -> impl Strategy<Value = Vec<u8>> {
    let inner = prop_oneof![
        id().prop_map(|v| length_delimited(1, &v)),
        id().prop_map(|v| length_delimited(2, &v)),
        prop::collection::vec(any::<u8>(), 0..32).prop_map(|v| length_delimited(3, &v)),
        unknown_field(),
    ];
    prop::collection::vec(inner, 0..5).prop_map(|fields| length_delimited(1, &fields.concat()))
}

fn send_request_piece() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![3 => submission(), 1 => Just(vec![0x0a, 0x00]), 2 => unknown_field()].boxed()
}

fn ack_piece() -> BoxedStrategy<Vec<u8>> {
    let in_ack = prop_oneof![4 => id().prop_map(|v| length_delimited(1, &v)), 1 => unknown_field()];
    let ack = prop::collection::vec(in_ack, 0..6).prop_map(|fields| length_delimited(11, &fields.concat()));
    let server_payload = (
        prop::sample::select(vec![10u32, 12, 13]),
        prop::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(|(f, v)| length_delimited(f, &v));
    prop_oneof![5 => ack, 1 => server_payload, 1 => unknown_field()].boxed()
}

/// The top-level field numbers of `bytes`, read by prost; `None` if prost
/// cannot walk them.
fn top_level_fields(bytes: &[u8]) -> Option<Vec<u32>> {
    let mut buf = bytes;
    let mut fields = Vec::new();
    while !buf.is_empty() {
        let (field, wire_type) = decode_key(&mut buf).ok()?;
        skip_field(wire_type, field, &mut buf, DecodeContext::default()).ok()?;
        fields.push(field);
    }
    Some(fields)
}

/// The server's decoding of a send: count, then decode within the limit.
fn server_decode(bytes: &[u8]) -> Option<SendMessageRequest> {
    match submissions(bytes) {
        Ok(n) if (1..=BATCH_LIMIT).contains(&n) => SendMessageRequest::decode(bytes).ok(),
        _ => None,
    }
}

proptest! {
    #![proptest_config(config())]

    /// Whenever prost decodes a send, the count is its number of
    /// submissions; whenever the count fails, prost fails; the server's
    /// decoding holds at most the body, a copy of it, and BATCH_LIMIT
    /// submissions (their `Vec` at twice its length).
    #[test]
    fn fuzz_send_message_request(bytes in bytes_from(send_request_piece(), 512)) {
        let counted = submissions(&bytes);
        match (counted, SendMessageRequest::decode(bytes.as_slice())) {
            (Ok(n), Ok(request)) => prop_assert_eq!(n, request.messages.len()),
            (Err(e), Ok(request)) => prop_assert!(false, "count failed ({e}) where prost read {request:?}"),
            _ => {}
        }
        let (_, usage) = measure(|| server_decode(&bytes));
        let bound = 2 * bytes.len() + 2 * BATCH_LIMIT * std::mem::size_of::<Submission>() + 1024;
        prop_assert!(usage.peak_bytes <= bound, "{usage:?} for {} bytes", bytes.len());
    }

    /// Ack ids are prost's (16-byte ones only) for every frame prost reads as
    /// an ack that carries no server payload field; nothing else is an ack;
    /// they cost at most the frame's size.
    #[test]
    fn fuzz_websocket_frame_acks(frame in bytes_from(ack_piece(), 256)) {
        let (mine, usage) = measure(|| ack_ids(&frame));
        prop_assert!(usage.peak_bytes <= frame.len(), "{usage:?} for {} bytes", frame.len());
        let theirs = WebSocketFrame::decode(frame.as_slice());
        let server_payload = top_level_fields(&frame)
            .is_some_and(|fields| fields.iter().any(|f| [10, 12, 13].contains(f)));
        let expected = match theirs {
            Ok(WebSocketFrame { payload: Some(Payload::Ack(ack)) }) if !server_payload => Some(
                ack.message_ids
                    .iter()
                    .filter_map(|id| <[u8; 16]>::try_from(id.as_ref()).ok())
                    .collect::<Vec<_>>(),
            ),
            _ => None,
        };
        prop_assert_eq!(mine, expected);
    }
}

#[test]
fn prost_alone_amplifies_empty_elements() {
    // Why the reader exists: 2-byte empty elements cost prost 16 to 48 times
    // their size; the count and the ack reader cost nothing per element.
    let sends = [0x0a, 0x00].repeat(100_000);
    let (request, prost) = measure(|| SendMessageRequest::decode(sends.as_slice()));
    assert_eq!(request.map(|r| r.messages.len()).ok(), Some(100_000));
    assert!(prost.peak_bytes > 40 * sends.len(), "{prost:?}");
    let (count, ours) = measure(|| submissions(&sends));
    assert_eq!((count, ours.peak_bytes), (Ok(100_000), 0));
    assert_eq!(server_decode(&sends).map(|r| r.messages.len()), None);

    let ids = [0x0a, 0x00].repeat(50_000);
    let frame = [key(11, 2), varint(ids.len() as u64), ids].concat();
    let (_, prost) = measure(|| WebSocketFrame::decode(Bytes::from(frame.clone())));
    assert!(prost.peak_bytes > 8 * frame.len(), "{prost:?}");
    let (acks, ours) = measure(|| ack_ids(&frame));
    assert_eq!(acks, Some(Vec::new()));
    assert!(ours.peak_bytes <= frame.len(), "{ours:?}");
}

#[test]
fn readers_follow_prost_on_the_edges() {
    // Varints of 10 bytes whose last byte is 2 or more, field 0, wire types
    // 6 and 7, stray and mismatched group ends, groups deeper than 100.
    let too_big = [vec![0x08], vec![0xff; 9], vec![0x02]].concat();
    let deep = [key(20, 3).repeat(101), key(20, 4).repeat(101)].concat();
    let ok_deep = [key(20, 3).repeat(100), key(20, 4).repeat(100)].concat();
    let cases = [
        too_big,
        vec![0x00],
        vec![0x0e],
        vec![0x0f],
        key(20, 4),
        [key(20, 3), key(21, 4)].concat(),
        deep,
        ok_deep,
    ];
    for bytes in cases {
        let prost = SendMessageRequest::decode(bytes.as_slice());
        assert_eq!(submissions(&bytes).is_ok(), prost.is_ok(), "{bytes:02x?}: {prost:?}");
    }
}
