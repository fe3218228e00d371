//! Apps (tenants): each has its credentials, limits, channels, signed-in users and metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dashmap::DashMap;

use crate::channels::Channels;
use crate::config::AppConfig;
use crate::history::History;
use crate::metrics::AppMetrics;
use crate::outbound::{ConnHandle, KillReason};

pub struct App {
    pub config: AppConfig,
    pub channels: Channels,
    pub users: Users,
    pub history: History,
    pub metrics: AppMetrics,
    connections: AtomicUsize,
}

impl App {
    pub fn new(config: AppConfig) -> Self {
        Self {
            history: History::new(config.history_policy()),
            config,
            channels: Channels::default(),
            users: Users::default(),
            metrics: AppMetrics::default(),
            connections: AtomicUsize::new(0),
        }
    }

    /// Largest event payload in bytes.
    pub fn max_payload_bytes(&self) -> usize {
        self.config.max_event_payload_kb.saturating_mul(1024)
    }

    /// Takes one connection slot; `None` when the app is at its quota.
    pub fn acquire_connection(self: &Arc<Self>) -> Option<AppConnectionSlot> {
        let max = self.config.max_connections;
        let prev = self.connections.fetch_add(1, Ordering::AcqRel);
        if max != 0 && prev >= max {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(AppConnectionSlot(Arc::clone(self)))
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }
}

/// Holds one of an app's connection slots until dropped.
pub struct AppConnectionSlot(Arc<App>);

impl Drop for AppConnectionSlot {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Connections signed in (`pusher:signin`) per user id.
#[derive(Default)]
pub struct Users {
    map: DashMap<String, Vec<ConnHandle>>,
}

impl Users {
    pub fn add(&self, user_id: &str, conn: &ConnHandle) {
        let mut conns = self.map.entry(user_id.to_owned()).or_default();
        if !conns.iter().any(|c| c.same(conn)) {
            conns.push(conn.clone());
        }
    }

    pub fn remove(&self, user_id: &str, conn: &ConnHandle) {
        if let Some(mut conns) = self.map.get_mut(user_id) {
            conns.retain(|c| !c.same(conn));
        }
        self.map.remove_if(user_id, |_, conns| conns.is_empty());
    }

    /// Closes every connection signed in as `user_id` (4009); returns how many.
    pub fn terminate(&self, user_id: &str) -> usize {
        match self.map.get(user_id) {
            Some(conns) => {
                for c in conns.iter() {
                    c.kill(KillReason::Terminated);
                }
                conns.len()
            }
            None => 0,
        }
    }

    pub fn count(&self) -> usize {
        self.map.len()
    }
}

/// All configured apps, by id (HTTP API) and by key (WebSocket).
pub struct Apps {
    by_id: HashMap<String, Arc<App>>,
    by_key: HashMap<String, Arc<App>>,
}

impl Apps {
    pub fn new(configs: &[AppConfig]) -> Self {
        let mut by_id = HashMap::new();
        let mut by_key = HashMap::new();
        for c in configs {
            let app = Arc::new(App::new(c.clone()));
            by_id.insert(c.id.clone(), Arc::clone(&app));
            by_key.insert(c.key.clone(), app);
        }
        Self { by_id, by_key }
    }

    pub fn by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.by_id.get(id)
    }

    pub fn by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.by_key.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<App>> {
        self.by_id.values()
    }
}
