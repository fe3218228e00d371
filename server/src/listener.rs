//! The accept loop. Until a connection has sent a complete request head (the WebSocket upgrade,
//! or an HTTP API request) it holds one of `max_pending_connections` permits; it has
//! `handshake_timeout` to send its first byte and as long again for the whole head, and a
//! keep-alive HTTP connection gets `handshake_timeout` between requests. So silent, half-sent or dribbled connections cost a bounded number of descriptors
//! for a bounded time, and cannot lock out the port. After an upgrade the WebSocket session's own
//! timers take over (its permit is released: the hyper connection has handed the socket over).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::tls::Tls;

/// Bounds on connections that are not yet WebSockets, and TLS if the port speaks it.
pub struct Limits {
    pub handshake_timeout: Duration,
    pub max_pending: usize,
    /// The TLS handshake is part of the handshake phase (same timeout, same permit).
    pub tls: Option<Arc<Tls>>,
}

/// Serves `router` until `shutdown` becomes true, then stops accepting, asks every HTTP
/// connection to finish its request and close, and returns once they have (upgraded WebSockets
/// are not waited for here: they close themselves on the same signal).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_pending.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.handshake_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    // Every connection task holds a sender; `recv` sees the channel close once all are done.
    let (done, mut all_done) = mpsc::channel::<()>(1);
    // Accept errors are logged once until an accept works again (out of descriptors repeats).
    let mut failing = false;
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => p,
            _ = stopping(&mut shutdown) => break,
        };
        let Ok(permit) = permit else { break };
        let tcp = tokio::select! {
            r = listener.accept() => r,
            _ = stopping(&mut shutdown) => break,
        };
        let (tcp, peer) = match tcp {
            Ok((tcp, peer)) => {
                failing = false;
                (tcp, peer)
            }
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::error!(error = %e, "accept failed (retrying every 100 ms)");
                }
                // Out of descriptors: the pending connection stays in the backlog; do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // No Nagle: a small frame or API reply must not wait for the peer's delayed ACK (up to
        // 40 ms on Linux); writers already batch queued frames into one flush.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        // Handlers read the peer as axum's `ConnectInfo` (the per-address limits start from it).
        let service = TowerToHyperService::new(
            tower::ServiceBuilder::new()
                .map_request(move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    req
                })
                .service(router.clone()),
        );
        let http = Arc::clone(&http);
        let mut shutdown = shutdown.clone();
        let done = done.clone();
        let first_byte = limits.handshake_timeout;
        let tls = limits.tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let _permit = permit;
            let _done = done;
            // A silent connection costs its socket only: hyper's buffers (16 KiB) are taken once
            // its first byte is in.
            let mut probe = [0u8; 1];
            let spoke = tokio::select! {
                r = tokio::time::timeout(first_byte, tcp.peek(&mut probe)) => matches!(r, Ok(Ok(n)) if n > 0),
                _ = stopping(&mut shutdown) => false,
            };
            if !spoke {
                return;
            }
            let Some(acceptor) = tls else {
                return serve_http(&http, tcp, service, &mut shutdown).await;
            };
            let handshake = tokio::select! {
                r = tokio::time::timeout(first_byte, acceptor.accept(tcp)) => r,
                _ = stopping(&mut shutdown) => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve_http(&http, stream, service, &mut shutdown).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    drop(done);
    let _ = all_done.recv().await;
}

/// Serves HTTP/1.1 (and WebSocket upgrades) on one connection until it ends or shutdown asks it
/// to finish its request.
async fn serve_http<I, S>(
    http: &http1::Builder,
    io: I,
    service: S,
    shutdown: &mut watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send + 'static,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = http
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "http connection ended");
            }
        }
        _ = stopping(shutdown) => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Resolves once shutdown has begun (at once if it already has).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`: dropped here, not held across the caller's awaits.
    let _ = shutdown.wait_for(|s| *s).await;
}

/// An accept error that concerns one connection only (the peer left before it was accepted).
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
