//! State shared by every connection and request: config, apps, the adapter, shutdown signal.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

use crate::adapter::Adapter;
use crate::app::Apps;
use crate::config::Config;
use crate::metrics::HttpMetrics;

pub struct ServerState {
    pub config: Config,
    pub apps: Arc<Apps>,
    pub adapter: Arc<dyn Adapter>,
    pub http_metrics: HttpMetrics,
    /// Becomes true when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    connections: AtomicUsize,
}

impl ServerState {
    pub fn new(
        config: Config,
        apps: Arc<Apps>,
        adapter: Arc<dyn Adapter>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            apps,
            config,
            adapter,
            http_metrics: HttpMetrics::default(),
            shutdown,
            connections: AtomicUsize::new(0),
        }
    }

    /// Takes a server-wide connection slot; `None` when over `max_connections`.
    pub fn acquire_connection(self: &Arc<Self>) -> Option<ServerConnectionSlot> {
        let max = self.config.max_connections;
        let prev = self.connections.fetch_add(1, Ordering::AcqRel);
        if max != 0 && prev >= max {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(ServerConnectionSlot(Arc::clone(self)))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// Counts one open WebSocket until dropped (graceful shutdown waits for the count to reach 0).
pub struct ServerConnectionSlot(Arc<ServerState>);

impl Drop for ServerConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}
