//! Reading a client's protobuf bytes without building messages. prost builds
//! every element of a repeated field, so a body of two-byte empty elements
//! costs 16 (a `bytes` id) to 48 (a `Submission`) times its size in memory,
//! doubled while its `Vec` grows: a 2 MiB send would hold ~200 MiB, a 1 MiB
//! ack frame ~32 MiB. The server therefore counts submissions before it
//! decodes a `SendMessageRequest` ([`submissions`]) and reads ack ids straight
//! from the frame ([`ack_ids`]). Both follow prost's reading of the wire
//! format (varints of at most 10 bytes, field 0 and wire types 6 and 7
//! refused, groups skipped to prost's depth), which the fuzz tests check
//! against prost itself.

/// Why bytes are not a protobuf message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field runs past the end of the bytes.
    #[error("truncated message")]
    Truncated,
    /// A varint longer than 10 bytes or above `u64::MAX`.
    #[error("invalid varint")]
    BadVarint,
    /// Field number 0, a key above `u32::MAX`, wire type 6 or 7, an end
    /// of group that closes no group, or a known field of the wrong type.
    #[error("invalid field key")]
    BadKey,
    /// Groups nested deeper than prost's recursion limit.
    #[error("recursion limit reached")]
    TooDeep,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const FIXED32: u8 = 5;

/// prost's `RECURSION_LIMIT`: nested messages and groups allowed.
const DEPTH_MAX: u32 = 100;

/// `SendMessageRequest.messages`.
const SUBMISSION_FIELD: u32 = 1;
/// `WebSocketFrame.ack`.
const ACK_FIELD: u32 = 11;
/// The other payloads of `WebSocketFrame`: envelope, pre_key_status, envelope_batch.
const SERVER_PAYLOAD_FIELDS: [u32; 3] = [10, 12, 13];
/// `AckMessage.message_ids`.
const ACK_ID_FIELD: u32 = 1;
/// The fewest frame bytes a 16-byte id takes: key, length, the id.
const ACK_ID_BYTES_MIN: usize = 18;

/// A cursor over the fields of one message.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (count, &byte) in self.rest.iter().take(10).enumerate() {
            value |= u64::from(byte & 0x7f) << (count * 7);
            if byte < 0x80 {
                if count == 9 && byte >= 0x02 {
                    return Err(WireError::BadVarint);
                }
                self.rest = &self.rest[count + 1..];
                return Ok(value);
            }
        }
        Err(WireError::BadVarint)
    }

    /// The next field's number and wire type.
    fn key(&mut self) -> Result<(u32, u8), WireError> {
        let key = u32::try_from(self.varint()?).map_err(|_| WireError::BadKey)?;
        let (field, wire_type) = (key >> 3, (key & 7) as u8);
        if field == 0 || wire_type > FIXED32 {
            return Err(WireError::BadKey);
        }
        Ok((field, wire_type))
    }

    fn take(&mut self, len: u64) -> Result<&'a [u8], WireError> {
        let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
        if len > self.rest.len() {
            return Err(WireError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    /// The payload of a length-delimited field whose key was just read.
    fn payload(&mut self, wire_type: u8) -> Result<&'a [u8], WireError> {
        if wire_type != LENGTH_DELIMITED {
            return Err(WireError::BadKey);
        }
        let len = self.varint()?;
        self.take(len)
    }

    /// Skips the value of a field whose key was just read, as prost skips
    /// unknown fields; `depth` is the recursion left.
    fn skip(&mut self, field: u32, wire_type: u8, depth: u32) -> Result<(), WireError> {
        if depth == 0 {
            return Err(WireError::TooDeep);
        }
        match wire_type {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            FIXED32 => self.take(4).map(drop),
            LENGTH_DELIMITED => self.payload(wire_type).map(drop),
            START_GROUP => loop {
                match self.key()? {
                    (inner, END_GROUP) if inner == field => return Ok(()),
                    (_, END_GROUP) => return Err(WireError::BadKey),
                    (inner, inner_type) => self.skip(inner, inner_type, depth - 1)?,
                }
            },
            _ => Err(WireError::BadKey),
        }
    }
}

/// The number of submissions in a `SendMessageRequest`, read without
/// decoding them (their own fields are not looked at). Whenever prost
/// decodes `bytes`, this is its `messages.len()`; whenever this fails,
/// prost fails too.
pub fn submissions(bytes: &[u8]) -> Result<usize, WireError> {
    let mut reader = Reader::new(bytes);
    let mut count = 0;
    while !reader.is_empty() {
        match reader.key()? {
            (SUBMISSION_FIELD, wire_type) => {
                reader.payload(wire_type)?;
                count += 1;
            }
            (field, wire_type) => reader.skip(field, wire_type, DEPTH_MAX)?,
        }
    }
    Ok(count)
}

/// The 16-byte ids of an ack frame — a `WebSocketFrame` whose payload is an
/// `AckMessage` — in order, ids of other lengths skipped (BEHAVIOR.md §8.3);
/// `None` for anything else. Several `ack` fields merge, as in prost. A frame
/// that also carries a server-to-client payload (fields 10, 12, 13) is not an
/// ack here, whichever comes last (prost would keep the last one): clients
/// send acks only. The ids are held in one block of at most the frame's
/// size: every 16-byte id takes at least 18 bytes of frame.
pub fn ack_ids(frame: &[u8]) -> Option<Vec<[u8; 16]>> {
    let mut reader = Reader::new(frame);
    let mut ids = Vec::with_capacity(frame.len() / ACK_ID_BYTES_MIN);
    let mut is_ack = false;
    while !reader.is_empty() {
        match reader.key().ok()? {
            (ACK_FIELD, wire_type) => {
                read_ack(reader.payload(wire_type).ok()?, &mut ids).ok()?;
                is_ack = true;
            }
            (field, _) if SERVER_PAYLOAD_FIELDS.contains(&field) => return None,
            (field, wire_type) => reader.skip(field, wire_type, DEPTH_MAX).ok()?,
        }
    }
    is_ack.then_some(ids)
}

/// Appends the 16-byte ids of one `AckMessage` to `ids`.
fn read_ack(message: &[u8], ids: &mut Vec<[u8; 16]>) -> Result<(), WireError> {
    let mut reader = Reader::new(message);
    while !reader.is_empty() {
        match reader.key()? {
            (ACK_ID_FIELD, wire_type) => {
                if let Ok(id) = <[u8; 16]>::try_from(reader.payload(wire_type)?) {
                    ids.push(id);
                }
            }
            (field, wire_type) => reader.skip(field, wire_type, DEPTH_MAX - 1)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod fuzz;
