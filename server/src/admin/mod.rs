//! The admin listener (`admin_host:admin_port`, loopback by default): what operators read, kept off
//! the client port. With `admin_token` set every request needs `Authorization: Bearer <token>`
//! or, for a browser on the dashboard, `?token=<token>` (compared in constant time); without it
//! the listener must be on loopback (the config says so).
//!
//! - [`metrics`]: `GET /metrics`, Prometheus text.
//! - [`dashboard`]: `GET /` and `/dashboard` (the page), `/dashboard/stats`, `/dashboard/events`.

mod dashboard;
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
        .route("/", get(dashboard::page))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/stats", get(dashboard::stats))
        .route("/dashboard/events", get(dashboard::events))
        .route("/dashboard/uPlot.iife.min.js", get(dashboard::uplot_js))
        .route("/dashboard/uPlot.min.css", get(dashboard::uplot_css))
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
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    // A browser cannot set a header on a page load or an EventSource: the query may carry it.
    let given = header.or_else(|| {
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let given = given.as_deref();
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
