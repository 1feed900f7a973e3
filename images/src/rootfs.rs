//! Container root filesystems: an overlayfs of the image's layers, or a
//! private copy where overlayfs cannot be mounted.
//!
//! In `<container_dir>`:
//! ```text
//! rootfs/        the mount point (or the copy)
//! upper/ work/   overlayfs upper and work directories (the container's changes)
//! lower/         an empty lower layer, only for images without layers
//! rootfs.copy    marker: rootfs is a private copy, not a mount
//! ```

use crate::error::{self, Error, IoContext, Result};
use crate::fsutil::{self, Meta};
use crate::store::{Image, LockMode, Store, GC_LOCK};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{
    self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

const ROOTFS: &str = "rootfs";
const UPPER: &str = "upper";
const WORK: &str = "work";
const EMPTY_LOWER: &str = "lower";
const COPY_MARKER: &str = "rootfs.copy";
/// mount(2) takes at most one page of options.
const MOUNT_DATA_MAX: usize = 4095;
/// Enough for an overlay with a read-only bind of itself on top, and more.
const MAX_STACKED_MOUNTS: usize = 8;

/// How [`Store::prepare_rootfs`] mounts a root filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct RootfsOptions {
    /// mounted read-only
    pub readonly: bool,
    /// overlayfs's `volatile` (kernel 5.10+; ignored before): no sync of the
    /// upper layer, so no unmount waits for the whole upper filesystem to
    /// reach the disk (100 ms here on a busy disk). For a container whose
    /// changes are discarded when it ends (`--rm`, as podman does): after a
    /// crash such an upper layer cannot be mounted again.
    pub volatile: bool,
}

impl Store {
    /// Mount the image's root filesystem for a container at
    /// `<container_dir>/rootfs`: an overlayfs of its layers (top first) with
    /// upper and work directories in `container_dir`. Where overlayfs cannot
    /// be mounted, the layers are copied into `rootfs` instead (a warning is
    /// logged). See [`RootfsOptions`].
    ///
    /// Calling it again for a prepared `container_dir` returns the same
    /// rootfs; an existing `upper` (a stopped container's changes) is reused.
    /// On failure the directories this call created are removed again.
    pub fn prepare_rootfs(&self, image: &Image, container_dir: &Path, opts: RootfsOptions) -> Result<PathBuf> {
        // Keeps `remove` from deleting the layers while we mount or copy them.
        let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
        for layer in &image.layers {
            if !layer.is_dir() {
                return Err(Error::MissingLayer {
                    image: crate::digest::sha256_ref(&image.id),
                    layer: layer.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    path: layer.clone(),
                });
            }
        }
        fs::create_dir_all(container_dir).ctx("create directory", container_dir)?;
        let rootfs = container_dir.join(ROOTFS);
        let mounted = rootfs.exists() && fsutil::is_mount_point(&rootfs).ctx("stat", &rootfs)?;
        if mounted || container_dir.join(COPY_MARKER).exists() {
            tracing::debug!(rootfs = %rootfs.display(), "rootfs already prepared");
            return Ok(rootfs);
        }
        let mut created = Vec::new();
        let result = prepare(image, container_dir, opts, &mut created);
        if result.is_err() {
            for dir in created.iter().rev() {
                let _ = unmount_all(dir);
                let _ = fs::remove_dir_all(dir);
            }
            let _ = fs::remove_file(container_dir.join(COPY_MARKER));
        }
        result.map(|()| rootfs)
    }
}

fn prepare(image: &Image, container_dir: &Path, opts: RootfsOptions, created: &mut Vec<PathBuf>) -> Result<()> {
    let mut mkdir = |name: &str| -> Result<PathBuf> {
        let path = container_dir.join(name);
        match fs::create_dir(&path) {
            Ok(()) => created.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("create directory", path),
        }
        Ok(path)
    };
    let rootfs = mkdir(ROOTFS)?;
    let upper = mkdir(UPPER)?;
    let work = mkdir(WORK)?;
    let lowers: Vec<PathBuf> = if image.layers.is_empty() {
        vec![mkdir(EMPTY_LOWER)?]
    } else {
        image.layers.iter().rev().cloned().collect()
    };
    let Err(e) = mount_overlay(&lowers, &upper, &work, &rootfs, opts) else {
        return Ok(());
    };
    tracing::warn!(
        rootfs = %rootfs.display(),
        error = %error::chain(&e),
        "overlayfs unavailable: making a private copy of the image instead (slower, uses disk space)"
    );
    let dest = fsutil::open_dir(&rootfs).ctx("open", &rootfs)?;
    fsutil::clear_dir(dest.as_fd()).ctx("empty", &rootfs)?;
    copy_layers(&image.layers, &rootfs)?;
    if opts.readonly {
        if let Err(e) = bind_readonly(&rootfs) {
            tracing::warn!(rootfs = %rootfs.display(), error = %e, "could not make the copied rootfs read-only; rely on the OCI spec's root.readonly");
        }
    }
    let marker = container_dir.join(COPY_MARKER);
    fs::write(&marker, b"").ctx("write", &marker)
}

/// Mount an overlay of `lowers` (top first) on `target`, with the new mount
/// API (one `lowerdir+` per layer: no option-length limit, no escaping),
/// or mount(2) on kernels that lack it (< 6.8).
fn mount_overlay(lowers: &[PathBuf], upper: &Path, work: &Path, target: &Path, opts: RootfsOptions) -> Result<()> {
    let err = |source: Errno| Error::Mount {
        what: "overlay",
        target: target.to_path_buf(),
        source: source.into(),
    };
    let fs_fd = match rmount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Err(Errno::NOSYS) => return mount_overlay_legacy(lowers, upper, work, target, opts),
        other => other.map_err(err)?,
    };
    for (i, lower) in lowers.iter().enumerate() {
        match rmount::fsconfig_set_string(&fs_fd, "lowerdir+", lower) {
            // An overlayfs that does not know "lowerdir+".
            Err(Errno::INVAL) if i == 0 => return mount_overlay_legacy(lowers, upper, work, target, opts),
            other => other.map_err(err)?,
        }
    }
    rmount::fsconfig_set_string(&fs_fd, "upperdir", upper).map_err(err)?;
    rmount::fsconfig_set_string(&fs_fd, "workdir", work).map_err(err)?;
    if opts.volatile {
        if let Err(e) = rmount::fsconfig_set_flag(&fs_fd, "volatile") {
            tracing::debug!("overlayfs without volatile: {e}");
        }
    }
    rmount::fsconfig_create(&fs_fd).map_err(err)?;
    let attrs = if opts.readonly {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rmount::fsmount(&fs_fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs).map_err(err)?;
    rmount::move_mount(&mnt, "", rfs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH).map_err(err)
}

fn mount_overlay_legacy(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    opts: RootfsOptions,
) -> Result<()> {
    let err = |source: io::Error| Error::Mount {
        what: "overlay",
        target: target.to_path_buf(),
        source,
    };
    let text = |p: &Path| -> Result<String> {
        match p.to_str() {
            Some(s) if !s.contains(',') => Ok(s.to_string()),
            _ => Err(err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} cannot be passed to mount(2): not UTF-8 or contains ','",
                    p.display()
                ),
            ))),
        }
    };
    let lowerdir = lowers
        .iter()
        .map(|l| Ok(text(l)?.replace('\\', "\\\\").replace(':', "\\:")))
        .collect::<Result<Vec<_>>>()?
        .join(":");
    let data = format!("lowerdir={lowerdir},upperdir={},workdir={}", text(upper)?, text(work)?);
    if data.len() > MOUNT_DATA_MAX {
        return Err(err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} layers need {} bytes of mount options; mount(2) takes {MOUNT_DATA_MAX}",
                lowers.len(),
                data.len()
            ),
        )));
    }
    let flags = if opts.readonly {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    };
    let mount = |data: String| {
        let data = CString::new(data).map_err(|e| err(e.into()))?;
        rmount::mount("overlay", target, "overlay", flags, Some(data.as_c_str())).map_err(|e| err(e.into()))
    };
    if opts.volatile {
        match mount(format!("{data},volatile")) {
            // a kernel before 5.10
            Err(Error::Mount { source, .. }) if source.raw_os_error() == Some(Errno::INVAL.raw_os_error()) => {}
            other => return other,
        }
    }
    mount(data)
}

fn bind_readonly(path: &Path) -> io::Result<()> {
    rmount::mount_bind(path, path)?;
    rmount::mount_remount(path, MountFlags::BIND | MountFlags::RDONLY, "").inspect_err(|_| {
        let _ = rmount::unmount(path, UnmountFlags::DETACH);
    })?;
    Ok(())
}

/// Apply unpacked layer directories (bottom first, overlayfs whiteout form)
/// into `rootfs`, honoring whiteouts and opaque directories by deletion.
pub(crate) fn copy_layers(layers: &[PathBuf], rootfs: &Path) -> Result<()> {
    let dest = fsutil::open_dir(rootfs).ctx("open", rootfs)?;
    for layer in layers {
        let src = fsutil::open_dir(layer).ctx("open", layer)?;
        let mut copier = Copier {
            layer,
            dest_root: dest.as_fd(),
            links: HashMap::new(),
        };
        copier.tree(src.as_fd(), dest.as_fd(), Path::new(""))?;
    }
    Ok(())
}

struct Copier<'a> {
    layer: &'a Path,
    dest_root: BorrowedFd<'a>,
    /// (dev, ino) of multiply-linked files of this layer -> where the first copy went.
    links: HashMap<(u64, u64), PathBuf>,
}

impl Copier<'_> {
    fn tree(&mut self, src: BorrowedFd<'_>, dest: BorrowedFd<'_>, rel: &Path) -> Result<()> {
        let layer = self.layer;
        for name in fsutil::list_dir(src).ctx("read directory", layer.join(rel))? {
            let rel = rel.join(&name);
            let at = |source| Error::Io {
                op: "copy",
                path: layer.join(&rel),
                source,
            };
            if let Some((from, to, st)) = self.entry(src, dest, &name, &rel).map_err(at)? {
                self.tree(from.as_fd(), to.as_fd(), &rel)?;
                // After the children: they change the directory's mtime.
                let meta = Meta::from_stat(&st, fsutil::read_xattrs(from.as_fd()).map_err(at)?);
                meta.apply_fd(to.as_fd()).map_err(at)?;
                fsutil::set_times_at(to.as_fd(), OsStr::new(""), &meta.timestamps()).map_err(at)?;
            }
        }
        Ok(())
    }

    /// Copy `name` from directory `src` into directory `dest`; for a
    /// directory, make it and return both ends for the caller to descend.
    /// Every directory on the way was made (or checked) a real directory by
    /// us and names are never followed, so nothing lands outside the rootfs.
    fn entry(
        &mut self,
        src: BorrowedFd<'_>,
        dest: BorrowedFd<'_>,
        name: &OsStr,
        rel: &Path,
    ) -> io::Result<Option<(OwnedFd, OwnedFd, rfs::Stat)>> {
        let st = rfs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW)?;
        let kind = fsutil::file_type(&st);
        if fsutil::is_whiteout(&st) {
            fsutil::remove_entry(dest, name)?;
            return Ok(None);
        }
        let existing = fsutil::stat_at(dest, name)?;
        if kind == FileType::Directory {
            let merge = existing.is_some_and(|e| fsutil::file_type(&e) == FileType::Directory);
            if !merge {
                fsutil::remove_entry(dest, name)?;
                rfs::mkdirat(dest, name, Mode::from_raw_mode(0o700))?;
            }
            let from = fsutil::open_subdir(src, name)?;
            let to = fsutil::open_subdir(dest, name)?;
            if merge && fsutil::is_opaque(from.as_fd())? {
                fsutil::clear_dir(to.as_fd())?;
            }
            return Ok(Some((from, to, st)));
        }
        if existing.is_some() {
            fsutil::remove_entry(dest, name)?;
        }
        match kind {
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key) {
                        rfs::linkat(self.dest_root, first, dest, name, AtFlags::empty())?;
                        return Ok(None);
                    }
                }
                let mut from = File::from(rfs::openat(
                    src,
                    name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?);
                let mut to = File::from(rfs::openat(
                    dest,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?);
                // copy_file_range underneath: reflinks where the file system can.
                io::copy(&mut from, &mut to)?;
                let meta = Meta::from_stat(&st, fsutil::read_xattrs(from.as_fd())?);
                meta.apply_fd(to.as_fd())?;
                rfs::futimens(&to, &meta.timestamps())?;
                if st.st_nlink > 1 {
                    self.links.insert(key, rel.to_path_buf());
                }
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(src, name, Vec::new())?;
                rfs::symlinkat(target.as_c_str(), dest, name)?;
                Meta::from_stat(&st, Vec::new()).apply_at(dest, name)?;
            }
            other => {
                rfs::mknodat(dest, name, other, Mode::from_raw_mode(st.st_mode), st.st_rdev)?;
                Meta::from_stat(&st, Vec::new()).apply_at(dest, name)?;
            }
        }
        Ok(None)
    }
}

/// Creates directory `path` (absolute, as seen inside the container) in a
/// prepared rootfs, the way docker creates a missing working directory:
/// symlinks on the way resolve inside the rootfs (never out of it), missing
/// components are made 0755 root:root. Existing directories are left alone.
pub fn ensure_dir_in_rootfs(rootfs: &Path, path: &Path) -> Result<()> {
    let root = fsutil::open_dir(rootfs).ctx("open rootfs", rootfs)?;
    let open_in_root = |rel: &Path| {
        fsutil::openat2_retrying(
            &root,
            if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            },
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            rfs::ResolveFlags::IN_ROOT | rfs::ResolveFlags::NO_MAGICLINKS,
        )
    };
    let mut prefix = PathBuf::new();
    for component in path.components() {
        let std::path::Component::Normal(name) = component else {
            continue;
        };
        let parent = prefix.clone();
        prefix.push(name);
        match open_in_root(&prefix) {
            Ok(_) => {}
            Err(Errno::NOENT) => {
                let dir = open_in_root(&parent).ctx("resolve in rootfs", rootfs.join(&parent))?;
                match rfs::mkdirat(&dir, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e).ctx("create directory in rootfs", path),
                }
            }
            Err(e) => return Err(e).ctx("resolve in rootfs", path),
        }
    }
    Ok(())
}

/// Unmount (lazily if busy) the root filesystem [`Store::prepare_rootfs`]
/// mounted in `container_dir`, keeping its upper and work directories (a
/// stopped container's changes): preparing it again mounts them again.
/// Idempotent.
pub fn unmount_rootfs(container_dir: &Path) -> Result<()> {
    unmount_all(&container_dir.join(ROOTFS))
}

/// Unmount (lazily if busy) and remove what [`Store::prepare_rootfs`] made
/// in `container_dir`. Idempotent; fine when nothing is there.
pub fn release_rootfs(container_dir: &Path) -> Result<()> {
    let rootfs = container_dir.join(ROOTFS);
    unmount_all(&rootfs)?;
    for name in [ROOTFS, UPPER, WORK, EMPTY_LOWER] {
        let path = container_dir.join(name);
        match fs::remove_dir_all(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e).ctx("remove", path),
            _ => {}
        }
    }
    let marker = container_dir.join(COPY_MARKER);
    match fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx("remove", marker),
        _ => Ok(()),
    }
}

/// Unmount everything stacked on `path`; a busy mount is detached lazily.
fn unmount_all(path: &Path) -> Result<()> {
    let err = |source: io::Error| Error::Mount {
        what: "unmount",
        target: path.to_path_buf(),
        source,
    };
    for _ in 0..MAX_STACKED_MOUNTS {
        match fsutil::is_mount_point(path) {
            Ok(false) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(err(e)),
            Ok(true) => {}
        }
        match rmount::unmount(path, UnmountFlags::NOFOLLOW) {
            Ok(()) => {}
            Err(Errno::BUSY) => {
                tracing::warn!(path = %path.display(), "rootfs busy; detaching it lazily");
                rmount::unmount(path, UnmountFlags::NOFOLLOW | UnmountFlags::DETACH).map_err(|e| err(e.into()))?;
            }
            Err(Errno::INVAL) => return Ok(()),
            Err(e) => return Err(err(e.into())),
        }
    }
    Err(err(io::Error::other(format!(
        "still a mount point after {MAX_STACKED_MOUNTS} unmounts"
    ))))
}

#[cfg(test)]
mod tests;
