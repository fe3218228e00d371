//! Whether this node's link to Redis works: the pub/sub subscription and the last command.
//! Every Redis call reports here; `/up` reads it.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::cluster::adapter::Health;

pub struct LinkHealth {
    subscribed: AtomicBool,
    commands_ok: AtomicBool,
    last_error: Mutex<String>,
}

impl LinkHealth {
    pub fn new() -> Self {
        Self {
            subscribed: AtomicBool::new(false),
            commands_ok: AtomicBool::new(false),
            last_error: Mutex::new("connecting to Redis".into()),
        }
    }

    /// Records a failure; logged as an error once per outage, then at debug level.
    pub fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        let was_ok = self.commands_ok.swap(false, Ordering::AcqRel);
        let msg = format!("{what}: {e}");
        if was_ok {
            tracing::error!(error = %msg, "redis unavailable: serving local subscribers only");
        } else {
            tracing::debug!(error = %msg, "redis still unavailable");
        }
        *self.last_error.lock() = msg;
    }

    pub fn succeeded(&self) {
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

    pub fn health(&self) -> Health {
        if self.subscribed.load(Ordering::Acquire) && self.commands_ok() {
            Health::Ok
        } else {
            Health::Degraded(self.last_error.lock().clone())
        }
    }
}
