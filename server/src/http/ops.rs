//! What load balancers read on the client port: `/up` (is the process alive and serving) and
//! `/ready` (should it get new connections). `/metrics` is on the admin listener ([`crate::admin`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::cluster::Health;
use crate::state::ServerState;

pub fn routes() -> Router<Arc<ServerState>> {
    Router::new()
        .route("/up", get(up))
        .route("/ready", get(ready))
}

/// 200 `ok`; 200 `degraded` when the cluster adapter cannot reach Redis (local subscribers are
/// still served); 503 while shutting down.
async fn up(State(state): State<Arc<ServerState>>) -> Response {
    if let Health::Degraded(reason) = state.adapter.health() {
        return Json(serde_json::json!({ "status": "degraded", "reason": reason })).into_response();
    }
    if state.is_shutting_down() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({ "status": "shutting_down" })),
        )
            .into_response()
    } else {
        Json(serde_json::json!({ "status": "ok" })).into_response()
    }
}

/// 200 `ready`; 503 `over_memory` while resident memory is over the limit (new connections are
/// refused meanwhile) and 503 `shutting_down`.
async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    let unavailable = |body| (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if state.is_shutting_down() {
        return unavailable(serde_json::json!({ "status": "shutting_down" }));
    }
    if state.memory.is_over() {
        return unavailable(serde_json::json!({
            "status": "over_memory",
            "rss_bytes": state.memory.rss(),
            "limit_bytes": state.memory.limit(),
        }));
    }
    Json(serde_json::json!({ "status": "ready" })).into_response()
}
