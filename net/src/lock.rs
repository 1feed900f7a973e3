//! The crate's one file-lock and atomic-JSON helper: exclusive advisory locks (std's
//! `File::lock`, flock(2) on Linux) and durable, atomic JSON file writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Held while alive; released on drop (and by the kernel on crash).
pub(crate) struct FileLock {
    file: File,
}

/// Unlocks explicitly, so a child that inherited the open file (a fork while
/// the lock was held) does not keep it.
impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl FileLock {
    /// Takes an exclusive lock on `path`, creating the file (and its directory) if needed.
    /// Each call opens its own file description, so threads of one process exclude each
    /// other as well as processes do.
    pub(crate) fn exclusive(path: &Path) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
        }
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(Error::io("open lock file", path))?;
        f.lock().map_err(Error::io("lock", path))?;
        Ok(FileLock { file: f })
    }
}

/// The entries of `dir`; none when it does not exist (yet).
pub(crate) fn read_dir_or_empty(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io {
            what: "read directory",
            path: dir.into(),
            source: e,
        }),
    }
}

/// Reads JSON; `Ok(None)` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|source| Error::Json {
            what,
            path: path.into(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            what,
            path: path.into(),
            source: e,
        }),
    }
}

/// Writes JSON durably: to a temporary file next to `path` that is synced, renamed into
/// place, and then the directory synced, so after a crash `path` holds either the old or
/// the new content, and a successful return survives a power loss.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    write_json_with(path, value, what, true)
}

/// [`write_json`] without the syncs: atomic for readers and across crashes of the
/// process, not across a power loss (a journaled ext4 still never shows a torn file
/// after one: it writes a file replaced by rename before the rename commits).
pub(crate) fn write_json_volatile<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    write_json_with(path, value, what, false)
}

fn write_json_with<T: Serialize>(path: &Path, value: &T, what: &'static str, durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id(),
        std::thread::current().id()
    ));
    let data = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        what,
        path: path.into(),
        source,
    })?;
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
        if durable {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io {
            what,
            path: path.into(),
            source: e,
        });
    }
    if !durable {
        return Ok(());
    }
    // The rename is durable once the directory entry is.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("sync directory", dir))
}

/// Removes a file; a missing file is fine.
pub(crate) fn remove_file_if_exists(path: &Path, what: &'static str) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io {
            what,
            path: path.into(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_json_replaces_atomically_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub").join("x.json");
        write_json(&p, &vec![1, 2], "test file").unwrap();
        write_json(&p, &vec![3], "test file").unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p, "test file").unwrap(), Some(vec![3]));
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("x.json")]);
        assert_eq!(
            read_json::<Vec<i32>>(&d.path().join("none.json"), "test file").unwrap(),
            None
        );
    }

    #[test]
    fn lock_excludes_other_descriptions() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l").join("a.lock");
        let held = FileLock::exclusive(&p).unwrap();
        let other = File::open(&p).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        other.try_lock().unwrap();
    }
}
