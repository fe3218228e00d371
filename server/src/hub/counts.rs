//! Channels whose subscription count changed and is not yet announced: changes within
//! [`COALESCE`] are announced once (`pusher_internal:subscription_count`, the
//! `subscription_count` webhook), by whichever adapter flushes them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a change waits for others before the count is announced.
pub const COALESCE: Duration = Duration::from_millis(100);

#[derive(Default)]
pub struct DirtyCounts {
    channels: parking_lot::Mutex<HashSet<Box<str>>>,
    scheduled: AtomicBool,
}

impl DirtyCounts {
    /// Marks `channel`; `true` when no flush is scheduled yet (the caller schedules one).
    pub fn mark(&self, channel: &str) -> bool {
        self.channels.lock().insert(channel.into());
        !self.scheduled.swap(true, Ordering::AcqRel)
    }

    /// The channels marked since the last flush (the next mark schedules a new one).
    pub fn take(&self) -> Vec<Box<str>> {
        self.scheduled.store(false, Ordering::Release);
        self.channels.lock().drain().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_coalesce_until_taken() {
        let d = DirtyCounts::default();
        assert!(d.mark("a"));
        assert!(!d.mark("a"));
        assert!(!d.mark("b"));
        let mut got = d.take();
        got.sort();
        assert_eq!(got, vec!["a".into(), "b".into()] as Vec<Box<str>>);
        assert!(d.mark("a"));
    }
}
