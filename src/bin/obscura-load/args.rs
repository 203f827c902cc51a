//! The tool's flags.

use std::net::{IpAddr, SocketAddr};

use clap::Parser;

/// Load generator for Obscura Relay (loopback only).
#[derive(Parser, Debug, Clone)]
pub struct Args {
    /// The relay's main address; must be on 127.0.0.0/8 (or ::1). Users
    /// register here; senders and sockets go here too unless
    /// `--send-targets` / `--receive-targets` spread them over other relay
    /// nodes of the same deployment.
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub target: SocketAddr,
    /// Relay nodes the senders use, comma-separated (sender i posts to the
    /// i-th, round robin); default: `--target`.
    #[arg(long, value_delimiter = ',')]
    pub send_targets: Vec<SocketAddr>,
    /// Relay nodes the gateway sockets connect to, comma-separated (device
    /// i to the i-th, round robin); default: `--target`.
    #[arg(long, value_delimiter = ',')]
    pub receive_targets: Vec<SocketAddr>,
    /// Users (one device each), all connected to the gateway.
    #[arg(long, default_value_t = 200, value_parser = at_least_one())]
    pub users: usize,
    /// Concurrent senders (each one request in flight).
    #[arg(long, default_value_t = 8, value_parser = at_least_one())]
    pub senders: usize,
    /// Submissions per POST /v1/messages.
    #[arg(long, default_value_t = 10, value_parser = at_least_one())]
    pub batch: usize,
    /// Ciphertext bytes per submission (at least 16).
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// How long the senders run, seconds (at most 600).
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Open loop: total messages per second across senders; 0 = as fast as
    /// the server answers (closed loop).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// How long to wait for deliveries after the senders stop, seconds
    /// (the wait ends early once everything accepted has arrived).
    #[arg(long, default_value_t = 5)]
    pub drain_secs: u64,
    /// The server's pid, to report its CPU time per message.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Another process to report CPU time per message for, as NAME=PID
    /// (repeat for more: relays, Redis, the database).
    #[arg(long, value_parser = named_pid)]
    pub cpu_pid: Vec<(String, u32)>,
    /// Username prefix (runs against one server need distinct ones).
    #[arg(long, default_value = "load")]
    pub prefix: String,
    /// Threads that register the users (argon2 runs on the server's
    /// password workers, so a few are enough).
    #[arg(long, default_value_t = 4)]
    pub setup_threads: usize,
    /// Idle mode: instead of the workload, open this many gateway sockets
    /// for one device and hold them for --duration-secs (for memory per
    /// idle gateway). A process holds at most ~19,000 sockets here: run
    /// several processes with different --source-ip.
    #[arg(long)]
    pub idle_gateways: Option<usize>,
    /// Local address of idle-mode sockets (127.0.0.x spreads them over more
    /// source ports).
    #[arg(long, default_value = "127.0.0.1")]
    pub source_ip: IpAddr,
}

impl Args {
    /// Every relay address the tool talks to.
    pub fn all_targets(&self) -> impl Iterator<Item = &SocketAddr> {
        std::iter::once(&self.target)
            .chain(&self.send_targets)
            .chain(&self.receive_targets)
    }

    /// The node sender `i` posts to.
    pub fn send_target(&self, i: usize) -> SocketAddr {
        pick(&self.send_targets, i).unwrap_or(self.target)
    }

    /// The node gateway socket `i` connects to.
    pub fn receive_target(&self, i: usize) -> SocketAddr {
        pick(&self.receive_targets, i).unwrap_or(self.target)
    }

    /// The processes whose CPU time is reported, named.
    pub fn measured(&self) -> Vec<(String, u32)> {
        let server = self.server_pid.map(|pid| ("server".to_string(), pid));
        server.into_iter().chain(self.cpu_pid.iter().cloned()).collect()
    }

    /// The sending window, bounded.
    pub fn duration(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.duration_secs.min(600))
    }
}

/// Counts that must not be zero (a zero would divide by zero or never end).
fn at_least_one() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..)
}

/// The `i`-th of `list`, round robin; `None` for an empty list.
fn pick(list: &[SocketAddr], i: usize) -> Option<SocketAddr> {
    list.get(i % list.len().max(1)).copied()
}

/// Parses `NAME=PID`.
fn named_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text.split_once('=').ok_or("expected NAME=PID")?;
    let pid = pid.parse::<u32>().map_err(|e| format!("bad pid: {e}"))?;
    Ok((name.to_string(), pid))
}
