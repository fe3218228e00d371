//! Cache channels' last event on this node (Pusher's cache channels): kept [`CACHE_TTL`] and
//! sent to each new subscriber right after `subscription_succeeded` (with none,
//! `pusher:cache_miss`). With Redis the cluster's copy lives there instead. At most
//! `max_channels` channels are kept (expired ones are swept).

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
    /// Keeps `frame` as `channel`'s last event; a new channel beyond `max` (0 = unlimited) is
    /// not kept (returns `false`), so churning channel names cannot grow it without bound.
    pub fn store(&self, channel: &str, frame: &Utf8Bytes, max: usize) -> bool {
        if max != 0 && self.last.len() >= max && !self.last.contains_key(channel) {
            return false;
        }
        self.last
            .insert(channel.into(), (Instant::now(), frame.clone()));
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_keeps_the_last_event_within_its_bound() {
        let c = Cache::default();
        assert!(c.store("cache-a", &Utf8Bytes::from_static("1"), 2));
        assert!(c.store("cache-a", &Utf8Bytes::from_static("2"), 2));
        assert!(c.store("cache-b", &Utf8Bytes::from_static("3"), 2));
        assert!(!c.store("cache-c", &Utf8Bytes::from_static("4"), 2));
        assert!(c.store("cache-a", &Utf8Bytes::from_static("5"), 2));
        assert_eq!(c.get("cache-a").as_deref(), Some("5"));
        assert!(c.get("cache-c").is_none());
        assert_eq!(c.len(), 2);
    }
}
