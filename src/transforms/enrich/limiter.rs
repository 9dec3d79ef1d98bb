//! The one rate limiter every API call goes through.
//!
//! InsightIQ counts requests in fixed one-second windows whose edges we cannot see, so a limiter that allows
//! `limit` per *our* second could still put `2 × limit` into one of *theirs* at a window edge. This one keeps
//! the start times of the last `limit` requests and admits a new one only when the oldest of them is at least
//! one window old: then **no interval of one window, wherever it starts, holds more than `limit` starts**. The
//! window is one second plus a small guard for the network's jitter between our send and their count.
//!
//! A 429 pauses every caller until its `Retry-After` has passed ([`RateLimiter::pause_until`]): the limit is
//! global, so one caller's 429 means everyone's.
//!
//! The core ([`Window`]) is a pure function of the times it is given, so it is tested with made-up clocks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// What the network may add between our decision to send and InsightIQ counting the request.
pub const GUARD: Duration = Duration::from_millis(50);

/// The sliding-log core: times are offsets from any fixed origin.
#[derive(Debug, Clone)]
pub struct Window {
    limit: usize,
    period: Duration,
    starts: VecDeque<Duration>,
    paused_until: Duration,
}

impl Window {
    /// At most `limit` starts in any interval of `period`.
    pub fn new(limit: usize, period: Duration) -> Self {
        Self {
            limit: limit.max(1),
            period,
            starts: VecDeque::with_capacity(limit.max(1)),
            paused_until: Duration::ZERO,
        }
    }

    /// Admits a start at `now`, or says how long to wait before asking again.
    ///
    /// # Errors
    /// The wait, when admitting now would break the limit or a pause is in force.
    pub fn try_acquire(&mut self, now: Duration) -> Result<(), Duration> {
        if now < self.paused_until {
            return Err(self.paused_until - now);
        }
        if self.starts.len() >= self.limit
            && let Some(oldest) = self.starts.front()
        {
            let age = now.saturating_sub(*oldest);
            if age < self.period {
                return Err(self.period - age);
            }
            self.starts.pop_front();
        }
        self.starts.push_back(now);
        Ok(())
    }

    /// No start before `until`.
    pub fn pause_until(&mut self, until: Duration) {
        self.paused_until = self.paused_until.max(until);
    }
}

/// The shared, async limiter.
#[derive(Debug)]
pub struct RateLimiter {
    origin: Instant,
    window: Mutex<Window>,
}

impl RateLimiter {
    /// At most `per_second` requests in any second (plus [`GUARD`]).
    pub fn new(per_second: u64) -> Self {
        let limit = usize::try_from(per_second).unwrap_or(usize::MAX);
        Self { origin: Instant::now(), window: Mutex::new(Window::new(limit, Duration::from_secs(1) + GUARD)) }
    }

    /// Waits until a request may start.
    pub async fn acquire(&self) {
        loop {
            let now = self.origin.elapsed();
            let verdict = match self.window.lock() {
                Ok(mut w) => w.try_acquire(now),
                // A poisoned lock only follows a panic elsewhere; waiting a full period is always safe.
                Err(_) => Err(Duration::from_secs(1) + GUARD),
            };
            match verdict {
                Ok(()) => return,
                Err(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Holds every request back for `wait` (a 429's `Retry-After`).
    pub fn pause_for(&self, wait: Duration) {
        let until = self.origin.elapsed() + wait;
        if let Ok(mut w) = self.window.lock() {
            w.pause_until(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Drives the window the way the async limiter does: ask at `t`, wait as told, ask again.
    fn admitted(w: &mut Window, asks: &[u64]) -> Vec<Duration> {
        let mut out = Vec::new();
        for &t in asks {
            let mut now = ms(t);
            loop {
                match w.try_acquire(now) {
                    Ok(()) => break,
                    Err(wait) => {
                        assert!(wait > Duration::ZERO, "a refusal always asks for a real wait");
                        now += wait;
                    }
                }
            }
            out.push(now);
        }
        out
    }

    fn max_in_any_window(starts: &[Duration], period: Duration) -> usize {
        let mut sorted = starts.to_vec();
        sorted.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..sorted.len() {
            while sorted[hi] - sorted[lo] >= period {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    #[test]
    fn a_burst_at_a_window_edge_is_spread_over_the_next_second() {
        let mut w = Window::new(10, ms(1000));
        // 10 at t=999ms, 10 more at t=1001ms: a fixed-window limiter would let all 20 through.
        let mut asks = vec![999; 10];
        asks.extend([1001; 10]);
        let starts = admitted(&mut w, &asks);
        assert_eq!(starts[9], ms(999));
        assert_eq!(starts[10], ms(1999), "the 11th waits until the 1st is a full second old");
        assert_eq!(max_in_any_window(&starts, ms(1000)), 10);
    }

    #[test]
    fn a_pause_holds_everyone_back() {
        let mut w = Window::new(10, ms(1000));
        w.pause_until(ms(5000));
        assert_eq!(w.try_acquire(ms(1000)), Err(ms(4000)));
        assert_eq!(w.try_acquire(ms(5000)), Ok(()));
        w.pause_until(ms(100)); // an older pause never shortens a longer one
        assert_eq!(w.try_acquire(ms(5001)), Ok(()));
    }

    proptest! {
        #[test]
        fn no_interval_of_one_period_ever_holds_more_than_the_limit(
            limit in 1usize..20,
            mut asks in proptest::collection::vec(0u64..5_000, 1..300),
        ) {
            asks.sort_unstable();
            let mut w = Window::new(limit, ms(1000));
            let starts = admitted(&mut w, &asks);
            prop_assert!(max_in_any_window(&starts, ms(1000)) <= limit);
            // And it is not stricter than it must be: with asks spread out, everyone starts when asking.
            for (ask, start) in asks.iter().zip(&starts) {
                prop_assert!(*start >= ms(*ask));
            }
        }
    }
}
