//! The WebSocket side: the upgrade at `/app/{key}` (and the 4005 answer on any other path),
//! admission, and one connection's two halves.
//!
//! Reading and writing are split: the [`session`] reads and applies client messages; the sink
//! sits behind the connection's queue ([`crate::hub::outbound`]), written by a publisher's cork
//! or by the connection's [`writer`] task when the socket is full, so a broadcast never waits on
//! this client's socket.
//!
//! - [`message`]: a client frame parsed once into a [`message::ClientMessage`];
//! - [`session`]: the read loop, timers and applying each message;
//! - [`auth`]: subscription and sign-in signatures;
//! - [`writer`]: the writer task and the goodbye.

mod auth;
mod message;

#[cfg(feature = "fuzzing")]
pub use message::ClientMessage;
mod session;
mod writer;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocket;
use axum::extract::{ConnectInfo, Path, Query, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use futures_util::StreamExt;

use crate::addresses::{AddressPermit, AddressRefusal};
use crate::app::{App, ConnectionPermit};
use crate::error::{quoted, ApiError, ConnectionError};
use crate::hub::outbound::{ConnHandle, QueueLimit};
use crate::state::ServerState;
use session::Session;
use writer::{write_loop, CLOSE_GRACE};

/// Clients send small frames (subscribe, ping, whispers): 1 KiB reads keep an idle connection
/// small (tungstenite allocates and zero-fills the whole read buffer); a larger message grows it.
const READ_BUFFER: usize = 1024;
const WRITE_BUFFER: usize = 8 * 1024;

/// `/app/{key}`.
pub fn routes() -> Router<Arc<ServerState>> {
    Router::new().route("/app/{key}", get(websocket))
}

/// What the upgrade request said, checked once the socket is open (errors are sent on it).
struct ConnectRequest {
    key: String,
    protocol: Option<String>,
    origin: Option<String>,
    /// The path, when the upgrade came on another than `/app/{key}`: refused with 4005.
    wrong_path: Option<String>,
    /// The client's address (through trusted proxies), for the per-address limits.
    address: Option<IpAddr>,
}

async fn websocket(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(state): State<Arc<ServerState>>,
    key: Result<Path<String>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Path(key) = key?;
    let address = peer.map(|Extension(ConnectInfo(peer))| {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        state.addresses.client_address(peer.ip(), forwarded)
    });
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
        address,
    };
    Ok(upgrade(ws, state, request))
}

/// An unknown path: a WebSocket upgrade is accepted only to tell the client 4005 (a Pusher client
/// then stops retrying instead of failing the handshake forever); anything else is a JSON 404.
pub async fn not_found(
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
        address: None,
    };
    upgrade(ws, state, request)
}

/// Accepts the upgrade; [`serve`] admits or refuses the connection on the socket.
fn upgrade(ws: WebSocketUpgrade, state: Arc<ServerState>, request: ConnectRequest) -> Response {
    let max = state.config.max_message_kb.saturating_mul(1024);
    // tungstenite's 128 KiB default buffers would cost every idle connection 128 KiB; reads and
    // writes simply loop over smaller chunks.
    ws.max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .on_upgrade(move |socket| serve(socket, state, request))
}

/// Serves one WebSocket until it closes.
async fn serve(socket: WebSocket, state: Arc<ServerState>, request: ConnectRequest) {
    let (sink, stream) = socket.split();
    let limit = QueueLimit {
        frames: state.config.outbound_queue,
        bytes: state.config.outbound_queue_kb.saturating_mul(1024),
    };
    let conn = ConnHandle::new(new_socket_id(), limit, Some(Box::pin(sink)));
    let write_timeout = Duration::from_secs(state.config.write_timeout);
    let mut writer = tokio::spawn(write_loop(conn.clone(), write_timeout));

    // The permits are held until the writer is done, so graceful shutdown waits for the goodbyes.
    let (end, _permits) = match admit(&state, &request) {
        Err(e) => (Some(e), None),
        Ok((app, permits)) => {
            state
                .connection_metrics
                .opened
                .fetch_add(1, Ordering::Relaxed);
            app.metrics
                .connections_opened
                .fetch_add(1, Ordering::Relaxed);
            let mut session = Session::new(Arc::clone(&state), app, conn.clone());
            let end = session.run(stream).await;
            session.cleanup().await;
            (end, Some(permits))
        }
    };
    if let Some(err) = &end {
        tracing::debug!(socket_id = conn.socket_id(), error = %err, "closing connection");
    }
    state
        .connection_metrics
        .closed(end.as_ref().map(ConnectionError::close_code));
    conn.finish(end);
    drop(conn);
    // The writer bounds its own goodbye; this also bounds a write it was in the middle of.
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// The server's and the app's connection permits, and the address's.
type Permits = (ConnectionPermit, ConnectionPermit, Option<AddressPermit>);

fn admit(
    state: &ServerState,
    req: &ConnectRequest,
) -> Result<(Arc<App>, Permits), ConnectionError> {
    if state.is_shutting_down() {
        return Err(ConnectionError::ShuttingDown);
    }
    if let Some(path) = &req.wrong_path {
        return Err(ConnectionError::PathNotFound(quoted(path)));
    }
    let app = state
        .apps
        .by_key(&req.key)
        .ok_or_else(|| ConnectionError::AppNotFound(quoted(&req.key)))?;
    if !app.config().enabled {
        return Err(ConnectionError::AppDisabled);
    }
    let protocol = req
        .protocol
        .as_deref()
        .ok_or(ConnectionError::NoProtocolVersion)?;
    let version: u32 = protocol
        .parse()
        .map_err(|_| ConnectionError::InvalidVersionString(quoted(protocol)))?;
    if !(u32::from(chorus_protocol::MIN_PROTOCOL_VERSION)
        ..=u32::from(chorus_protocol::PROTOCOL_VERSION))
        .contains(&version)
    {
        return Err(ConnectionError::UnsupportedProtocolVersion(version));
    }
    if !app.config().origin_allowed(req.origin.as_deref()) {
        return Err(ConnectionError::OriginNotAllowed);
    }
    let address = match req.address {
        Some(ip) => state.addresses.admit(ip).map_err(|r| match r {
            AddressRefusal::TooManyConnections(n) => ConnectionError::TooManyFromAddress(n),
            AddressRefusal::TooManyConnects(n) => ConnectionError::ConnectingTooOften(n),
        })?,
        None => None,
    };
    if state.memory.is_over() {
        state.memory.refused();
        return Err(ConnectionError::OverCapacity);
    }
    let server = state
        .connections
        .try_acquire()
        .ok_or(ConnectionError::OverCapacity)?;
    let app_permit = app
        .connections
        .try_acquire()
        .ok_or(ConnectionError::OverConnectionQuota)?;
    Ok((app, (server, app_permit, address)))
}

fn new_socket_id() -> String {
    format!("{}.{}", rand::random::<u32>(), rand::random::<u32>())
}
