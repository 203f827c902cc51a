//! Metrics in Prometheus text format. Each shard writes only its own slots
//! (relaxed atomics, so no lock and no cross-core contention on the hot
//! path); a scrape reads every shard's slots. Request counts are by route
//! and status, latencies are histograms by route, open connections are a
//! gauge; the counters reuse the reference server's instrument names
//! (BEHAVIOR.md §13).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Status codes counted individually; others count as "other".
const STATUSES: [u16; 22] = [
    101, 200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 411, 412, 413, 415, 422, 429, 431, 500, 501, 503,
];
const OTHER_STATUS: usize = STATUSES.len();

/// Upper bounds of the latency buckets, seconds.
const LATENCY_BOUNDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5,
];

/// Counters named as in the reference server.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    /// `obscura_registrations_total`
    Registrations,
    /// `obscura_logins_total`
    Logins,
    /// `obscura_token_refreshes_total`
    TokenRefreshes,
    /// `obscura_logouts_total`
    Logouts,
    /// `obscura_devices_created_total`
    DevicesCreated,
    /// `obscura_devices_deleted_total`
    DevicesDeleted,
    /// `obscura_key_takeovers_total`
    KeyTakeovers,
    /// `obscura_messages_sent_total`
    MessagesSent,
    /// `obscura_websocket_acks_received_total`
    AcksReceived,
    /// `obscura_rate_limit_decisions_total{status="allowed"}`
    RateLimitAllowed,
    /// `obscura_rate_limit_decisions_total{status="throttled"}`
    RateLimitThrottled,
    /// `obscura_push_notifications_sent_total`
    PushesSent,
    /// `obscura_push_notification_errors_total`
    PushErrors,
    /// `obscura_push_invalid_tokens_total`
    PushInvalidTokens,
    /// `obscura_websocket_envelopes_delivered_total{source="arrival"}`:
    /// written as their owner handed them over, without a store read.
    EnvelopesFromArrivals,
    /// `obscura_websocket_envelopes_delivered_total{source="store"}`:
    /// read from the mailbox (backlog, or after a gap).
    EnvelopesFromStore,
    /// `obscura_accounts_deleted_total`
    AccountsDeleted,
    /// `obscura_password_changes_total`
    PasswordChanges,
    /// `obscura_password_verifications_total{hash="stored"}`: a password
    /// checked against an account's hash.
    PasswordChecksStored,
    /// `obscura_password_verifications_total{hash="dummy"}`: a password
    /// checked against the dummy hash (no such account).
    PasswordChecksDummy,
}

const COUNTER_NAMES: [(&str, &str); 20] = [
    ("obscura_registrations_total", ""),
    ("obscura_logins_total", ""),
    ("obscura_token_refreshes_total", ""),
    ("obscura_logouts_total", ""),
    ("obscura_devices_created_total", ""),
    ("obscura_devices_deleted_total", ""),
    ("obscura_key_takeovers_total", ""),
    ("obscura_messages_sent_total", ""),
    ("obscura_websocket_acks_received_total", ""),
    ("obscura_rate_limit_decisions_total", "status=\"allowed\""),
    ("obscura_rate_limit_decisions_total", "status=\"throttled\""),
    ("obscura_push_notifications_sent_total", ""),
    ("obscura_push_notification_errors_total", ""),
    ("obscura_push_invalid_tokens_total", ""),
    ("obscura_websocket_envelopes_delivered_total", "source=\"arrival\""),
    ("obscura_websocket_envelopes_delivered_total", "source=\"store\""),
    ("obscura_accounts_deleted_total", ""),
    ("obscura_password_changes_total", ""),
    ("obscura_password_verifications_total", "hash=\"stored\""),
    ("obscura_password_verifications_total", "hash=\"dummy\""),
];

/// One shard's slots.
pub struct ShardMetrics {
    requests: Vec<[AtomicU64; STATUSES.len() + 1]>,
    latency: Vec<[AtomicU64; LATENCY_BOUNDS.len() + 1]>,
    latency_sum_us: Vec<AtomicU64>,
    counters: [AtomicU64; COUNTER_NAMES.len()],
    /// Open HTTP connections of this shard's main listener.
    pub open_connections: Arc<AtomicUsize>,
}

/// Every shard's metrics and the route labels.
pub struct Metrics {
    routes: &'static [&'static str],
    shards: Vec<ShardMetrics>,
}

impl Metrics {
    /// Slots for `shards` shards and the given route labels.
    pub fn new(shards: usize, routes: &'static [&'static str]) -> Arc<Self> {
        let shard = || ShardMetrics {
            requests: routes
                .iter()
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            latency: routes
                .iter()
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            latency_sum_us: routes.iter().map(|_| AtomicU64::new(0)).collect(),
            counters: std::array::from_fn(|_| AtomicU64::new(0)),
            open_connections: Arc::new(AtomicUsize::new(0)),
        };
        Arc::new(Self {
            routes,
            shards: (0..shards).map(|_| shard()).collect(),
        })
    }

    /// Shard `i`'s slots.
    pub fn shard(&self, i: usize) -> Option<&ShardMetrics> {
        self.shards.get(i)
    }

    /// Renders every metric in Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        self.render_latency(&mut out);
        let _ = writeln!(out, "# TYPE obscura_http_open_connections gauge");
        for (i, s) in self.shards.iter().enumerate() {
            let open = s.open_connections.load(Ordering::Relaxed);
            let _ = writeln!(out, "obscura_http_open_connections{{shard=\"{i}\"}} {open}");
        }
        for (c, (name, label)) in COUNTER_NAMES.iter().enumerate() {
            if c == 0 || COUNTER_NAMES[c - 1].0 != *name {
                let _ = writeln!(out, "# TYPE {name} counter");
            }
            let total: u64 = self.shards.iter().map(|s| s.counters[c].load(Ordering::Relaxed)).sum();
            let labels = if label.is_empty() {
                String::new()
            } else {
                format!("{{{label}}}")
            };
            let _ = writeln!(out, "{name}{labels} {total}");
        }
        out
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE obscura_http_requests_total counter");
        for (i, s) in self.shards.iter().enumerate() {
            for (r, route) in self.routes.iter().enumerate() {
                for (k, count) in s.requests[r].iter().enumerate() {
                    let n = count.load(Ordering::Relaxed);
                    if n > 0 {
                        let status = STATUSES.get(k).map_or("other".to_string(), u16::to_string);
                        let _ = writeln!(
                            out,
                            "obscura_http_requests_total{{shard=\"{i}\",route=\"{route}\",status=\"{status}\"}} {n}"
                        );
                    }
                }
            }
        }
    }

    fn render_latency(&self, out: &mut String) {
        let _ = writeln!(out, "# TYPE obscura_http_request_duration_seconds histogram");
        for (i, s) in self.shards.iter().enumerate() {
            for (r, route) in self.routes.iter().enumerate() {
                let buckets: Vec<u64> = s.latency[r].iter().map(|b| b.load(Ordering::Relaxed)).collect();
                let count: u64 = buckets.iter().sum();
                if count == 0 {
                    continue;
                }
                let labels = format!("shard=\"{i}\",route=\"{route}\"");
                let mut cumulative = 0;
                for (b, bound) in LATENCY_BOUNDS.iter().enumerate() {
                    cumulative += buckets[b];
                    let _ = writeln!(
                        out,
                        "obscura_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "obscura_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
                );
                let sum = s.latency_sum_us[r].load(Ordering::Relaxed) as f64 / 1e6;
                let _ = writeln!(out, "obscura_http_request_duration_seconds_sum{{{labels}}} {sum}");
                let _ = writeln!(out, "obscura_http_request_duration_seconds_count{{{labels}}} {count}");
            }
        }
    }
}

impl ShardMetrics {
    /// Counts one answered request of route label `route`.
    pub fn record_request(&self, route: usize, status: u16, elapsed: Duration) {
        let slot = STATUSES.iter().position(|s| *s == status).unwrap_or(OTHER_STATUS);
        if let Some(counts) = self.requests.get(route) {
            counts[slot].fetch_add(1, Ordering::Relaxed);
        }
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let (Some(hist), Some(sum)) = (self.latency.get(route), self.latency_sum_us.get(route)) {
            hist[bucket].fetch_add(1, Ordering::Relaxed);
            sum.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// Adds one to a named counter.
    pub fn count(&self, counter: Counter) {
        self.add(counter, 1);
    }

    /// Adds `n` to a named counter.
    pub fn add(&self, counter: Counter, n: u64) {
        self.counters[counter as usize].fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histograms_and_counters() {
        let m = Metrics::new(2, &["GET /a", "POST /b"]);
        let s = m.shard(1).unwrap();
        s.record_request(0, 200, Duration::from_micros(300));
        s.record_request(0, 200, Duration::from_millis(3));
        s.record_request(1, 999, Duration::from_secs(9));
        s.count(Counter::Registrations);
        let text = m.render();
        assert!(text.contains("obscura_http_requests_total{shard=\"1\",route=\"GET /a\",status=\"200\"} 2"));
        assert!(text.contains("status=\"other\"} 1"));
        assert!(text.contains("route=\"GET /a\",le=\"0.0005\"} 1"));
        assert!(text.contains("route=\"GET /a\",le=\"+Inf\"} 2"));
        assert!(text.contains("obscura_registrations_total 1"));
        assert!(text.contains("obscura_rate_limit_decisions_total{status=\"throttled\"} 0"));
    }
}
