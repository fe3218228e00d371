//! Whether this node's link to Redis works: the pub/sub subscription and the last command.
//! Every Redis call reports here; `/up` reads it. The heartbeat also leaves what it saw: its
//! round trip and the nodes alive, for `/metrics` and the dashboard.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::cluster::adapter::Health;

pub struct LinkHealth {
    subscribed: AtomicBool,
    commands_ok: AtomicBool,
    /// The current outage (the first one: before Redis was ever reached) has been logged.
    outage_logged: AtomicBool,
    last_error: Mutex<String>,
    round_trip_us: AtomicU64,
    nodes: Mutex<Vec<String>>,
    /// Pub/sub messages received (events of the channels served here, and the bus's).
    received: AtomicU64,
}

impl LinkHealth {
    pub fn new() -> Self {
        Self {
            subscribed: AtomicBool::new(false),
            commands_ok: AtomicBool::new(false),
            outage_logged: AtomicBool::new(false),
            last_error: Mutex::new("connecting to Redis".into()),
            round_trip_us: AtomicU64::new(0),
            nodes: Mutex::new(Vec::new()),
            received: AtomicU64::new(0),
        }
    }

    /// What a heartbeat saw: how long it took and which nodes are alive.
    pub fn heartbeat(&self, took: Duration, mut nodes: Vec<String>) {
        self.round_trip_us
            .store((took.as_micros() as u64).max(1), Ordering::Relaxed);
        nodes.sort();
        *self.nodes.lock() = nodes;
    }

    pub fn message_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    pub fn messages_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// The last heartbeat's round trip.
    pub fn round_trip(&self) -> Duration {
        Duration::from_micros(self.round_trip_us.load(Ordering::Relaxed))
    }

    /// The nodes alive at the last heartbeat.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes.lock().clone()
    }

    /// Records a failure; logged as an error once per outage (a node that never reached Redis,
    /// say with a wrong password, included), then at debug level.
    pub fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        self.commands_ok.store(false, Ordering::Release);
        let msg = format!("{what}: {e}");
        if !self.outage_logged.swap(true, Ordering::AcqRel) {
            tracing::error!(error = %msg, "redis unavailable: serving local subscribers only");
        } else {
            tracing::debug!(error = %msg, "redis still unavailable");
        }
        *self.last_error.lock() = msg;
    }

    pub fn succeeded(&self) {
        self.outage_logged.store(false, Ordering::Release);
        if !self.commands_ok.swap(true, Ordering::AcqRel) {
            tracing::info!("redis commands working");
        }
    }

    pub fn commands_ok(&self) -> bool {
        self.commands_ok.load(Ordering::Acquire)
    }

    pub fn set_subscribed(&self, subscribed: bool) {
        self.subscribed.store(subscribed, Ordering::Release);
    }

    /// Ok once subscribed, commands work and a heartbeat has put this node on the list (a node
    /// unlisted when it dies would never be reaped).
    pub fn health(&self) -> Health {
        let listed = self.round_trip_us.load(Ordering::Relaxed) > 0;
        if self.subscribed.load(Ordering::Acquire) && self.commands_ok() && listed {
            Health::Ok
        } else {
            Health::Degraded(self.last_error.lock().clone())
        }
    }
}
