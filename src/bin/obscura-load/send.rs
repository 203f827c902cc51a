//! The senders. Closed loop (`--rate 0`): `--senders` tasks on the io
//! thread, each with one keep-alive connection and one request in flight.
//! Open loop: `--senders` threads; sender `i` sends its k-th batch at
//! `offset_i + k · interval` (sleeps with a 1 µs timer slack), and every
//! payload carries that intended time, so a slow answer delays the next
//! send but not the clock the latency is measured on.

use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::args::Args;
use super::client::Http;
use super::workload::{Rng, Workload};
use super::Error;

/// What the senders did.
#[derive(Default, Debug)]
pub struct Sent {
    /// Messages of requests answered 200 with no failed submission.
    pub accepted: u64,
    /// Requests answered otherwise.
    pub failed_requests: u64,
}

impl Sent {
    fn count(&mut self, status: u16, body_len: usize, batch: usize) {
        if status == 200 && body_len == 0 {
            self.accepted += batch as u64;
        } else {
            self.failed_requests += 1;
        }
    }

    fn add(&mut self, other: &Sent) {
        self.accepted += other.accepted;
        self.failed_requests += other.failed_requests;
    }
}

/// Runs the senders for `--duration-secs`.
pub async fn run(args: &Args, workload: &Arc<Workload>) -> Result<Sent, Error> {
    if args.rate > 0 {
        open_loop(args, workload).await
    } else {
        closed_loop(args, workload).await
    }
}

async fn closed_loop(args: &Args, workload: &Arc<Workload>) -> Result<Sent, Error> {
    let tasks: Vec<_> = (0..args.senders)
        .map(|i| monoio::spawn(closed_sender(i, args.clone(), workload.clone())))
        .collect();
    let mut sent = Sent::default();
    for task in tasks {
        sent.add(&task.await?);
    }
    Ok(sent)
}

async fn closed_sender(i: usize, args: Args, workload: Arc<Workload>) -> Result<Sent, Error> {
    let mut stream = TcpStream::connect_addr(args.send_target(i)).await?;
    stream.set_nodelay(true)?;
    let mut rng = Rng::for_sender(i);
    let mut buf = Vec::with_capacity(4096);
    let mut sent = Sent::default();
    while workload.epoch.elapsed() < args.duration() {
        let request = workload.request(i, &mut rng, workload.now_us());
        stream.write_all(request).await.0?;
        let (status, body_len) = read_response(&mut stream, &mut buf).await?;
        sent.count(status, body_len, workload.batch());
    }
    Ok(sent)
}

/// Reads one response; returns its status and body length.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, usize), Error> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = response.parse(buf)? {
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                .unwrap_or(0);
            let status = response.code.unwrap_or(0);
            if buf.len() >= head_len + length {
                buf.drain(..head_len + length);
                return Ok((status, length));
            }
        }
        let len = buf.len();
        buf.reserve(4096);
        let (read, slice) = stream.read(std::mem::take(buf).slice_mut(len..)).await;
        *buf = slice.into_inner();
        if read? == 0 {
            return Err("server closed a sender's connection".into());
        }
    }
}

async fn open_loop(args: &Args, workload: &Arc<Workload>) -> Result<Sent, Error> {
    let threads: Vec<_> = (0..args.senders)
        .map(|i| {
            let (args, workload) = (args.clone(), workload.clone());
            std::thread::spawn(move || open_sender(i, &args, &workload))
        })
        .collect();
    // The io thread keeps serving the receivers meanwhile.
    while !threads.iter().all(|t| t.is_finished()) {
        monoio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut sent = Sent::default();
    for thread in threads {
        sent.add(&thread.join().map_err(|_| "sender panicked")??);
    }
    Ok(sent)
}

fn open_sender(i: usize, args: &Args, workload: &Workload) -> Result<Sent, Error> {
    // SAFETY: prctl(PR_SET_TIMERSLACK) only changes this thread's slack.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut http = Http::connect(args.send_target(i))?;
    let mut rng = Rng::for_sender(i);
    let mut sent = Sent::default();
    let senders = args.senders.max(1) as u64;
    // At least 1 µs, so the loop ends at the duration whatever the rate.
    let interval_us = ((args.batch as u64 * senders) * 1_000_000 / args.rate.max(1)).max(1);
    let offset_us = interval_us * i as u64 / senders;
    let end_us = args.duration().as_micros() as u64;
    for k in 0u64.. {
        let intended_us = offset_us + k * interval_us;
        if intended_us >= end_us {
            break;
        }
        std::thread::sleep(Duration::from_micros(intended_us.saturating_sub(workload.now_us())));
        let (status, body) = http.exchange(&workload.request(i, &mut rng, intended_us))?;
        sent.count(status, body.len(), workload.batch());
    }
    Ok(sent)
}
