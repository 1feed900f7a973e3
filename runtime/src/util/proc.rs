//! Processes as /proc shows them (through the `procfs` crate).

use procfs::process::Process;
use serde::{Deserialize, Serialize};

/// A process by pid and start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessIdentity {
    pub fn current() -> Option<Self> {
        Self::of(std::process::id() as i32)
    }

    pub fn of(pid: i32) -> Option<Self> {
        let stat = Process::new(pid).ok()?.stat().ok()?;
        Some(Self {
            pid,
            start_time: stat.starttime,
        })
    }

    /// Whether this very process still runs (a zombie does not count).
    pub fn is_running(&self) -> bool {
        match Process::new(self.pid).and_then(|p| p.stat()) {
            Ok(stat) => !is_dead_state(stat.state) && stat.starttime == self.start_time,
            Err(_) => false,
        }
    }
}

/// Whether `pid` exists and is no zombie.
pub fn is_running(pid: i32) -> bool {
    Process::new(pid)
        .and_then(|p| p.stat())
        .is_ok_and(|s| !is_dead_state(s.state))
}

fn is_dead_state(state: char) -> bool {
    matches!(state, 'Z' | 'X' | 'x')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_this_process_and_not_a_finished_one() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_running());
        assert!(is_running(me.pid));
        assert!(!ProcessIdentity {
            start_time: me.start_time + 1,
            ..me
        }
        .is_running());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(!is_running(pid));
    }
}
