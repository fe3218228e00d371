//! Memory-pressure admission: the process's resident memory, sampled twice a second, against a
//! limit (`max_memory_mb`, or 90% of the cgroup's `memory.max` when unset). Over it, new
//! WebSockets are refused with 4100 and `/ready` answers 503, so a load balancer sends traffic
//! elsewhere before the kernel's OOM killer ends every connection at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the resident size is read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(500);

pub struct MemoryGuard {
    /// Bytes; `None`: no limit.
    limit: Option<u64>,
    rss: AtomicU64,
    refused: AtomicU64,
}

impl MemoryGuard {
    /// `max_mb` 0: 90% of the cgroup's limit if it has one, else no limit.
    pub fn new(max_mb: u64) -> Self {
        let limit = match max_mb {
            0 => cgroup_limit().map(|b| b / 10 * 9),
            mb => Some(mb.saturating_mul(1024 * 1024)),
        };
        let guard = Self {
            limit,
            rss: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        };
        guard.sample();
        guard
    }

    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Reads the resident size now.
    pub fn sample(&self) {
        let Some(rss) = resident_bytes() else { return };
        let was_over = self.is_over();
        self.rss.store(rss, Ordering::Relaxed);
        let over = self.is_over();
        if was_over != over {
            if over {
                tracing::warn!(rss, limit = ?self.limit, "memory over the limit: refusing new connections");
            } else {
                tracing::info!(rss, "memory under the limit again: accepting connections");
            }
        }
    }

    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    pub fn is_over(&self) -> bool {
        self.limit.is_some_and(|limit| self.rss() > limit)
    }

    /// Counts a connection refused for memory.
    pub fn refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refusals(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The cgroup v2 memory limit of this process, if it has one.
fn cgroup_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_below_the_resident_size_is_over_it() {
        let tight = MemoryGuard::new(1);
        assert!(tight.rss() > 1024 * 1024, "rss {}", tight.rss());
        assert!(tight.is_over());
        let loose = MemoryGuard::new(1 << 30);
        assert!(!loose.is_over());
    }
}
