//! Waiting for a condition with a deadline, never with a fixed sleep.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// How often a condition is checked again, at most.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// The first wait: most conditions minirun waits for (a monitor's teardown,
/// a process's exit) hold within a few milliseconds, and a fixed 20 ms
/// round would be most of `rm -f`.
const FIRST: Duration = Duration::from_millis(1);

/// Checks `done` until it holds or `timeout` has passed (it is checked at
/// least once, and once more at the deadline), after 1 ms, then doubling
/// waits up to [`INTERVAL`]. Returns whether it held.
pub fn until(timeout: Duration, done: impl FnMut() -> bool) -> bool {
    until_or_ready(timeout, None, done)
}

/// [`until`], also checking again as soon as `watched` becomes readable (a
/// pidfd of the process whose end the condition waits for): its end is seen
/// at once, not at the next round. It wakes the wait once; later waits are
/// plain sleeps (a readable descriptor stays readable).
pub fn until_or_ready(timeout: Duration, watched: Option<BorrowedFd<'_>>, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    let mut wait = FIRST;
    let mut watched = watched;
    loop {
        if done() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let nap = wait.min(deadline - now);
        match watched {
            Some(fd) => {
                let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
                let ms = u16::try_from(nap.as_millis().max(1)).unwrap_or(u16::MAX);
                match poll(&mut fds, PollTimeout::from(ms)) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                    _ => watched = None,
                }
            }
            None => std::thread::sleep(nap),
        }
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
    fn a_ready_descriptor_wakes_the_wait_once_and_never_spins() {
        use std::io::Write as _;
        use std::os::fd::AsFd as _;
        let (rd, wr) = nix::unistd::pipe().unwrap();
        std::fs::File::from(wr).write_all(b"x").unwrap();
        // readable from the start and for good: the first wait ends at once,
        // the next ones sleep 2, 4, 8 and 16 ms as without it
        let mut calls = 0;
        let start = Instant::now();
        assert!(until_or_ready(Duration::from_secs(5), Some(rd.as_fd()), || {
            calls += 1;
            calls == 6
        }));
        assert!(start.elapsed() >= Duration::from_millis(30), "{:?}", start.elapsed());
        assert_eq!(calls, 6);
    }

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
