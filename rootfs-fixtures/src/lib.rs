//! Offline, reproducible test fixtures for minirun, built from Debian's
//! `busybox-static` package (the only thing this crate ever needs from
//! outside: `apt-get install busybox-static`).
//!
//! * [`build_rootfs`]: a busybox root filesystem in a directory.
//! * [`build_bundle`]: an OCI bundle (`rootfs/` + `config.json` with `runc spec`
//!   style defaults).
//! * [`build_image`] / [`build_image_with_layers`]: a busybox image as a
//!   docker-save archive, an OCI image layout directory, or that layout in a
//!   tar, optionally with extra hand-written layers (whiteouts, opaque
//!   directories, hostile paths for escape tests).
//!
//! Everything is deterministic: entries are sorted, every tar header has
//! mtime [`SOURCE_DATE_EPOCH`], uid/gid 0 and no user/group names, gzip
//! streams carry no timestamp or file name, and JSON is written with a fixed
//! key order. Two builds on the same machine (same busybox-static, same
//! crate versions) give byte-identical files, hence identical digests.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The timestamp written into every tar header (seconds since the epoch).
pub const SOURCE_DATE_EPOCH: u64 = 0;
/// The `created` time of image configs and history entries
/// (the RFC 3339 form of [`SOURCE_DATE_EPOCH`]).
pub const CREATED: &str = "1970-01-01T00:00:00Z";
/// `PATH` given to images and bundles.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Content of `/var/www/index.html` in the rootfs.
pub const INDEX_HTML: &str = "hello from minirun\n";
/// Hostname written into bundle configs.
pub const BUNDLE_HOSTNAME: &str = "minirun";
/// Environment variable that overrides [`busybox_path`] (must name a
/// statically linked busybox); meant for machines without dpkg.
pub const BUSYBOX_ENV: &str = "MINIRUN_BUSYBOX";

pub const MEDIA_TYPE_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_TYPE_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

const DPKG_LIST: &str = "/var/lib/dpkg/info/busybox-static.list";
const BUSYBOX_DEFAULT: &str = "/bin/busybox";

/// Errors of this crate; each names the file, command or reference involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("busybox-static is not installed ({detail}); run: apt-get install busybox-static")]
    BusyboxMissing { detail: String },
    #[error("{path} is not a statically linked busybox ({detail}); run: apt-get install busybox-static")]
    BusyboxNotStatic { path: PathBuf, detail: String },
    #[error("`{path} --list-full` failed: {detail}")]
    BusyboxList { path: PathBuf, detail: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("building tar archive {what}: {source}")]
    Tar {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("unknown image format {0:?} (expected docker, oci-dir or oci-tar)")]
    UnknownFormat(String),
    #[error("output {path} exists and is not a directory (needed for an OCI layout)")]
    NotADirectory { path: PathBuf },
}

fn io_err(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

// ---------------------------------------------------------------------------
// busybox
// ---------------------------------------------------------------------------

/// Path of the busybox-static binary: the `bin/busybox` file listed by
/// `dpkg -L busybox-static` (i.e. `/bin/busybox`), or `$MINIRUN_BUSYBOX` when
/// set. Errors (mentioning `apt-get install busybox-static`) when the package
/// is missing or the file is not a static executable — the dynamic `busybox`
/// package also installs `/bin/busybox`, which is useless inside a rootfs.
pub fn busybox_path() -> Result<PathBuf, Error> {
    busybox_path_from(std::env::var_os(BUSYBOX_ENV), Path::new(DPKG_LIST))
}

fn busybox_path_from(env: Option<std::ffi::OsString>, dpkg_list: &Path) -> Result<PathBuf, Error> {
    let path = if let Some(p) = env.filter(|p| !p.is_empty()) {
        PathBuf::from(p)
    } else {
        let list = fs::read_to_string(dpkg_list).map_err(|e| Error::BusyboxMissing {
            detail: format!("cannot read {}: {e}", dpkg_list.display()),
        })?;
        list.lines()
            .map(str::trim)
            .find(|l| l.ends_with("bin/busybox"))
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(BUSYBOX_DEFAULT))
    };
    let meta = fs::metadata(&path).map_err(|e| Error::BusyboxMissing {
        detail: format!("{}: {e}", path.display()),
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::BusyboxMissing {
            detail: format!("{} is not an executable file", path.display()),
        });
    }
    check_static_elf(&path)?;
    Ok(path)
}

/// Refuse dynamically linked executables (an ELF with a PT_INTERP header).
fn check_static_elf(path: &Path) -> Result<(), Error> {
    let not_static = |detail: &str| Error::BusyboxNotStatic {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    };
    let mut head = vec![0u8; 64 * 1024];
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let n = read_up_to(&mut f, &mut head).map_err(io_err("read", path))?;
    let head = &head[..n];
    if head.len() < 64 || &head[..4] != b"\x7fELF" {
        return Err(not_static("not an ELF file"));
    }
    let is64 = head[4] == 2;
    let le = head[5] == 1;
    let rd = |off: usize, len: usize| -> Option<u64> {
        let b = head.get(off..off + len)?;
        let mut v = 0u64;
        for i in 0..len {
            let byte = if le { b[len - 1 - i] } else { b[i] } as u64;
            v = (v << 8) | byte;
        }
        Some(v)
    };
    let (phoff, phentsize, phnum) = if is64 {
        (rd(0x20, 8), rd(0x36, 2), rd(0x38, 2))
    } else {
        (rd(0x1c, 4), rd(0x2a, 2), rd(0x2c, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return Err(not_static("truncated ELF header"));
    };
    for i in 0..phnum {
        let off = (phoff + i * phentsize) as usize;
        match rd(off, 4) {
            Some(3) => return Err(not_static("dynamically linked (has PT_INTERP)")),
            Some(_) => {}
            None => return Err(not_static("program headers beyond the first 64 KiB")),
        }
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Applet paths relative to `/`, as `busybox --list-full` prints them
/// (`bin/sh`, `usr/bin/[`, `sbin/ip`, `linuxrc`, ...), sorted.
pub fn busybox_applets() -> Result<Vec<String>, Error> {
    let bb = busybox_path()?;
    applets_of(&bb)
}

fn applets_of(bb: &Path) -> Result<Vec<String>, Error> {
    let out = Command::new(bb)
        .arg("--list-full")
        .output()
        .map_err(|e| Error::BusyboxList {
            path: bb.to_path_buf(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::BusyboxList {
            path: bb.to_path_buf(),
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut applets: Vec<String> = text
        .lines()
        .map(|l| l.trim().trim_start_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.split('/').any(|c| c.is_empty() || c == "." || c == ".."))
        .filter(|l| l != "bin/busybox")
        .collect();
    applets.sort();
    applets.dedup();
    if !applets.iter().any(|a| a == "bin/sh") {
        return Err(Error::BusyboxList {
            path: bb.to_path_buf(),
            detail: "no bin/sh applet listed".into(),
        });
    }
    Ok(applets)
}

// ---------------------------------------------------------------------------
// The rootfs model (one list of entries, written either to a dir or a tar)
// ---------------------------------------------------------------------------

/// One entry of a layer tar, written verbatim (paths are not normalized, so
/// `../x` or `/abs` can be used for escape tests; normal entries should be
/// relative like `etc/motd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerEntry {
    /// Regular file; `mode` is the permission bits (0o7777 mask applied).
    File { path: String, content: Vec<u8>, mode: u32 },
    /// Directory (written as `path/` in the tar).
    Dir { path: String, mode: u32 },
    /// Symbolic link `path -> target` (target verbatim).
    Symlink { path: String, target: String },
    /// Hard link `path` to the archive member `target`.
    Hardlink { path: String, target: String },
    /// Deletes `path` from lower layers: writes an empty file `dirname/.wh.basename`.
    Whiteout { path: String },
    /// Hides everything lower layers put in `dir`: writes `dir/.wh..wh..opq`.
    Opaque { dir: String },
}

impl LayerEntry {
    /// The path of the tar member this entry produces.
    pub fn tar_path(&self) -> String {
        match self {
            LayerEntry::File { path, .. } | LayerEntry::Symlink { path, .. } | LayerEntry::Hardlink { path, .. } => {
                path.clone()
            }
            LayerEntry::Dir { path, .. } => {
                if path.ends_with('/') {
                    path.clone()
                } else {
                    format!("{path}/")
                }
            }
            LayerEntry::Whiteout { path } => {
                let p = path.trim_end_matches('/');
                match p.rfind('/') {
                    Some(i) => format!("{}/.wh.{}", &p[..i], &p[i + 1..]),
                    None => format!(".wh.{p}"),
                }
            }
            LayerEntry::Opaque { dir } => {
                let d = dir.trim_end_matches('/');
                if d.is_empty() {
                    ".wh..wh..opq".to_string()
                } else {
                    format!("{d}/.wh..wh..opq")
                }
            }
        }
    }
}

/// The busybox rootfs as a sorted list of entries (the single source of
/// truth for both [`build_rootfs`] and the image's base layer).
pub fn rootfs_entries() -> Result<Vec<LayerEntry>, Error> {
    let bb = busybox_path()?;
    let applets = applets_of(&bb)?;
    let busybox = fs::read(&bb).map_err(io_err("read", &bb))?;

    let mut dirs: BTreeMap<String, u32> = BTreeMap::new();
    for (d, m) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sbin", 0o755),
        ("sys", 0o555),
        ("tmp", 0o1777),
        ("usr", 0o755),
        ("usr/bin", 0o755),
        ("usr/sbin", 0o755),
        ("var", 0o755),
        ("var/www", 0o755),
    ] {
        dirs.insert(d.to_string(), m);
    }
    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    for a in &applets {
        // Every parent directory of an applet exists.
        let mut parent = Path::new(a).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            dirs.entry(p.to_string_lossy().into_owned()).or_insert(0o755);
            parent = p.parent();
        }
        // Relative target, so the link also resolves when the rootfs is
        // inspected from the host.
        let target = match a.rsplit_once('/') {
            Some(("bin", _)) => "busybox".to_string(),
            Some((parent, _)) => format!("{}bin/busybox", "../".repeat(parent.matches('/').count() + 1)),
            None => "bin/busybox".to_string(),
        };
        entries.insert(
            a.clone(),
            LayerEntry::Symlink {
                path: a.clone(),
                target,
            },
        );
    }
    for (d, m) in dirs {
        entries.insert(d.clone(), LayerEntry::Dir { path: d, mode: m });
    }
    let files: [(&str, &[u8], u32); 6] = [
        ("bin/busybox", &busybox[..], 0o755),
        (
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            0o644,
        ),
        ("etc/group", b"root:x:0:\nnobody:x:65534:\nnogroup:x:65534:\n", 0o644),
        (
            "etc/hosts",
            b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
            0o644,
        ),
        ("etc/resolv.conf", b"", 0o644),
        ("var/www/index.html", INDEX_HTML.as_bytes(), 0o644),
    ];
    for (p, c, m) in files {
        entries.insert(
            p.to_string(),
            LayerEntry::File {
                path: p.to_string(),
                content: c.to_vec(),
                mode: m,
            },
        );
    }
    Ok(entries.into_values().collect())
}

/// Write a busybox root filesystem into `dir` (created if missing; its own
/// mode is set to 0755 so non-root container users can traverse `/`):
/// `/bin/busybox`, one relative symlink per applet where
/// `busybox --list-full` puts it (`bin/`, `sbin/`, `usr/bin/`, `usr/sbin/`,
/// `linuxrc`), `/etc/passwd` (root, nobody 65534), `/etc/group` (root,
/// nobody and nogroup 65534), `/etc/hosts` (localhost), an empty
/// `/etc/resolv.conf`, empty `/proc /sys /dev /root(0700) /tmp(1777)`, and
/// `/var/www/index.html` = [`INDEX_HTML`]. Existing entries at those paths
/// are replaced; nothing else in `dir` is touched.
pub fn build_rootfs(dir: &Path) -> Result<(), Error> {
    let entries = rootfs_entries()?;
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    set_mode(dir, 0o755)?;
    for e in &entries {
        write_entry_to_dir(dir, e)?;
    }
    Ok(())
}

fn set_mode(p: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", p))
}

fn remove_existing(p: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(io_err("remove", p)),
        Ok(_) => fs::remove_file(p).map_err(io_err("remove", p)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("stat", p)(e)),
    }
}

fn write_entry_to_dir(root: &Path, e: &LayerEntry) -> Result<(), Error> {
    match e {
        LayerEntry::Dir { path, mode } => {
            let p = root.join(path);
            if fs::symlink_metadata(&p).map(|m| !m.is_dir()).unwrap_or(false) {
                remove_existing(&p)?;
            }
            fs::create_dir_all(&p).map_err(io_err("create directory", &p))?;
            set_mode(&p, *mode)
        }
        LayerEntry::File { path, content, mode } => {
            let p = root.join(path);
            remove_existing(&p)?;
            fs::write(&p, content).map_err(io_err("write", &p))?;
            set_mode(&p, *mode & 0o7777)
        }
        LayerEntry::Symlink { path, target } => {
            let p = root.join(path);
            remove_existing(&p)?;
            symlink(target, &p).map_err(io_err("symlink", &p))
        }
        LayerEntry::Hardlink { path, target } => {
            let p = root.join(path);
            remove_existing(&p)?;
            let t = root.join(target);
            fs::hard_link(&t, &p).map_err(io_err("hard link", &p))
        }
        LayerEntry::Whiteout { .. } | LayerEntry::Opaque { .. } => {
            // Only produced by tests' extra layers, never part of a rootfs dir.
            let p = root.join(e.tar_path());
            fs::write(&p, b"").map_err(io_err("write", &p))
        }
    }
}

// ---------------------------------------------------------------------------
// OCI bundle
// ---------------------------------------------------------------------------

/// The `config.json` that [`build_bundle`] writes: `runc spec` defaults with
/// `process.args = args`, `terminal: false`, `root.readonly: false`,
/// hostname [`BUNDLE_HOSTNAME`], namespaces pid, network, ipc, uts, mount
/// (no cgroup namespace, no `/sys/fs/cgroup` mount).
pub fn bundle_config(args: &[&str]) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": [format!("PATH={DEFAULT_PATH}"), "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps.clone(),
                "effective": caps.clone(),
                "permitted": caps,
            },
            "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": BUNDLE_HOSTNAME,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] }
        ],
        "linux": {
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// An OCI bundle in `dir`: `dir/rootfs` (see [`build_rootfs`]) and
/// `dir/config.json` (see [`bundle_config`]).
pub fn build_bundle(dir: &Path, args: &[&str]) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    build_rootfs(&dir.join("rootfs"))?;
    let cfg = serde_json::to_vec_pretty(&bundle_config(args)).expect("serializing a json Value");
    let p = dir.join("config.json");
    fs::write(&p, cfg).map_err(io_err("write", &p))
}

// ---------------------------------------------------------------------------
// Deterministic tar and gzip
// ---------------------------------------------------------------------------

fn tar_err(what: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Tar {
        what: what.to_string(),
        source,
    }
}

fn base_header(entry_type: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(entry_type);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(SOURCE_DATE_EPOCH);
    h.set_size(size);
    h
}

/// Append one member with its name and link name written byte for byte
/// (GNU long-name records for names over 100 bytes).
fn append_raw<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    link: Option<&str>,
    entry_type: tar::EntryType,
    mode: u32,
    data: &[u8],
) -> io::Result<()> {
    let long = |b: &mut tar::Builder<W>, kind: tar::EntryType, value: &str| -> io::Result<()> {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        let mut h = base_header(kind, 0o644, bytes.len() as u64);
        let n = b"././@LongLink";
        h.as_gnu_mut().unwrap().name[..n.len()].copy_from_slice(n);
        h.set_cksum();
        b.append(&h, &bytes[..])
    };
    if name.len() > 100 {
        long(b, tar::EntryType::GNULongName, name)?;
    }
    if let Some(l) = link.filter(|l| l.len() > 100) {
        long(b, tar::EntryType::GNULongLink, l)?;
    }
    let mut h = base_header(entry_type, mode, data.len() as u64);
    {
        let g = h.as_gnu_mut().unwrap();
        let nb = name.as_bytes();
        let k = nb.len().min(100);
        g.name = [0; 100];
        g.name[..k].copy_from_slice(&nb[..k]);
        if let Some(l) = link {
            let lb = l.as_bytes();
            let k = lb.len().min(100);
            g.linkname = [0; 100];
            g.linkname[..k].copy_from_slice(&lb[..k]);
        }
    }
    h.set_cksum();
    b.append(&h, data)
}

fn append_entry<W: Write>(b: &mut tar::Builder<W>, e: &LayerEntry) -> io::Result<()> {
    use tar::EntryType as T;
    let name = e.tar_path();
    match e {
        LayerEntry::File { content, mode, .. } => append_raw(b, &name, None, T::Regular, *mode, content),
        LayerEntry::Dir { mode, .. } => append_raw(b, &name, None, T::Directory, *mode, &[]),
        LayerEntry::Symlink { target, .. } => append_raw(b, &name, Some(target), T::Symlink, 0o777, &[]),
        LayerEntry::Hardlink { target, .. } => append_raw(b, &name, Some(target), T::Link, 0o644, &[]),
        LayerEntry::Whiteout { .. } | LayerEntry::Opaque { .. } => append_raw(b, &name, None, T::Regular, 0o644, &[]),
    }
}

/// An uncompressed layer tar of `entries`, in the given order, with
/// normalized headers (mtime [`SOURCE_DATE_EPOCH`], uid/gid 0, no names).
pub fn layer_tar(entries: &[LayerEntry]) -> Result<Vec<u8>, Error> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        append_entry(&mut b, e).map_err(tar_err("layer"))?;
    }
    b.into_inner().map_err(tar_err("layer"))
}

/// A tar of plain files (directories inferred from the paths), sorted.
fn files_tar(what: &str, files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>, Error> {
    let mut entries: BTreeMap<String, LayerEntry> = BTreeMap::new();
    for (path, content) in files {
        let mut parent = Path::new(path).parent();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let d = p.to_string_lossy().into_owned();
            entries.insert(d.clone(), LayerEntry::Dir { path: d, mode: 0o755 });
            parent = p.parent();
        }
        entries.insert(
            path.clone(),
            LayerEntry::File {
                path: path.clone(),
                content: content.clone(),
                mode: 0o644,
            },
        );
    }
    let mut b = tar::Builder::new(Vec::new());
    for e in entries.values() {
        append_entry(&mut b, e).map_err(tar_err(what))?;
    }
    b.into_inner().map_err(tar_err(what))
}

/// gzip with no timestamp, no file name, OS byte 255 ("unknown").
fn gzip(data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut enc = GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::with_capacity(data.len() / 2), Compression::new(6));
    enc.write_all(data).map_err(tar_err("gzip"))?;
    enc.finish().map_err(tar_err("gzip"))
}

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

// ---------------------------------------------------------------------------
// Images
// ---------------------------------------------------------------------------

/// Output format of [`build_image`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// Classic `docker save` tar: `manifest.json`, `<hex>.json` config,
    /// `<diffid-hex>/layer.tar` (uncompressed), `repositories`.
    DockerArchive,
    /// OCI image layout directory: `oci-layout`, `index.json`,
    /// `blobs/sha256/*` (gzip layers).
    OciDir,
    /// The OCI image layout packed into one tar.
    OciTar,
}

impl FromStr for ImageFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "docker" | "docker-archive" => Ok(ImageFormat::DockerArchive),
            "oci-dir" | "oci" => Ok(ImageFormat::OciDir),
            "oci-tar" | "oci-archive" => Ok(ImageFormat::OciTar),
            other => Err(Error::UnknownFormat(other.to_string())),
        }
    }
}

/// Split `name[:tag]` (tag defaults to `latest`); digests are refused.
/// Returns `(name, tag)`; the name is kept as given (not expanded to
/// `docker.io/library/...`).
pub fn split_reference(reference: &str) -> Result<(String, String), Error> {
    let bad = |reason: &str| Error::InvalidReference {
        reference: reference.to_string(),
        reason: reason.to_string(),
    };
    if reference.is_empty() {
        return Err(bad("empty"));
    }
    if reference.contains('@') {
        return Err(bad("digest references are not supported; use name:tag"));
    }
    let last_slash = reference.rfind('/').map(|i| i as isize).unwrap_or(-1);
    let (name, tag) = match reference.rfind(':') {
        Some(i) if i as isize > last_slash => (&reference[..i], &reference[i + 1..]),
        _ => (reference, "latest"),
    };
    if name.is_empty() || name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad("bad repository name"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-/:".contains(c))
    {
        return Err(bad("repository name must be lower-case [a-z0-9._-/]"));
    }
    if tag.is_empty()
        || tag.len() > 128
        || tag.starts_with(['.', '-'])
        || !tag.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(bad("bad tag"));
    }
    Ok((name.to_string(), tag.to_string()))
}

/// Architecture name (GOARCH style) of the host, which is the architecture
/// of the installed busybox-static: `amd64` here.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

struct Layer {
    tar: Vec<u8>,
    diff_id: String, // hex of sha256(tar)
}

fn config_json(layers: &[Layer]) -> Vec<u8> {
    let mut history = vec![json!({ "created": CREATED, "created_by": "minirun-fixtures: busybox-static rootfs" })];
    for i in 1..layers.len() {
        history.push(json!({ "created": CREATED, "created_by": format!("minirun-fixtures: extra layer {i}") }));
    }
    let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect();
    let cfg = json!({
        "architecture": host_architecture(),
        "config": {
            "Cmd": ["sh"],
            "Env": [format!("PATH={DEFAULT_PATH}")],
            "ExposedPorts": { "80/tcp": {} },
            "WorkingDir": "/"
        },
        "created": CREATED,
        "history": history,
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": diff_ids }
    });
    serde_json::to_vec(&cfg).expect("serializing a json Value")
}

/// A reproducible busybox image named `reference` (`name[:tag]`, tag
/// defaults to `latest`) written to `out`: a file for
/// [`ImageFormat::DockerArchive`] / [`ImageFormat::OciTar`], a directory for
/// [`ImageFormat::OciDir`]. One layer; config `Cmd ["sh"]`, `Env [PATH=…]`,
/// `WorkingDir "/"`, `ExposedPorts {"80/tcp":{}}`, os linux, architecture
/// of the host (amd64).
pub fn build_image(out: &Path, reference: &str, format: ImageFormat) -> Result<(), Error> {
    build_image_with_layers(out, reference, format, &[])
}

/// [`build_image`] with `extra_layers` stacked on top of the busybox layer,
/// each written in the order given (not sorted), paths verbatim.
pub fn build_image_with_layers(
    out: &Path,
    reference: &str,
    format: ImageFormat,
    extra_layers: &[Vec<LayerEntry>],
) -> Result<(), Error> {
    let (name, tag) = split_reference(reference)?;
    let mut layers = Vec::with_capacity(1 + extra_layers.len());
    let base = layer_tar(&rootfs_entries()?)?;
    layers.push(Layer {
        diff_id: sha256_hex(&base),
        tar: base,
    });
    for entries in extra_layers {
        let tar = layer_tar(entries)?;
        layers.push(Layer {
            diff_id: sha256_hex(&tar),
            tar,
        });
    }
    let config = config_json(&layers);
    match format {
        ImageFormat::DockerArchive => {
            let files = docker_archive_files(&name, &tag, &layers, config);
            write_file_atomic(out, &files_tar("docker archive", &files)?)
        }
        ImageFormat::OciDir => {
            let files = oci_layout_files(&name, &tag, &layers, config)?;
            if out.exists() && !out.is_dir() {
                return Err(Error::NotADirectory {
                    path: out.to_path_buf(),
                });
            }
            for (rel, data) in &files {
                let p = out.join(rel);
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
                }
                write_file_atomic(&p, data)?;
            }
            Ok(())
        }
        ImageFormat::OciTar => {
            let files = oci_layout_files(&name, &tag, &layers, config)?;
            write_file_atomic(out, &files_tar("oci archive", &files)?)
        }
    }
}

fn docker_archive_files(name: &str, tag: &str, layers: &[Layer], config: Vec<u8>) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_paths: Vec<String> = layers.iter().map(|l| format!("{}/layer.tar", l.diff_id)).collect();
    for (l, p) in layers.iter().zip(&layer_paths) {
        files.insert(p.clone(), l.tar.clone());
    }
    let manifest = json!([{
        "Config": config_name,
        "RepoTags": [format!("{name}:{tag}")],
        "Layers": layer_paths,
    }]);
    let top = &layers.last().expect("at least the base layer").diff_id;
    let repositories = json!({ name: { tag: top } });
    files.insert(config_name, config);
    files.insert("manifest.json".into(), serde_json::to_vec(&manifest).expect("json"));
    files.insert("repositories".into(), serde_json::to_vec(&repositories).expect("json"));
    files
}

fn oci_layout_files(
    name: &str,
    tag: &str,
    layers: &[Layer],
    config: Vec<u8>,
) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut files = BTreeMap::new();
    let mut layer_descs = Vec::new();
    for l in layers {
        let gz = gzip(&l.tar)?;
        let hex = sha256_hex(&gz);
        layer_descs.push(json!({
            "mediaType": MEDIA_TYPE_OCI_LAYER_GZIP,
            "digest": format!("sha256:{hex}"),
            "size": gz.len(),
        }));
        files.insert(format!("blobs/sha256/{hex}"), gz);
    }
    let config_hex = sha256_hex(&config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_MANIFEST,
        "config": {
            "mediaType": MEDIA_TYPE_OCI_CONFIG,
            "digest": format!("sha256:{config_hex}"),
            "size": config.len(),
        },
        "layers": layer_descs,
    });
    files.insert(format!("blobs/sha256/{config_hex}"), config);
    let manifest = serde_json::to_vec(&manifest).expect("json");
    let manifest_hex = sha256_hex(&manifest);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_OCI_INDEX,
        "manifests": [{
            "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "digest": format!("sha256:{manifest_hex}"),
            "size": manifest.len(),
            "platform": { "architecture": host_architecture(), "os": "linux" },
            "annotations": {
                ANNOTATION_CONTAINERD_NAME: format!("{name}:{tag}"),
                ANNOTATION_REF_NAME: tag,
            },
        }],
    });
    files.insert(format!("blobs/sha256/{manifest_hex}"), manifest);
    files.insert("index.json".into(), serde_json::to_vec(&index).expect("json"));
    files.insert("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
    Ok(files)
}

/// Write via a temporary sibling and rename, so readers never see half a file.
fn write_file_atomic(path: &Path, data: &[u8]) -> Result<(), Error> {
    let file_name = path.file_name().ok_or_else(|| Error::Io {
        op: "write",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
    })?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(io_err("create directory", parent))?;
    }
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tmp_name.push(format!(".tmp{}-{seq}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    fs::write(&tmp, data).map_err(io_err("write", &tmp))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io_err("rename into", path)(e)
    })
}

#[cfg(test)]
mod unit_tests;
