//! `GET /metrics`: every counter in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::cluster::Health;
use crate::config::AdapterKind;
use crate::metrics::Histogram;
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
    // In a cluster every sample says which node it is from (the id the node made itself).
    let node = state.adapter.node();
    let node_label = node.as_ref().map(|n| format!("node=\"{}\"", n.id));
    let node_label = node_label.as_deref();
    let mut family =
        |name: &str, kind: &str, help: &str, rows: &mut dyn Iterator<Item = (String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in rows {
                let labels = with_node(node_label, &labels);
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        };
    let apps: Vec<_> = state.apps.iter().collect();
    let per_app = |f: &dyn Fn(&App) -> u64| -> Vec<(String, u64)> {
        apps.iter()
            .map(|a| (format!("app_id=\"{}\"", a.config().id), f(a)))
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
        "chorus_cache_channels",
        "gauge",
        "Cache channels whose last event this node keeps (with Redis it lives in Redis).",
        &mut per_app(&|a| a.cache.len() as u64).into_iter(),
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
        "HTTP API requests by endpoint (route template) and response status.",
        &mut state
            .http_metrics
            .by_endpoint_and_status()
            .into_iter()
            .map(|(e, s, v)| (format!("endpoint=\"{e}\",status=\"{s}\""), v)),
    );
    family(
        "chorus_connections_opened_total",
        "counter",
        "WebSocket connections admitted.",
        &mut per_app(&|a| load(&a.metrics.connections_opened)).into_iter(),
    );
    family(
        "chorus_connections_closed_total",
        "counter",
        "WebSocket connections ended, by the close code the server sent (`client`: the client closed or dropped it; refusals at admission included).",
        &mut state
            .connection_metrics
            .closed_by_code()
            .map(|(code, v)| (format!("code=\"{code}\""), v)),
    );
    family(
        "chorus_subscriptions",
        "gauge",
        "Channel subscriptions of this node's connections.",
        &mut per_app(&|a| a.channels.subscriptions() as u64).into_iter(),
    );
    family(
        "chorus_process_open_fds",
        "gauge",
        "Open file descriptors of the process (connections, listeners, Redis).",
        &mut open_fds().map(|n| (String::new(), n)).into_iter(),
    );
    let per_app_pairs = |f: &dyn Fn(&App) -> Vec<(&'static str, u64)>, key: &str| {
        apps.iter()
            .flat_map(|a| {
                f(a).into_iter()
                    .map(move |(v, n)| (format!("app_id=\"{}\",{key}=\"{v}\"", a.config().id), n))
            })
            .collect::<Vec<_>>()
    };
    family(
        "chorus_recoveries_total",
        "counter",
        "Subscriptions that asked to recover missed events, by outcome (recovered, expired, epoch_changed, unavailable, rate_limited).",
        &mut per_app_pairs(&|a| a.metrics.recoveries().collect(), "outcome").into_iter(),
    );
    family(
        "chorus_subscriptions_refused_total",
        "counter",
        "Subscriptions refused, by pusher:subscription_error type (AuthError, LimitReached).",
        &mut per_app_pairs(&|a| a.metrics.refusals().collect(), "type").into_iter(),
    );
    if let Some(n) = &node {
        family(
            "chorus_redis_write_queue",
            "gauge",
            "Writes (publishes, count updates) queued for Redis.",
            &mut std::iter::once((String::new(), n.write_queue as u64)),
        );
        family(
            "chorus_cluster_nodes",
            "gauge",
            "Nodes alive in the cluster at the last heartbeat (this one included).",
            &mut std::iter::once((String::new(), n.nodes.len() as u64)),
        );
        family(
            "chorus_redis_messages_received_total",
            "counter",
            "Pub/sub messages received from Redis: the events of channels with a subscriber here, and messages about users.",
            &mut std::iter::once((String::new(), n.messages_received)),
        );
        family(
            "chorus_redis_writes_dropped_total",
            "counter",
            "Writes dropped because the queue for Redis was full (cross-node messages lost).",
            &mut std::iter::once((String::new(), n.writes_dropped)),
        );
    }
    if state.config.adapter == AdapterKind::Redis {
        let up = u64::from(matches!(state.adapter.health(), Health::Ok));
        family(
            "chorus_redis_up",
            "gauge",
            "Whether this node reaches Redis (0: serving its own subscribers only).",
            &mut std::iter::once((String::new(), up)),
        );
    }
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
    family(
        "chorus_webhook_events_total",
        "counter",
        "Webhook events by outcome: sent (2xx), failed (given up after retrying), dropped (queue full).",
        &mut per_app_pairs(
            &|a| {
                let hooks = a.webhooks();
                let s = hooks.stats();
                vec![
                    ("sent", load(&s.sent)),
                    ("failed", load(&s.failed)),
                    ("dropped", load(&s.dropped)),
                ]
            },
            "outcome",
        )
        .into_iter(),
    );
    family(
        "chorus_webhook_request_errors_total",
        "counter",
        "Webhook requests that failed (error, timeout or non-2xx answer); each retry counts.",
        &mut per_app(&|a| load(&a.webhooks().stats().request_errors)).into_iter(),
    );
    family(
        "chorus_webhook_queue",
        "gauge",
        "Webhook events waiting to be sent.",
        &mut per_app(&|a| a.webhooks().stats().queued.load(Ordering::Relaxed) as u64).into_iter(),
    );
    if let Some(n) = &node {
        let _ = writeln!(
            out,
            "# HELP chorus_redis_round_trip_seconds The last heartbeat's round trip to Redis.\n\
             # TYPE chorus_redis_round_trip_seconds gauge\n\
             chorus_redis_round_trip_seconds{{{}}} {}",
            with_node(node_label, ""),
            n.round_trip.as_secs_f64()
        );
    }
    histogram(
        &mut out,
        node_label,
        "chorus_fanout_duration_seconds",
        "Time one broadcast took to reach every local subscriber's queue or socket.",
        apps.iter()
            .map(|a| (format!("app_id=\"{}\"", a.config().id), &a.metrics.fanout)),
    );
    histogram(
        &mut out,
        node_label,
        "chorus_http_request_duration_seconds",
        "HTTP API request latency, head received to response ready, by endpoint.",
        state
            .http_metrics
            .latency()
            .map(|(e, h)| (format!("endpoint=\"{e}\""), h)),
    );
    out
}

/// One histogram family: `_bucket` rows per `le`, then `_sum` and `_count`, for each label set.
fn histogram<'a>(
    out: &mut String,
    node: Option<&str>,
    name: &str,
    help: &str,
    series: impl Iterator<Item = (String, &'a Histogram)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (labels, h) in series {
        let labels = with_node(node, &labels);
        let (buckets, sum, count) = h.snapshot();
        for (le, n) in buckets {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

/// `labels` with the node's label in front, if there is one.
fn with_node(node: Option<&str>, labels: &str) -> String {
    match (node, labels.is_empty()) {
        (None, _) => labels.to_owned(),
        (Some(n), true) => n.to_owned(),
        (Some(n), false) => format!("{n},{labels}"),
    }
}

/// Entries of `/proc/self/fd`.
fn open_fds() -> Option<u64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
}
