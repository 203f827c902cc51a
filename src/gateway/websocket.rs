//! WebSocket framing (RFC 6455) over monoio's owned-buffer I/O, with
//! tungstenite's frame codec (`FrameHeader`) for the wire format. The reader
//! owns the read half of the socket (any monoio reader: the fuzz tests drive
//! it from memory), unmasks client frames, reassembles fragmented messages
//! up to a bound and answers nothing itself; the session decides. Writers
//! format unmasked server frames with [`encode`].

use std::io::Cursor;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, OwnedReadHalf};
use monoio::net::TcpStream;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use crate::limits;

/// A complete inbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// A binary message.
    Binary(Vec<u8>),
    /// A text message (we ignore its content).
    Text,
    /// A ping with its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// The client closes.
    Close,
}

/// Why reading stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The socket failed or closed.
    #[error("socket closed or failed")]
    Closed,
    /// The client broke the protocol.
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A message above the bound.
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
}

/// Reads client messages from the read half of a socket.
pub struct FrameReader<R = OwnedReadHalf<TcpStream>> {
    half: R,
    buf: Vec<u8>,
    partial: Option<(bool, Vec<u8>)>,
    max: usize,
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

impl<R: AsyncReadRent> FrameReader<R> {
    /// A reader over `half` that starts with the bytes already read
    /// (`leftover`) and refuses messages above `max` bytes.
    pub fn new(half: R, leftover: Vec<u8>, max: usize) -> Self {
        Self {
            half,
            buf: leftover,
            partial: None,
            max,
        }
    }

    /// The next complete message.
    pub async fn next(&mut self) -> Result<Inbound, WsError> {
        loop {
            while let Some((header, payload)) = self.parse_frame()? {
                if let Some(message) = self.assemble(header, payload)? {
                    return Ok(message);
                }
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> Result<(), WsError> {
        let mut buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        buf.reserve(limits::WS_READ_CHUNK_BYTES);
        let (result, slice) = self.half.read(buf.slice_mut(len..)).await;
        self.buf = slice.into_inner();
        if self.buf.capacity() > 4 * limits::WS_READ_CHUNK_BYTES && self.buf.len() <= limits::WS_READ_CHUNK_BYTES {
            self.buf.shrink_to(limits::WS_READ_CHUNK_BYTES);
        }
        match result {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(WsError::Closed),
        }
    }

    /// One whole frame from the buffer, unmasked; `None` if incomplete.
    fn parse_frame(&mut self) -> Result<Option<(FrameHeader, Vec<u8>)>, WsError> {
        let mut cursor = Cursor::new(self.buf.as_slice());
        let Some((header, len)) = FrameHeader::parse(&mut cursor).map_err(|_| WsError::Protocol("bad frame header"))?
        else {
            return Ok(None);
        };
        if matches!(header.opcode, OpCode::Control(_))
            && (!header.is_final || len > limits::WS_CONTROL_PAYLOAD_BYTES_MAX as u64)
        {
            return Err(WsError::Protocol("fragmented or oversized control frame"));
        }
        if len > self.max as u64 {
            return Err(WsError::TooLarge(self.max));
        }
        let start = cursor.position() as usize;
        let end = start + len as usize;
        if self.buf.len() < end {
            return Ok(None);
        }
        let mut payload = self.buf.get(start..end).unwrap_or_default().to_vec();
        self.buf.drain(..end);
        let Some(mask) = header.mask else {
            return Err(WsError::Protocol("unmasked client frame"));
        };
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WsError::Protocol("reserved bits set"));
        }
        unmask(&mut payload, mask);
        Ok(Some((header, payload)))
    }

    /// Turns frames into messages, joining fragments.
    fn assemble(&mut self, header: FrameHeader, payload: Vec<u8>) -> Result<Option<Inbound>, WsError> {
        let data = match header.opcode {
            OpCode::Control(Control::Ping) => return Ok(Some(Inbound::Ping(payload))),
            OpCode::Control(Control::Pong) => return Ok(Some(Inbound::Pong)),
            OpCode::Control(Control::Close) => return Ok(Some(Inbound::Close)),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                return Err(WsError::Protocol("reserved opcode"))
            }
            OpCode::Data(data) => data,
        };
        // A frame's payload is within the bound already; so is, checked
        // before it is joined, a message of several.
        let (binary, mut body) = match (data, self.partial.take()) {
            (Data::Continue, Some((binary, mut body))) => {
                if body.len() + payload.len() > self.max {
                    return Err(WsError::TooLarge(self.max));
                }
                body.extend_from_slice(&payload);
                (binary, body)
            }
            (Data::Continue, None) => return Err(WsError::Protocol("continuation without a message")),
            (_, Some(_)) => return Err(WsError::Protocol("new message inside a fragmented one")),
            (Data::Binary, None) => (true, payload),
            (_, None) => (false, payload),
        };
        if !header.is_final {
            self.partial = Some((binary, std::mem::take(&mut body)));
            return Ok(None);
        }
        Ok(Some(if binary { Inbound::Binary(body) } else { Inbound::Text }))
    }
}

/// A server frame (final, unmasked) with `payload`.
pub fn encode(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        rsv1: false,
        rsv2: false,
        rsv3: false,
        opcode,
        mask: None,
    };
    let mut out = Vec::with_capacity(header.len(payload.len() as u64) + payload.len());
    let _ = header.format(payload.len() as u64, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A binary message frame.
pub fn binary(payload: &[u8]) -> Vec<u8> {
    encode(OpCode::Data(Data::Binary), payload)
}

/// A close frame, with a status code and reason when given.
pub fn close(code: Option<u16>, reason: &str) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some(code) = code {
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(reason.as_bytes());
    }
    encode(OpCode::Control(Control::Close), &payload)
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_are_unmasked_and_sized() {
        assert_eq!(binary(b"hi"), vec![0x82, 0x02, b'h', b'i']);
        let big = binary(&[0u8; 300]);
        assert_eq!(&big[..4], &[0x82, 126, 0x01, 0x2c]);
        assert_eq!(close(Some(1001), "x"), vec![0x88, 0x03, 0x03, 0xe9, b'x']);
        assert_eq!(close(None, ""), vec![0x88, 0x00]);
    }
}
