//! When a detached container's output arrived: its monitor watches the log
//! grow and appends `OFFSET NANOS` lines to `container.log.times` (the bytes
//! from OFFSET on arrived at NANOS, to the watcher's 20 ms), for `logs -t`,
//! `--since` and `--until`. The log itself stays the container's own
//! stdout/stderr file, written without the monitor in between.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const SUFFIX: &str = ".times";

/// A running watcher; stopped (after one last look) when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
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
    let stop = Arc::new(AtomicBool::new(false));
    let log = log.to_path_buf();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let Ok(mut out) = OpenOptions::new().create(true).append(true).open(times_path(&log)) else {
            return;
        };
        let mut seen = from;
        loop {
            let last = flag.load(Ordering::Relaxed);
            let len = fs::metadata(&log).map(|m| m.len()).unwrap_or(seen);
            if len > seen {
                let _ = writeln!(out, "{seen} {}", now_nanos());
                seen = len;
            }
            if last {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    Watcher {
        stop,
        thread: Some(thread),
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
    fn a_line_takes_the_time_its_bytes_arrived() {
        let times = [(0, 100), (10, 200)];
        assert_eq!(time_of(&times, 0, 999), 100);
        assert_eq!(time_of(&times, 5, 999), 100);
        assert_eq!(time_of(&times, 10, 999), 200);
        assert_eq!(time_of(&times, 12, 300), 300, "not seen yet: the last write");
        assert_eq!(time_of(&[], 3, 50), 50);
    }
}
