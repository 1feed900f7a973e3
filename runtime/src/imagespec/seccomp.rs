//! Seccomp profiles in docker's format (a superset of the OCI `linux.seccomp`
//! object): minirun's default, embedded from `seccomp_default.json`, and the
//! files given with `--security-opt seccomp=FILE`.
//!
//! A profile's rules may carry `includes`/`excludes` conditions on the
//! container's capabilities, the architecture and the running kernel, and an
//! `archMap` from the native architecture to the ones it also runs (x86 and
//! x32 beside x86_64). [`Profile::resolve`] turns them into the plain OCI
//! `LinuxSeccomp` for one container, as docker does; `oci::seccomp_bpf`
//! compiles it once and loads the BPF in the container's init.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libcontainer::oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag, LinuxSyscall,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

const DEFAULT_PROFILE: &str = include_str!("seccomp_default.json");

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read seccomp profile {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid seccomp profile {path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// A docker (or OCI) seccomp profile, before its conditions are resolved.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    /// OCI's form: the architectures themselves.
    #[serde(default)]
    architectures: Option<Vec<Arch>>,
    /// docker's form: for each native architecture, the ones it also runs.
    #[serde(default)]
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    #[serde(default)]
    listener_path: Option<PathBuf>,
    #[serde(default)]
    listener_metadata: Option<String>,
    #[serde(default)]
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMap {
    architecture: Arch,
    #[serde(default)]
    sub_architectures: Option<Vec<Arch>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Condition,
    #[serde(default)]
    excludes: Condition,
}

/// `includes` (every part must hold) or `excludes` (any part that holds
/// drops the rule). Architectures are Go's names, as in docker (amd64, arm64).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    #[serde(default)]
    arches: Option<Vec<String>>,
    #[serde(default)]
    caps: Option<Vec<String>>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// What a profile's conditions are resolved against.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// Go's name of the architecture (amd64, arm64, ...)
    pub arch: &'a str,
    /// libseccomp's name of the native architecture
    pub scmp_arch: Option<Arch>,
    /// (major, minor) of the running kernel
    pub kernel: (u32, u32),
    /// the container's capabilities (CAP_...), its bounding set
    pub caps: &'a [String],
    /// whether the kernel runs x32 system calls (x86_64 kernels build them in
    /// but most, Debian's among them, leave them off: `syscall.x32=y`)
    pub x32: bool,
}

impl Target<'_> {
    /// This build's architecture and the running kernel.
    pub fn host(caps: &[String]) -> Target<'_> {
        let (arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", Some(Arch::ScmpArchX86_64)),
            "x86" => ("386", Some(Arch::ScmpArchX86)),
            "aarch64" => ("arm64", Some(Arch::ScmpArchAarch64)),
            "arm" => ("arm", Some(Arch::ScmpArchArm)),
            "s390x" => ("s390x", Some(Arch::ScmpArchS390x)),
            "riscv64" => ("riscv64", Some(Arch::ScmpArchRiscv64)),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", Some(Arch::ScmpArchPpc64le)),
            "powerpc64" => ("ppc64", Some(Arch::ScmpArchPpc64)),
            "loongarch64" => ("loong64", Some(Arch::ScmpArchLoongarch64)),
            other => (other, None),
        };
        Target {
            arch,
            scmp_arch,
            kernel: running_kernel(),
            caps,
            x32: scmp_arch == Some(Arch::ScmpArchX86_64) && kernel_runs_x32(),
        }
    }
}

/// Whether an x32 `getpid` works: ENOSYS where the kernel leaves x32 off.
/// Under a seccomp filter of its own (minirun in a container) the probe
/// could be answered with SIGSYS, so there it is not made and x32 is kept.
fn kernel_runs_x32() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: PR_GET_SECCOMP only reads this thread's mode.
        if unsafe { libc::prctl(libc::PR_GET_SECCOMP) } != 0 {
            return true;
        }
        const X32_SYSCALL_BIT: libc::c_long = 0x4000_0000;
        // SAFETY: getpid has no arguments and no effects.
        unsafe { libc::syscall(X32_SYSCALL_BIT | libc::SYS_getpid) >= 0 }
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// (major, minor) of `uname -r`; (0, 0) when unreadable (no minKernel rule holds).
fn running_kernel() -> (u32, u32) {
    static KERNEL: OnceLock<(u32, u32)> = OnceLock::new();
    *KERNEL.get_or_init(|| {
        nix::sys::utsname::uname()
            .ok()
            .and_then(|u| parse_kernel(&u.release().to_string_lossy()))
            .unwrap_or((0, 0))
    })
}

/// "6.18.44-fc" -> (6, 18); "4.8" -> (4, 8).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().and_then(|m| m.parse().ok()).unwrap_or(0);
    Some((major, minor))
}

impl Profile {
    /// minirun's default profile (parsed once per process).
    pub fn default_profile() -> &'static Profile {
        static DEFAULT: OnceLock<Profile> = OnceLock::new();
        DEFAULT.get_or_init(|| {
            Profile::parse(DEFAULT_PROFILE.as_bytes(), Path::new("(default)"))
                .expect("the embedded default seccomp profile is valid")
        })
    }

    /// [`Profile::resolve`] of the default profile for `t`, as JSON, kept in
    /// `cache` (a run reads 5 kB instead of parsing and resolving the 11 kB
    /// profile: half a millisecond here). Keyed by the profile this binary
    /// embeds and everything `t` holds; a cache that cannot be read or
    /// written is skipped.
    pub fn default_resolved(t: &Target, cache: Option<&Path>) -> serde_json::Value {
        let resolve = || serde_json::to_value(Profile::default_profile().resolve(t)).expect("a seccomp object is JSON");
        let Some(dir) = cache else {
            return resolve();
        };
        let mut h = Sha256::new();
        h.update(DEFAULT_PROFILE);
        h.update(format!(
            "\0{}\0{:?}\0{:?}\0{}\0{}",
            t.arch,
            t.scmp_arch,
            t.kernel,
            t.caps.join(","),
            t.x32
        ));
        let path = dir.join(format!("default-{}.json", hex::encode(h.finalize())));
        if let Ok(v) = std::fs::read(&path).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
            if let Ok(v) = v.map_err(|e| tracing::debug!("{}: {e}", path.display())) {
                return v;
            }
        }
        let v = resolve();
        // concurrent runs may write the same file: each rename is atomic
        let stored = std::fs::create_dir_all(dir)
            .and_then(|()| tempfile::NamedTempFile::new_in(dir))
            .and_then(|mut f| {
                serde_json::to_writer(&mut f, &v)?;
                f.persist(&path).map_err(|e| e.error)
            });
        if let Err(e) = stored {
            tracing::debug!("cannot keep the resolved seccomp profile in {}: {e}", dir.display());
        }
        v
    }

    /// Reads a profile file, checking everything a container would trip on later.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Profile::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<Profile, ProfileError> {
        let invalid = |what: String| ProfileError::Invalid {
            path: path.to_path_buf(),
            what,
        };
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let profile: Profile = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            let inner = e.into_inner();
            if at == "." {
                invalid(inner.to_string())
            } else {
                invalid(format!("{at}: {inner}"))
            }
        })?;
        if profile.architectures.is_some() && profile.arch_map.is_some() {
            return Err(invalid("give architectures or archMap, not both".into()));
        }
        if profile.default_action == LinuxSeccompAction::ScmpActNotify {
            return Err(invalid("defaultAction cannot be SCMP_ACT_NOTIFY".into()));
        }
        for (i, rule) in profile.syscalls.iter().flatten().enumerate() {
            let names = rule.names();
            if rule.name.is_some() && rule.names.is_some() {
                return Err(invalid(format!("syscalls[{i}]: give name or names, not both")));
            }
            if names.is_empty() || names.iter().any(|n| n.is_empty()) {
                return Err(invalid(format!("syscalls[{i}]: no syscall name")));
            }
            for cond in [&rule.includes, &rule.excludes] {
                if let Some(k) = &cond.min_kernel {
                    if !k.chars().next().is_some_and(|c| c.is_ascii_digit()) || parse_kernel(k).is_none() {
                        return Err(invalid(format!("syscalls[{i}]: bad minKernel \"{k}\"")));
                    }
                }
            }
            for (j, arg) in rule.args.iter().flatten().enumerate() {
                if arg.index() > 5 {
                    return Err(invalid(format!(
                        "syscalls[{i}].args[{j}]: index {} (a syscall has 6 arguments)",
                        arg.index()
                    )));
                }
            }
        }
        Ok(profile)
    }

    /// The OCI seccomp object for one container.
    pub fn resolve(&self, t: &Target) -> LinuxSeccomp {
        let architectures = match (&self.architectures, &self.arch_map) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(map)) => map
                .iter()
                .find(|m| Some(m.architecture) == t.scmp_arch)
                .map(|m| std::iter::once(m.architecture).chain(m.sub_architectures.iter().flatten().copied()))
                // x32 only where the kernel runs it: elsewhere its system
                // calls fail anyway (ENOSYS without a filter, SIGSYS with
                // this one), and its rules are a third of docker's filter
                // (1,227 BPF instructions with it, 855 without), which the
                // kernel converts and JITs at every container start.
                .map(|archs| archs.filter(|a| *a != Arch::ScmpArchX32 || t.x32).collect()),
            (None, None) => None,
        };
        let syscalls: Vec<LinuxSyscall> = self
            .syscalls
            .iter()
            .flatten()
            .filter(|r| r.includes.all_hold(t) && !r.excludes.any_holds(t))
            .map(|r| {
                let mut s = LinuxSyscall::default();
                s.set_names(r.names()).set_action(r.action).set_errno_ret(r.errno_ret);
                s.set_args(r.args.clone());
                s
            })
            .collect();
        let mut out = LinuxSeccomp::default();
        out.set_default_action(self.default_action)
            .set_default_errno_ret(self.default_errno_ret)
            .set_architectures(architectures)
            .set_flags(self.flags.clone())
            .set_listener_path(self.listener_path.clone())
            .set_listener_metadata(self.listener_metadata.clone())
            .set_syscalls(Some(syscalls));
        out
    }
}

impl Rule {
    fn names(&self) -> Vec<String> {
        self.name.iter().chain(self.names.iter().flatten()).cloned().collect()
    }
}

impl Condition {
    fn all_hold(&self, t: &Target) -> bool {
        self.arches
            .as_ref()
            .is_none_or(|a| a.is_empty() || a.iter().any(|a| a == t.arch))
            && self.caps.iter().flatten().all(|c| t.caps.contains(c))
            && self.min_kernel.as_deref().is_none_or(|k| kernel_at_least(t, k))
    }

    fn any_holds(&self, t: &Target) -> bool {
        self.arches.iter().flatten().any(|a| a == t.arch)
            || self.caps.iter().flatten().any(|c| t.caps.contains(c))
            || self.min_kernel.as_deref().is_some_and(|k| kernel_at_least(t, k))
    }
}

fn kernel_at_least(t: &Target, min: &str) -> bool {
    parse_kernel(min).is_some_and(|m| t.kernel >= m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(list: &[&str]) -> Vec<String> {
        list.iter().map(|c| c.to_string()).collect()
    }

    fn target(caps: &[String]) -> Target<'_> {
        Target {
            arch: "amd64",
            scmp_arch: Some(Arch::ScmpArchX86_64),
            kernel: (6, 1),
            caps,
            x32: true,
        }
    }

    fn names_with(s: &LinuxSeccomp, action: LinuxSeccompAction) -> Vec<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == action && r.args().is_none())
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn the_x32_probe_is_not_made_under_a_filter() {
        // A child under a filter that kills x32 system calls: the probe
        // must not be made there (it would die of SIGSYS).
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let filter = [
                    // the system call number
                    libc::sock_filter {
                        code: 0x20,
                        jt: 0,
                        jf: 0,
                        k: 0,
                    },
                    // x32 (bit 30): kill; anything else: allow
                    libc::sock_filter {
                        code: 0x45,
                        jt: 0,
                        jf: 1,
                        k: 0x4000_0000,
                    },
                    libc::sock_filter {
                        code: 0x06,
                        jt: 0,
                        jf: 0,
                        k: 0x8000_0000,
                    },
                    libc::sock_filter {
                        code: 0x06,
                        jt: 0,
                        jf: 0,
                        k: 0x7fff_0000,
                    },
                ];
                let prog = libc::sock_fprog {
                    len: filter.len() as u16,
                    filter: filter.as_ptr() as *mut _,
                };
                unsafe {
                    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
                    if libc::prctl(libc::PR_SET_SECCOMP, 2, &prog as *const libc::sock_fprog) != 0 {
                        libc::_exit(2);
                    }
                }
                let kept = kernel_runs_x32();
                unsafe { libc::_exit(if kept { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Exited(child, 0),
                    "under a filter x32 must be kept, without probing"
                );
            }
        }
        // Without one the probe says what the kernel does.
        let pid = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        assert_eq!(kernel_runs_x32(), pid >= 0);
    }

    #[test]
    fn default_profile_resolves_like_docker() {
        let c = caps(&crate::imagespec::DEFAULT_CAPS);
        let s = Profile::default_profile().resolve(&target(&c));
        assert_eq!(s.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(s.default_errno_ret(), Some(1));
        assert_eq!(
            s.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        // a kernel that leaves x32 off gets no x32 rules
        let no_x32 = Target {
            x32: false,
            ..target(&c)
        };
        let s32 = Profile::default_profile().resolve(&no_x32);
        assert_eq!(
            s32.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86][..])
        );
        assert_eq!(s32.syscalls(), s.syscalls(), "only the architectures differ");
        let allowed = names_with(&s, LinuxSeccompAction::ScmpActAllow);
        for n in ["read", "execve", "arch_prctl", "ptrace", "chroot", "modify_ldt"] {
            assert!(allowed.contains(&n.to_string()), "{n} not allowed");
        }
        for n in [
            "unshare",
            "keyctl",
            "add_key",
            "mount",
            "setns",
            "reboot",
            "bpf",
            "sync_file_range2",
        ] {
            assert!(!allowed.contains(&n.to_string()), "{n} allowed without its capability");
        }
        // clone only without namespace flags, clone3 answers ENOSYS
        let clone = s.syscalls().iter().flatten().find(|r| r.names() == &["clone"]).unwrap();
        assert_eq!(clone.args().as_ref().unwrap()[0].index(), 0);
        assert_eq!(clone.args().as_ref().unwrap()[0].value(), 0x7E02_0000);
        let clone3 = s
            .syscalls()
            .iter()
            .flatten()
            .find(|r| r.names() == &["clone3"])
            .unwrap();
        assert_eq!(
            (clone3.action(), clone3.errno_ret()),
            (LinuxSeccompAction::ScmpActErrno, Some(38))
        );
        let personality = s
            .syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names() == &["personality"])
            .count();
        assert_eq!(personality, 5);
    }

    #[test]
    fn capabilities_open_their_syscalls() {
        let mut c = caps(&crate::imagespec::DEFAULT_CAPS);
        c.push("CAP_SYS_ADMIN".into());
        let s = Profile::default_profile().resolve(&target(&c));
        let allowed = names_with(&s, LinuxSeccompAction::ScmpActAllow);
        for n in ["unshare", "mount", "setns", "clone", "clone3"] {
            assert!(allowed.contains(&n.to_string()), "{n} not allowed with CAP_SYS_ADMIN");
        }
        assert!(
            !s.syscalls().iter().flatten().any(|r| r.errno_ret() == Some(38)),
            "clone3 is not refused with CAP_SYS_ADMIN"
        );
        // an old kernel: ptrace only with CAP_SYS_PTRACE
        let old = Target {
            kernel: (4, 4),
            ..target(&c)
        };
        let allowed = names_with(
            &Profile::default_profile().resolve(&old),
            LinuxSeccompAction::ScmpActAllow,
        );
        assert!(!allowed.contains(&"ptrace".to_string()));
    }

    #[test]
    fn oci_profiles_and_errors() {
        let p = Profile::parse(
            br#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                 "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#,
            Path::new("p.json"),
        )
        .unwrap();
        let s = p.resolve(&target(&[]));
        assert_eq!(s.architectures().as_deref(), Some(&[Arch::ScmpArchX86_64][..]));
        assert_eq!(s.syscalls().as_ref().unwrap()[0].names(), &["mkdir", "mkdirat"]);
        for (text, needle) in [
            (r#"{"defaultAction":"SCMP_ACT_NOPE"}"#, "defaultAction: unknown variant"),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":1,"op":"EQ"}]}]}"#,
                "syscalls[0].args[0].op",
            ),
            (
                r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"action":"SCMP_ACT_ERRNO"}]}"#,
                "syscalls[0]: no syscall name",
            ),
            (r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["x"]"#, "EOF"),
            ("", "EOF"),
        ] {
            let err = Profile::parse(text.as_bytes(), Path::new("/x/p.json"))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with("invalid seccomp profile /x/p.json: ") && err.contains(needle),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn the_resolved_default_profile_is_kept_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let files = || -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v
        };
        let admin = caps(&["CAP_CHOWN", "CAP_SYS_ADMIN"]);
        let plain = caps(&["CAP_CHOWN"]);
        let fresh = |c: &[String]| serde_json::to_value(Profile::default_profile().resolve(&target(c))).unwrap();
        let first = Profile::default_resolved(&target(&admin), Some(dir.path()));
        assert_eq!(first, fresh(&admin));
        let kept = files();
        assert_eq!(kept.len(), 1, "{kept:?}");
        // a second run reads what the first kept
        std::fs::write(&kept[0], r#"{"defaultAction":"SCMP_ACT_LOG"}"#).unwrap();
        let second = Profile::default_resolved(&target(&admin), Some(dir.path()));
        assert_eq!(second, serde_json::json!({"defaultAction": "SCMP_ACT_LOG"}));
        // other capabilities: another entry, resolved for them
        let other = Profile::default_resolved(&target(&plain), Some(dir.path()));
        assert_eq!(other, fresh(&plain));
        assert_ne!(other, first);
        assert_eq!(files().len(), 2);
        // an unreadable entry is resolved again and replaced
        std::fs::write(&kept[0], "{torn").unwrap();
        assert_eq!(Profile::default_resolved(&target(&admin), Some(dir.path())), first);
        let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&kept[0]).unwrap()).unwrap();
        assert_eq!(back, first);
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("5"), Some((5, 0)));
        assert_eq!(parse_kernel("x"), None);
    }
}

#[cfg(test)]
mod cost {
    use super::*;
    use std::time::Instant;

    /// What the default profile costs a run, piece by piece (by hand, as root:
    /// `cargo test -p minirun seccomp_cost -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn seccomp_cost() {
        let caps: Vec<String> = crate::imagespec::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
        let t = Instant::now();
        let p = Profile::parse(DEFAULT_PROFILE.as_bytes(), Path::new("d")).unwrap();
        let parse = t.elapsed();
        let t = Instant::now();
        let s = p.resolve(&Target::host(&caps));
        let resolve = t.elapsed();
        let t = Instant::now();
        let text = serde_json::to_string(&s).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&text).unwrap();
        let json = t.elapsed();
        eprintln!(
            "parse {parse:?} resolve {resolve:?} json round trip {json:?} ({} bytes)",
            text.len()
        );
        let root = tempfile::tempdir().unwrap();
        let mut process = libcontainer::oci_spec::runtime::Process::default();
        process.set_capabilities(None);
        for i in 0..3 {
            let t = Instant::now();
            let (_, exec) = crate::oci::seccomp_bpf::prepare_process(&back, &process, root.path())
                .unwrap()
                .unwrap();
            eprintln!(
                "prepare (cache {}) {:?}",
                if i == 0 { "miss" } else { "hit" },
                t.elapsed()
            );
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => {
                    let t = Instant::now();
                    let ok = exec.load_and_drop().is_ok();
                    eprintln!("  BPF load + capabilities {:?} ok={ok}", t.elapsed());
                    unsafe { libc::_exit(0) };
                }
                nix::unistd::ForkResult::Parent { child } => {
                    nix::sys::wait::waitpid(child, None).unwrap();
                }
            }
        }
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let t = Instant::now();
                let ok = libcontainer::seccomp::initialize_seccomp(&back).is_ok();
                eprintln!("libcontainer's compile + load: {:?} ok={ok}", t.elapsed());
                unsafe { libc::_exit(0) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).unwrap();
            }
        }
    }
}
