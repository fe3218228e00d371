//! Reconnect policy, free of JS: how long to wait before the next attempt, and what a close code
//! asks for. The engine supplies the clock and the random numbers.

/// Exponential backoff with full jitter over one outage.
pub struct Backoff {
    /// First step and largest step, ms.
    base: f64,
    cap: f64,
    /// Attempts since the last working connection.
    attempt: i32,
    /// When the current outage began (ms since the epoch).
    down_since: f64,
}

impl Backoff {
    pub fn new(base: f64, cap: f64) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
            down_since: 0.0,
        }
    }

    /// The next failure starts a new outage (a connection worked, or the app asked to connect).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Delay before the next attempt: steps grow by 1.6 from `base`, capped at `cap`, and a random
    /// delay below the step is taken (`random()` in [0, 1)), never sooner than `floor` ms. The step
    /// is also never longer than the outage has lasted so far: after a short outage the next
    /// attempt comes soon (fast recovery), while long outages back off fully. The first attempt of
    /// an outage may be immediate (`at_once`: 4200-4299 and a missed pong).
    pub fn next_delay(
        &mut self,
        now: f64,
        floor: f64,
        at_once: bool,
        random: impl FnOnce() -> f64,
    ) -> f64 {
        if self.attempt == 0 {
            self.down_since = now;
        }
        let delay = if at_once && self.attempt == 0 {
            floor
        } else {
            let step = (self.base * 1.6f64.powi(self.attempt))
                .min(self.cap)
                .min((now - self.down_since).max(self.base));
            (random() * step).max(floor)
        };
        self.attempt = self.attempt.saturating_add(1);
        delay
    }
}

/// What the engine does after the server closed the socket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CloseAction {
    /// Switch to wss:// (and `wssPort`) for good and go again at once.
    UseTls,
    /// Stop reconnecting.
    Stop,
    /// Reconnect after the backoff delay, never sooner than `floor` ms; `at_once`: the first
    /// attempt of the outage is immediate.
    Retry { floor: f64, at_once: bool },
}

impl CloseAction {
    /// By close code, as pusher-js reads Pusher's ranges; `on_tls`: the socket was wss:// already.
    pub fn of(code: u16, on_tls: bool) -> Self {
        match code {
            // SSL only: the one code of 4000-4099 that reconnects. Refused on wss:// too: back off
            // rather than loop.
            4000 if on_tls => CloseAction::Retry {
                floor: 1000.0,
                at_once: false,
            },
            4000 => CloseAction::UseTls,
            // Refused (app unknown or disabled, over quota, bad version, unauthorized).
            4001..=4099 => CloseAction::Stop,
            // Over capacity: at least a second.
            4100..=4199 => CloseAction::Retry {
                floor: 1000.0,
                at_once: false,
            },
            4200..=4299 => CloseAction::Retry {
                floor: 0.0,
                at_once: true,
            },
            _ => CloseAction::Retry {
                floor: 0.0,
                at_once: false,
            },
        }
    }
}

/// Pusher's own close codes (4000-4999) carry a reason the app is told about.
pub fn reports_error(code: u16) -> bool {
    code >= 4000
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOP: f64 = 0.999_999;

    #[test]
    fn steps_grow_by_1_6_up_to_the_cap_once_the_outage_is_long() {
        let mut b = Backoff::new(250.0, 10_000.0);
        // The outage began long ago (first call sets it), so only the steps and the cap bound it.
        b.next_delay(0.0, 0.0, false, || 0.0);
        let late = 1e9;
        let steps: Vec<f64> = (0..9)
            .map(|_| b.next_delay(late, 0.0, false, || TOP).round())
            .collect();
        assert_eq!(
            steps,
            [400.0, 640.0, 1024.0, 1638.0, 2621.0, 4194.0, 6711.0, 10_000.0, 10_000.0]
        );
    }

    #[test]
    fn the_step_is_never_longer_than_the_outage_so_far() {
        let mut b = Backoff::new(250.0, 10_000.0);
        let start = 1_000_000.0;
        assert_eq!(b.next_delay(start, 0.0, false, || TOP).round(), 250.0);
        for _ in 0..6 {
            b.next_delay(start + 10.0, 0.0, false, || TOP);
        }
        // Step 7 would be 6711 ms; the outage has lasted 3 s.
        assert_eq!(
            b.next_delay(start + 3000.0, 0.0, false, || TOP).round(),
            3000.0
        );
        // Shorter than `base`: `base` still.
        let mut b = Backoff::new(250.0, 10_000.0);
        b.next_delay(start, 0.0, false, || 0.0);
        assert_eq!(b.next_delay(start + 1.0, 0.0, false, || TOP).round(), 250.0);
    }

    #[test]
    fn jitter_scales_the_step_and_the_floor_wins() {
        let mut b = Backoff::new(250.0, 10_000.0);
        assert_eq!(b.next_delay(0.0, 0.0, false, || 0.5), 125.0);
        let mut b = Backoff::new(250.0, 10_000.0);
        assert_eq!(b.next_delay(0.0, 1000.0, false, || 0.5), 1000.0);
    }

    #[test]
    fn at_once_only_for_the_first_attempt_and_without_a_random_draw() {
        let mut b = Backoff::new(250.0, 10_000.0);
        let never = || -> f64 { panic!("no jitter for an immediate attempt") };
        assert_eq!(b.next_delay(0.0, 0.0, true, never), 0.0);
        assert_eq!(b.next_delay(1e9, 0.0, true, || 0.5), 200.0);
    }

    #[test]
    fn reset_starts_a_new_outage() {
        let mut b = Backoff::new(250.0, 10_000.0);
        for t in 0..5 {
            b.next_delay(t as f64 * 1e6, 0.0, false, || TOP);
        }
        b.reset();
        let now = 9e9;
        assert_eq!(b.next_delay(now, 0.0, true, || TOP), 0.0);
        // The outage began at `now`: the second step is bound by `base`, not by 1e9 ms of history.
        assert_eq!(b.next_delay(now + 1.0, 0.0, false, || TOP).round(), 250.0);
    }

    #[test]
    fn close_codes() {
        use CloseAction::*;
        let retry = |floor, at_once| Retry { floor, at_once };
        assert_eq!(CloseAction::of(4000, false), UseTls);
        assert_eq!(CloseAction::of(4000, true), retry(1000.0, false));
        for code in [4001, 4004, 4009, 4099] {
            assert_eq!(CloseAction::of(code, false), Stop);
        }
        assert_eq!(CloseAction::of(4100, false), retry(1000.0, false));
        assert_eq!(CloseAction::of(4199, true), retry(1000.0, false));
        assert_eq!(CloseAction::of(4200, false), retry(0.0, true));
        assert_eq!(CloseAction::of(4299, false), retry(0.0, true));
        for code in [1000, 1006, 3999, 4300, 4999] {
            assert_eq!(CloseAction::of(code, false), retry(0.0, false));
        }
        assert!(!reports_error(1006) && !reports_error(3999));
        assert!(reports_error(4000) && reports_error(4300));
    }
}
