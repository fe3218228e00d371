//! The admin listener (`admin_host:admin_port`, loopback by default): what operators read, kept off
//! the client port. With `admin_token` set every request needs `Authorization: Bearer <token>`
//! (compared in constant time); without it the listener must be on loopback (the config says so).
//!
//! - [`metrics`]: `GET /metrics`, Prometheus text.

mod metrics;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use subtle::ConstantTimeEq;

use crate::state::ServerState;

/// The admin router, its token check in front of every route.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(Arc::clone(&state), bearer))
        .with_state(state)
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({ "error": "Not found" })),
    )
        .into_response()
}

async fn bearer(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let Some(token) = state.config.admin_token.as_deref() else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Lengths are not secret; the bytes are compared in constant time.
    let ok = given.is_some_and(|g| {
        g.len() == token.len() && bool::from(g.as_bytes().ct_eq(token.as_bytes()))
    });
    if ok {
        return next.run(req).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({ "error": "admin token missing or wrong" })),
    )
        .into_response()
}
