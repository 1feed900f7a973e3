//! fd-relative file-system helpers shared by layer unpacking and the copy fallback.
//!
//! Everything here works on a directory fd plus one file name, so a symlink
//! can never redirect an operation: names are never followed, and
//! directories are opened with `openat2(RESOLVE_BENEATH)`.

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags, CWD,
};
use rustix::io::Errno;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Layer-tar whiteout prefix (AUFS form): `.wh.NAME` deletes NAME of lower layers.
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
/// Layer-tar marker making its directory opaque.
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// overlayfs form of an opaque directory.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// overlayfs' private xattrs; never taken from an archive or copied.
const OVERLAY_XATTR_PREFIX: &[u8] = b"trusted.overlay.";

static OPENAT2_MISSING: AtomicBool = AtomicBool::new(false);

/// Why a path from an archive is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadPath {
    Absolute,
    DotDot,
}

/// Lexically normalize an archive path: drop `.` and empty components,
/// resolve `..` against earlier components, and refuse absolute paths and
/// `..` that climbs above the root. The empty path is the root itself.
pub(crate) fn normalize(raw: &[u8]) -> std::result::Result<PathBuf, BadPath> {
    if raw.first() == Some(&b'/') {
        return Err(BadPath::Absolute);
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop().ok_or(BadPath::DotDot)?;
            }
            c => parts.push(c),
        }
    }
    Ok(PathBuf::from(OsStr::from_bytes(&parts.join(&b'/'))))
}

/// `openat2`, tried again while it answers EAGAIN: with RESOLVE_BENEATH or
/// RESOLVE_IN_ROOT the kernel gives up on a path with `..` (a symlink's
/// included) whenever a rename or mount happened anywhere on the machine
/// during the lookup, which concurrent runs and unpacks cause all the time.
pub(crate) fn openat2_retrying<Fd: rustix::fd::AsFd, P: rustix::path::Arg + Copy>(
    dir: Fd,
    path: P,
    oflags: OFlags,
    mode: Mode,
    resolve: rfs::ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    const TRIES: usize = 128;
    let mut tries = 0;
    loop {
        match rfs::openat2(dir.as_fd(), path, oflags, mode, resolve) {
            Err(Errno::AGAIN) if tries < TRIES => tries += 1,
            other => return other,
        }
    }
}

/// Open directory `rel` (relative, already free of `..`) below `root` without
/// leaving it. A symlink anywhere on the way that points outside `root`
/// (absolute, or with enough `..`) fails with `EXDEV`.
///
/// Kernels without openat2 (< 5.6) get a component walk that refuses every
/// symlink on the way (`ELOOP`), which is stricter but equally safe.
pub(crate) fn open_dir_beneath(root: BorrowedFd<'_>, rel: &Path) -> io::Result<OwnedFd> {
    let target: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    if !OPENAT2_MISSING.load(Ordering::Relaxed) {
        match openat2_retrying(
            root,
            target,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            Err(Errno::NOSYS) => OPENAT2_MISSING.store(true, Ordering::Relaxed),
            other => return Ok(other?),
        }
    }
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut fd = rfs::openat(root, ".", flags, Mode::empty())?;
    for component in rel.iter() {
        fd = match rfs::openat(&fd, component, flags, Mode::empty()) {
            // O_NOFOLLOW|O_DIRECTORY on a symlink gives ENOTDIR; say what it is.
            Err(Errno::NOTDIR) if is_symlink_at(fd.as_fd(), component) => return Err(Errno::LOOP.into()),
            other => other?,
        };
    }
    Ok(fd)
}

fn is_symlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Open directory `name` in `dir` for reading/metadata, refusing symlinks.
pub(crate) fn open_subdir(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Open an existing directory by path (a directory we own, e.g. a layer root).
pub(crate) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        CWD,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `lstat` of `name` in `dir`; `None` if it does not exist.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Option<rfs::Stat>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn file_type(st: &rfs::Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

/// A 0:0 character device: overlayfs' whiteout.
pub(crate) fn is_whiteout(st: &rfs::Stat) -> bool {
    file_type(st) == FileType::CharacterDevice && st.st_rdev == 0
}

/// Remove `name` in `dir`, whatever it is (directory trees included,
/// symlinks never followed). Absent is fine.
pub(crate) fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => {
            clear_dir(open_subdir(dir, name)?.as_fd())?;
            Ok(rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Remove everything inside directory `dir`.
pub(crate) fn clear_dir(dir: BorrowedFd<'_>) -> io::Result<()> {
    // List first: unlinking while a getdents stream is open may skip entries.
    for name in list_dir(dir)? {
        remove_entry(dir, &name)?;
    }
    Ok(())
}

/// Names in directory `dir` (without `.` and `..`).
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// `/proc/self/fd/N/name`: a path for the few calls that have no fd-relative
/// form (xattrs on symlinks and device nodes). The final name is not followed
/// by the `l*` calls it is used with.
fn proc_path(dir: BorrowedFd<'_>, name: &OsStr) -> PathBuf {
    let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    p.push(name);
    p
}

pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(OVERLAY_XATTR_PREFIX)
}

/// Ownership, permission bits (incl. setuid/setgid/sticky), times and xattrs of one file.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Meta {
    pub(crate) fn from_stat(st: &rfs::Stat, xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Meta {
        Meta {
            uid: st.st_uid,
            gid: st.st_gid,
            mode: st.st_mode & 0o7777,
            atime: Timespec {
                tv_sec: st.st_atime as _,
                tv_nsec: st.st_atime_nsec as _,
            },
            mtime: Timespec {
                tv_sec: st.st_mtime as _,
                tv_nsec: st.st_mtime_nsec as _,
            },
            xattrs,
        }
    }

    pub(crate) fn timestamps(&self) -> Timestamps {
        Timestamps {
            last_access: self.atime,
            last_modification: self.mtime,
        }
    }

    fn mode(&self) -> Mode {
        Mode::from_raw_mode(self.mode)
    }

    /// Owner, mode and xattrs of an open regular file or directory (not times:
    /// a directory's mtime must be set after its children are written).
    /// chown comes first because it clears setuid/setgid.
    pub(crate) fn apply_fd(&self, fd: BorrowedFd<'_>) -> io::Result<()> {
        rfs::fchown(
            fd,
            Some(rfs::Uid::from_raw(self.uid)),
            Some(rfs::Gid::from_raw(self.gid)),
        )?;
        rfs::fchmod(fd, self.mode())?;
        for (name, value) in self.settable_xattrs() {
            ignore_unsupported(rfs::fsetxattr(fd, name, value, XattrFlags::empty()))?;
        }
        Ok(())
    }

    /// Everything, times included, for `name` in `dir` without following it:
    /// symlinks, device nodes, fifos, sockets.
    pub(crate) fn apply_at(&self, dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
        rfs::chownat(
            dir,
            name,
            Some(rfs::Uid::from_raw(self.uid)),
            Some(rfs::Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let is_symlink = is_symlink_at(dir, name);
        if !is_symlink {
            // Not a symlink (checked just above), so following is harmless.
            rfs::chmodat(dir, name, self.mode(), AtFlags::empty())?;
        }
        if !self.xattrs.is_empty() {
            let path = proc_path(dir, name);
            for (xname, value) in self.settable_xattrs() {
                ignore_unsupported(rfs::lsetxattr(&path, xname, value, XattrFlags::empty()))?;
            }
        }
        set_times_at(dir, name, &self.timestamps())
    }

    fn settable_xattrs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.xattrs
            .iter()
            .filter(|(name, _)| !is_overlay_xattr(name))
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
    }
}

/// Set times of `name` in `dir` (not following symlinks); `""` means `dir` itself.
pub(crate) fn set_times_at(dir: BorrowedFd<'_>, name: &OsStr, times: &Timestamps) -> io::Result<()> {
    if name.is_empty() {
        return Ok(rfs::futimens(dir, times)?);
    }
    Ok(rfs::utimensat(dir, name, times, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// xattrs are best effort where the file system has none (EOPNOTSUPP).
fn ignore_unsupported(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(Errno::OPNOTSUPP) => {
            tracing::debug!("xattrs not supported here; skipped");
            Ok(())
        }
        other => Ok(other?),
    }
}

/// All xattrs of an open file or directory (empty where unsupported).
pub(crate) fn read_xattrs(fd: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let size = match rfs::flistxattr_query(fd) {
        Ok(0) | Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
        other => other?,
    };
    let mut list = vec![0u8; size];
    let n = rfs::flistxattr(fd, &mut list[..])?;
    list.truncate(n);
    let mut out = Vec::new();
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let len = rfs::fgetxattr_query(fd, name)?;
        let mut value = vec![0u8; len];
        let n = rfs::fgetxattr(fd, name, &mut value[..])?;
        value.truncate(n);
        out.push((name.to_vec(), value));
    }
    Ok(out)
}

/// Mark an open directory opaque for overlayfs.
pub(crate) fn set_opaque(dir: BorrowedFd<'_>) -> io::Result<()> {
    Ok(rfs::fsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())?)
}

pub(crate) fn is_opaque(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut value = [0u8; 4];
    match rfs::fgetxattr(dir, OPAQUE_XATTR, &mut value[..]) {
        Ok(n) => Ok(&value[..n] == b"y"),
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) | Err(Errno::RANGE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Create the overlayfs whiteout (0:0 character device) `name` in `dir`.
pub(crate) fn make_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<()> {
    rfs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), rfs::makedev(0, 0))
}

/// Is `path` the root of a mount?
pub(crate) fn is_mount_point(path: &Path) -> io::Result<bool> {
    match rfs::statx(CWD, path, AtFlags::SYMLINK_NOFOLLOW, rfs::StatxFlags::BASIC_STATS) {
        Ok(st) if st.stx_attributes_mask.contains(rfs::StatxAttributes::MOUNT_ROOT) => {
            return Ok(st.stx_attributes.contains(rfs::StatxAttributes::MOUNT_ROOT))
        }
        Ok(_) | Err(Errno::NOSYS) => {}
        Err(e) => return Err(e.into()),
    }
    // Old kernels: a different device than the parent's means a mount.
    let parent = path.parent().unwrap_or(Path::new("/"));
    let dev = |p: &Path| rfs::lstat(p).map(|st| st.st_dev);
    Ok(dev(path)? != dev(parent)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// `root/a/b` and, below `root`, each `(link, target)` symlink.
    fn tree_with_links(tmp: &Path, links: &[(&str, &str)]) -> PathBuf {
        let root = tmp.join("root");
        fs::create_dir_all(root.join("a/b")).unwrap();
        for (link, target) in links {
            std::os::unix::fs::symlink(target, root.join(link)).unwrap();
        }
        root
    }

    #[test]
    fn open_dir_beneath_refuses_escapes() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tree_with_links(tmp.path(), &[("abs", "/etc"), ("a/up", "../.."), ("a/inside", "b")]);
        let fd = open_dir(&root).unwrap();
        assert!(open_dir_beneath(fd.as_fd(), Path::new("a/b")).is_ok());
        assert!(open_dir_beneath(fd.as_fd(), Path::new("a/inside")).is_ok());
        let exdev = |p: &str| {
            let e = open_dir_beneath(fd.as_fd(), Path::new(p)).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_exdev()), "{p}: {e}");
        };
        exdev("abs");
        exdev("a/up");
    }

    #[test]
    fn lookups_through_dotdot_survive_renames_elsewhere() {
        // The kernel answers EAGAIN to a RESOLVE_BENEATH lookup through `..`
        // when any rename happens meanwhile; renames go on in another thread.
        let tmp = tempfile::tempdir().unwrap();
        let root = tree_with_links(tmp.path(), &[("a/up", "../.."), ("a/back", "../a/b")]);
        let busy = tmp.path().join("busy");
        fs::write(&busy, "x").unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let renamer = {
            let (stop, busy) = (stop.clone(), busy.clone());
            std::thread::spawn(move || {
                let other = busy.with_extension("moved");
                while !stop.load(Ordering::Relaxed) {
                    let _ = fs::rename(&busy, &other);
                    let _ = fs::rename(&other, &busy);
                }
            })
        };
        let fd = open_dir(&root).unwrap();
        let mut raw_eagain = 0;
        for _ in 0..3000 {
            let e = open_dir_beneath(fd.as_fd(), Path::new("a/up")).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc_exdev()), "a/up: {e}");
            assert!(open_dir_beneath(fd.as_fd(), Path::new("a/back")).is_ok());
            let raw = rfs::openat2(
                fd.as_fd(),
                "a/back",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH,
            );
            raw_eagain += usize::from(raw.err() == Some(Errno::AGAIN));
        }
        stop.store(true, Ordering::Relaxed);
        renamer.join().unwrap();
        eprintln!("a bare openat2 got EAGAIN {raw_eagain} times in 3000");
    }

    fn libc_exdev() -> i32 {
        Errno::XDEV.raw_os_error()
    }

    #[test]
    fn remove_entry_removes_trees_without_following_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir_all(dir.join("t/u")).unwrap();
        fs::write(dir.join("t/u/f"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("t/link")).unwrap();
        let fd = open_dir(&dir).unwrap();
        remove_entry(fd.as_fd(), OsStr::new("t")).unwrap();
        remove_entry(fd.as_fd(), OsStr::new("absent")).unwrap();
        assert!(!dir.join("t").exists());
        assert!(outside.join("keep").exists());
    }
}
