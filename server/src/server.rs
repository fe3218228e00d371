//! The listener and router: WebSocket at `/app/{key}`, the HTTP API under `/apps/{id}`, `/up` and
//! `/metrics`; and graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{DefaultBodyLimit, Query, Request, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::adapter::redis::{RedisAdapter, RedisSettings, RedisSetupError};
use crate::adapter::{Adapter, Health, LocalAdapter};
use crate::app::Apps;
use crate::config::{AdapterKind, Config};
use crate::connection::{self, ConnectRequest};
use crate::error::ApiError;
use crate::http_api::ApiPath;
use crate::state::ServerState;
use crate::{http_api, metrics};

/// Clients send small frames (subscribe, ping, whispers): 1 KiB reads keep an idle connection
/// small (tungstenite allocates and zero-fills the whole read buffer); a larger message grows it.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 8 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: Arc<ServerState>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds `config.host:config.port` (port 0 picks a free one) and starts the configured adapter.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        let apps = Arc::new(Apps::new(&config.apps));
        let adapter: Arc<dyn Adapter> = match config.adapter {
            AdapterKind::Local => Arc::new(LocalAdapter),
            AdapterKind::Redis => Arc::new(RedisAdapter::start(
                RedisSettings {
                    url: config.redis_url.clone(),
                    prefix: config.redis_prefix.clone(),
                    node_timeout: Duration::from_secs(config.node_timeout),
                },
                Arc::clone(&apps),
            )?),
        };
        let (shutdown, rx) = watch::channel(false);
        Ok(Self {
            listener,
            state: Arc::new(ServerState::new(config, apps, adapter, rx)),
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn state(&self) -> &Arc<ServerState> {
        &self.state
    }

    /// Serves until `signal` resolves, then stops accepting, tells every client to reconnect
    /// elsewhere (4200) and waits up to `shutdown_timeout` for connections to close.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            state,
            shutdown,
        } = self;
        let app = router(Arc::clone(&state));
        tokio::spawn(sweep_history(Arc::downgrade(&state)));
        let notify = async move {
            signal.await;
            tracing::info!("shutting down: closing connections with 4200");
            let _ = shutdown.send(true);
        };
        // No Nagle: a small frame or API reply must not wait for the peer's delayed ACK (up to
        // 40 ms on Linux); the writer task already batches queued frames into one flush.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        });
        axum::serve(listener, app.into_make_service())
            .with_graceful_shutdown(notify)
            .await?;
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(state.config.shutdown_timeout);
        while state.connection_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = state.connection_count();
        if left > 0 {
            tracing::warn!(
                connections = left,
                "shutdown timeout reached with connections still open"
            );
        }
        Ok(())
    }
}

/// Drops idle history streams now and then, so memory follows the channels in use.
async fn sweep_history(state: std::sync::Weak<ServerState>) {
    loop {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let Some(state) = state.upgrade() else { return };
        for app in state.apps.iter() {
            app.history.sweep();
        }
    }
}

pub fn router(state: Arc<ServerState>) -> Router {
    let body_limit = state.config.max_request_kb.saturating_mul(1024);
    // Set before the layers, so API 405s are counted in the metrics like other API answers.
    let api = http_api::routes()
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_status,
        ));
    Router::new()
        .route("/app/{key}", get(websocket))
        .route("/up", get(up))
        .route("/metrics", get(metrics_text))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// An unknown path: a WebSocket upgrade is accepted only to tell the client 4005 (a Pusher client
/// then stops retrying instead of failing the handshake forever); anything else is a JSON 404.
async fn not_found(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<Arc<ServerState>>,
    uri: Uri,
) -> Response {
    let Ok(ws) = ws else {
        return ApiError::NotFound.into_response();
    };
    let request = ConnectRequest {
        key: String::new(),
        protocol: None,
        origin: None,
        wrong_path: Some(uri.path().to_owned()),
    };
    upgrade(ws, state, request)
}

/// A known path with another method: JSON like every error (axum still adds the `Allow` header).
async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

async fn websocket(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<Arc<ServerState>>,
    ApiPath(key): ApiPath<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(query) = query?;
    let ws = ws?;
    let request = ConnectRequest {
        key,
        protocol: query.get("protocol").cloned(),
        origin: headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        wrong_path: None,
    };
    Ok(upgrade(ws, state, request))
}

/// Accepts the upgrade; [`connection::serve`] admits or refuses the connection on the socket.
fn upgrade(ws: WebSocketUpgrade, state: Arc<ServerState>, request: ConnectRequest) -> Response {
    let max = state.config.max_message_kb.saturating_mul(1024);
    // tungstenite's 128 KiB default buffers would cost every idle connection 128 KiB; reads and
    // writes simply loop over smaller chunks.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| connection::serve(socket, state, request))
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

async fn metrics_text(State(state): State<Arc<ServerState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&state),
    )
        .into_response()
}

async fn count_status(State(state): State<Arc<ServerState>>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    state.http_metrics.record(res.status().as_u16());
    res
}
