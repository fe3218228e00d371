//! `GET /metrics`: every counter in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::state::ServerState;

pub async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state),
    )
        .into_response()
}

/// Renders all metrics.
fn render(state: &ServerState) -> String {
    let mut out = String::new();
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
    let apps: Vec<_> = state.apps.iter().collect();
    let per_app = |f: &dyn Fn(&App) -> u64| -> Vec<(String, u64)> {
        apps.iter()
            .map(|a| (format!("app_id=\"{}\"", a.config.id), f(a)))
            .collect()
    };
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    family(
        "chorus_connections",
        "gauge",
        "Open WebSocket connections.",
        &mut per_app(&|a| a.connections.count() as u64).into_iter(),
    );
    family(
        "chorus_channels",
        "gauge",
        "Channels with at least one subscriber on this node.",
        &mut per_app(&|a| a.channels.len() as u64).into_iter(),
    );
    family(
        "chorus_history_streams",
        "gauge",
        "Channel history streams kept in this node's memory (with Redis they live in Redis).",
        &mut per_app(&|a| a.history.len() as u64).into_iter(),
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
    family(
        "chorus_http_requests_total",
        "counter",
        "HTTP API requests by response status.",
        &mut state
            .http_metrics
            .by_status()
            .map(|(s, v)| (format!("status=\"{s}\""), v)),
    );
    state.memory.sample();
    family(
        "chorus_process_resident_bytes",
        "gauge",
        "Resident memory of the process.",
        &mut std::iter::once((String::new(), state.memory.rss())),
    );
    family(
        "chorus_connections_refused_total",
        "counter",
        "WebSocket connections refused at admission, by reason.",
        &mut [
            ("memory", state.memory.refusals()),
            ("address_connections", state.addresses.refusals().0),
            ("address_connects", state.addresses.refusals().1),
        ]
        .into_iter()
        .map(|(reason, v)| (format!("reason=\"{reason}\""), v)),
    );
    family(
        "chorus_client_addresses",
        "gauge",
        "Client addresses tracked for the per-address limits.",
        &mut std::iter::once((String::new(), state.addresses.tracked() as u64)),
    );
    family(
        "chorus_api_requests_limited_total",
        "counter",
        "Signed HTTP API requests refused with 429 (over max_api_requests_per_second).",
        &mut per_app(&|a| load(&a.metrics.api_requests_limited)).into_iter(),
    );
    out
}
