//! The counters behind `GET /metrics` (rendered in the Prometheus text format by `admin::metrics`).
//!
//! Message counters are bumped once per broadcast (by the number delivered), not once per
//! recipient, so the fan-out path does not hammer one shared cache line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chorus_protocol::frame::Recovery;

#[derive(Default)]
pub struct AppMetrics {
    /// Frames received from clients.
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Event deliveries to subscribers (one broadcast to N subscribers counts N).
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
    /// HTTP API requests refused for the app's rate (429).
    pub api_requests_limited: AtomicU64,
    /// WebSocket connections admitted for this app.
    pub connections_opened: AtomicU64,
    /// How long one broadcast took to reach every local subscriber's queue or socket.
    pub fanout: Histogram,
    /// Recoveries asked for, by outcome ([`RECOVERY_OUTCOMES`]).
    recoveries: [AtomicU64; RECOVERY_OUTCOMES.len()],
    /// Subscriptions refused, by the error's type ([`REFUSAL_TYPES`]).
    refusals: [AtomicU64; REFUSAL_TYPES.len()],
}

/// `recovered`, then the reasons a recovery fails (as clients see them).
pub const RECOVERY_OUTCOMES: [&str; 5] = [
    "recovered",
    "expired",
    "epoch_changed",
    "unavailable",
    "rate_limited",
];

/// The `type` of a `pusher:subscription_error`.
pub const REFUSAL_TYPES: [&str; 2] = ["AuthError", "LimitReached"];

impl AppMetrics {
    /// Counts the outcome of a recovery that was asked for.
    pub fn recovery(&self, outcome: Option<&Recovery>) {
        let Some(r) = outcome else { return };
        let label = if r.recovered {
            "recovered"
        } else {
            r.reason.as_deref().unwrap_or("unavailable")
        };
        if let Some(i) = RECOVERY_OUTCOMES.iter().position(|o| *o == label) {
            self.recoveries[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn recoveries(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        RECOVERY_OUTCOMES
            .iter()
            .copied()
            .zip(self.recoveries.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    /// Counts a refused subscription by its error's `type`.
    pub fn refused(&self, kind: &str) {
        if let Some(i) = REFUSAL_TYPES.iter().position(|t| *t == kind) {
            self.refusals[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn refusals(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        REFUSAL_TYPES
            .iter()
            .copied()
            .zip(self.refusals.iter().map(|c| c.load(Ordering::Relaxed)))
    }

    pub fn received(&self, bytes: usize) {
        self.messages_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn delivered(&self, count: usize, frame_len: usize) {
        if count > 0 {
            self.messages_out.fetch_add(count as u64, Ordering::Relaxed);
            self.bytes_out
                .fetch_add((count * frame_len) as u64, Ordering::Relaxed);
        }
    }
}

/// A latency histogram: fixed buckets, atomics only (observed once per request or broadcast).
pub struct Histogram {
    /// Cumulative at render time; stored per bucket (the last is +Inf).
    buckets: [AtomicU64; LATENCY_BOUNDS_US.len() + 1],
    sum_us: AtomicU64,
}

/// Upper bounds in microseconds: 50 µs to 2.5 s.
pub const LATENCY_BOUNDS_US: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 1_000_000,
    2_500_000,
];

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_us: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, took: Duration) {
        let us = took.as_micros().min(u128::from(u64::MAX)) as u64;
        let i = LATENCY_BOUNDS_US.partition_point(|b| *b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// (upper bound in seconds or `+Inf`, cumulative count) per bucket, then the sum in seconds
    /// and the count.
    pub fn snapshot(&self) -> (Vec<(String, u64)>, f64, u64) {
        let mut total = 0;
        let mut rows = Vec::with_capacity(self.buckets.len());
        for (i, b) in self.buckets.iter().enumerate() {
            total += b.load(Ordering::Relaxed);
            let le = LATENCY_BOUNDS_US
                .get(i)
                .map_or("+Inf".to_owned(), |us| format!("{}", *us as f64 / 1e6));
            rows.push((le, total));
        }
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        (rows, sum, total)
    }
}

/// The HTTP API's endpoints, as their routes name them (never a client-chosen value).
pub const ENDPOINTS: [&str; 8] = [
    "/apps/{app_id}/events",
    "/apps/{app_id}/batch_events",
    "/apps/{app_id}/channels",
    "/apps/{app_id}/channels/{channel}",
    "/apps/{app_id}/channels/{channel}/users",
    "/apps/{app_id}/channels/{channel}/history",
    "/apps/{app_id}/users/{user_id}/terminate_connections",
    "other",
];

const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503];

/// HTTP API responses by endpoint and status, and their latency by endpoint.
pub struct HttpMetrics {
    counts: Vec<[AtomicU64; STATUSES.len() + 1]>,
    latency: Vec<Histogram>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            counts: ENDPOINTS
                .iter()
                .map(|_| std::array::from_fn(|_| AtomicU64::new(0)))
                .collect(),
            latency: ENDPOINTS.iter().map(|_| Histogram::default()).collect(),
        }
    }
}

impl HttpMetrics {
    /// `route`: the matched route template, if any.
    pub fn record(&self, route: Option<&str>, status: u16, took: Duration) {
        let e = route
            .and_then(|r| ENDPOINTS.iter().position(|e| *e == r))
            .unwrap_or(ENDPOINTS.len() - 1);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len());
        self.counts[e][s].fetch_add(1, Ordering::Relaxed);
        self.latency[e].observe(took);
    }

    /// (endpoint, status or `other`, count) for every pair seen.
    pub fn by_endpoint_and_status(&self) -> Vec<(&'static str, String, u64)> {
        let mut rows = Vec::new();
        for (e, counts) in ENDPOINTS.iter().zip(&self.counts) {
            for (i, c) in counts.iter().enumerate() {
                let n = c.load(Ordering::Relaxed);
                if n > 0 {
                    let status = STATUSES.get(i).map_or("other".to_owned(), u16::to_string);
                    rows.push((*e, status, n));
                }
            }
        }
        rows
    }

    /// Each endpoint's latency histogram.
    pub fn latency(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        ENDPOINTS.iter().copied().zip(&self.latency)
    }
}

/// Close codes counted apart; the rest count as `other`. `client` is a connection the client
/// closed (or that dropped) without the server ending it.
pub const CLOSE_CODES: [&str; 18] = [
    "client", "4001", "4003", "4004", "4005", "4006", "4007", "4008", "4009", "4100", "4200",
    "4201", "4202", "1002", "1007", "1008", "1009", "other",
];

/// WebSocket connections opened and closed (by close code), server-wide.
pub struct ConnectionMetrics {
    pub opened: AtomicU64,
    closed: [AtomicU64; CLOSE_CODES.len()],
}

impl Default for ConnectionMetrics {
    fn default() -> Self {
        Self {
            opened: AtomicU64::new(0),
            closed: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl ConnectionMetrics {
    /// `code`: the close code the server sent, `None` when the client ended it.
    pub fn closed(&self, code: Option<u16>) {
        let label = code.map(|c| c.to_string());
        let i = match &label {
            None => 0,
            Some(l) => CLOSE_CODES
                .iter()
                .position(|c| c == l)
                .unwrap_or(CLOSE_CODES.len() - 1),
        };
        self.closed[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed_by_code(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        CLOSE_CODES
            .iter()
            .copied()
            .zip(self.closed.iter().map(|c| c.load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(40));
        h.observe(Duration::from_micros(700));
        h.observe(Duration::from_secs(10));
        let (rows, sum, count) = h.snapshot();
        assert_eq!(rows[0], ("0.00005".to_owned(), 1));
        assert_eq!(rows[4], ("0.001".to_owned(), 2));
        assert_eq!(rows.last().unwrap(), &("+Inf".to_owned(), 3));
        assert_eq!(count, 3);
        assert!((sum - 10.00074).abs() < 1e-9);
    }

    #[test]
    fn endpoints_and_codes_out_of_the_lists_count_as_other() {
        let m = HttpMetrics::default();
        m.record(Some("/apps/{app_id}/events"), 200, Duration::ZERO);
        m.record(Some("/nope"), 418, Duration::ZERO);
        let rows = m.by_endpoint_and_status();
        assert_eq!(rows[0], ("/apps/{app_id}/events", "200".to_owned(), 1));
        assert_eq!(rows[1], ("other", "other".to_owned(), 1));
        let c = ConnectionMetrics::default();
        c.closed(None);
        c.closed(Some(4100));
        c.closed(Some(3999));
        let closed: Vec<_> = c.closed_by_code().filter(|(_, n)| *n > 0).collect();
        assert_eq!(closed, [("client", 1), ("4100", 1), ("other", 1)]);
    }
}
