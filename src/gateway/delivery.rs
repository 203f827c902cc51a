//! What a session delivers and how it is framed. [`follow`] decides which
//! messages handed over by the owner ([`Arrival`]s) can go out without a
//! store read. Frames: for v1 sockets `EnvelopeBatch` frames (BEHAVIOR.md
//! §8.5) — envelopes in delivery order, a new frame whenever the next
//! envelope would push the frame's envelopes past the byte cap, unless the
//! frame is empty, so an envelope larger than the cap goes alone, never
//! dropped; for legacy sockets (`?token=`, §17.2 item 8) one `envelope`
//! (field 10) frame per message, which unmodified legacy clients read.

use prost::Message;

use super::cursor::Cursor;
use super::events::Arrival;
use crate::proto::{web_socket_frame::Payload, Envelope, EnvelopeBatch, PreKeyStatus, WebSocketFrame};
use crate::store::StoredMessage;

/// What [`follow`] decided.
#[derive(Debug, PartialEq, Eq)]
pub struct Followed {
    /// Messages to write now, in order.
    pub ready: Vec<StoredMessage>,
    /// The store must be read after the cursor: an arrival's predecessor
    /// is past the cursor (it may not have been delivered), an arrival
    /// committed behind the cursor (a late commit), or arrivals were
    /// dropped.
    pub gap: bool,
}

/// Walks `arrivals` (in the order they came) from a session's `cursor`:
/// one delivered already is skipped; one whose predecessor is at or before
/// the cursor (or that had none) follows without a gap and is ready
/// (unless it expired at `now_secs`: then it only moves the cursor); at the
/// first that may not follow, or that committed behind the cursor, the
/// rest is left to a store read. `complete` is `false` when arrivals were
/// dropped, which is a gap from the start.
pub fn follow(cursor: &mut Cursor, arrivals: Vec<Arrival>, complete: bool, now_secs: i64) -> Followed {
    let mut ready = Vec::with_capacity(arrivals.len());
    if !complete {
        return Followed { ready, gap: true };
    }
    for arrival in arrivals {
        let seq = arrival.message.seq;
        if cursor.delivered(seq) {
            continue;
        }
        let may_have_missed = arrival.prev.is_some_and(|p| cursor.position().is_none_or(|c| p > c));
        if may_have_missed || cursor.behind(seq) {
            return Followed { ready, gap: true };
        }
        cursor.record(seq);
        if arrival.expires_at_secs > now_secs {
            ready.push(arrival.message);
        }
    }
    Followed { ready, gap: false }
}

/// The envelope of a queued message.
pub fn envelope(m: &StoredMessage) -> Envelope {
    Envelope {
        id: bytes::Bytes::copy_from_slice(m.id.as_bytes()),
        sender_id: bytes::Bytes::copy_from_slice(m.sender_user.as_bytes()),
        timestamp: m.created_at_ms,
        message: m.payload.clone(),
        sender_device_id: bytes::Bytes::copy_from_slice(m.sender_device.as_bytes()),
    }
}

/// How a socket's envelopes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `EnvelopeBatch` frames (field 13): the v1 gateway.
    Batches,
    /// One `Envelope` per frame (field 10): the legacy gateway.
    SingleEnvelopes,
}

/// Encoded `WebSocketFrame`s carrying `messages` in order, framed as
/// `framing` says.
pub fn frames(messages: &[StoredMessage], framing: Framing, max_batch_bytes: usize) -> Vec<Vec<u8>> {
    match framing {
        Framing::Batches => batch_frames(messages, max_batch_bytes),
        Framing::SingleEnvelopes => messages.iter().map(|m| frame(Payload::Envelope(envelope(m)))).collect(),
    }
}

/// Encoded `WebSocketFrame`s carrying `messages` in order, each batch's
/// envelopes summing to at most `max_batch_bytes` (or one envelope).
pub fn batch_frames(messages: &[StoredMessage], max_batch_bytes: usize) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut current: Vec<Envelope> = Vec::new();
    let mut size = 0usize;
    for m in messages {
        let env = envelope(m);
        let len = env.encoded_len();
        if !current.is_empty() && size + len > max_batch_bytes {
            frames.push(frame(Payload::EnvelopeBatch(EnvelopeBatch {
                envelopes: std::mem::take(&mut current),
            })));
            size = 0;
        }
        size += len;
        current.push(env);
    }
    if !current.is_empty() {
        frames.push(frame(Payload::EnvelopeBatch(EnvelopeBatch { envelopes: current })));
    }
    frames
}

/// An encoded `WebSocketFrame` with `payload`.
pub fn frame(payload: Payload) -> Vec<u8> {
    WebSocketFrame { payload: Some(payload) }.encode_to_vec()
}

/// An encoded `PreKeyStatus` frame.
pub fn prekey_status(count: usize, threshold: usize) -> Vec<u8> {
    let clamp = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    frame(Payload::PreKeyStatus(PreKeyStatus {
        one_time_pre_key_count: clamp(count),
        min_threshold: clamp(threshold),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn message(seq: u64, payload: &[u8]) -> StoredMessage {
        StoredMessage {
            seq,
            id: Uuid::from_bytes([0x41; 16]),
            sender_user: Uuid::from_bytes([0x42; 16]),
            sender_device: Uuid::from_bytes([0x43; 16]),
            payload: bytes::Bytes::copy_from_slice(payload),
            created_at_ms: 1_700_000_000_000,
        }
    }

    /// Goal: the encoding matches the hex examples of BEHAVIOR.md §18.8.
    #[test]
    fn matches_the_wire_examples() {
        assert_eq!(prekey_status(0, 20), vec![0x62, 0x02, 0x10, 0x14]);
        assert_eq!(prekey_status(5, 20), vec![0x62, 0x04, 0x08, 0x05, 0x10, 0x14]);
        let frames = batch_frames(&[message(1, b"hi")], 1024);
        let mut expected = vec![0x6a, 0x43, 0x0a, 0x41, 0x0a, 0x10];
        expected.extend([0x41; 16]);
        expected.extend([0x12, 0x10]);
        expected.extend([0x42; 16]);
        expected.extend([
            0x18, 0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31, 0x22, 0x02, 0x68, 0x69, 0x2a, 0x10,
        ]);
        expected.extend([0x43; 16]);
        assert_eq!(frames, vec![expected]);
    }

    #[test]
    fn splits_at_the_cap_and_sends_oversize_alone() {
        let small: Vec<_> = (0..10).map(|i| message(i, &[7u8; 100])).collect();
        let frames = batch_frames(&small, 400);
        assert!(frames.len() > 1);
        let total: usize = frames
            .iter()
            .map(|f| match WebSocketFrame::decode(f.as_slice()).unwrap().payload {
                Some(Payload::EnvelopeBatch(b)) => b.envelopes.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(total, 10);
        assert_eq!(batch_frames(&[message(1, &[1u8; 4096])], 1024).len(), 1);
    }

    fn arrival(seq: u64, prev: Option<u64>) -> Arrival {
        Arrival {
            message: message(seq, b"x"),
            prev,
            expires_at_secs: 100,
        }
    }

    fn seqs(f: &Followed) -> Vec<u64> {
        f.ready.iter().map(|m| m.seq).collect()
    }

    /// A cursor at `position` (none: before the first message).
    fn at(position: Option<u64>, window: u64) -> Cursor {
        let mut cursor = Cursor::new(window);
        if let Some(p) = position {
            cursor.record(p);
        }
        cursor
    }

    /// Goal: a chain of arrivals from the cursor goes out without a store
    /// read; a repeat is skipped; an expired one moves the cursor only.
    #[test]
    fn arrivals_that_follow_the_cursor_are_ready() {
        let chain = vec![
            arrival(5, None),
            arrival(7, Some(5)),
            arrival(7, Some(5)),
            arrival(9, Some(7)),
        ];
        let mut cursor = at(None, 0);
        let f = follow(&mut cursor, chain, true, 50);
        assert_eq!((seqs(&f), cursor.position(), f.gap), (vec![5, 7, 9], Some(9), false));
        let mut cursor = at(Some(7), 0);
        let f = follow(&mut cursor, vec![arrival(6, None), arrival(8, Some(3))], true, 50);
        assert_eq!(
            (seqs(&f), cursor.position(), f.gap),
            (vec![8], Some(8), false),
            "6 was delivered"
        );
        let expired = Arrival {
            expires_at_secs: 40,
            ..arrival(11, Some(9))
        };
        let mut cursor = at(Some(9), 0);
        let f = follow(&mut cursor, vec![expired, arrival(12, Some(11))], true, 50);
        assert_eq!((seqs(&f), cursor.position()), (vec![12], Some(12)));
    }

    /// Goal: an arrival whose predecessor may not have been delivered, and
    /// dropped arrivals, leave the rest to a store read after the cursor.
    #[test]
    fn a_gap_stops_at_the_cursor() {
        let mut cursor = at(Some(3), 0);
        let f = follow(
            &mut cursor,
            vec![arrival(4, Some(3)), arrival(9, Some(8)), arrival(10, Some(9))],
            true,
            50,
        );
        assert_eq!((seqs(&f), cursor.position(), f.gap), (vec![4], Some(4), true));
        let f = follow(&mut at(None, 0), vec![arrival(9, Some(8))], true, 50);
        assert!(f.gap && f.ready.is_empty(), "no cursor yet: 8 may be undelivered");
        let mut cursor = at(Some(3), 0);
        let f = follow(&mut cursor, vec![arrival(4, Some(3))], false, 50);
        assert_eq!((seqs(&f), cursor.position(), f.gap), (vec![], Some(3), true));
    }

    /// Goal: with a late-commit window, an arrival that committed behind the
    /// cursor (another node's late commit) is a gap, never skipped as
    /// delivered; one delivered within the window is skipped.
    #[test]
    fn a_late_commit_is_read_not_skipped() {
        let mut cursor = at(Some(100), 50);
        let f = follow(&mut cursor, vec![arrival(100, Some(90))], true, 50);
        assert_eq!((seqs(&f), f.gap), (vec![], false), "100 went out already");
        let f = follow(&mut cursor, vec![arrival(80, None)], true, 50);
        assert!(f.gap && f.ready.is_empty(), "80 committed late: read the store");
        assert_eq!(cursor.read_after(), Some(50));
    }

    #[test]
    fn legacy_framing_sends_one_envelope_per_field_10_frame() {
        let messages: Vec<_> = (0..3).map(|i| message(i, b"hi")).collect();
        let frames = frames(&messages, Framing::SingleEnvelopes, 1024);
        assert_eq!(frames.len(), 3);
        for f in &frames {
            assert_eq!(f.first(), Some(&0x52), "field 10, length-delimited");
            match WebSocketFrame::decode(f.as_slice()).unwrap().payload {
                Some(Payload::Envelope(e)) => assert_eq!(e.message.as_ref(), b"hi"),
                other => panic!("{other:?}"),
            }
        }
    }
}
