//! Waiting for a condition with a deadline, never with a fixed sleep.

use std::time::{Duration, Instant};

/// How often a condition is checked again, at most.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// The first wait: most conditions minirun waits for (a monitor's teardown,
/// a process's exit) hold within a few milliseconds, and a fixed 20 ms
/// round would be most of `rm -f`.
const FIRST: Duration = Duration::from_millis(1);

/// Checks `done` until it holds or `timeout` has passed (it is checked at
/// least once, and once more at the deadline), after 1 ms, then doubling
/// waits up to [`INTERVAL`]. Returns whether it held.
pub fn until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut wait = FIRST;
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep(wait.min(deadline - now));
        wait = next_wait(wait);
    }
}

fn next_wait(wait: Duration) -> Duration {
    (wait * 2).min(INTERVAL)
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
        // checked soon at first, then less often
        let waits: Vec<u128> = std::iter::successors(Some(FIRST), |w| Some(next_wait(*w)))
            .take(7)
            .map(|w| w.as_millis())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 20, 20]);
    }
}
