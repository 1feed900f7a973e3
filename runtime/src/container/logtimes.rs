//! When a detached container's output arrived: its monitor watches the log
//! grow (inotify: an idle container costs no wake-up) and appends
//! `OFFSET NANOS` lines to `container.log.times` (the bytes from OFFSET on
//! arrived at NANOS; at most one line per 20 ms while output flows), for
//! `logs -t`, `--since` and `--until`. The log itself stays the container's
//! own stdout/stderr file, written without the monitor in between.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

pub const SUFFIX: &str = ".times";

/// How often at most a line is added while output flows.
const GRAIN: Duration = Duration::from_millis(20);
/// How often the log is looked at when no inotify instance is to be had.
const POLL_WITHOUT_INOTIFY: Duration = Duration::from_secs(1);

/// A running watcher; stopped (after one last look) when dropped.
pub struct Watcher {
    /// closed on drop: wakes the thread for its last look
    wake: Option<OwnedFd>,
    /// disconnected once the thread has taken its last look (or gave up)
    looked: Option<std::sync::mpsc::Receiver<()>>,
}

impl Drop for Watcher {
    /// Returns once the last look is taken, not when the thread ends: the
    /// thread then closes its inotify instance, and that close waits for an
    /// SRCU grace period (fsnotify's mark reaper, 10-15 ms here) which would
    /// otherwise sit on the path of every container's end and `rm -f`.
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(rx) = self.looked.take() {
            let _ = rx.recv();
        }
    }
}

fn times_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(SUFFIX);
    PathBuf::from(p)
}

fn now_nanos() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)
}

/// The log's length now: where a watcher started later begins.
pub fn length(log: &Path) -> u64 {
    fs::metadata(log).map(|m| m.len()).unwrap_or(0)
}

/// Watches `log` from offset `from` on (see [`length`]).
pub fn watch(log: &Path, from: u64) -> Watcher {
    watch_with(log, from, true)
}

/// [`watch`]; `inotify` false: as when no inotify instance is left.
fn watch_with(log: &Path, from: u64, inotify: bool) -> Watcher {
    let log = log.to_path_buf();
    let (wake_rd, wake_wr) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("no log times for {}: {e}", log.display());
            return Watcher {
                wake: None,
                looked: None,
            };
        }
    };
    // The watcher says when it is set up: the monitor sheds its start-up
    // pages after this returns, and a thread still setting up would fault
    // them in again.
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<()>(1);
    // dropped by the thread after its last look (see Watcher's drop)
    let (looked_tx, looked_rx) = std::sync::mpsc::sync_channel::<()>(0);
    std::thread::spawn(move || {
        let looked_tx = looked_tx;
        let ready = move || {
            let _ = ready_tx.send(());
        };
        let Ok(mut out) = OpenOptions::new().create(true).append(true).open(times_path(&log)) else {
            return ready();
        };
        let mut seen = from;
        let mut look = || {
            let len = fs::metadata(&log).map(|m| m.len()).unwrap_or(seen);
            if len > seen {
                let _ = writeln!(out, "{seen} {}", now_nanos());
                seen = len;
                return true;
            }
            false
        };
        // Without an inotify instance (128 per user by default: one per
        // monitor, so the 129th container's has none) the log is looked at
        // every POLL_WITHOUT_INOTIFY instead: coarser times, not none.
        let instance = match inotify {
            true => Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK),
            false => Err(nix::errno::Errno::EMFILE),
        };
        let inotify = instance
            .and_then(|i| i.add_watch(&log, AddWatchFlags::IN_MODIFY).map(|_| i))
            .inspect_err(|e| tracing::debug!("log times of {} by polling: {e}", log.display()))
            .ok();
        // output written before the watch was added
        look();
        ready();
        let timeout = match inotify {
            Some(_) => PollTimeout::NONE,
            None => PollTimeout::try_from(POLL_WITHOUT_INOTIFY).unwrap_or(PollTimeout::MAX),
        };
        loop {
            let mut fds = vec![PollFd::new(wake_rd.as_fd(), PollFlags::POLLIN)];
            if let Some(i) = &inotify {
                fds.push(PollFd::new(i.as_fd(), PollFlags::POLLIN));
            }
            if poll(&mut fds, timeout).is_err_and(|e| e != nix::errno::Errno::EINTR) {
                return;
            }
            let stopping = fds[0].revents().is_some_and(|r| !r.is_empty());
            // drain the events; one look covers them all
            if let Some(i) = &inotify {
                while i.read_events().is_ok_and(|ev| !ev.is_empty()) {}
            }
            if look() && !stopping && inotify.is_some() {
                // more output within the grain shares this line
                std::thread::sleep(GRAIN);
            }
            if stopping {
                look();
                drop(looked_tx);
                return;
            }
        }
    });
    // an error (the thread is gone) counts as ready too
    let _ = ready_rx.recv();
    Watcher {
        wake: Some(wake_wr),
        looked: Some(looked_rx),
    }
}

/// The arrival times recorded for `log`: (offset, nanos), by offset.
pub fn read(log: &Path) -> Vec<(u64, i64)> {
    let text = fs::read_to_string(times_path(log)).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.parse().ok()?))
        })
        .collect()
}

/// The time the byte at `offset` arrived: that of the last record at or
/// before it; past the last record (output the watcher has not seen yet,
/// or its monitor is gone), the log's last write `mtime`.
pub fn time_of(times: &[(u64, i64)], offset: u64, mtime: i64) -> i64 {
    match times.partition_point(|(o, _)| *o <= offset) {
        0 => times.first().map_or(mtime, |t| t.1),
        i if i == times.len() && offset > times[i - 1].0 => mtime.max(times[i - 1].1),
        i => times[i - 1].1,
    }
}

/// The log's modification time, in nanoseconds.
pub fn mtime(log: &Path) -> i64 {
    File::open(log)
        .and_then(|f| f.metadata())
        .and_then(|m| m.modified())
        .map(|t| {
            chrono::DateTime::<chrono::Utc>::from(t)
                .timestamp_nanos_opt()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_records_each_burst_of_output_and_a_last_look() {
        bursts_and_last_look(true);
    }

    #[test]
    fn without_inotify_the_watcher_polls() {
        bursts_and_last_look(false);
    }

    fn bursts_and_last_look(inotify: bool) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("container.log");
        fs::write(&log, "before\n").unwrap();
        let w = watch_with(&log, length(&log), inotify);
        let append = |text: &str| {
            let mut f = OpenOptions::new().append(true).open(&log).unwrap();
            f.write_all(text.as_bytes()).unwrap();
        };
        append("one\n");
        let seen = crate::util::poll::until(Duration::from_secs(5), || read(&log).len() == 1);
        assert!(seen, "{:?}", read(&log));
        std::thread::sleep(GRAIN * 2);
        append("two\n");
        assert!(crate::util::poll::until(Duration::from_secs(5), || read(&log).len() == 2));
        // written just before the stop: the last look finds it
        append("three\n");
        drop(w);
        let offsets: Vec<u64> = read(&log).iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [7, 11, 15]);
        let times: Vec<i64> = read(&log).iter().map(|(_, t)| *t).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    }

    #[test]
    fn a_line_takes_the_time_its_bytes_arrived() {
        let times = [(0, 100), (10, 200)];
        assert_eq!(time_of(&times, 0, 999), 100);
        assert_eq!(time_of(&times, 5, 999), 100);
        assert_eq!(time_of(&times, 10, 999), 200);
        assert_eq!(time_of(&times, 12, 300), 300, "not seen yet: the last write");
        assert_eq!(time_of(&[], 3, 50), 50);
    }
}
