//! Guard against CVE-2019-5736: a process in a container opening the
//! runtime's binary through `/proc/<pid>/exe` and overwriting it on the host.
//!
//! Before minirun does anything a container could observe (create, run,
//! exec), it makes sure `/proc/self/exe` cannot be opened for writing:
//!
//! 1. If the binary already lies on a read-only mount, nothing is to do.
//! 2. Otherwise it re-executes itself through a detached, read-only clone of
//!    its own mount (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(RDONLY)` +
//!    `execveat`): no copy, so it costs about one `execve`. Writes through
//!    that path fail with EROFS, and no container can reach the detached
//!    mount to remount it.
//! 3. Where the kernel lacks those calls (before 5.12), it falls back to a
//!    sealed in-memory copy (`pentacle`, as youki does), which costs a copy
//!    of the binary per call.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Ensures this process runs from a binary it cannot be overwritten through;
/// may re-execute the process (and so never return in that case).
pub fn ensure_sealed() -> io::Result<()> {
    if is_sealed()? {
        return Ok(());
    }
    seal_now()
}

/// [`ensure_sealed`] once the binary is known to be writable through.
fn seal_now() -> io::Result<()> {
    match readonly_clone(Path::new("/proc/self/exe")) {
        Ok(fd) => Err(reexec_from(&fd)),
        Err(e) => {
            tracing::debug!("read-only re-exec unavailable ({e}); sealing a copy in memory");
            pentacle::ensure_sealed()
        }
    }
}

/// Seals at once, before the command line is parsed, when `args` (the
/// process's arguments) name a verb that will seal anyway (`run`, `create`,
/// `exec`): the re-execution then repeats only the dynamic loader's work,
/// not the parse of the whole command tree and the logging set-up (about
/// half of the guard's cost). A guess from the raw arguments: when it errs,
/// the verb seals later as before, or a command that needs no seal got one.
/// Failures are left to that later call, which reports them.
pub fn seal_early_for(args: impl IntoIterator<Item = std::ffi::OsString>) {
    if first_verb(args).is_some_and(|v| ["run", "create", "exec"].contains(&v.as_str())) {
        // the container's process joins its cgroup in a few milliseconds: the
        // grace period that waits for starts now (see oci::warmup), before
        // the re-execution, whose pid is the same
        match is_sealed() {
            Ok(false) => {
                crate::oci::start_before_reexec();
                let _ = seal_now();
            }
            // sealed already, or unknown (the verb's own seal reports why)
            _ => crate::oci::start_migration_grace_period(),
        }
    }
}

/// Whether this process already runs from a binary it cannot write through.
fn is_sealed() -> io::Result<bool> {
    Ok(exe_is_readonly()? || pentacle::is_sealed())
}

/// The first word of `args` (after the program's name) that is neither a
/// global option nor the value of one: the verb, as the guard, usage errors
/// and docker's `-h` need it before (or without) a successful parse.
pub(crate) fn first_verb(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<String> {
    // global options that take a separate value (see cli::GlobalOpts)
    const WITH_VALUE: [&str; 6] = ["--root", "--data-root", "--log", "--log-format", "--criu", "--rootless"];
    let mut args = args.into_iter().skip(1);
    while let Some(a) = args.next() {
        let a = a.to_str()?.to_string();
        if a == "--" || !a.starts_with('-') {
            return (a != "--").then_some(a).or_else(|| args.next()?.into_string().ok());
        }
        if WITH_VALUE.contains(&a.as_str()) {
            args.next();
        }
    }
    None
}

/// Whether /proc/self/exe lives on a read-only mount.
fn exe_is_readonly() -> io::Result<bool> {
    let st = nix::sys::statvfs::statvfs("/proc/self/exe").map_err(io::Error::from)?;
    Ok(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// A file descriptor for `path` on a private, detached read-only mount.
fn readonly_clone(path: &Path) -> io::Result<OwnedFd> {
    let path = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: plain syscall with a valid NUL-terminated path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            (libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC) as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = CString::new("").unwrap();
    // SAFETY: valid fd, empty path with AT_EMPTY_PATH, attr of the declared size.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH); returns only on failure.
fn reexec_from(fd: &OwnedFd) -> io::Error {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
        .collect();
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).unwrap_or_default()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = CString::new("").unwrap();
    // SAFETY: argv/envp are NULL-terminated arrays of valid C strings that
    // outlive the call; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verb(args: &[&str]) -> Option<String> {
        first_verb(args.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn the_verb_is_found_past_global_options_and_their_values() {
        assert_eq!(verb(&["minirun", "run", "busybox"]).as_deref(), Some("run"));
        assert_eq!(
            verb(&[
                "minirun",
                "--root",
                "/r",
                "--debug",
                "--log-format",
                "json",
                "create",
                "x"
            ])
            .as_deref(),
            Some("create")
        );
        assert_eq!(verb(&["minirun", "--root=/r", "exec", "x"]).as_deref(), Some("exec"));
        // a state root named like a verb is a value, not the verb
        assert_eq!(verb(&["minirun", "--root", "run", "ps"]).as_deref(), Some("ps"));
        assert_eq!(verb(&["minirun", "--", "run"]).as_deref(), Some("run"));
        assert_eq!(verb(&["minirun", "--debug"]), None);
        // (as usage errors find it)
        assert_eq!(
            verb(&["minirun", "--root", "/r", "--debug", "run", "-x"]).as_deref(),
            Some("run")
        );
        assert_eq!(verb(&["minirun", "--log=/l", "kill", "c"]).as_deref(), Some("kill"));
        assert_eq!(verb(&["minirun", "--root", "run"]), None);
        assert_eq!(verb(&["minirun"]), None);
    }

    #[test]
    fn the_readonly_clone_refuses_writes() {
        if nix::unistd::geteuid().as_raw() != 0 {
            eprintln!("skipped: open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("binary");
        std::fs::write(&file, b"payload").unwrap();
        let fd = readonly_clone(&file).expect("open_tree/mount_setattr");
        let through_clone = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&through_clone)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        // the same file stays writable through its own mount, and readable through the clone
        std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        assert_eq!(std::fs::read(&through_clone).unwrap(), b"payload");
    }
}
