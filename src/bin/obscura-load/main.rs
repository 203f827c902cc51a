//! `obscura-load`: end-to-end load against a running relay on loopback.
//!
//! It registers `--users` users with one device each, connects every device
//! to the gateway, then posts batches of `--batch` submissions of
//! `--payload-bytes` to random devices from `--senders` concurrent senders,
//! each request with a fresh Idempotency-Key, for `--duration-secs`.
//! Receivers ack every `EnvelopeBatch` with one `AckMessage`. Every payload
//! carries the time it was *meant* to be sent (open loop with `--rate`, so a
//! slow server cannot hide its latency: no coordinated omission) and a
//! unique number, so the tool reports messages per second end to end (send →
//! deliver → ack), latency percentiles, losses and duplicates, and with
//! `--server-pid` the server's CPU time per message.
//!
//! The tool shares the machine with the server, so it is built to cost
//! little: every gateway socket and every closed-loop sender is a task on
//! one io thread ([`receive`], [`send`]). Open-loop senders are threads of
//! their own, because their sends must leave at microsecond-exact times and
//! the io runtime's timers have millisecond resolution.
//!
//! Only loopback targets are accepted, and every loop is bounded by count
//! and time.

mod args;
mod client;
mod idle;
mod receive;
mod report;
mod send;
mod workload;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use obscura_relay::config::IoDriver;
use obscura_relay::shard::runtime::{block_on, choose_driver};

use self::args::Args;
use self::receive::Received;
use self::report::{cpu_ticks, own_cpu_secs, Report};
use self::send::Sent;
use self::workload::Workload;

/// Any failure of the tool.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

fn run(args: Args) -> Result<(), Error> {
    if !args.all_targets().all(|t| t.ip().is_loopback()) {
        return Err("every target must be a loopback address (127.0.0.0/8 or ::1)".into());
    }
    if let Some(n) = args.idle_gateways {
        return idle::hold(&args, n);
    }
    let setup_started = Instant::now();
    let devices = client::register_devices(&args)?;
    eprintln!(
        "setup: {} users with one device each in {:.1?}",
        devices.len(),
        setup_started.elapsed()
    );
    let sockets = open_gateways(&args, &devices)?;
    let workload = Arc::new(Workload::new(&args, &devices));
    let measured = args.measured();
    let ticks = || measured.iter().map(|(_, pid)| cpu_ticks(*pid)).collect::<Vec<_>>();
    let cpu_before = (ticks(), own_cpu_secs());
    let driver = choose_driver(IoDriver::Auto)?;
    let (sent, received, send_secs) = block_on(driver, drive(args.clone(), workload.clone(), sockets))??;
    let cpu_after = (ticks(), own_cpu_secs());
    let process_ticks = measured
        .iter()
        .zip(cpu_before.0.iter().zip(&cpu_after.0))
        .filter_map(|((name, _), (b, a))| Some((name.clone(), ((*b)?, (*a)?))))
        .collect();
    Report {
        args: &args,
        sent: &sent,
        received,
        send_secs,
        numbered: workload.numbered(),
        process_ticks,
        tool_secs: cpu_after.1 - cpu_before.1,
    }
    .print();
    Ok(())
}

/// Opens every device's gateway socket, device `i` on the `i`-th receive
/// target (its ticket issued by that node).
fn open_gateways(args: &Args, devices: &[client::Device]) -> Result<Vec<client::Gateway>, Error> {
    let mut nodes: Vec<(std::net::SocketAddr, client::Http)> = Vec::new();
    let mut sockets = Vec::with_capacity(devices.len());
    for (i, device) in devices.iter().enumerate() {
        let target = args.receive_target(i);
        let http = match nodes.iter().position(|(t, _)| *t == target) {
            Some(n) => &mut nodes[n].1,
            None => {
                nodes.push((target, client::Http::connect(target)?));
                &mut nodes.last_mut().ok_or("no node")?.1
            }
        };
        sockets.push(client::open_gateway(http, &device.token, None)?);
    }
    Ok(sockets)
}

/// On the io thread: starts the receivers and the senders, waits for the
/// senders, then for the deliveries (at most `--drain-secs`).
async fn drive(
    args: Args,
    workload: Arc<Workload>,
    sockets: Vec<client::Gateway>,
) -> Result<(Sent, Received, f64), Error> {
    let received = Rc::new(RefCell::new(Received::default()));
    for socket in sockets {
        monoio::spawn(receive::run(socket, workload.clone(), received.clone()));
    }
    let started = Instant::now();
    let sent = send::run(&args, &workload).await?;
    let send_secs = started.elapsed().as_secs_f64();
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs.min(120));
    while Instant::now() < drain_until && received.borrow().distinct() < sent.accepted {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = received.replace(Received::default());
    Ok((sent, received, send_secs))
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("obscura-load: {e}");
        std::process::exit(1);
    }
}
