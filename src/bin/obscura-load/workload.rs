//! What is sent: `SendMessageRequest` bodies of `--batch` submissions to
//! random devices. Each payload starts with the time the message was meant
//! to be sent (µs after the run's epoch) and a number unique in the run,
//! which the receivers read back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use obscura_relay::proto::send_message_request::Submission;
use obscura_relay::proto::SendMessageRequest;
use prost::Message;
use uuid::Uuid;

use super::args::Args;
use super::client::{encode_request, Device};

/// The shared plan of a run.
pub struct Workload {
    /// Time zero of the run; intended send times count from here.
    pub epoch: Instant,
    targets: Vec<Uuid>,
    tokens: Vec<String>,
    batch: usize,
    payload_bytes: usize,
    next_number: AtomicU64,
}

/// A cheap pseudo-random sequence (xorshift64), one per sender.
pub struct Rng(u64);

impl Rng {
    /// A sequence for sender `i`.
    pub fn for_sender(i: usize) -> Self {
        Self(0x9e37_79b9_7f4a_7c15 ^ (i as u64).wrapping_mul(0x2545_f491_4f6c_dd1d) | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The µs at offset 0 of a payload and the number at offset 8.
pub fn read_stamp(payload: &[u8]) -> Option<(u64, u64)> {
    let word = |at: usize| Some(u64::from_le_bytes(payload.get(at..at + 8)?.try_into().ok()?));
    Some((word(0)?, word(8)?))
}

impl Workload {
    /// The plan for `devices`, starting now.
    pub fn new(args: &Args, devices: &[Device]) -> Self {
        Self {
            epoch: Instant::now(),
            targets: devices.iter().map(|d| d.id).collect(),
            tokens: devices.iter().map(|d| d.token.clone()).collect(),
            batch: args.batch,
            payload_bytes: args.payload_bytes.max(16),
            next_number: AtomicU64::new(0),
        }
    }

    /// µs since the epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// How many message numbers were handed out.
    pub fn numbered(&self) -> u64 {
        self.next_number.load(Ordering::Relaxed)
    }

    /// Messages per request.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The encoded `POST /v1/messages` of sender `sender` for a batch meant
    /// to leave at `intended_us`.
    pub fn request(&self, sender: usize, rng: &mut Rng, intended_us: u64) -> Vec<u8> {
        let first = self.next_number.fetch_add(self.batch as u64, Ordering::Relaxed);
        let messages = (0..self.batch as u64)
            .map(|k| {
                let target = self.targets[(rng.next() % self.targets.len() as u64) as usize];
                let mut payload = vec![0u8; self.payload_bytes];
                payload[..8].copy_from_slice(&intended_us.to_le_bytes());
                payload[8..16].copy_from_slice(&(first + k).to_le_bytes());
                Submission {
                    submission_id: Uuid::new_v4().as_bytes().to_vec().into(),
                    device_id: target.as_bytes().to_vec().into(),
                    message: payload.into(),
                }
            })
            .collect();
        let body = SendMessageRequest { messages }.encode_to_vec();
        let auth = format!("Bearer {}", self.tokens[sender % self.tokens.len()]);
        let key = Uuid::new_v4().to_string();
        let headers = [
            ("Authorization", auth.as_str()),
            ("Idempotency-Key", key.as_str()),
            ("Content-Type", "application/x-protobuf"),
        ];
        encode_request("POST", "/v1/messages", &headers, &body)
    }
}
