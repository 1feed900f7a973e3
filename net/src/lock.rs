//! Exclusive advisory file locks (flock) and atomic JSON file writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};

/// Held while alive; released on drop (and by the kernel on crash).
pub(crate) struct FileLock {
    _lock: Flock<File>,
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
        let lock = Flock::lock(f, FlockArg::LockExclusive)
            .map_err(|(_, e)| Error::Io { what: "lock", path: path.into(), source: e.into() })?;
        Ok(FileLock { _lock: lock })
    }
}

/// The entries of `dir`; none when it does not exist (yet).
pub(crate) fn read_dir_or_empty(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => Ok(rd.flatten().collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::Io { what: "read directory", path: dir.into(), source: e }),
    }
}

/// Reads JSON; `Ok(None)` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| Error::Json { what, path: path.into(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { what, path: path.into(), source: e }),
    }
}

/// Writes JSON to a temporary file next to `path` and renames it into place.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        std::process::id(),
        std::thread::current().id()
    ));
    let data = serde_json::to_vec_pretty(value).map_err(|source| Error::Json { what, path: path.into(), source })?;
    let res = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&data)?;
        f.write_all(b"\n")?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::Io { what, path: path.into(), source: e });
    }
    Ok(())
}

/// Removes a file; a missing file is fine.
pub(crate) fn remove_file_if_exists(path: &Path, what: &'static str) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io { what, path: path.into(), source: e }),
    }
}
