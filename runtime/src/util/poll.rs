//! Waiting for a condition with a deadline, never with a fixed sleep.

use std::time::{Duration, Instant};

/// How often a condition is checked again.
pub const INTERVAL: Duration = Duration::from_millis(20);

/// Checks `done` until it holds or `timeout` has passed (it is checked at
/// least once, and once more at the deadline). Returns whether it held.
pub fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(INTERVAL.min(deadline - now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_when_the_condition_holds_or_at_the_deadline() {
        let mut calls = 0;
        assert!(until(Duration::from_secs(5), || {
            calls += 1;
            calls == 3
        }));
        assert_eq!(calls, 3);
        let start = Instant::now();
        assert!(!until(Duration::from_millis(60), || false));
        assert!(start.elapsed() >= Duration::from_millis(60));
    }
}
