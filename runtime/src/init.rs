//! `--init`: minirun itself as the container's PID 1 (`minirun __init --
//! CMD...`), as docker's tini: it starts the command, forwards the signals
//! it gets to it, reaps every zombie re-parented to it, and exits with the
//! command's code (128+N for signal N).
//!
//! No external binary: the running minirun and the shared libraries it has
//! loaded are copied once into `<data-root>/init/<key>/` and bind-mounted
//! read-only at [`MOUNT`]; the container runs them through the copied
//! dynamic loader, so the image needs no libc of its own.

use std::ffi::{CString, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{execvp, fork, ForkResult, Pid};
use serde_json::{json, Value};

/// Where the init's files are in the container.
pub const MOUNT: &str = "/dev/.minirun-init";
/// The argument that makes minirun the init.
const ARG: &str = "__init";

/// Runs as the init when invoked as one (`minirun __init -- CMD...`).
pub fn run_if_init() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().collect();
    if args.get(1).map(|a| a.as_bytes()) != Some(ARG.as_bytes()) {
        return None;
    }
    let mut cmd = &args[2..];
    if cmd.first().map(|a| a.as_bytes()) == Some(b"--") {
        cmd = &cmd[1..];
    }
    let cmd: Vec<CString> = cmd.iter().filter_map(|a| CString::new(a.as_bytes()).ok()).collect();
    if cmd.is_empty() {
        eprintln!("minirun-init: no command given");
        return Some(ExitCode::from(1));
    }
    Some(ExitCode::from(init(&cmd)))
}

fn init(cmd: &[CString]) -> u8 {
    let all = SigSet::all();
    if let Err(e) = all.thread_block() {
        eprintln!("minirun-init: cannot block signals: {e}");
        return 1;
    }
    // SAFETY: single-threaded here; the child only execs.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            let _ = SigSet::empty().thread_set_mask();
            let err = execvp(&cmd[0], cmd).unwrap_err();
            eprintln!("minirun-init: exec {}: {err}", cmd[0].to_string_lossy());
            // docker's codes: not found 127, cannot run 126
            std::process::exit(if err == nix::errno::Errno::ENOENT { 127 } else { 126 });
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("minirun-init: fork: {e}");
            return 1;
        }
    };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            let _ = kill(child, sig);
            continue;
        }
        if let Some(code) = reap(child) {
            return code;
        }
    }
}

/// Reaps every exited child; the command's exit code once it is among them.
fn reap(child: Pid) -> Option<u8> {
    let mut code = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, c)) if pid == child => code = Some(c as u8),
            Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => code = Some(128u8.wrapping_add(s as i32 as u8)),
            Ok(WaitStatus::StillAlive) | Err(_) => return code,
            Ok(_) => {}
        }
    }
}

/// The directory holding the init's files for this minirun binary, made
/// once per data root: the binary and the libraries loaded from it.
pub fn prepare(data_root: &Path) -> Result<PathBuf> {
    let exe = fs::metadata("/proc/self/exe").context("cannot stat minirun's own binary")?;
    let key = format!("{:x}-{:x}-{:x}", exe.len(), exe.mtime(), exe.ino());
    let dir = data_root.join("init").join(&key);
    if dir.join("minirun").exists() {
        return Ok(dir);
    }
    let tmp = data_root.join("init").join(format!(".{key}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
    fs::copy("/proc/self/exe", tmp.join("minirun")).context("cannot copy minirun for --init")?;
    for lib in loaded_libraries()? {
        let name = lib
            .file_name()
            .context("library without a name")?
            .to_string_lossy()
            .into_owned();
        fs::copy(&lib, tmp.join(&name)).with_context(|| format!("cannot copy {} for --init", lib.display()))?;
        // the loader looks for the soname (libseccomp.so.2), the map names
        // the file (libseccomp.so.2.5.4)
        if let Some(soname) = soname(&name).filter(|s| *s != name) {
            fs::copy(&lib, tmp.join(soname))?;
        }
    }
    for e in fs::read_dir(&tmp)?.flatten() {
        fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755))?;
    }
    match fs::rename(&tmp, &dir) {
        Ok(()) => {}
        // another run made it meanwhile
        Err(_) if dir.join("minirun").exists() => {
            let _ = fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
    }
    Ok(dir)
}

/// The shared objects this process has mapped (its loader among them).
fn loaded_libraries() -> Result<Vec<PathBuf>> {
    let maps = fs::read_to_string("/proc/self/maps").context("cannot read /proc/self/maps")?;
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(PathBuf::from)
        .collect();
    libs.sort();
    libs.dedup();
    if !libs.iter().any(|l| is_loader(l)) {
        bail!("--init: cannot find minirun's dynamic loader");
    }
    Ok(libs)
}

/// `libX.so.N` of a file `libX.so.N.M.K`.
fn soname(file: &str) -> Option<String> {
    let i = file.find(".so.")?;
    let (base, ver) = file.split_at(i + 4);
    let major = ver.split('.').next()?;
    Some(format!("{base}{major}"))
}

fn is_loader(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("ld-"))
}

/// Mounts the init's directory into a spec (as JSON) and puts it before
/// the process's argv.
pub fn apply(spec: &mut Value, dir: &Path) -> Result<()> {
    let loader = fs::read_dir(dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| is_loader(p))
        .context("--init: no dynamic loader in the init directory")?;
    let loader = Path::new(MOUNT).join(loader.file_name().unwrap_or_default());
    if let Some(m) = spec["mounts"].as_array_mut() {
        m.push(json!({"destination": MOUNT, "type": "bind", "source": dir, "options": ["rbind", "ro", "rprivate"]}));
    }
    let args = spec["process"]["args"].as_array().cloned().unwrap_or_default();
    let mut new = vec![
        json!(loader),
        json!("--library-path"),
        json!(MOUNT),
        json!(format!("{MOUNT}/minirun")),
        json!(ARG),
        json!("--"),
    ];
    new.extend(args);
    spec["process"]["args"] = Value::Array(new);
    Ok(())
}
