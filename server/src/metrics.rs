//! The counters behind `GET /metrics` (rendered in the Prometheus text format by `http::ops`).
//!
//! Message counters are bumped once per broadcast (by the number delivered), not once per
//! recipient, so the fan-out path does not hammer one shared cache line.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl AppMetrics {
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

/// HTTP API responses by status code.
pub struct HttpMetrics {
    counts: [AtomicU64; STATUSES.len() + 1],
}

const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 408, 413, 415, 429, 500, 503];

impl Default for HttpMetrics {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl HttpMetrics {
    pub fn record(&self, status: u16) {
        let i = STATUSES
            .iter()
            .position(|s| *s == status)
            .unwrap_or(STATUSES.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Each status (and `other`) with its count.
    pub fn by_status(&self) -> impl Iterator<Item = (String, u64)> + '_ {
        STATUSES
            .iter()
            .map(u16::to_string)
            .chain(std::iter::once("other".to_owned()))
            .zip(self.counts.iter().map(|c| c.load(Ordering::Relaxed)))
    }
}
