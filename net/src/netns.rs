//! Network namespaces as bind-mounted files (like `ip netns`, but at any path).

use std::os::fd::AsFd;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{chain, Error, Result};

/// Where minirun keeps a container's netns file (see [`crate::paths`]).
pub use crate::paths::netns_path;

fn nserr<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(nix::Error) -> Error + 'a {
    move |e| Error::Netns {
        path: path.into(),
        op,
        source: e.into(),
    }
}

/// Creates a new network namespace, bind-mounts it at `path` (which must not exist yet)
/// and brings `lo` up inside. On failure nothing is left at `path`.
pub fn create_netns(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(Error::io("create directory", dir))?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Netns {
            path: path.into(),
            op: "create file",
            source,
        })?;
    let res = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(nserr(path, "unshare"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(nserr(path, "bind mount"))?;
            crate::link::set_lo_up().map_err(|e| Error::Link {
                ifname: "lo".into(),
                reason: format!("in {}: {}", path.display(), chain(&e)),
            })
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Runtime("netns thread panicked".into())))
    });
    if res.is_err() {
        let _ = remove_netns(path);
    }
    res
}

/// Unmounts (lazily) and removes a netns file. A missing file or a file that is not a
/// mount point is fine: calling it twice succeeds.
pub fn remove_netns(path: &Path) -> Result<()> {
    remove_netns_counted(path).map(|_| ())
}

/// [`remove_netns`], returning whether a mount was removed.
pub(crate) fn remove_netns_counted(path: &Path) -> Result<bool> {
    let mut unmounted = false;
    // Loop: a file can carry stacked mounts if something bind-mounted twice.
    for _ in 0..8 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => unmounted = true,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => break,
            Err(e) => return Err(nserr(path, "unmount")(e)),
        }
    }
    crate::lock::remove_file_if_exists(path, "remove netns file")?;
    Ok(unmounted)
}

/// Whether `path` is a mounted network namespace.
pub fn is_netns(path: &Path) -> bool {
    match nix::sys::statfs::statfs(path) {
        Ok(s) => s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC,
        Err(_) => false,
    }
}

/// Runs `f` on a short-lived thread that has joined the network namespace at `path`.
/// The calling thread's namespace is never changed.
pub fn in_netns<T: Send, F: FnOnce() -> T + Send>(path: &Path, f: F) -> Result<T> {
    let file = std::fs::File::open(path).map_err(|source| Error::Netns {
        path: path.into(),
        op: "open",
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(nserr(path, "setns"))?;
            Ok(f())
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Runtime(format!("thread in netns {} panicked", path.display()))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{require_root, PrivateNetns};

    #[test]
    fn create_use_remove() {
        if !require_root() {
            return;
        }
        PrivateNetns::run(|| {
            let dir = tempfile::tempdir().unwrap();
            let p = netns_path(dir.path(), "c1");
            let _g = crate::testutil::NetnsGuard(p.clone());
            create_netns(&p).unwrap();
            assert!(is_netns(&p));
            // lo is up inside, and it is a different namespace from ours.
            let (lo_up, ino) = in_netns(&p, || {
                let up = std::fs::read_to_string("/sys/class/net/lo/operstate").ok();
                let _ = up;
                let flags = crate::link::link_flags("lo").unwrap();
                (flags & libc::IFF_UP as u32 != 0, crate::testutil::netns_ino())
            })
            .unwrap();
            assert!(lo_up);
            assert_ne!(ino, crate::testutil::netns_ino());
            // Creating again at the same path fails and leaves the first one alone.
            assert!(create_netns(&p).is_err());
            assert!(is_netns(&p));
            remove_netns(&p).unwrap();
            assert!(!p.exists());
            remove_netns(&p).unwrap(); // idempotent
        });
    }
}
