//! Latency and errors of the ScyllaDB store's queries, by statement, for
//! `/metrics`: one histogram and one error counter per [`Stmt`] (a batch
//! counts under its first statement, labelled `kind="batch"`). Relaxed
//! atomics written by the driver's runtime threads; a scrape sums nothing,
//! it only reads.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::statements::{Stmt, ALL};

/// Upper bounds of the latency buckets, seconds.
const BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// How a statement was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// On its own.
    Single = 0,
    /// In a batch (counted under its first statement).
    Batch = 1,
}

const KINDS: [&str; 2] = ["single", "batch"];

#[derive(Default)]
struct Slot {
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
    errors: AtomicU64,
}

/// Every statement's slots.
pub struct QueryMetrics {
    slots: Vec<Slot>,
}

impl QueryMetrics {
    /// Empty slots for every statement.
    pub fn new() -> Self {
        Self {
            slots: (0..ALL.len() * KINDS.len()).map(|_| Slot::default()).collect(),
        }
    }

    fn slot(&self, stmt: Stmt, sent: Sent) -> Option<&Slot> {
        self.slots.get(stmt as usize * KINDS.len() + sent as usize)
    }

    /// Counts one query that took `elapsed` and failed or not.
    pub fn record(&self, stmt: Stmt, sent: Sent, elapsed: Duration, failed: bool) {
        let Some(slot) = self.slot(stmt, sent) else {
            return;
        };
        let secs = elapsed.as_secs_f64();
        let bucket = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        slot.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        slot.sum_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if failed {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Appends the metrics in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE obscura_cql_query_duration_seconds histogram");
        let mut errors = String::new();
        for stmt in ALL {
            for (k, kind) in KINDS.iter().enumerate() {
                let Some(slot) = self.slots.get(*stmt as usize * KINDS.len() + k) else {
                    continue;
                };
                let labels = format!("statement=\"{}\",kind=\"{kind}\"", stmt.label());
                render_slot(out, &labels, slot);
                let failed = slot.errors.load(Ordering::Relaxed);
                if failed > 0 {
                    let _ = writeln!(errors, "obscura_cql_query_errors_total{{{labels}}} {failed}");
                }
            }
        }
        let _ = writeln!(out, "# TYPE obscura_cql_query_errors_total counter");
        out.push_str(&errors);
    }
}

fn render_slot(out: &mut String, labels: &str, slot: &Slot) {
    let counts: Vec<u64> = slot.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
    let count: u64 = counts.iter().sum();
    if count == 0 {
        return;
    }
    let mut cumulative = 0;
    for (bound, n) in BOUNDS.iter().zip(&counts) {
        cumulative += n;
        let _ = writeln!(
            out,
            "obscura_cql_query_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "obscura_cql_query_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
    );
    let sum = slot.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "obscura_cql_query_duration_seconds_sum{{{labels}}} {sum}");
    let _ = writeln!(out, "obscura_cql_query_duration_seconds_count{{{labels}}} {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_latency_and_errors_by_statement() {
        let m = QueryMetrics::new();
        m.record(Stmt::InsertMessage, Sent::Batch, Duration::from_micros(300), false);
        m.record(Stmt::SelectDevice, Sent::Single, Duration::from_millis(3), true);
        let mut text = String::new();
        m.render(&mut text);
        assert!(text.contains(
            "obscura_cql_query_duration_seconds_bucket{statement=\"InsertMessage\",kind=\"batch\",le=\"0.0005\"} 1"
        ));
        assert!(text.contains("obscura_cql_query_errors_total{statement=\"SelectDevice\",kind=\"single\"} 1"));
        assert!(!text.contains("statement=\"Ping\""), "silent statements are left out");
    }
}
