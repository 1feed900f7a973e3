//! Exclusive advisory file locks (`flock(2)` through std's `File::lock`).
//!
//! A lock belongs to the open file description: a child made by `fork` or
//! `clone` shares it (the detached monitor inherits the container lock this
//! way), and the kernel drops it when the last descriptor closes, also on a
//! crash. Dropping a [`FileLock`] unlocks it for every sharer.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use super::poll;

/// What [`FileLock::try_existing`] found.
pub enum TryLock {
    Locked(FileLock),
    /// Someone else holds it.
    Held,
    /// There is no lock file.
    Missing,
}

/// An exclusive lock on a file, released when dropped.
#[derive(Debug)]
pub struct FileLock {
    file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))
    }

    /// Waits as long as it takes for the lock on `path` (made if missing).
    pub fn exclusive(path: &Path) -> Result<Self> {
        let file = Self::open(path)?;
        file.lock().with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(Self { file })
    }

    /// The lock on `path` if nobody holds it, else None.
    pub fn try_exclusive(path: &Path) -> Result<Option<Self>> {
        let file = Self::open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Self { file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// Like [`Self::try_exclusive`], but never makes the file: a lock file
    /// that is gone belongs to something being removed.
    pub fn try_existing(path: &Path) -> Result<TryLock> {
        let file = match OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TryLock::Missing),
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        match file.try_lock() {
            Ok(()) => Ok(TryLock::Locked(Self { file })),
            Err(TryLockError::WouldBlock) => Ok(TryLock::Held),
            Err(TryLockError::Error(e)) => Err(e).with_context(|| format!("cannot lock {}", path.display())),
        }
    }

    /// The lock on `path`, waiting at most `timeout`; None if it stayed taken.
    pub fn within(path: &Path, timeout: Duration) -> Result<Option<Self>> {
        let mut found = None;
        let mut error = None;
        poll::until(timeout, || match Self::try_exclusive(path) {
            Ok(Some(lock)) => {
                found = Some(lock);
                true
            }
            Ok(None) => false,
            Err(e) => {
                error = Some(e);
                true
            }
        });
        match error {
            Some(e) => Err(e),
            None => Ok(found),
        }
    }

    /// Leaves the lock to whoever else shares this open file (a forked
    /// child): our descriptor is closed without unlocking, so the lock goes
    /// when the sharer ends, even while this process lives on.
    pub fn leak(self) {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the file is moved out exactly once and `this` is never dropped.
        drop(unsafe { std::ptr::read(&this.file) });
    }
}

/// Unlocks explicitly: closing our descriptor alone would leave the lock to
/// every process that inherited the open file (libcontainer's init, a clone
/// of the creator, keeps it until the container starts).
impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Whether someone holds the lock on `path` right now (a missing file: no).
pub fn is_held(path: &Path) -> bool {
    matches!(FileLock::try_existing(path), Ok(TryLock::Held))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_excludes_others_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::exclusive(&path).unwrap();
        assert!(is_held(&path));
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        assert!(FileLock::within(&path, Duration::from_millis(50)).unwrap().is_none());
        drop(held);
        assert!(!is_held(&path));
        assert!(FileLock::within(&path, Duration::from_millis(50)).unwrap().is_some());
        assert!(!is_held(&dir.path().join("missing")));
    }

    #[test]
    fn dropping_unlocks_for_a_child_that_inherited_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let held = FileLock::exclusive(&path).unwrap();
        // as libcontainer's init inherits the id lock from `create`
        // SAFETY: the child only calls async-signal-safe functions.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => unsafe {
                libc::sleep(5);
                libc::_exit(0)
            },
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(held);
        let free = FileLock::try_exclusive(&path).unwrap().is_some();
        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(child, None);
        assert!(free, "the lock stayed with the child");
    }
}
