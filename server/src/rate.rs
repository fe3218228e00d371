//! A token bucket: a connection's client events and recoveries, an app's HTTP API requests, an
//! address's connects.

use tokio::time::Instant;

/// Token bucket: `rate` per second, bursts up to `burst`; a rate of 0 allows everything.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// Bursts up to one second's worth.
    pub fn new(rate: u32) -> Self {
        Self::with_burst(rate, rate)
    }

    /// `count` a minute, bursts up to a whole minute's worth.
    pub fn per_minute(count: u32) -> Self {
        Self {
            rate: f64::from(count) / 60.0,
            ..Self::with_burst(0, count)
        }
    }

    pub fn with_burst(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: Instant::now(),
        }
    }

    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    /// Whole seconds until the next token (at least 1): the `Retry-After` of a refusal.
    pub fn retry_after_secs(&self) -> u64 {
        if self.rate <= 0.0 || self.tokens >= 1.0 {
            return 1;
        }
        ((1.0 - self.tokens) / self.rate).ceil().max(1.0) as u64
    }

    /// Whether the bucket has been refilled completely by `now` (an unused limiter forgets nothing
    /// by being dropped then).
    pub fn is_full_at(&self, now: Instant) -> bool {
        self.rate <= 0.0
            || self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate >= self.burst
    }

    pub fn allow_at(&mut self, now: Instant) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_rate_then_refills() {
        let mut l = RateLimiter::new(3);
        let t0 = l.last;
        assert!((0..3).all(|_| l.allow_at(t0)));
        assert!(!l.allow_at(t0));
        let later = t0 + std::time::Duration::from_millis(340);
        assert!(l.allow_at(later));
        assert!(!l.allow_at(later));
        let mut bursty = RateLimiter::with_burst(1, 5);
        assert!((0..5).all(|_| bursty.allow_at(t0)));
        assert!(!bursty.allow_at(t0));
        let mut unlimited = RateLimiter::new(0);
        assert!((0..1000).all(|_| unlimited.allow_at(t0)));
    }

    #[test]
    fn retry_after_and_refill() {
        let mut l = RateLimiter::with_burst(1, 2);
        let t0 = l.last;
        assert!(l.allow_at(t0) && l.allow_at(t0));
        assert!(!l.is_full_at(t0));
        assert_eq!(l.retry_after_secs(), 1);
        assert!(l.is_full_at(t0 + std::time::Duration::from_secs(2)));
        let mut slow = RateLimiter::with_burst(1, 1);
        assert!(slow.allow_at(t0));
        slow.rate = 0.25;
        assert_eq!(slow.retry_after_secs(), 4);
    }
}
