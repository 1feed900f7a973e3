//! libcontainer's processes start in a mount namespace without the other
//! containers' mounts.
//!
//! Every container minirun runs adds mounts to the host (its overlay root,
//! its netns file), and libcontainer pays for each of them at every start:
//! its intermediate process reads `/proc/self/mountinfo` once per cgroup v1
//! controller (the whole table for a controller the host lacks), its init
//! process copies the table into the container's namespace and reads it
//! again. With 500 containers running that was 100 ms of a 150 ms `run`.
//!
//! So the directories holding those mounts (the data root, the runtime
//! root's netns files) are mount points of their own
//! ([`ensure_private_mount_root`], as docker and podman make their storage
//! directory a private bind mount), and libcontainer's create runs on a
//! thread that left the host's mount namespace for a copy ([`trimmed`])
//! where each such directory is replaced by a clone of itself without its
//! submounts, and only the submounts this container's spec names (its
//! root, its netns file, an IPC tmpfs) are put back. The processes
//! libcontainer clones from that thread start there; the copy goes with
//! them. The host's mounts are never changed: the copy is made a slave of
//! the host before anything in it is unmounted, so nothing propagates back.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::Spec;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use rustix::fs::{statx, AtFlags, StatxFlags, CWD};
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

/// Makes `dir` (created if missing) a private bind mount of itself, so that
/// the mounts made under it can be left out of a namespace at once. Returns
/// whether it is a mount point now: not when mounts already lie under it
/// (containers of a minirun from before this change), which a bind would
/// hide; the next boot, or the last of them gone, fixes that.
pub fn ensure_private_mount_root(dir: &Path) -> io::Result<bool> {
    // every run after the first: one statx
    if is_mount_root(dir).unwrap_or(false) {
        return Ok(true);
    }
    std::fs::create_dir_all(dir)?;
    // as /proc/self/mountinfo spells it
    let dir = &std::fs::canonicalize(dir)?;
    // one process binds; the others wait and see its mount
    let lock = File::open(dir)?;
    lock.lock()?;
    if is_mount_root(dir)? {
        return Ok(true);
    }
    if has_submounts(dir)? {
        return Ok(false);
    }
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
    if let Err(e) = mount(None::<&str>, dir, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>) {
        let _ = umount2(dir, MntFlags::MNT_DETACH);
        return Err(e.into());
    }
    tracing::debug!("{} made a private mount point", dir.display());
    Ok(true)
}

/// Whether `path` is the root of a mount.
fn is_mount_root(path: &Path) -> io::Result<bool> {
    let st = statx(CWD, path, AtFlags::empty(), StatxFlags::BASIC_STATS)?;
    use rustix::fs::StatxAttributes;
    if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT));
    }
    Ok(mount_id(path)? != mount_id(&path.join(".."))?)
}

fn mount_id(path: &Path) -> io::Result<u64> {
    Ok(statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)?.stx_mnt_id)
}

/// Whether a mount point lies below `dir` (read once, when `dir` is made a
/// mount point).
fn has_submounts(dir: &Path) -> io::Result<bool> {
    let infos = procfs::process::Process::myself()
        .and_then(|p| p.mountinfo())
        .map_err(io::Error::other)?;
    Ok(infos
        .into_iter()
        .any(|m| m.mount_point != dir && m.mount_point.starts_with(dir)))
}

/// What a trimmed namespace puts back: a directory's clone without its
/// submounts, and the submounts the container needs.
struct Plan {
    dirs: Vec<(PathBuf, OwnedFd)>,
    keep: Vec<(PathBuf, OwnedFd)>,
}

/// Runs `f` on a thread of its own whose mount namespace is a copy of ours
/// with the submounts of `dirs` left out, except those `spec` names (its
/// root, namespace files, mount sources; `bundle` resolves relative ones).
/// Where that cannot be set up (a directory is not a mount point, the
/// kernel lacks open_tree, the spec needs another container's mount), `f`
/// runs there in our namespace, as before: slower, never different.
pub fn trimmed<T: Send>(dirs: &[PathBuf], spec: &Spec, bundle: &Path, f: impl FnOnce() -> T + Send) -> T {
    let plan = match plan(dirs, spec, bundle) {
        Ok(Some(p)) => p,
        Ok(None) => return f(),
        Err(e) => {
            tracing::debug!("launch namespace not trimmed: {e}");
            return f();
        }
    };
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Err(e) = enter(&plan) {
                // the thread keeps its own copy of the host's namespace (or the host's)
                tracing::debug!("launch namespace not trimmed: {e}");
            }
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// The clones, taken in our namespace; None when there is nothing to trim.
fn plan(dirs: &[PathBuf], spec: &Spec, bundle: &Path) -> io::Result<Option<Plan>> {
    let mut plan = Plan {
        dirs: Vec::new(),
        keep: Vec::new(),
    };
    for d in dirs {
        if d.is_dir() && is_mount_root(d)? {
            let fd = open_tree(
                CWD,
                d,
                OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
            )?;
            plan.dirs.push((d.clone(), fd));
        }
    }
    if plan.dirs.is_empty() || propagates_back(spec) {
        return Ok(None);
    }
    for p in named_paths(spec, bundle) {
        let Some((d, _)) = plan.dirs.iter().find(|(d, _)| p.starts_with(d) && p != *d) else {
            continue;
        };
        let Ok(id) = mount_id(&p) else { continue };
        if id == mount_id(d)? {
            continue; // on the directory's own mount: its clone shows it
        }
        if !is_mount_root(&p)? {
            return Err(io::Error::other(format!(
                "{} lies inside a mount below {}",
                p.display(),
                d.display()
            )));
        }
        if plan.keep.iter().any(|(k, _)| *k == p) {
            continue;
        }
        let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE;
        plan.keep.push((p.clone(), open_tree(CWD, &p, flags)?));
    }
    Ok(Some(plan))
}

/// Whether the spec wants mounts made in the container to reach the host
/// (a shared root or a shared bind): only the host's own namespace, not a
/// slave copy of it, passes them on.
fn propagates_back(spec: &Spec) -> bool {
    let shared = |o: &str| o == "shared" || o == "rshared";
    let root = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
        .is_some_and(shared);
    root || spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| m.options().iter().flatten().any(|o| shared(o)))
}

/// Paths of the host the spec names: its root, namespace files, mount sources.
fn named_paths(spec: &Spec, bundle: &Path) -> Vec<PathBuf> {
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            bundle.join(p)
        }
    };
    let mut out = Vec::new();
    if let Some(r) = spec.root() {
        out.push(abs(r.path()));
    }
    if let Some(ns) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
        out.extend(ns.iter().filter_map(|n| n.path().as_deref().map(abs)));
    }
    for m in spec.mounts().iter().flatten() {
        if let Some(src) = m.source() {
            if src.is_absolute() || m.typ().as_deref() == Some("bind") {
                out.push(abs(src));
            }
        }
    }
    out
}

/// Leaves this thread's mount namespace for the trimmed copy.
fn enter(plan: &Plan) -> io::Result<()> {
    let host = File::open("/proc/thread-self/ns/mnt")?;
    nix::sched::unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS)?;
    let res = (|| -> io::Result<()> {
        // a slave first: no unmount below may propagate to the host's mounts
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )?;
        for (d, fd) in &plan.dirs {
            umount2(d.as_path(), MntFlags::MNT_DETACH)?;
            move_mount(fd, "", CWD, d, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
            // the clone of a shared mount would pass what is put back on to the host
            mount(
                None::<&str>,
                d.as_path(),
                None::<&str>,
                MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
        }
        for (p, fd) in &plan.keep {
            move_mount(fd, "", CWD, p, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
        }
        Ok(())
    })();
    if res.is_err() {
        // back to the host's namespace (this thread has its own fs state)
        nix::sched::setns(&host, CloneFlags::CLONE_NEWNS)?;
    }
    res
}

#[cfg(test)]
mod tests;
