//! The listener and router (the WebSocket side and the HTTP side side by side, neither knowing
//! the other), and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::Apps;
use crate::cluster::local::LocalAdapter;
use crate::cluster::redis::{RedisAdapter, RedisSettings, RedisSetupError};
use crate::cluster::Adapter;
use crate::config::{AdapterKind, Config};
use crate::state::ServerState;
use crate::tls::{Tls, TlsError};
use crate::{admin, http, listener, memory, ws};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen: {0}")]
    Bind(#[from] std::io::Error),
    #[error("cannot listen on the admin address {addr}: {source}")]
    AdminBind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Redis(#[from] RedisSetupError),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How often the certificate files' modification times are looked at (SIGHUP reloads at once).
const TLS_POLL: Duration = Duration::from_secs(5);

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    admin: TcpListener,
    tls: Option<Arc<Tls>>,
    state: Arc<ServerState>,
    shutdown: watch::Sender<bool>,
}

impl Server {
    /// Binds `config.host:config.port` (port 0 picks a free one) and starts the configured adapter.
    pub async fn bind(config: Config) -> Result<Self, StartError> {
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
            _ => None,
        };
        let listener = TcpListener::bind((config.host.as_str(), config.port)).await?;
        let admin = TcpListener::bind((config.admin_host.as_str(), config.admin_port))
            .await
            .map_err(|source| StartError::AdminBind {
                addr: format!("{}:{}", config.admin_host, config.admin_port),
                source,
            })?;
        let apps = Arc::new(Apps::new(&config.apps));
        let adapter: Arc<dyn Adapter> = match config.adapter {
            AdapterKind::Local => Arc::new(LocalAdapter),
            AdapterKind::Redis => Arc::new(RedisAdapter::start(
                RedisSettings {
                    url: config.redis_url.clone(),
                    sentinels: config.redis_sentinels.clone(),
                    sentinel_master: config.redis_sentinel_master.clone(),
                    cluster_nodes: config.redis_cluster_nodes.clone(),
                    prefix: config.redis_prefix.clone(),
                    node_timeout: Duration::from_secs(config.node_timeout),
                },
                Arc::clone(&apps),
            )?),
        };
        let (shutdown, rx) = watch::channel(false);
        Ok(Self {
            listener,
            admin,
            tls,
            state: Arc::new(ServerState::new(config, apps, adapter, rx)),
            shutdown,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The admin listener's address (`/metrics`).
    pub fn admin_addr(&self) -> std::io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// Serves until `signal` resolves, then stops accepting, tells every client to reconnect
    /// elsewhere (4200) and waits up to `shutdown_timeout` for connections to close.
    pub async fn run(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Self {
            listener,
            admin,
            tls,
            state,
            shutdown,
        } = self;
        if let Some(tls) = &tls {
            tokio::spawn(reload_tls(Arc::clone(tls), state.shutdown.clone()));
        }
        let app = router(Arc::clone(&state));
        tokio::spawn(sweep(Arc::clone(&state)));
        tokio::spawn(reload_apps(Arc::clone(&state)));
        tokio::spawn(sample_memory(Arc::clone(&state)));
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutting down: closing connections with 4200");
            let _ = shutdown.send(true);
        });
        let limits = listener::Limits {
            handshake_timeout: Duration::from_secs(state.config.handshake_timeout),
            max_pending: state.config.max_pending_connections,
            tls,
        };
        let admin_limits = listener::Limits {
            handshake_timeout: limits.handshake_timeout,
            max_pending: 64,
            tls: None,
        };
        let admin_app = admin::router(Arc::clone(&state));
        tokio::join!(
            listener::serve(listener, app, limits, state.shutdown.clone()),
            listener::serve(admin, admin_app, admin_limits, state.shutdown.clone()),
        );
        let grace = Duration::from_secs(state.config.shutdown_timeout);
        let deadline = tokio::time::Instant::now() + grace;
        if tokio::time::timeout(grace, state.connections.idle())
            .await
            .is_err()
        {
            tracing::warn!(
                connections = state.connections.count(),
                "shutdown timeout reached with connections still open"
            );
        }
        // The goodbyes' webhooks (vacated channels, members removed) get what is left of the
        // grace period, and at least a second.
        let deadline = deadline.max(tokio::time::Instant::now() + Duration::from_secs(1));
        for app in state.apps.iter() {
            app.webhooks().drained(deadline).await;
        }
        Ok(())
    }
}

/// Drops idle history streams and forgotten client addresses now and then, so memory follows
/// the channels and addresses in use; ends when the server shuts down.
async fn sweep(state: Arc<ServerState>) {
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            _ = shutdown.changed() => return,
        }
        for app in state.apps.iter() {
            app.history.sweep();
            app.cache.sweep();
        }
        state.addresses.sweep();
    }
}

/// Reloads the certificate on SIGHUP and when its files change; a pair that does not load is
/// logged and the running one kept. Ends when the server shuts down.
async fn reload_tls(tls: Arc<Tls>, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let sighup = async {
            match hangup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let sighup = std::future::pending::<Option<()>>();
        let force = tokio::select! {
            _ = sighup => true,
            _ = tokio::time::sleep(TLS_POLL) => false,
            _ = shutdown.changed() => return,
        };
        match tls.reload(force) {
            Ok(true) => tracing::info!("TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "TLS certificate not reloaded; keeping the running one")
            }
        }
    }
}

/// Reads the config file's apps again on SIGHUP: added ones start, changed ones take their new
/// settings, removed or disabled ones are closed (4003); a file that does not load changes
/// nothing. Ends when the server shuts down.
async fn reload_apps(state: Arc<ServerState>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangup) = signal(SignalKind::hangup()) else {
            return;
        };
        let mut shutdown = state.shutdown.clone();
        loop {
            tokio::select! {
                _ = hangup.recv() => {}
                _ = shutdown.changed() => return,
            }
            match state.config.reload_apps() {
                Ok(Some(apps)) => {
                    let done = state.apps.reload(&apps);
                    tracing::info!(
                        added = ?done.added,
                        removed = ?done.removed,
                        changed = ?done.changed,
                        unchanged = done.unchanged,
                        "apps reloaded"
                    );
                }
                Ok(None) => tracing::info!(
                    "SIGHUP: no [[apps]] in a config file; the apps stay as they are"
                ),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: config not reloaded; keeping the running apps")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// Reads the resident size for memory-pressure admission; ends when the server shuts down.
async fn sample_memory(state: Arc<ServerState>) {
    if state.memory.limit().is_none() {
        return;
    }
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(memory::SAMPLE_EVERY) => state.memory.sample(),
            _ = shutdown.changed() => return,
        }
    }
}

fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .merge(ws::routes())
        .merge(http::routes(&state))
        .fallback(ws::not_found)
        .method_not_allowed_fallback(http::method_not_allowed)
        .with_state(state)
}
