//! Waiting for a container's init process and forwarding signals to it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::thread::JoinHandle;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// The signals a foreground `run` passes on to the container.
pub const FORWARDED: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// A pidfd of `pid`: readable once the process has ended.
pub fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Forwards SIGINT/SIGTERM/SIGHUP received by this process to `pid` until stopped.
pub struct SignalForwarder {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalForwarder {
    pub fn start(pid: Pid) -> Result<Self> {
        let mut signals = Signals::new(FORWARDED).context("cannot install signal handlers")?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                if let Ok(sig) = Signal::try_from(sig) {
                    tracing::debug!(?sig, %pid, "forwarding signal");
                    let _ = kill(pid, sig);
                }
            }
        });
        Ok(Self { handle, thread })
    }

    /// For a process that is not our child (an attached container's init):
    /// through a pidfd opened now, so that no signal reaches another process
    /// that reused the pid after it ended.
    pub fn start_pidfd(pid: Pid) -> Result<Self> {
        let pidfd = pidfd_open(pid).with_context(|| format!("cannot open process {pid}"))?;
        let mut signals = Signals::new(FORWARDED).context("cannot install signal handlers")?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for sig in signals.forever() {
                tracing::debug!(sig, %pid, "forwarding signal");
                // SAFETY: pidfd_send_signal on our pidfd; no siginfo.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    )
                };
            }
        });
        Ok(Self { handle, thread })
    }

    pub fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Waits for `pid` (a child of this process) and converts its end into a
/// shell-style exit code: its own code, or 128+N when signal N killed it.
pub fn wait_exit(pid: Pid) -> Result<u8> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot wait for process {pid}")),
        }
    }
}

/// Exit code of a finished process; None while it has not finished.
pub fn exit_code(status: WaitStatus) -> Option<u8> {
    match status {
        WaitStatus::Exited(_, code) => Some(code as u8),
        WaitStatus::Signaled(_, sig, _) => Some(128u8.wrapping_add(sig as u8)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 7)), Some(7));
        assert_eq!(exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)), Some(137));
        assert_eq!(exit_code(WaitStatus::Stopped(p, Signal::SIGSTOP)), None);
    }

    #[test]
    #[allow(clippy::zombie_processes)] // reaped by wait_exit, which is under test
    fn waits_for_a_real_child() {
        let child = std::process::Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        assert_eq!(wait_exit(Pid::from_raw(child.id() as i32)).unwrap(), 7);
        let child = std::process::Command::new("sh")
            .args(["-c", "kill -TERM $$"])
            .spawn()
            .unwrap();
        assert_eq!(wait_exit(Pid::from_raw(child.id() as i32)).unwrap(), 143);
    }
}
