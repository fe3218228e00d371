//! State shared by every connection and request: config, apps, the adapter, the server-wide
//! connection limits and the shutdown signal.

use std::sync::Arc;

use tokio::sync::watch;

use crate::addresses::AddressLimits;
use crate::app::{Apps, ConnectionLimit};
use crate::cluster::Adapter;
use crate::config::Config;
use crate::memory::MemoryGuard;
use crate::metrics::{ConnectionMetrics, HttpMetrics};

pub struct ServerState {
    pub config: Config,
    pub apps: Arc<Apps>,
    pub adapter: Arc<dyn Adapter>,
    pub http_metrics: HttpMetrics,
    pub connection_metrics: ConnectionMetrics,
    /// Open WebSockets on this server (`max_connections`); graceful shutdown waits for none.
    pub connections: ConnectionLimit,
    /// Connections and connects per client address.
    pub addresses: Arc<AddressLimits>,
    /// Resident memory against `max_memory_mb`: over it, new connections are refused.
    pub memory: MemoryGuard,
    /// Becomes true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
}

impl ServerState {
    pub fn new(
        config: Config,
        apps: Arc<Apps>,
        adapter: Arc<dyn Adapter>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            connections: ConnectionLimit::new(config.max_connections),
            addresses: Arc::new(AddressLimits::new(&config)),
            memory: MemoryGuard::new(config.max_memory_mb),
            apps,
            config,
            adapter,
            http_metrics: HttpMetrics::default(),
            connection_metrics: ConnectionMetrics::default(),
            shutdown,
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}
