//! Cache channels' last event on this node (Pusher's cache channels): kept [`CACHE_TTL`] and
//! sent to each new subscriber right after `subscription_succeeded` (with none,
//! `pusher:cache_miss`). With Redis the cluster's copy lives there instead.

use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;

/// How long a cache channel's last event is kept (Pusher's: 30 minutes).
pub const CACHE_TTL: Duration = Duration::from_secs(30 * 60);

#[derive(Default)]
pub struct Cache {
    last: DashMap<Box<str>, (Instant, Utf8Bytes)>,
}

impl Cache {
    pub fn store(&self, channel: &str, frame: &Utf8Bytes) {
        self.last
            .insert(channel.into(), (Instant::now(), frame.clone()));
    }

    /// The channel's last event, if it is younger than [`CACHE_TTL`].
    pub fn get(&self, channel: &str) -> Option<Utf8Bytes> {
        let entry = self.last.get(channel)?;
        let (at, frame) = entry.value();
        (at.elapsed() <= CACHE_TTL).then(|| frame.clone())
    }

    /// Drops expired events (the server's sweep calls it).
    pub fn sweep(&self) {
        self.last.retain(|_, (at, _)| at.elapsed() <= CACHE_TTL);
    }

    pub fn len(&self) -> usize {
        self.last.len()
    }
}
