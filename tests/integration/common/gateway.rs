//! `Gateway`: a blocking WebSocket client for `GET /v1/gateway?ticket=…` (BEHAVIOR §8) built
//! on `tungstenite` over a plain `TcpStream` to 127.0.0.1, with read timeouts everywhere so a
//! test never hangs. Frames are decoded with the suite's own codec (`common::wire`).
//!
//! Envelopes of a batch that a caller did not ask for yet are kept (`collect_envelopes` takes
//! exactly `n`); every `PreKeyStatus` seen is recorded in `statuses`, in arrival order, whoever
//! read it.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::handshake::HandshakeError;
use tungstenite::{Message, WebSocket};

use super::client::Client;
use super::server::TestServer;
use super::wire::{self, Envelope, FramePayload};

/// Bound on a handshake and on any single write.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What arrived on the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A binary frame, decoded.
    Frame(FramePayload),
    /// A binary frame that does not decode (always a server bug).
    BadFrame(Vec<u8>, String),
    Text(String),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A Close frame: code and reason, if it had a code.
    Close(Option<(u16, String)>),
    /// The connection ended (after a Close, by EOF, by reset or any other read error).
    Ended(String),
}

pub struct Gateway {
    pub ws: WebSocket<TcpStream>,
    /// Every `PreKeyStatus` received so far as `(count, threshold)`.
    pub statuses: Vec<(i32, i32)>,
    /// Every `EnvelopeBatch` received so far, as its envelopes' encoded sizes (for batch-size
    /// checks).
    pub batch_sizes: Vec<Vec<usize>>,
    /// Envelopes received but not yet handed out by `collect_envelopes`.
    pending: VecDeque<Envelope>,
    /// Set once the connection has ended.
    pub ended: Option<String>,
    /// Set if a Close frame was received.
    pub close: Option<Option<(u16, String)>>,
    /// Set once the client side closed (politely or not); `Drop` then does nothing.
    abandoned: bool,
}

impl Drop for Gateway {
    /// A socket still open at the end of a test is closed the way a client would close it,
    /// so the server's shutdown never waits for a client that is gone.
    fn drop(&mut self) {
        self.close_politely(Duration::from_secs(1));
    }
}

/// Asks for a ticket with a device token (asserting 201) and returns it.
pub fn ticket(client: &Client, token: &str) -> Result<String, Box<dyn std::error::Error>> {
    let v = client
        .post("/v1/gateway/ticket")
        .bearer(token)
        .send()?
        .expect_json(201)?;
    let t = v
        .get("ticket")
        .and_then(|t| t.as_str())
        .ok_or_else(|| format!("no ticket in {v}"))?;
    Ok(t.to_string())
}

/// The outcome of a handshake attempt.
pub enum Handshake {
    Upgraded(Box<Gateway>),
    /// The server answered with this status (and body) instead of 101.
    Refused(u16, Vec<u8>),
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl Gateway {
    /// Opens a socket for a device token with a fresh ticket.
    pub fn connect(server: &TestServer, token: &str) -> Result<Gateway, Box<dyn std::error::Error>> {
        let t = ticket(&server.client(), token)?;
        Self::open(server.main_port, &t)
    }

    /// Handshakes with `ticket`, failing unless the answer is 101.
    pub fn open(port: u16, ticket: &str) -> Result<Gateway, Box<dyn std::error::Error>> {
        match Self::handshake(port, ticket)? {
            Handshake::Upgraded(g) => Ok(*g),
            Handshake::Refused(status, body) => {
                Err(format!("handshake refused with {status}: {:?}", String::from_utf8_lossy(&body)).into())
            }
        }
    }

    /// Handshakes with `ticket` and reports a non-101 answer instead of failing.
    pub fn handshake(port: u16, ticket: &str) -> Result<Handshake, Box<dyn std::error::Error>> {
        Self::handshake_path(port, &format!("/v1/gateway?ticket={ticket}"))
    }

    /// Handshakes on `path_and_query`.
    pub fn handshake_path(port: u16, path_and_query: &str) -> Result<Handshake, Box<dyn std::error::Error>> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.set_nodelay(true)?;
        let url = format!("ws://127.0.0.1:{port}{path_and_query}");
        match tungstenite::client::client(url, stream) {
            Ok((ws, response)) => {
                if response.status().as_u16() != 101 {
                    return Err(format!("handshake answered {}", response.status()).into());
                }
                Ok(Handshake::Upgraded(Box::new(Gateway {
                    ws,
                    statuses: Vec::new(),
                    batch_sizes: Vec::new(),
                    pending: VecDeque::new(),
                    ended: None,
                    close: None,
                    abandoned: false,
                })))
            }
            Err(HandshakeError::Failure(tungstenite::Error::Http(resp))) => Ok(Handshake::Refused(
                resp.status().as_u16(),
                resp.body().clone().unwrap_or_default(),
            )),
            Err(HandshakeError::Failure(e)) => Err(format!("handshake failed: {e}").into()),
            Err(HandshakeError::Interrupted(_)) => Err("handshake timed out".into()),
        }
    }

    /// The next event within `timeout`; `None` if nothing arrived. Envelope batches and statuses
    /// are returned as well as recorded; once the connection has ended, `Ended` every time.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Box<dyn std::error::Error>> {
        if let Some(why) = &self.ended {
            return Ok(Some(Event::Ended(why.clone())));
        }
        self.ws
            .get_mut()
            .set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
        let msg = match self.ws.read() {
            Ok(m) => m,
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => return Ok(None),
            Err(e) => {
                let why = e.to_string();
                self.ended = Some(why.clone());
                return Ok(Some(Event::Ended(why)));
            }
        };
        let event = match msg {
            Message::Binary(b) => match wire::decode_frame(&b) {
                Ok(p) => {
                    match &p {
                        FramePayload::PreKeyStatus { count, threshold } => self.statuses.push((*count, *threshold)),
                        FramePayload::EnvelopeBatch(envs) => {
                            self.batch_sizes.push(envs.iter().map(Envelope::encoded_len).collect());
                        }
                        _ => {}
                    }
                    Event::Frame(p)
                }
                Err(e) => Event::BadFrame(b.to_vec(), e.to_string()),
            },
            Message::Text(t) => Event::Text(t.to_string()),
            Message::Ping(p) => Event::Ping(p.to_vec()),
            Message::Pong(p) => Event::Pong(p.to_vec()),
            Message::Close(c) => {
                let c = c.map(|f| (u16::from(f.code), f.reason.to_string()));
                self.close = Some(c.clone());
                Event::Close(c)
            }
            Message::Frame(_) => return Err("tungstenite returned a raw frame".into()),
        };
        Ok(Some(event))
    }

    /// The next decoded application frame within `timeout` (pings and pongs are skipped);
    /// `None` on timeout. Fails on a text frame, an undecodable frame or the end of the
    /// connection.
    pub fn next_frame(&mut self, timeout: Duration) -> Result<Option<FramePayload>, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match self.next_event(left)? {
                None => return Ok(None),
                Some(Event::Frame(p)) => return Ok(Some(p)),
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(other) => return Err(format!("expected a frame, got {other:?}").into()),
            }
        }
    }

    /// Reads frames until `n` envelopes have been collected (earlier leftovers first) or
    /// `timeout` passes (an error naming how many came). With `ack`, every batch is acked as
    /// soon as it arrives. Status frames are recorded in `statuses`; a legacy single-envelope
    /// frame, a text frame or an undecodable frame is an error.
    pub fn collect_envelopes(
        &mut self,
        n: usize,
        timeout: Duration,
        ack: bool,
    ) -> Result<Vec<Envelope>, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            if let Some(e) = self.pending.pop_front() {
                out.push(e);
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "only {} of {n} envelopes arrived within {timeout:?} (statuses {:?}, ended {:?})",
                    out.len(),
                    self.statuses,
                    self.ended
                )
                .into());
            }
            match self.next_event(left)? {
                None => {}
                Some(Event::Frame(FramePayload::EnvelopeBatch(envs))) => {
                    if envs.is_empty() {
                        return Err("the server sent an empty EnvelopeBatch".into());
                    }
                    if ack {
                        let ids: Vec<Vec<u8>> = envs.iter().map(|e| e.id.clone()).collect();
                        self.ack(&ids)?;
                    }
                    self.pending.extend(envs);
                }
                Some(Event::Frame(FramePayload::PreKeyStatus { .. })) => {}
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(other) => return Err(format!("unexpected {other:?} after {} of {n} envelopes", out.len()).into()),
            }
        }
        Ok(out)
    }

    /// Everything that arrives until nothing has come for `quiet` (or `max` has passed):
    /// envelopes (leftovers first). Statuses are recorded; the end of the connection stops the
    /// wait.
    pub fn drain(&mut self, quiet: Duration, max: Duration) -> Result<Vec<Envelope>, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + max;
        let mut out: Vec<Envelope> = self.pending.drain(..).collect();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            match self.next_event(quiet.min(left))? {
                None => return Ok(out),
                Some(Event::Frame(FramePayload::EnvelopeBatch(envs))) => out.extend(envs),
                Some(Event::Frame(FramePayload::PreKeyStatus { .. })) => {}
                Some(Event::Ping(_) | Event::Pong(_)) => {}
                Some(Event::Ended(_)) | Some(Event::Close(_)) => return Ok(out),
                Some(other) => return Err(format!("unexpected {other:?} while draining").into()),
            }
        }
    }

    /// Sends one ack frame with `ids` (any lengths; the server skips bad ones).
    pub fn ack<I: AsRef<[u8]>>(&mut self, ids: &[I]) -> Result<(), Box<dyn std::error::Error>> {
        self.send_binary(wire::encode_ack(ids))
    }

    /// Acks the ids of `envelopes` in one frame.
    pub fn ack_envelopes(&mut self, envelopes: &[Envelope]) -> Result<(), Box<dyn std::error::Error>> {
        let ids: Vec<&[u8]> = envelopes.iter().map(|e| e.id.as_slice()).collect();
        self.ack(&ids)
    }

    pub fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), Box<dyn std::error::Error>> {
        self.ws.get_mut().set_write_timeout(Some(IO_TIMEOUT))?;
        self.ws.send(Message::binary(bytes))?;
        Ok(())
    }

    pub fn send_text(&mut self, text: &str) -> Result<(), Box<dyn std::error::Error>> {
        self.ws.send(Message::text(text.to_string()))?;
        Ok(())
    }

    /// Sends a Ping with `payload`.
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
        self.ws.send(Message::Ping(payload.to_vec().into()))?;
        Ok(())
    }

    /// Pings with `payload` and waits up to `timeout` for the matching Pong, keeping any
    /// envelopes that arrive meanwhile for `collect_envelopes`. Fails if the connection ends.
    pub fn expect_pong(&mut self, payload: &[u8], timeout: Duration) -> Result<(), Box<dyn std::error::Error>> {
        self.ping(payload)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("no Pong for {payload:02x?} within {timeout:?}").into());
            }
            match self.next_event(left)? {
                None => {}
                Some(Event::Pong(p)) if p == payload => return Ok(()),
                Some(Event::Pong(_) | Event::Ping(_)) => {}
                Some(Event::Frame(FramePayload::EnvelopeBatch(envs))) => self.pending.extend(envs),
                Some(Event::Frame(FramePayload::PreKeyStatus { .. })) => {}
                Some(other) => return Err(format!("waiting for a Pong, got {other:?}").into()),
            }
        }
    }

    /// True if the server ends the connection (Close frame, EOF or error) within `timeout`.
    /// Frames arriving meanwhile are consumed (envelopes kept). After a Close frame it goes on
    /// reading until the TCP connection ends (briefly), which also sends tungstenite's Close
    /// reply, as a real client would.
    pub fn wait_closed(&mut self, timeout: Duration) -> Result<bool, Box<dyn std::error::Error>> {
        let deadline = Instant::now() + timeout;
        let mut close_seen_at: Option<Instant> = None;
        loop {
            let mut left = deadline.saturating_duration_since(Instant::now());
            if let Some(at) = close_seen_at {
                left = left.min((at + Duration::from_secs(1)).saturating_duration_since(Instant::now()));
            }
            if left.is_zero() {
                return Ok(close_seen_at.is_some());
            }
            match self.next_event(left)? {
                None => {}
                Some(Event::Ended(_)) => return Ok(true),
                Some(Event::Close(_)) => {
                    close_seen_at.get_or_insert_with(Instant::now);
                }
                Some(Event::Frame(FramePayload::EnvelopeBatch(envs))) => self.pending.extend(envs),
                Some(_) => {}
            }
        }
    }

    /// Closes politely (a Close frame) and waits up to 2 s for the server to end the
    /// connection. Dropping a `Gateway` does the same; `abandon` does not.
    pub fn close(mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.close_politely(Duration::from_secs(2));
        Ok(())
    }

    fn close_politely(&mut self, wait: Duration) {
        if self.ended.is_some() || self.abandoned {
            return;
        }
        self.abandoned = true;
        let _ = self.ws.close(None);
        // `wait_closed` waits for the end of the TCP connection, not just the server's Close
        // frame: the server finishes the session (e.g. applies pending acks) before it lets
        // the socket go.
        let _ = self.wait_closed(wait);
    }

    /// Drops the TCP connection without a Close frame (an abrupt client exit).
    pub fn abandon(mut self) {
        self.abandoned = true;
        let _ = self.ws.get_ref().shutdown(std::net::Shutdown::Both);
    }

    /// Envelopes received but not handed out yet.
    pub fn take_pending(&mut self) -> Vec<Envelope> {
        self.pending.drain(..).collect()
    }
}
