//! The live dashboard: a page (part of the binary, uPlot vendored beside it) that polls
//! `/dashboard/stats` once a second while it is open, and a debug console that streams an app's
//! delivered events (`/dashboard/events`, server-sent events) with a filter by channel. Nothing
//! runs while nobody watches: the stats are computed per request, the console's tap is off
//! without a watcher.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::cluster::Health;
use crate::state::ServerState;

/// Channels listed per app, busiest first.
const BUSIEST: usize = 10;

pub async fn page() -> Html<&'static str> {
    Html(include_str!("assets/dashboard.html"))
}

pub async fn uplot_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("assets/uPlot.iife.min.js"),
    )
        .into_response()
}

pub async fn uplot_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "max-age=86400"),
        ],
        include_str!("assets/uPlot.min.css"),
    )
        .into_response()
}

/// Counters (the page turns them into rates), gauges and the busiest channels of every app.
pub async fn stats(State(state): State<Arc<ServerState>>) -> Json<Value> {
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let apps: Vec<Value> = state
        .apps
        .iter()
        .map(|a| {
            let mut busiest = a.channels.subscription_counts();
            busiest.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
            busiest.truncate(BUSIEST);
            json!({
                "id": a.config().id,
                "connections": a.connections.count(),
                "channels": a.channels.len(),
                "subscriptions": a.channels.subscriptions(),
                "messages_in": load(&a.metrics.messages_in),
                "messages_out": load(&a.metrics.messages_out),
                "bytes_in": load(&a.metrics.bytes_in),
                "bytes_out": load(&a.metrics.bytes_out),
                "busiest": busiest.iter().map(|(c, n)| json!({"channel": c, "subscriptions": n})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let health = match state.adapter.health() {
        Health::Ok => json!({"status": "ok"}),
        Health::Degraded(reason) => json!({"status": "degraded", "reason": reason}),
    };
    state.memory.sample();
    // In a cluster: this node's id, the nodes alive at the last heartbeat, the Redis round trip.
    let cluster = state.adapter.node().map(|n| {
        json!({
            "node": n.id,
            "nodes": n.nodes,
            "round_trip_ms": n.round_trip.as_secs_f64() * 1e3,
            "write_queue": n.write_queue,
        })
    });
    Json(json!({
        "time_ms": now_ms(),
        "node": {
            "adapter": format!("{:?}", state.config.adapter).to_lowercase(),
            "health": health,
            "rss_bytes": state.memory.rss(),
            "shutting_down": state.is_shutting_down(),
        },
        "cluster": cluster,
        "apps": apps,
    }))
}

/// Resolves once shutdown has begun (the guard `wait_for` returns is not `Send`: dropped here).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Deserialize)]
pub struct Watch {
    app: String,
    /// Only channels whose name contains this.
    #[serde(default)]
    channel: String,
}

/// The debug console's stream: one `event` per delivery (`{channel, delivered, at_ms, frame}`),
/// `dropped` when the watcher fell behind; ends with the server.
pub async fn events(
    State(state): State<Arc<ServerState>>,
    Query(watch): Query<Watch>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Response> {
    let Some(app) = state.apps.by_id(&watch.app) else {
        let body = Json(json!({"error": "Unknown app id"}));
        return Err((StatusCode::NOT_FOUND, body).into_response());
    };
    let tap = app.tap.watch();
    let shutdown = state.shutdown.clone();
    let filter = watch.channel;
    let stream = futures_util::stream::unfold(
        (tap, shutdown, filter),
        |(mut tap, mut shutdown, filter)| async move {
            loop {
                let next = tokio::select! {
                    r = tap.rx.recv() => r,
                    _ = stopping(&mut shutdown) => return None,
                };
                let event = match next {
                    Ok(t) if t.channel.contains(filter.as_str()) => Event::default().data(
                        json!({
                            "channel": &*t.channel,
                            "delivered": t.delivered,
                            "at_ms": t.at_ms,
                            "frame": t.frame.as_str(),
                        })
                        .to_string(),
                    ),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        Event::default().event("dropped").data(n.to_string())
                    }
                    Err(RecvError::Closed) => return None,
                };
                return Some((Ok(event), (tap, shutdown, filter)));
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
