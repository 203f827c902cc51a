//! `obscura-load`: end-to-end load against a running relay on loopback.
//!
//! It registers `--users` users with one device each, connects every device
//! to the gateway, then runs `--senders` threads that post batches of
//! `--batch` submissions of `--payload-bytes` to random devices, each with a
//! fresh Idempotency-Key, for `--duration-secs`. Receivers ack every
//! `EnvelopeBatch` with one `AckMessage`. Every payload carries the time it
//! was *meant* to be sent (open loop with `--rate`, so a slow server cannot
//! hide its latency: no coordinated omission) and a unique number, so the
//! tool reports messages per second end to end (send → deliver → ack),
//! latency percentiles, losses and duplicates, and with `--server-pid` the
//! server's CPU time per message.
//!
//! Only loopback targets are accepted, and every loop is bounded by count
//! and time.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use ed25519_dalek::{Signer, SigningKey};
use obscura_relay::proto::send_message_request::Submission;
use obscura_relay::proto::web_socket_frame::Payload;
use obscura_relay::proto::{AckMessage, SendMessageRequest, WebSocketFrame};
use prost::Message;
use serde_json::{json, Value};
use uuid::Uuid;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Load generator for Obscura Relay (loopback only).
#[derive(Parser, Debug, Clone)]
struct Args {
    /// The relay's main address; must be on 127.0.0.0/8.
    #[arg(long, default_value = "127.0.0.1:3000")]
    target: SocketAddr,
    /// Users (one device each), all connected to the gateway.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Concurrent sender threads.
    #[arg(long, default_value_t = 8)]
    senders: usize,
    /// Submissions per POST /v1/messages.
    #[arg(long, default_value_t = 10)]
    batch: usize,
    /// Ciphertext bytes per submission (at least 16).
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// How long the senders run, seconds (at most 600).
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Open loop: total messages per second across senders; 0 = as fast as
    /// the server answers (closed loop).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to wait for deliveries after the senders stop, seconds.
    #[arg(long, default_value_t = 5)]
    drain_secs: u64,
    /// The server's pid, to report its CPU time per message.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Username prefix (runs against one server need distinct ones).
    #[arg(long, default_value = "load")]
    prefix: String,
    /// Idle mode: instead of the workload, open this many gateway sockets
    /// for one device and hold them for --duration-secs (for memory per
    /// idle gateway). A process holds at most ~19,000 sockets here: run
    /// several processes with different --source-ip.
    #[arg(long)]
    idle_gateways: Option<usize>,
    /// Local address of idle-mode sockets (127.0.0.x spreads them over more
    /// source ports).
    #[arg(long, default_value = "127.0.0.1")]
    source_ip: std::net::IpAddr,
}

/// A minimal keep-alive HTTP/1.1 client over one socket.
struct Http {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    fn connect(addr: SocketAddr) -> Result<Self, Error> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), Error> {
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
        self.writer.write_all(&request)?;
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
        let (status, bytes) = self.request(method, path, &headers, body.to_string().as_bytes())?;
        if status >= 300 {
            return Err(format!("{method} {path}: {status} {}", String::from_utf8_lossy(&bytes)).into());
        }
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// One device of the load: its token and id.
struct Device {
    token: String,
    id: Uuid,
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

fn setup(args: &Args) -> Result<Vec<Device>, Error> {
    let mut http = Http::connect(args.target)?;
    let run = Uuid::new_v4().simple().to_string();
    let mut devices = Vec::with_capacity(args.users);
    for i in 0..args.users {
        let name = format!("{}_{}_{i}", args.prefix, &run[..8]);
        let user = http.json(
            "POST",
            "/v1/users",
            None,
            &json!({"username": name, "password": "load-test-password"}),
        )?;
        let token = user["token"].as_str().ok_or("no token")?;
        let device = http.json("POST", "/v1/devices", Some(token), &device_body(i as u64 + 1))?;
        let id = Uuid::parse_str(device["deviceId"].as_str().ok_or("no deviceId")?)?;
        devices.push(Device {
            token: device["token"].as_str().ok_or("no token")?.to_string(),
            id,
        });
    }
    Ok(devices)
}

/// What receivers saw.
#[derive(Default)]
struct Received {
    latencies_us: Vec<u64>,
    numbers: Vec<u64>,
}

fn gateway(args: &Args, device: &Device) -> Result<tungstenite::WebSocket<TcpStream>, Error> {
    let mut http = Http::connect(args.target)?;
    let ticket = http.json("POST", "/v1/gateway/ticket", Some(&device.token), &json!({}))?;
    let url = format!(
        "ws://{}/v1/gateway?ticket={}",
        args.target,
        ticket["ticket"].as_str().ok_or("no ticket")?
    );
    let stream = TcpStream::connect(args.target)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let (socket, _) = tungstenite::client::client(url, stream).map_err(|e| format!("handshake: {e}"))?;
    Ok(socket)
}

fn receive(mut socket: tungstenite::WebSocket<TcpStream>, epoch: Instant, stop: Arc<AtomicBool>) -> Received {
    let mut out = Received::default();
    while !stop.load(Ordering::Relaxed) {
        let bytes = match socket.read() {
            Ok(tungstenite::Message::Binary(bytes)) => bytes,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => break,
        };
        let Ok(WebSocketFrame {
            payload: Some(Payload::EnvelopeBatch(batch)),
        }) = WebSocketFrame::decode(bytes)
        else {
            continue;
        };
        let now_us = epoch.elapsed().as_micros() as u64;
        let mut ids = Vec::with_capacity(batch.envelopes.len());
        for envelope in batch.envelopes {
            if let (Some(intended), Some(number)) = (read_u64(&envelope.message, 0), read_u64(&envelope.message, 8)) {
                out.latencies_us.push(now_us.saturating_sub(intended));
                out.numbers.push(number);
            }
            ids.push(envelope.id);
        }
        let ack = WebSocketFrame {
            payload: Some(Payload::Ack(AckMessage { message_ids: ids })),
        };
        if socket.send(tungstenite::Message::binary(ack.encode_to_vec())).is_err() {
            break;
        }
    }
    let _ = socket.close(None);
    out
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// What one sender did.
#[derive(Default)]
struct Sent {
    accepted: u64,
    failed_requests: u64,
}

fn send(
    args: &Args,
    sender: &Device,
    targets: &[Uuid],
    epoch: Instant,
    numbers: &AtomicU64,
    sender_index: usize,
) -> Result<Sent, Error> {
    let mut http = Http::connect(args.target)?;
    let auth = format!("Bearer {}", sender.token);
    let mut sent = Sent::default();
    let end = Duration::from_secs(args.duration_secs.min(600));
    // Open loop: this sender's k-th batch is due at offset + k * interval.
    let interval_us = (args.rate > 0).then(|| (args.batch * args.senders) as u64 * 1_000_000 / args.rate.max(1));
    let offset_us = interval_us.map_or(0, |i| i * sender_index as u64 / args.senders.max(1) as u64);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ sender_index as u64;
    for k in 0u64.. {
        let intended_us = match interval_us {
            Some(i) => offset_us + k * i,
            None => epoch.elapsed().as_micros() as u64,
        };
        if Duration::from_micros(intended_us) >= end || epoch.elapsed() >= end {
            break;
        }
        let wait = Duration::from_micros(intended_us).saturating_sub(epoch.elapsed());
        std::thread::sleep(wait);
        let mut messages = Vec::with_capacity(args.batch);
        for _ in 0..args.batch {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let target = targets[(seed % targets.len() as u64) as usize];
            let mut payload = vec![0u8; args.payload_bytes.max(16)];
            payload[..8].copy_from_slice(&intended_us.to_le_bytes());
            payload[8..16].copy_from_slice(&numbers.fetch_add(1, Ordering::Relaxed).to_le_bytes());
            messages.push(Submission {
                submission_id: Uuid::new_v4().as_bytes().to_vec().into(),
                device_id: target.as_bytes().to_vec().into(),
                message: payload.into(),
            });
        }
        let body = SendMessageRequest { messages }.encode_to_vec();
        let key = Uuid::new_v4().to_string();
        let headers = [
            ("Authorization", auth.as_str()),
            ("Idempotency-Key", key.as_str()),
            ("Content-Type", "application/x-protobuf"),
        ];
        match http.request("POST", "/v1/messages", &headers, &body) {
            Ok((200, answer)) if answer.is_empty() => sent.accepted += args.batch as u64,
            Ok(_) => sent.failed_requests += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(sent)
}

/// Idle mode: `n` sockets of one device, held open, then closed.
fn idle(args: &Args, n: usize) -> Result<(), Error> {
    let device = setup(&Args {
        users: 1,
        ..args.clone()
    })?
    .pop()
    .ok_or("no device")?;
    let mut http = Http::connect(args.target)?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let ticket = http.json("POST", "/v1/gateway/ticket", Some(&device.token), &json!({}))?;
        let url = format!(
            "ws://{}/v1/gateway?ticket={}",
            args.target,
            ticket["ticket"].as_str().ok_or("no ticket")?
        );
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(args.source_ip, 0).into())?;
        socket.connect(&args.target.into())?;
        let (ws, _) =
            tungstenite::client::client(url, TcpStream::from(socket)).map_err(|e| format!("handshake: {e}"))?;
        sockets.push(ws);
    }
    println!(
        "holding {n} idle gateway sockets from {} for {} s",
        args.source_ip, args.duration_secs
    );
    std::thread::sleep(Duration::from_secs(args.duration_secs.min(600)));
    Ok(())
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn run(args: Args) -> Result<(), Error> {
    if !args.target.ip().is_loopback() {
        return Err("--target must be a loopback address (127.0.0.0/8 or ::1)".into());
    }
    if let Some(n) = args.idle_gateways {
        return idle(&args, n);
    }
    let setup_started = Instant::now();
    let devices = Arc::new(setup(&args)?);
    eprintln!(
        "setup: {} users with one device each in {:.1?}",
        devices.len(),
        setup_started.elapsed()
    );
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    for device in devices.iter() {
        let socket = gateway(&args, device)?;
        let stop = stop.clone();
        receivers.push(std::thread::spawn(move || receive(socket, epoch, stop)));
    }
    let targets: Arc<Vec<Uuid>> = Arc::new(devices.iter().map(|d| d.id).collect());
    let numbers = Arc::new(AtomicU64::new(0));
    let cpu_before = args.server_pid.and_then(cpu_ticks);
    let started = Instant::now();
    let senders: Vec<_> = (0..args.senders)
        .map(|i| {
            let (args, devices, targets, numbers) = (args.clone(), devices.clone(), targets.clone(), numbers.clone());
            std::thread::spawn(move || send(&args, &devices[i % devices.len()], &targets, epoch, &numbers, i))
        })
        .collect();
    let mut sent = Sent::default();
    for sender in senders {
        let s = sender.join().map_err(|_| "sender panicked")??;
        sent.accepted += s.accepted;
        sent.failed_requests += s.failed_requests;
    }
    let send_secs = started.elapsed().as_secs_f64();
    let drain_deadline = Instant::now() + Duration::from_secs(args.drain_secs.min(120));
    let numbers_total = numbers.load(Ordering::Relaxed);
    std::thread::sleep(
        drain_deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(args.drain_secs)),
    );
    stop.store(true, Ordering::Relaxed);
    let cpu_after = args.server_pid.and_then(cpu_ticks);
    let mut received = Received::default();
    for r in receivers {
        let part = r.join().map_err(|_| "receiver panicked")?;
        received.latencies_us.extend(part.latencies_us);
        received.numbers.extend(part.numbers);
    }
    report(
        &args,
        &sent,
        &mut received,
        send_secs,
        numbers_total,
        cpu_before.zip(cpu_after),
    );
    Ok(())
}

fn report(args: &Args, sent: &Sent, received: &mut Received, send_secs: f64, numbered: u64, cpu: Option<(u64, u64)>) {
    let distinct: HashSet<u64> = received.numbers.iter().copied().collect();
    let delivered = distinct.len() as u64;
    let duplicates = received.numbers.len() as u64 - delivered;
    received.latencies_us.sort_unstable();
    let l = &received.latencies_us;
    println!(
        "workload: {} users, {} senders, batches of {} x {} B, {} s, {}",
        args.users,
        args.senders,
        args.batch,
        args.payload_bytes,
        args.duration_secs,
        if args.rate > 0 {
            format!("open loop at {} msgs/s", args.rate)
        } else {
            "closed loop".into()
        }
    );
    println!(
        "accepted: {} messages ({} failed requests, {} numbered)",
        sent.accepted, sent.failed_requests, numbered
    );
    println!(
        "delivered: {delivered} distinct ({duplicates} duplicates), lost: {}",
        sent.accepted.saturating_sub(delivered)
    );
    println!(
        "throughput end to end: {:.0} msgs/s (accepted over {:.2} s of sending)",
        delivered as f64 / send_secs,
        send_secs
    );
    println!(
        "latency from intended send: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        percentile(l, 50.0) as f64 / 1000.0,
        percentile(l, 90.0) as f64 / 1000.0,
        percentile(l, 99.0) as f64 / 1000.0,
        percentile(l, 99.9) as f64 / 1000.0,
        l.last().copied().unwrap_or(0) as f64 / 1000.0
    );
    if let Some((before, after)) = cpu {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        let secs = (after - before) as f64 / hz;
        println!(
            "server CPU: {:.2} s, {:.1} µs per delivered message",
            secs,
            secs * 1e6 / delivered.max(1) as f64
        );
    }
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("obscura-load: {e}");
        std::process::exit(1);
    }
}
