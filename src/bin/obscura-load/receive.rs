//! The receivers: one task per gateway socket on the io thread. Each reads
//! server frames (unmasked, RFC 6455 §5.1), records every envelope's
//! latency and number, and acks each `EnvelopeBatch` with one masked
//! `AckMessage` frame; pings get pongs.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use obscura_relay::proto::web_socket_frame::Payload;
use obscura_relay::proto::{AckMessage, WebSocketFrame};
use prost::Message;

use super::client::Gateway;
use super::workload::{read_stamp, Rng, Workload};

/// What the receivers saw, together.
#[derive(Default)]
pub struct Received {
    /// Per delivered envelope: µs from its intended send time.
    pub latencies_us: Vec<u64>,
    /// Bit `n` set: message `n` arrived.
    seen: Vec<u64>,
    distinct: u64,
    /// Envelopes that arrived more than once.
    pub duplicates: u64,
    /// `EnvelopeBatch` frames received.
    pub frames: u64,
}

impl Received {
    fn record(&mut self, number: u64, latency_us: u64) {
        let (word, bit) = ((number / 64) as usize, number % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.seen[word] & mask != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= mask;
        self.distinct += 1;
        self.latencies_us.push(latency_us);
    }

    /// Distinct messages delivered.
    pub fn distinct(&self) -> u64 {
        self.distinct
    }
}

/// A frame read from the server.
enum Frame {
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Close,
    Other,
}

/// Takes one whole frame off the front of `buf`, if there is one.
fn take_frame(buf: &mut Vec<u8>) -> Option<Frame> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let (len, start) = match b1 & 0x7f {
        126 => (u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])), 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let end = start + usize::try_from(len).ok()?;
    let payload = buf.get(start..end)?.to_vec();
    buf.drain(..end);
    Some(match b0 & 0x0f {
        0x2 => Frame::Binary(payload),
        0x8 => Frame::Close,
        0x9 => Frame::Ping(payload),
        _ => Frame::Other,
    })
}

/// A masked client frame (final, `opcode`) carrying `payload`.
fn client_frame(opcode: u8, payload: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask = (rng.next() as u32).to_be_bytes();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// The answer to a binary frame: an ack of every envelope of a batch.
fn handle_binary(bytes: &[u8], workload: &Workload, received: &RefCell<Received>, rng: &mut Rng) -> Option<Vec<u8>> {
    let Ok(WebSocketFrame {
        payload: Some(Payload::EnvelopeBatch(batch)),
    }) = WebSocketFrame::decode(bytes)
    else {
        return None;
    };
    let now_us = workload.now_us();
    let mut received = received.borrow_mut();
    received.frames += 1;
    let mut ids = Vec::with_capacity(batch.envelopes.len());
    for envelope in batch.envelopes {
        if let Some((intended_us, number)) = read_stamp(&envelope.message) {
            received.record(number, now_us.saturating_sub(intended_us));
        }
        ids.push(envelope.id);
    }
    let ack = WebSocketFrame {
        payload: Some(Payload::Ack(AckMessage { message_ids: ids })),
    };
    Some(client_frame(0x2, &ack.encode_to_vec(), rng))
}

/// Serves one gateway socket until the server closes it or the run ends
/// (the io runtime drops the task).
pub async fn run(gateway: Gateway, workload: Arc<Workload>, received: Rc<RefCell<Received>>) {
    let std_stream = gateway.stream;
    if std_stream.set_read_timeout(None).is_err() || std_stream.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(mut stream) = TcpStream::from_std(std_stream) else {
        return;
    };
    let mut buf = gateway.leftover;
    let mut rng = Rng::for_sender(stream_seed(&stream));
    loop {
        while let Some(frame) = take_frame(&mut buf) {
            let answer = match frame {
                Frame::Binary(bytes) => handle_binary(&bytes, &workload, &received, &mut rng),
                Frame::Ping(payload) => Some(client_frame(0xA, &payload, &mut rng)),
                Frame::Close => return,
                Frame::Other => None,
            };
            if let Some(answer) = answer {
                if stream.write_all(answer).await.0.is_err() {
                    return;
                }
            }
        }
        let len = buf.len();
        buf.reserve(64 * 1024);
        let (read, slice) = stream.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        if !matches!(read, Ok(n) if n > 0) {
            return;
        }
    }
}

/// A per-socket seed for the masks.
fn stream_seed(stream: &TcpStream) -> usize {
    stream.local_addr().map_or(0, |a| usize::from(a.port()))
}
