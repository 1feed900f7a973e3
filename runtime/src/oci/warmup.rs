//! The cgroup migration's RCU grace period, started before it is needed.
//!
//! Moving a process between cgroups (libcontainer's intermediate process
//! writing its pid to `cgroup.procs`) takes the kernel's global
//! `cgroup_threadgroup_rwsem` for writing, and a writer first waits for a
//! full RCU grace period (`rcu_sync_enter`): 8-18 ms on this machine, the
//! largest single wait of a `run`. A writer that comes while another one
//! waits shares that grace period, and one within about a grace period after
//! the last one does not wait at all.
//!
//! So a child process writes "0" (itself) to the `cgroup.procs` of the
//! cgroup it is already in, a migration that moves nothing, as early as
//! possible: `main` forks it before the CVE-2019-5736 guard re-executes
//! minirun for `run`, `create` and `exec`, so the grace period passes while
//! the binary is executed again, the spec prepared and libcontainer's
//! processes made. A child, not a thread: nobody waits for it, and
//! libcontainer may clone this process while the child still waits in the
//! kernel (a thread would have to be joined first, since a raw `clone` of a
//! process whose other thread holds a lock finds that lock held forever).
//! The child closes every descriptor first, so no pipe of the caller waits
//! for it. Where the kernel needs no grace period (cgroup v2 mounted with
//! `favordynmods`) this costs a fork and one write. Best effort: any error
//! is ignored.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};

/// Carries the child's pid across the guard's re-execution.
const INHERITED: &str = "_MINIRUN_CGROUP_WARMUP";

/// A child started this long ago or less keeps the grace period's window
/// open for the migrations that follow, even when it has ended.
const FRESH: Duration = Duration::from_millis(10);

struct Warmup {
    pid: Pid,
    started: Instant,
    ended: bool,
}

static WARMUP: Mutex<Option<Warmup>> = Mutex::new(None);

/// Makes sure a warm-up child was started recently (see the module's
/// comment): adopts the one the first execution of this process started
/// before the guard's re-execution, keeps one still running or started
/// less than [`FRESH`] ago, and forks a new one otherwise.
pub fn start_migration_grace_period() {
    let mut current = WARMUP.lock().unwrap_or_else(|e| e.into_inner());
    if current.is_none() {
        *current = inherited();
    }
    if let Some(w) = current.as_mut() {
        w.ended = w.ended || reaped(w.pid);
        if !w.ended || w.started.elapsed() < FRESH {
            return;
        }
    }
    if let Some(pid) = fork_warmup() {
        *current = Some(Warmup {
            pid,
            started: Instant::now(),
            ended: false,
        });
    }
}

/// Starts the warm-up child before the guard's re-execution (from `main`,
/// while minirun is single-threaded) and passes its pid on to the process
/// re-executed.
pub fn start_before_reexec() {
    if let Some(pid) = fork_warmup() {
        std::env::set_var(INHERITED, pid.to_string());
    }
}

/// Reaps the warm-up child if it has ended; one still waiting in the
/// kernel is left, for a later call (or, at our exit, for init).
pub fn reap_migration_warmup() {
    let mut current = WARMUP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = current.as_mut() {
        w.ended = w.ended || reaped(w.pid);
    }
}

/// Waits for the warm-up child to end (at most its grace period), for a
/// process that lives on once its caller has its answer (the monitor): a
/// child still waiting in the kernel at [`reap_migration_warmup`] would stay
/// a zombie of it for the container's life.
pub fn wait_migration_warmup() {
    let mut current = WARMUP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = current.as_mut().filter(|w| !w.ended) {
        let _ = waitpid(w.pid, None);
        w.ended = true;
    }
}

/// The warm-up child the first execution of this process started, named by
/// [`INHERITED`] (removed from the environment: hooks and children of ours
/// do not see it).
fn inherited() -> Option<Warmup> {
    let pid = std::env::var(INHERITED).ok()?;
    std::env::remove_var(INHERITED);
    Some(Warmup {
        pid: Pid::from_raw(pid.parse().ok()?),
        started: Instant::now(),
        ended: false,
    })
}

/// Whether `pid`, a child of ours, has ended (and is now reaped); a pid that
/// is no child of ours (a forked monitor's copy of the record) counts as
/// ended.
fn reaped(pid: Pid) -> bool {
    !matches!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive))
}

/// Forks the child that writes "0" (itself) to its own `cgroup.procs`.
fn fork_warmup() -> Option<Pid> {
    let file = own_procs_file(&std::fs::read_to_string("/proc/self/cgroup").ok()?, |p| p.exists())?;
    let file = CString::new(file.as_os_str().as_bytes()).ok()?;
    // SAFETY: the child makes only async-signal-safe calls (close_range,
    // open, write, _exit) on memory prepared before the fork, so it may be
    // forked from a process with other threads.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Parent { child }) => Some(child),
        Ok(ForkResult::Child) => unsafe {
            libc::syscall(libc::SYS_close_range, 0, libc::c_uint::MAX, 0);
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let moved = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            libc::_exit(if moved { 0 } else { 1 })
        },
        Err(e) => {
            tracing::debug!("cgroup warm-up skipped: {e}");
            None
        }
    }
}

/// The `cgroup.procs` of the cgroup that `/proc/self/cgroup` (`self_cgroup`)
/// places us in: in the cgroup v2 tree (`0::PATH`; mounted at
/// `/sys/fs/cgroup/unified` on hybrid hosts, `/sys/fs/cgroup` on v2 ones)
/// where there is one, else in the v1 pids hierarchy. `exists` tells which
/// files exist.
fn own_procs_file(self_cgroup: &str, exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    let path_for = |wanted: &dyn Fn(&str) -> bool| {
        self_cgroup.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
            wanted(controllers).then(|| path.trim_start_matches('/').to_string())
        })
    };
    let v2_mount = [base.join("unified"), base.to_path_buf()]
        .into_iter()
        .find(|m| exists(&m.join("cgroup.controllers")));
    let candidates = [
        (v2_mount, path_for(&|c| c.is_empty())),
        (
            Some(base.join("pids")),
            path_for(&|c| c.split(',').any(|c| c == "pids")),
        ),
    ];
    candidates.into_iter().find_map(|(mount, rel)| {
        let file = mount?.join(rel?).join("cgroup.procs");
        exists(&file).then_some(file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const HYBRID: &str = "9:name=systemd:/\n8:pids:/user.slice\n4:memory:/x\n0::/user.slice/s.scope\n";

    #[test]
    fn own_cgroup_in_the_v2_tree_of_a_hybrid_host() {
        let exists = |p: &Path| {
            [
                "/sys/fs/cgroup/unified/cgroup.controllers",
                "/sys/fs/cgroup/unified/user.slice/s.scope/cgroup.procs",
                "/sys/fs/cgroup/pids/user.slice/cgroup.procs",
            ]
            .iter()
            .any(|e| Path::new(e) == p)
        };
        assert_eq!(
            own_procs_file(HYBRID, exists),
            Some(PathBuf::from("/sys/fs/cgroup/unified/user.slice/s.scope/cgroup.procs"))
        );
    }

    #[test]
    fn own_cgroup_on_v2_and_on_v1_only_hosts() {
        let v2 = |p: &Path| {
            ["/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/a/b/cgroup.procs"]
                .iter()
                .any(|e| Path::new(e) == p)
        };
        assert_eq!(
            own_procs_file("0::/a/b\n", v2),
            Some(PathBuf::from("/sys/fs/cgroup/a/b/cgroup.procs"))
        );
        // no v2 tree mounted: the v1 pids hierarchy, by its own path
        let v1 = |p: &Path| p == Path::new("/sys/fs/cgroup/pids/user.slice/cgroup.procs");
        assert_eq!(
            own_procs_file(HYBRID, v1),
            Some(PathBuf::from("/sys/fs/cgroup/pids/user.slice/cgroup.procs"))
        );
        assert_eq!(own_procs_file(HYBRID, |_| false), None);
        assert_eq!(own_procs_file("", |_| true), None);
    }

    #[test]
    fn the_warm_up_child_migrates_into_its_own_cgroup_and_moves_us_nowhere() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let before = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let pid = fork_warmup().expect("a warm-up child");
        // exit status 0: its write to cgroup.procs was taken
        assert_eq!(waitpid(pid, None).unwrap(), WaitStatus::Exited(pid, 0));
        assert_eq!(std::fs::read_to_string("/proc/self/cgroup").unwrap(), before);
    }

    #[test]
    fn a_fresh_or_running_warm_up_is_not_started_again() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let pid = || WARMUP.lock().unwrap().as_ref().map(|w| w.pid);
        start_migration_grace_period();
        let first = pid().expect("a child started");
        start_migration_grace_period();
        assert_eq!(pid(), Some(first), "a second call while it is fresh forks nothing");
        let _ = waitpid(first, None);
        let set_started = |at: Instant| WARMUP.lock().unwrap().as_mut().unwrap().started = at;
        set_started(Instant::now());
        start_migration_grace_period();
        assert_eq!(
            pid(),
            Some(first),
            "one that ended a moment ago still keeps the window open"
        );
        set_started(Instant::now() - FRESH * 2);
        start_migration_grace_period();
        let second = pid().expect("a child started again");
        assert_ne!(second, first, "an ended, stale child is replaced");
        wait_migration_warmup();
        assert_eq!(
            waitpid(second, Some(WaitPidFlag::WNOHANG)),
            Err(nix::errno::Errno::ECHILD),
            "waited for: no zombie left"
        );
    }
}
