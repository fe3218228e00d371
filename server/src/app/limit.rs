//! [`ConnectionLimit`]: open connections counted against a maximum that a reload may change.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// Counts open connections against a maximum (0 = unlimited): one per server and one per app.
pub struct ConnectionLimit {
    max: AtomicUsize,
    state: Arc<LimitState>,
}

struct LimitState {
    count: AtomicUsize,
    /// Woken when the count drops to 0 (graceful shutdown waits for it).
    idle: Notify,
}

/// One connection counted until dropped.
pub struct ConnectionPermit(Arc<LimitState>);

impl ConnectionLimit {
    pub fn new(max: usize) -> Self {
        Self {
            max: AtomicUsize::new(max),
            state: Arc::new(LimitState {
                count: AtomicUsize::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Counts one more connection; `None` when at the maximum.
    pub fn try_acquire(&self) -> Option<ConnectionPermit> {
        let prev = self.state.count.fetch_add(1, Ordering::AcqRel);
        let max = self.max.load(Ordering::Relaxed);
        if max != 0 && prev >= max {
            self.state.release();
            return None;
        }
        Some(ConnectionPermit(Arc::clone(&self.state)))
    }

    /// A new maximum for connections from now on (those open stay).
    pub fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::Acquire)
    }

    /// Resolves once no connection is counted.
    pub async fn idle(&self) {
        loop {
            // Registered before the check, so a release in between is not missed.
            let notified = self.state.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl LimitState {
    fn release(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_limit_refuses_past_its_maximum_and_reports_idle() {
        let limit = ConnectionLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!(limit.count(), 2);
        drop(a);
        let c = limit.try_acquire().unwrap();
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), limit.idle());
        assert!(waiting.await.is_err());
        drop((b, c));
        limit.idle().await;
        assert!(ConnectionLimit::new(0).try_acquire().is_some());
    }
}
