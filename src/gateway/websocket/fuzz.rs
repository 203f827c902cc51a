//! Fuzzing the WebSocket frame reader from memory: frames with every opcode,
//! fragmentation, control frames between fragments, masks, reserved bits and
//! declared lengths up to 2^64 - 1, as well as noise, arriving in arbitrary
//! reads. The reader never panics, always ends (with an error at the latest
//! when the bytes do), hands out nothing above its bound and no control frame
//! RFC 6455 §5.5 forbids, holds memory in proportion to its bound, and gives
//! back exactly the messages a well-behaved client sent.

use proptest::prelude::*;

use super::{FrameReader, Inbound, WsError};
use crate::limits::{WS_CONTROL_PAYLOAD_BYTES_MAX as CONTROL_PAYLOAD_MAX, WS_READ_CHUNK_BYTES};
use crate::util::fuzz_harness::{bytes_from, config, measure, ready, Scripted};

/// One frame as a client could write it, valid or not.
#[derive(Debug, Clone)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: Vec<u8>,
    /// 0: the shortest length form, 1: the 16-bit form, 2: the 64-bit form.
    length_form: u8,
    /// A declared length other than the payload's (oversized, truncated).
    declared: Option<u64>,
}

impl Frame {
    fn encode(&self) -> Vec<u8> {
        let mut out = vec![u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0x0f)];
        let len = self.declared.unwrap_or(self.payload.len() as u64);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        match (self.length_form, len) {
            (0, 0..=125) => out.push(mask_bit | len as u8),
            (0 | 1, 0..=0xffff) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        let mut payload = self.payload.clone();
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        out.extend_from_slice(&payload);
        out
    }
}

fn any_frame() -> impl Strategy<Value = Frame> {
    let opcode = prop_oneof![4 => prop::sample::select(vec![0u8, 1, 2, 8, 9, 10]), 1 => 0u8..16];
    let declared = prop_oneof![
        6 => Just(None),
        1 => any::<u64>().prop_map(Some),
        1 => (0u64..70_000).prop_map(Some),
    ];
    (
        any::<bool>(),
        prop_oneof![8 => Just(0u8), 1 => 0u8..8],
        opcode,
        prop_oneof![8 => any::<[u8; 4]>().prop_map(Some), 1 => Just(None)],
        prop::collection::vec(any::<u8>(), 0..300),
        0u8..3,
        declared,
    )
        .prop_map(|(fin, rsv, opcode, mask, payload, length_form, declared)| Frame {
            fin,
            rsv,
            opcode,
            mask,
            payload,
            length_form,
            declared,
        })
}

/// A message a well-behaved client sends, with what the reader must make of it.
#[derive(Debug, Clone)]
enum Sent {
    /// A data message (binary or text) in fragments, with pings or pongs
    /// between them.
    Data {
        binary: bool,
        fragments: Vec<Vec<u8>>,
        between: Vec<Option<Vec<u8>>>,
    },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
}

fn sent() -> impl Strategy<Value = Sent> {
    let control = prop::collection::vec(any::<u8>(), 0..=CONTROL_PAYLOAD_MAX);
    let data = (
        any::<bool>(),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..5),
        prop::collection::vec(prop::option::of(control.clone()), 4),
    )
        .prop_map(|(binary, fragments, between)| Sent::Data {
            binary,
            fragments,
            between,
        });
    prop_oneof![4 => data, 1 => control.clone().prop_map(Sent::Ping), 1 => control.prop_map(Sent::Pong)]
}

fn frame(fin: bool, opcode: u8, payload: Vec<u8>, mask: [u8; 4]) -> Frame {
    Frame {
        fin,
        rsv: 0,
        opcode,
        mask: Some(mask),
        payload,
        length_form: 0,
        declared: None,
    }
}

/// The frames of `sent` and the messages the reader must return for them.
fn frames_of(sent: &[Sent], mask: [u8; 4]) -> (Vec<u8>, Vec<Inbound>) {
    let (mut bytes, mut expected) = (Vec::new(), Vec::new());
    for message in sent {
        match message {
            Sent::Ping(p) => {
                bytes.extend(frame(true, 9, p.clone(), mask).encode());
                expected.push(Inbound::Ping(p.clone()));
            }
            Sent::Pong(p) => {
                bytes.extend(frame(true, 10, p.clone(), mask).encode());
                expected.push(Inbound::Pong);
            }
            Sent::Data {
                binary,
                fragments,
                between,
            } => {
                for (i, fragment) in fragments.iter().enumerate() {
                    let opcode = match (i, binary) {
                        (0, true) => 2,
                        (0, false) => 1,
                        _ => 0,
                    };
                    let last = i + 1 == fragments.len();
                    bytes.extend(frame(last, opcode, fragment.clone(), mask).encode());
                    if let (false, Some(Some(ping))) = (last, between.get(i)) {
                        bytes.extend(frame(true, 9, ping.clone(), mask).encode());
                        expected.push(Inbound::Ping(ping.clone()));
                    }
                }
                expected.push(if *binary {
                    Inbound::Binary(fragments.concat())
                } else {
                    Inbound::Text
                });
            }
        }
    }
    (bytes, expected)
}

/// Reads messages until the reader fails; the messages and the error.
fn read_all(bytes: &[u8], cuts: &[usize], max: usize) -> (Vec<Inbound>, WsError) {
    let mut reader = FrameReader::new(Scripted::new(bytes, cuts), Vec::new(), max);
    let mut messages = Vec::new();
    loop {
        match ready(reader.next()) {
            Ok(message) => messages.push(message),
            Err(e) => return (messages, e),
        }
        assert!(messages.len() <= bytes.len(), "a message takes at least two bytes");
    }
}

/// Reads as a session does (each message looked at, then dropped) at most
/// `messages_max` messages; the first thing wrong, if any.
fn read_checked(mut reader: FrameReader<Scripted>, max: usize, messages_max: usize) -> Option<String> {
    for _ in 0..=messages_max {
        let within = match ready(reader.next()) {
            Err(_) => return None,
            Ok(Inbound::Binary(body)) => body.len() <= max,
            Ok(Inbound::Ping(payload)) => payload.len() <= CONTROL_PAYLOAD_MAX.min(max),
            Ok(Inbound::Text | Inbound::Pong | Inbound::Close) => true,
        };
        if !within {
            return Some("a message above its bound".into());
        }
    }
    Some("more messages than a message takes bytes".into())
}

proptest! {
    #![proptest_config(config())]

    /// Any bytes in any reads: the reader ends, every message is within the
    /// bound, control frames are RFC-sized, and it holds at most a few times
    /// its bound in memory.
    #[test]
    fn fuzz_frame_reader_any_bytes(
        bytes in bytes_from(any_frame().prop_map(|f| f.encode()).boxed(), 4096),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
        max in prop_oneof![1usize..64, 64usize..4096],
    ) {
        let reader = FrameReader::new(Scripted::new(&bytes, &cuts), Vec::new(), max);
        let (wrong, usage) = measure(|| read_checked(reader, max, bytes.len() / 2));
        prop_assert_eq!(wrong, None);
        let bound = 3 * max + 2 * WS_READ_CHUNK_BYTES + 2 * CONTROL_PAYLOAD_MAX + 1024;
        prop_assert!(usage.peak_bytes <= bound, "{usage:?} with max {max}");
    }

    /// What a well-behaved client sends (fragmented messages with pings
    /// between fragments, masked) comes back exactly, in any reads, then
    /// the end of the stream.
    #[test]
    fn fuzz_frame_reader_reassembles(
        sent in prop::collection::vec(sent(), 0..6),
        mask in any::<[u8; 4]>(),
        cuts in prop::collection::vec(any::<usize>(), 0..16),
    ) {
        let (bytes, expected) = frames_of(&sent, mask);
        let (messages, end) = read_all(&bytes, &cuts, 4096);
        prop_assert_eq!(messages, expected);
        prop_assert!(matches!(end, WsError::Closed), "{end:?}");
    }
}

#[test]
fn oversized_and_forbidden_frames_are_refused() {
    let mask = [1, 2, 3, 4];
    let read = |f: Frame| read_all(&f.encode(), &[], 1024).1;
    let huge = Frame {
        declared: Some(u64::MAX),
        length_form: 2,
        ..frame(true, 2, Vec::new(), mask)
    };
    assert!(matches!(read(huge), WsError::TooLarge(1024)));
    assert!(matches!(read(frame(true, 9, vec![0; 126], mask)), WsError::Protocol(_)));
    assert!(matches!(read(frame(false, 9, vec![0; 4], mask)), WsError::Protocol(_)));
    assert!(matches!(
        read(frame(true, 2, vec![0; 1025], mask)),
        WsError::TooLarge(1024)
    ));
    let two = [
        frame(false, 2, vec![0; 600], mask).encode(),
        frame(true, 0, vec![0; 600], mask).encode(),
    ]
    .concat();
    assert!(matches!(read_all(&two, &[], 1024).1, WsError::TooLarge(1024)));
}
