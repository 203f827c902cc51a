//! A hand-rolled protobuf codec for exactly the messages of the data plane (BEHAVIOR §18), so
//! the suite checks the wire contract without trusting the crate's generated code.
//!
//! Encoded here: `SendMessageRequest` (client → `POST /v1/messages`) and the `ack` payload of
//! `WebSocketFrame` (client → gateway), plus the server-side messages, only so the decoder can be
//! tested on round trips and batch sizes can be computed. Decoded here: `SendMessageResponse` and
//! `WebSocketFrame` with `pre_key_status` (12), `envelope_batch` (13), the legacy single
//! `envelope` (10) and `ack` (11). Decoding is strict about structure (truncation, bad wire
//! types, trailing garbage are errors) and skips unknown fields, as proto3 requires.

use std::fmt;

/// A decoding failure, with what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "protobuf: {}", self.0)
    }
}

impl std::error::Error for WireError {}

fn err<T>(msg: impl Into<String>) -> Result<T, WireError> {
    Err(WireError(msg.into()))
}

// ---------------------------------------------------------------------------------------------
// Encoding primitives

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// A length-delimited field, written even when empty (callers decide about proto3 omission).
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(out, field, 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A proto3 scalar `bytes`/`string`/sub-message field: omitted when empty.
fn put_bytes_opt(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        put_bytes(out, field, bytes);
    }
}

fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, 0);
        put_varint(out, v);
    }
}

// ---------------------------------------------------------------------------------------------
// Messages

/// `SendMessageRequest.Submission`. Fields are raw bytes so tests can send malformed ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submission {
    pub submission_id: Vec<u8>,
    pub device_id: Vec<u8>,
    pub message: Vec<u8>,
}

impl Submission {
    pub fn new(submission_id: &[u8], device_id: &[u8], message: &[u8]) -> Self {
        Submission {
            submission_id: submission_id.to_vec(),
            device_id: device_id.to_vec(),
            message: message.to_vec(),
        }
    }

    /// A submission with a fresh random 16-byte submission id.
    pub fn to(device_id: &[u8], message: &[u8]) -> Self {
        Self::new(uuid::Uuid::new_v4().as_bytes(), device_id, message)
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes_opt(&mut out, 1, &self.submission_id);
        put_bytes_opt(&mut out, 2, &self.device_id);
        put_bytes_opt(&mut out, 3, &self.message);
        out
    }
}

/// Encodes a `SendMessageRequest` with `messages` in order.
pub fn encode_send_request(messages: &[Submission]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        put_bytes(&mut out, 1, &m.encode());
    }
    out
}

/// Encodes a `WebSocketFrame { ack: AckMessage { message_ids } }`.
pub fn encode_ack<I: AsRef<[u8]>>(ids: &[I]) -> Vec<u8> {
    let mut ack = Vec::new();
    for id in ids {
        put_bytes(&mut ack, 1, id.as_ref());
    }
    let mut out = Vec::new();
    put_bytes(&mut out, 11, &ack);
    out
}

/// `SendMessageResponse.ErrorCode` values (§18.2).
pub mod error_code {
    pub const INVALID_DEVICE: i32 = 1;
    pub const MALFORMED_DEVICE_ID: i32 = 2;
    pub const MALFORMED_SUBMISSION_ID: i32 = 3;
    pub const MESSAGE_MISSING: i32 = 4;
}

/// `SendMessageResponse.FailedSubmission`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FailedSubmission {
    pub submission_id: Vec<u8>,
    pub error_code: i32,
    pub error_message: String,
}

impl FailedSubmission {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes_opt(&mut out, 1, &self.submission_id);
        put_varint_field(&mut out, 2, self.error_code as i64 as u64);
        put_bytes_opt(&mut out, 3, self.error_message.as_bytes());
        out
    }
}

/// `Envelope` (§18.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub id: Vec<u8>,
    pub sender_id: Vec<u8>,
    pub timestamp: u64,
    pub message: Vec<u8>,
    pub sender_device_id: Vec<u8>,
}

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_bytes_opt(&mut out, 1, &self.id);
        put_bytes_opt(&mut out, 2, &self.sender_id);
        put_varint_field(&mut out, 3, self.timestamp);
        put_bytes_opt(&mut out, 4, &self.message);
        put_bytes_opt(&mut out, 5, &self.sender_device_id);
        out
    }

    /// The encoded size of this envelope on its own (what §8.5's batch cap sums).
    pub fn encoded_len(&self) -> usize {
        self.encode().len()
    }

    /// The message id as a UUID, if it is 16 bytes.
    pub fn uuid(&self) -> Option<uuid::Uuid> {
        uuid::Uuid::from_slice(&self.id).ok()
    }

    /// The payload as (lossy) text, handy for payloads the tests made from strings.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }
}

/// The payload of a `WebSocketFrame` (§18.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramePayload {
    /// No payload field at all (an empty frame).
    None,
    /// Legacy field 10: one envelope.
    LegacyEnvelope(Envelope),
    /// Field 11 (client → server only).
    Ack(Vec<Vec<u8>>),
    /// Field 12.
    PreKeyStatus { count: i32, threshold: i32 },
    /// Field 13.
    EnvelopeBatch(Vec<Envelope>),
}

/// Encodes a server-side frame (for decoder tests and size computations).
pub fn encode_frame(payload: &FramePayload) -> Vec<u8> {
    let mut out = Vec::new();
    match payload {
        FramePayload::None => {}
        FramePayload::LegacyEnvelope(e) => put_bytes(&mut out, 10, &e.encode()),
        FramePayload::Ack(ids) => return encode_ack(ids),
        FramePayload::PreKeyStatus { count, threshold } => {
            let mut inner = Vec::new();
            put_varint_field(&mut inner, 1, *count as i64 as u64);
            put_varint_field(&mut inner, 2, *threshold as i64 as u64);
            put_bytes(&mut out, 12, &inner);
        }
        FramePayload::EnvelopeBatch(envelopes) => {
            let mut inner = Vec::new();
            for e in envelopes {
                put_bytes(&mut inner, 1, &e.encode());
            }
            put_bytes(&mut out, 13, &inner);
        }
    }
    out
}

/// Encodes a `SendMessageResponse` (for decoder tests).
pub fn encode_send_response(failed: &[FailedSubmission]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in failed {
        put_bytes(&mut out, 1, &f.encode());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// One field as read from the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return err(format!("truncated varint at byte {}", self.pos));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return err("varint overflows 64 bits");
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| WireError(format!("field of {n} bytes runs past the end at {}", self.pos)))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field, or `None` at the end.
    fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError(format!("field number too large: {key}")))?;
        if field == 0 {
            return err("field number 0");
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError("length too large".into()))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed32
            }
            t => return err(format!("unsupported wire type {t} for field {field}")),
        };
        Ok(Some((field, value)))
    }
}

fn expect_bytes<'a>(field: u32, v: Value<'a>) -> Result<&'a [u8], WireError> {
    match v {
        Value::Bytes(b) => Ok(b),
        _ => err(format!("field {field} should be length-delimited")),
    }
}

fn expect_varint(field: u32, v: Value<'_>) -> Result<u64, WireError> {
    match v {
        Value::Varint(n) => Ok(n),
        _ => err(format!("field {field} should be a varint")),
    }
}

/// An `int32` from its varint (negative values are sign-extended to 64 bits on the wire).
fn int32(field: u32, n: u64) -> Result<i32, WireError> {
    i32::try_from(n as i64).map_err(|_| WireError(format!("field {field}: {n} is not an int32")))
}

pub fn decode_envelope(buf: &[u8]) -> Result<Envelope, WireError> {
    let mut r = Reader::new(buf);
    let mut e = Envelope::default();
    while let Some((field, v)) = r.field()? {
        match field {
            1 => e.id = expect_bytes(field, v)?.to_vec(),
            2 => e.sender_id = expect_bytes(field, v)?.to_vec(),
            3 => e.timestamp = expect_varint(field, v)?,
            4 => e.message = expect_bytes(field, v)?.to_vec(),
            5 => e.sender_device_id = expect_bytes(field, v)?.to_vec(),
            _ => {}
        }
    }
    Ok(e)
}

fn decode_batch(buf: &[u8]) -> Result<Vec<Envelope>, WireError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while let Some((field, v)) = r.field()? {
        if field == 1 {
            out.push(decode_envelope(expect_bytes(field, v)?)?);
        }
    }
    Ok(out)
}

fn decode_status(buf: &[u8]) -> Result<FramePayload, WireError> {
    let mut r = Reader::new(buf);
    let (mut count, mut threshold) = (0, 0);
    while let Some((field, v)) = r.field()? {
        match field {
            1 => count = int32(field, expect_varint(field, v)?)?,
            2 => threshold = int32(field, expect_varint(field, v)?)?,
            _ => {}
        }
    }
    Ok(FramePayload::PreKeyStatus { count, threshold })
}

fn decode_ack(buf: &[u8]) -> Result<Vec<Vec<u8>>, WireError> {
    let mut r = Reader::new(buf);
    let mut ids = Vec::new();
    while let Some((field, v)) = r.field()? {
        if field == 1 {
            ids.push(expect_bytes(field, v)?.to_vec());
        }
    }
    Ok(ids)
}

/// Decodes a `WebSocketFrame`. Two different payload fields in one frame are an error (a
/// `oneof` the server's encoder would never produce), though proto3 would let the last win.
pub fn decode_frame(buf: &[u8]) -> Result<FramePayload, WireError> {
    let mut r = Reader::new(buf);
    let mut payload = FramePayload::None;
    let mut seen = 0;
    while let Some((field, v)) = r.field()? {
        let p = match field {
            10 => FramePayload::LegacyEnvelope(decode_envelope(expect_bytes(field, v)?)?),
            11 => FramePayload::Ack(decode_ack(expect_bytes(field, v)?)?),
            12 => decode_status(expect_bytes(field, v)?)?,
            13 => FramePayload::EnvelopeBatch(decode_batch(expect_bytes(field, v)?)?),
            _ => continue,
        };
        seen += 1;
        if seen > 1 {
            return err(format!("frame carries more than one payload: {buf:02x?}"));
        }
        payload = p;
    }
    Ok(payload)
}

/// Decodes a `SendMessageResponse` into its failed submissions, in order.
pub fn decode_send_response(buf: &[u8]) -> Result<Vec<FailedSubmission>, WireError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while let Some((field, v)) = r.field()? {
        if field != 1 {
            continue;
        }
        let mut inner = Reader::new(expect_bytes(field, v)?);
        let mut f = FailedSubmission::default();
        while let Some((field, v)) = inner.field()? {
            match field {
                1 => f.submission_id = expect_bytes(field, v)?.to_vec(),
                2 => f.error_code = int32(field, expect_varint(field, v)?)?,
                3 => {
                    f.error_message = String::from_utf8(expect_bytes(field, v)?.to_vec())
                        .map_err(|_| WireError("error_message is not UTF-8".into()))?
                }
                _ => {}
            }
        }
        out.push(f);
    }
    Ok(out)
}

/// Lower-case hex of `bytes`, for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses hex with optional spaces, for the §18.8 examples.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap_or("zz"), 16).unwrap_or(0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harness_wire_matches_the_hex_examples_of_the_spec() {
        // Goal: the hand-rolled codec agrees with BEHAVIOR §18.8, so a failing data-plane test
        // points at the server, not the codec. Method: decode and re-encode each example.
        let welcome = unhex("62 02 10 14");
        assert_eq!(
            decode_frame(&welcome),
            Ok(FramePayload::PreKeyStatus {
                count: 0,
                threshold: 20
            })
        );
        assert_eq!(
            encode_frame(&FramePayload::PreKeyStatus {
                count: 0,
                threshold: 20
            }),
            welcome
        );

        let five = unhex("62 04 08 05 10 14");
        assert_eq!(
            decode_frame(&five),
            Ok(FramePayload::PreKeyStatus {
                count: 5,
                threshold: 20
            })
        );
        assert_eq!(
            encode_frame(&FramePayload::PreKeyStatus {
                count: 5,
                threshold: 20
            }),
            five
        );

        let id = [0x77u8; 16];
        let mut ack = unhex("5A 12 0A 10");
        ack.extend_from_slice(&id);
        assert_eq!(encode_ack(&[id]), ack);
        assert_eq!(decode_frame(&ack), Ok(FramePayload::Ack(vec![id.to_vec()])));

        let batch_hex = format!(
            "6A 43 0A 41 0A 10 {} 12 10 {} 18 80 D0 95 FF BC 31 22 02 68 69 2A 10 {}",
            "41".repeat(16),
            "42".repeat(16),
            "43".repeat(16)
        );
        let batch = unhex(&batch_hex);
        let envelope = Envelope {
            id: vec![0x41; 16],
            sender_id: vec![0x42; 16],
            timestamp: 1_700_000_000_000,
            message: b"hi".to_vec(),
            sender_device_id: vec![0x43; 16],
        };
        assert_eq!(
            decode_frame(&batch),
            Ok(FramePayload::EnvelopeBatch(vec![envelope.clone()]))
        );
        assert_eq!(
            encode_frame(&FramePayload::EnvelopeBatch(vec![envelope.clone()])),
            batch
        );
        assert_eq!(envelope.encoded_len(), 0x41);
    }

    #[test]
    fn harness_wire_round_trips_requests_and_responses() {
        // Goal: the request encoder and response decoder are right, including proto3 omission of
        // empty fields and negative int32s. Method: known bytes and round trips.
        let s = Submission::new(&[1, 2, 3], &[4; 16], b"");
        assert_eq!(s.encode(), unhex(&format!("0A 03 01 02 03 12 10 {}", "04".repeat(16))));
        let req = encode_send_request(&[s.clone(), Submission::default()]);
        assert_eq!(req[0], 0x0A);
        assert_eq!(
            &req[req.len() - 2..],
            &[0x0A, 0x00],
            "an all-empty submission is an empty message"
        );
        assert!(encode_send_request(&[]).is_empty());

        let failed = vec![
            FailedSubmission {
                submission_id: vec![9; 16],
                error_code: error_code::INVALID_DEVICE,
                error_message: "Device not found".into(),
            },
            FailedSubmission {
                submission_id: vec![1, 2, 3],
                error_code: error_code::MALFORMED_SUBMISSION_ID,
                error_message: "x".into(),
            },
            FailedSubmission {
                submission_id: vec![],
                error_code: -1,
                error_message: String::new(),
            },
        ];
        assert_eq!(decode_send_response(&encode_send_response(&failed)), Ok(failed));
        assert_eq!(decode_send_response(&[]), Ok(vec![]));

        // Unknown fields of every wire type are skipped.
        let mut with_unknown = unhex("08 96 01 11 0102030405060708 1D 01020304 22 01 00");
        with_unknown.extend(encode_frame(&FramePayload::PreKeyStatus { count: 3, threshold: 4 }));
        assert_eq!(
            decode_frame(&with_unknown),
            Ok(FramePayload::PreKeyStatus { count: 3, threshold: 4 })
        );
        assert_eq!(decode_frame(&[]), Ok(FramePayload::None));
    }

    #[test]
    fn harness_wire_rejects_malformed_input() {
        // Goal: a structurally broken frame from the server is reported, not misread. Method:
        // truncations, a bad wire type, an overlong varint, two payloads.
        assert!(decode_frame(&unhex("62 04 08 05")).is_err(), "truncated sub-message");
        assert!(decode_frame(&unhex("62")).is_err(), "truncated length");
        assert!(decode_frame(&unhex("63 00")).is_err(), "wire type 3");
        assert!(decode_frame(&unhex("08 FF FF FF FF FF FF FF FF FF 7F")).is_err());
        assert!(decode_frame(&unhex("62 02 10 14 62 02 10 14")).is_err(), "two payloads");
        assert!(decode_send_response(&unhex("0A 05 0A 10")).is_err());
        assert!(decode_frame(&unhex("00 00")).is_err(), "field number 0");
    }
}
