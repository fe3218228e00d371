//! The tap behind the dashboard's debug console: a copy of each broadcast an app delivers on this
//! node, for whoever watches. Nobody watching costs one relaxed load per broadcast; a watcher that
//! falls behind loses the oldest copies (it is told how many), never slows the fan-out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::broadcast;

/// Copies a watcher may be behind before it loses the oldest.
const BACKLOG: usize = 256;

/// One delivered event, as the console shows it.
#[derive(Clone)]
pub struct Tapped {
    pub channel: Arc<str>,
    pub frame: Utf8Bytes,
    pub delivered: usize,
    pub at_ms: u64,
}

pub struct Tap {
    watchers: Arc<AtomicUsize>,
    tx: broadcast::Sender<Tapped>,
}

impl Default for Tap {
    fn default() -> Self {
        Self {
            watchers: Arc::new(AtomicUsize::new(0)),
            tx: broadcast::channel(BACKLOG).0,
        }
    }
}

/// A watcher's end; counted while it lives.
pub struct Watch {
    pub rx: broadcast::Receiver<Tapped>,
    watchers: Arc<AtomicUsize>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Tap {
    pub fn watching(&self) -> bool {
        self.watchers.load(Ordering::Relaxed) > 0
    }

    pub fn send(&self, channel: &str, frame: &Utf8Bytes, delivered: usize) {
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let _ = self.tx.send(Tapped {
            channel: channel.into(),
            frame: frame.clone(),
            delivered,
            at_ms,
        });
    }

    pub fn watch(&self) -> Watch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        Watch {
            rx: self.tx.subscribe(),
            watchers: Arc::clone(&self.watchers),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_reach_watchers_only_while_they_watch() {
        let tap = Tap::default();
        assert!(!tap.watching());
        let mut w = tap.watch();
        assert!(tap.watching());
        tap.send("c", &Utf8Bytes::from_static("{}"), 2);
        let got = w.rx.try_recv().unwrap();
        assert_eq!((&*got.channel, got.delivered), ("c", 2));
        drop(w);
        assert!(!tap.watching());
    }
}
