//! The figures of a run: throughput, losses, latency percentiles, and CPU
//! time per message of the server and of the tool itself.

use super::args::Args;
use super::receive::Received;
use super::send::Sent;

/// A finished run.
pub struct Report<'a> {
    /// The flags.
    pub args: &'a Args,
    /// What the senders did.
    pub sent: &'a Sent,
    /// What the receivers saw.
    pub received: Received,
    /// How long the senders ran.
    pub send_secs: f64,
    /// Message numbers handed out.
    pub numbered: u64,
    /// CPU clock ticks before and after of each measured process, named.
    pub process_ticks: Vec<(String, (u64, u64))>,
    /// This process's CPU seconds over the same span.
    pub tool_secs: f64,
}

/// User + system CPU ticks of process `pid`.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// User + system CPU seconds of this process.
pub fn own_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)] as f64 / 1000.0
}

impl Report<'_> {
    /// Prints the report on stdout.
    pub fn print(mut self) {
        let args = self.args;
        let delivered = self.received.distinct();
        self.received.latencies_us.sort_unstable();
        let l = &self.received.latencies_us;
        let mode = if args.rate > 0 {
            format!("open loop at {} msgs/s", args.rate)
        } else {
            "closed loop".into()
        };
        println!(
            "workload: {} users, {} senders, batches of {} x {} B, {} s, {mode}",
            args.users, args.senders, args.batch, args.payload_bytes, args.duration_secs
        );
        println!(
            "accepted: {} messages ({} failed requests, {} numbered)",
            self.sent.accepted, self.sent.failed_requests, self.numbered
        );
        println!(
            "delivered: {delivered} distinct ({} duplicates) in {} frames ({:.2} per frame), lost: {}",
            self.received.duplicates,
            self.received.frames,
            delivered as f64 / self.received.frames.max(1) as f64,
            self.sent.accepted.saturating_sub(delivered)
        );
        println!(
            "throughput end to end: {:.0} msgs/s (accepted over {:.2} s of sending)",
            delivered as f64 / self.send_secs,
            self.send_secs
        );
        println!(
            "latency from intended send: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            percentile_ms(l, 50.0),
            percentile_ms(l, 90.0),
            percentile_ms(l, 99.0),
            percentile_ms(l, 99.9),
            l.last().copied().unwrap_or(0) as f64 / 1000.0
        );
        let per_message = |secs: f64| secs * 1e6 / delivered.max(1) as f64;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        for (name, (before, after)) in &self.process_ticks {
            let secs = after.saturating_sub(*before) as f64 / hz;
            println!(
                "{name} CPU: {secs:.2} s, {:.1} µs per delivered message",
                per_message(secs)
            );
        }
        println!(
            "tool CPU: {:.2} s, {:.1} µs per delivered message",
            self.tool_secs,
            per_message(self.tool_secs)
        );
    }
}
