//! Blocking client side of the setup: a minimal keep-alive HTTP/1.1 client,
//! user and device registration, gateway tickets and the WebSocket
//! handshake. The open-loop senders use the same HTTP client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};
use uuid::Uuid;

use super::args::Args;
use super::Error;

/// A minimal keep-alive HTTP/1.1 client over one socket.
pub struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    /// Sends an encoded request and reads the answer's status and body.
    pub fn exchange(&mut self, request: &[u8]) -> Result<(u16, Vec<u8>), Error> {
        self.writer.write_all(request)?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or("bad status line")?;
        let mut length = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse()?;
                }
            }
        }
        let mut body = vec![0u8; length];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }

    fn json(&mut self, method: &str, path: &str, token: Option<&str>, body: &Value) -> Result<Value, Error> {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(auth) = &auth {
            headers.push(("Authorization", auth));
        }
        let request = encode_request(method, path, &headers, body.to_string().as_bytes());
        let (status, bytes) = self.exchange(&request)?;
        if status >= 300 {
            return Err(format!("{method} {path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// An HTTP/1.1 request with `headers` and `body`.
pub fn encode_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: relay\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// One device of the load: its token and id.
pub struct Device {
    /// Device-scoped access token.
    pub token: String,
    /// The device id.
    pub id: Uuid,
}

fn device_body(seed: u64) -> Value {
    let mut secret = [0u8; 32];
    secret[..8].copy_from_slice(&seed.to_le_bytes());
    let signing = SigningKey::from_bytes(&secret);
    let mut identity = [5u8; 33];
    identity[1..].copy_from_slice(&signing.verifying_key().to_montgomery().to_bytes());
    let spk = [5u8; 33];
    json!({
        "identityKey": STANDARD.encode(identity),
        "registrationId": 1,
        "signedPreKey": {"keyId": 1, "publicKey": STANDARD.encode(spk), "signature": STANDARD.encode(signing.sign(&spk).to_bytes())},
        "oneTimePreKeys": (0..25).map(|k| json!({"keyId": k, "publicKey": STANDARD.encode(spk)})).collect::<Vec<_>>(),
    })
}

/// Registers user `name` and creates its one device.
fn register(http: &mut Http, name: &str, seed: u64) -> Result<Device, Error> {
    let user = http.json(
        "POST",
        "/v1/users",
        None,
        &json!({"username": name, "password": "load-test-password"}),
    )?;
    let token = user["token"].as_str().ok_or("no token")?;
    let device = http.json("POST", "/v1/devices", Some(token), &device_body(seed))?;
    Ok(Device {
        token: device["token"].as_str().ok_or("no token")?.to_string(),
        id: Uuid::parse_str(device["deviceId"].as_str().ok_or("no deviceId")?)?,
    })
}

/// Registers `--users` users with one device each, on `--setup-threads`
/// connections at once.
pub fn register_devices(args: &Args) -> Result<Vec<Device>, Error> {
    let run = Uuid::new_v4().simple().to_string();
    let threads = args.setup_threads.clamp(1, 64);
    let parts: Vec<Result<Vec<Device>, Error>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let run = &run;
                scope.spawn(move || {
                    let mut http = Http::connect(args.target)?;
                    (t..args.users)
                        .step_by(threads)
                        .map(|i| register(&mut http, &format!("{}_{}_{i}", args.prefix, &run[..8]), i as u64 + 1))
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("setup thread panicked".into())))
            .collect()
    });
    let mut devices = Vec::with_capacity(args.users);
    for part in parts {
        devices.extend(part?);
    }
    Ok(devices)
}

/// A gateway socket after the handshake, with any bytes that arrived
/// after the handshake's answer.
pub struct Gateway {
    /// The upgraded socket.
    pub stream: TcpStream,
    /// Frame bytes already read.
    pub leftover: Vec<u8>,
}

/// Gets a ticket for `token` over `http` and opens a gateway socket with
/// it, from `source` if given.
pub fn open_gateway(http: &mut Http, token: &str, source: Option<std::net::IpAddr>) -> Result<Gateway, Error> {
    let target = http.writer.peer_addr()?;
    let ticket = http.json("POST", "/v1/gateway/ticket", Some(token), &json!({}))?;
    let ticket = ticket["ticket"].as_str().ok_or("no ticket")?;
    let stream = match source {
        Some(ip) => {
            let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
            socket.bind(&SocketAddr::new(ip, 0).into())?;
            socket.connect(&target.into())?;
            TcpStream::from(socket)
        }
        None => TcpStream::connect(target)?,
    };
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    handshake(stream, ticket)
}

/// The client side of the WebSocket upgrade (RFC 6455 §4.1).
fn handshake(mut stream: TcpStream, ticket: &str) -> Result<Gateway, Error> {
    let key = STANDARD.encode(Uuid::new_v4().as_bytes());
    let request = format!(
        "GET /v1/gateway?ticket={ticket} HTTP/1.1\r\nHost: relay\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err("gateway closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 16 * 1024 {
            return Err("handshake answer too long".into());
        }
    };
    if !buf.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
        return Err(format!("handshake refused: {line}").into());
    }
    Ok(Gateway {
        stream,
        leftover: buf.split_off(end),
    })
}
