//! The HTTP side (never the WebSocket one): the signed Pusher HTTP API under `/apps/{id}` and the
//! operator endpoints.
//!
//! - [`signed`]: the [`signed::Signed`] extractor that authenticates every API request;
//! - [`api`]: the API handlers (publish, query, history, terminate);
//! - [`ops`]: `/up` and `/metrics`.

mod api;

#[cfg(feature = "fuzzing")]
pub use api::check_event_body;
mod ops;
mod signed;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::error::ApiError;
use crate::state::ServerState;

/// The API (body limit, every answer counted by status) and the operator endpoints.
pub fn routes(state: &Arc<ServerState>) -> Router<Arc<ServerState>> {
    let body_limit = state.config.max_request_kb.saturating_mul(1024);
    // Set before the layers, so API 405s are counted in the metrics like other API answers.
    let api = api::routes()
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(state),
            count_status,
        ));
    api.merge(ops::routes())
}

/// A known path with another method: JSON like every error (axum still adds the `Allow` header).
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

async fn count_status(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    // The route's template, never the path a client sent: labels stay a fixed set.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let start = std::time::Instant::now();
    let res = next.run(req).await;
    state.http_metrics.record(
        route.as_ref().map(MatchedPath::as_str),
        res.status().as_u16(),
        start.elapsed(),
    );
    res
}
