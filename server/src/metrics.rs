//! Counters exposed at `GET /metrics` in the Prometheus text format.
//!
//! Message counters are bumped once per broadcast (by the number delivered), not once per
//! recipient, so the fan-out path does not hammer one shared cache line.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::ServerState;

#[derive(Default)]
pub struct AppMetrics {
    /// Frames received from clients.
    pub messages_in: AtomicU64,
    pub bytes_in: AtomicU64,
    /// Event deliveries to subscribers (one broadcast to N subscribers counts N).
    pub messages_out: AtomicU64,
    pub bytes_out: AtomicU64,
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

const STATUSES: [u16; 10] = [200, 400, 401, 403, 404, 405, 413, 415, 500, 503];

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
}

/// Renders all metrics.
pub fn render(state: &ServerState) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
    let apps: Vec<_> = state.apps.iter().collect();
    let per_app = |f: &dyn Fn(&crate::app::App) -> u64| -> Vec<(String, u64)> {
        apps.iter()
            .map(|a| (format!("app_id=\"{}\"", a.config.id), f(a)))
            .collect()
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    family(
        "chorus_connections",
        "gauge",
        "Open WebSocket connections.",
        &mut per_app(&|a| a.connection_count() as u64).into_iter(),
    );
    family(
        "chorus_channels",
        "gauge",
        "Channels with at least one subscriber on this node.",
        &mut per_app(&|a| a.channels.len() as u64).into_iter(),
    );
    family(
        "chorus_messages_received_total",
        "counter",
        "WebSocket frames received from clients.",
        &mut per_app(&|a| load(&a.metrics.messages_in)).into_iter(),
    );
    family(
        "chorus_bytes_received_total",
        "counter",
        "Bytes of WebSocket frames received from clients.",
        &mut per_app(&|a| load(&a.metrics.bytes_in)).into_iter(),
    );
    family(
        "chorus_messages_sent_total",
        "counter",
        "Events delivered to subscribers.",
        &mut per_app(&|a| load(&a.metrics.messages_out)).into_iter(),
    );
    family(
        "chorus_bytes_sent_total",
        "counter",
        "Bytes of events delivered to subscribers.",
        &mut per_app(&|a| load(&a.metrics.bytes_out)).into_iter(),
    );
    let http: Vec<(String, u64)> = STATUSES
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once("other".to_string()))
        .zip(state.http_metrics.counts.iter())
        .map(|(s, c)| (format!("status=\"{s}\""), load(c)))
        .collect();
    family(
        "chorus_http_requests_total",
        "counter",
        "HTTP API requests by response status.",
        &mut http.into_iter(),
    );
    out
}
