//! The seccomp filter of containers made from images, compiled once per
//! profile and loaded as BPF.
//!
//! libcontainer compiles `linux.seccomp` with libseccomp in every container's
//! init: 2 ms for docker's profile on the native architecture alone, 15-25 ms
//! with x86 and x32 beside x86_64. minirun compiles each resolved profile
//! once, keeps its BPF under `<data-root>/seccomp/<sha256>.bpf` (keyed by the
//! profile, the architecture and the libseccomp version; the program is
//! libseccomp's made compact by `seccomp_tree` when that decides the same)
//! and loads it itself:
//!
//! - the spec libcontainer gets has no `linux.seccomp`, and CAP_SYS_ADMIN and
//!   CAP_SETPCAP added to the process's bounding, effective and permitted
//!   sets (loading a filter without no_new_privs needs CAP_SYS_ADMIN, and
//!   shrinking the bounding set CAP_SETPCAP);
//! - [`ProcessExecutor`], libcontainer's last step in the init, loads the BPF,
//!   then sets the capabilities the spec asked for, then execs the process.
//!
//! The container's recorded spec (`config.json` in its state directory) is
//! the one asked for, so `exec` gets the filter and the capabilities from
//! libcontainer as usual. Only specs marked with [`ANNOTATION`] (minirun's
//! image specs) take this path; a bundle's `linux.seccomp` is applied by
//! libcontainer as written.

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{
    Arch, Capability, LinuxCapabilities, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, Process, Spec,
};
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use sha2::{Digest, Sha256};

use super::seccomp_tree;

/// Set (to "bpf") by `imagespec` on the specs that take this path.
pub const ANNOTATION: &str = "run.minirun.seccomp";

/// What a container's init needs to load its filter itself.
pub struct Prepared {
    /// the spec libcontainer runs (no seccomp, two more capabilities)
    pub spec: Spec,
    pub executor: FilterExecutor,
}

/// The spec to hand libcontainer and the executor that loads the filter, for
/// a spec marked with [`ANNOTATION`] that has a filter; None otherwise.
pub fn prepare(spec: &Spec, cache: &Path) -> Result<Option<Prepared>> {
    let marked = spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.get(ANNOTATION).is_some_and(|v| v == "bpf"));
    if !marked {
        return Ok(None);
    }
    let (Some(seccomp), Some(process)) = (spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()), spec.process())
    else {
        return Ok(None);
    };
    let Some((process, executor)) = prepare_process(seccomp, process, cache)? else {
        return Ok(None);
    };
    let mut launch = spec.clone();
    let mut linux = launch.linux().clone().unwrap_or_default();
    linux.set_seccomp(None);
    launch.set_linux(Some(linux));
    launch.set_process(Some(process));
    Ok(Some(Prepared { spec: launch, executor }))
}

/// A copy of a spec whose own `linux.seccomp` libcontainer applies, with
/// the `SCMP_CMP_MASKED_EQ` arguments in the order libcontainer 0.7 reads
/// them; None when there are none. runc (and [`cached_bpf`]) take `value` as
/// the mask and `valueTwo` as the value compared; libcontainer 0.7 takes
/// them the other way round, so they are swapped for it: the filter loaded
/// is the one written.
pub fn masked_args_for_libcontainer(spec: &Spec) -> Option<Spec> {
    let seccomp = spec.linux().as_ref()?.seccomp().as_ref()?;
    let mut changed = false;
    let mut syscalls = seccomp.syscalls().clone()?;
    for sc in syscalls.iter_mut() {
        let Some(mut args) = sc.args().clone() else { continue };
        for a in args.iter_mut() {
            if a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq {
                let (mask, value) = (a.value(), a.value_two().unwrap_or(0));
                *a = libcontainer::oci_spec::runtime::LinuxSeccompArgBuilder::default()
                    .index(a.index())
                    .value(value)
                    .value_two(mask)
                    .op(a.op())
                    .build()
                    .expect("all fields given");
                changed = true;
            }
        }
        sc.set_args(Some(args));
    }
    if !changed {
        return None;
    }
    let mut seccomp = seccomp.clone();
    seccomp.set_syscalls(Some(syscalls));
    let mut launch = spec.clone();
    let mut linux = launch.linux().clone().unwrap_or_default();
    linux.set_seccomp(Some(seccomp));
    launch.set_linux(Some(linux));
    Some(launch)
}

/// For a process to run under `seccomp` (its init, or one `exec` starts:
/// libcontainer 0.7 applies no filter to those): the process with the two
/// capabilities added and the executor that loads the filter and sets the
/// process's own capabilities. None for a filter with a notify listener,
/// which only libcontainer can set up.
pub fn prepare_process(
    seccomp: &LinuxSeccomp,
    process: &Process,
    cache: &Path,
) -> Result<Option<(Process, FilterExecutor)>> {
    if seccomp.listener_path().is_some() || libcontainer::seccomp::is_notify(seccomp) {
        return Ok(None);
    }
    let bpf = cached_bpf(seccomp, cache)?;
    let flags = seccomp.flags().iter().flatten().fold(0, |acc, f| {
        acc | match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => 1,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => 2,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => 4,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 32,
        }
    });
    let wanted = process.capabilities().clone().unwrap_or_else(empty_caps);
    let mut p = process.clone();
    let mut caps = wanted.clone();
    let with_extra = |set: &Option<std::collections::HashSet<Capability>>| {
        let mut s = set.clone().unwrap_or_default();
        s.insert(Capability::SysAdmin);
        s.insert(Capability::Setpcap);
        Some(s)
    };
    let (b, e, pm) = (
        with_extra(wanted.bounding()),
        with_extra(wanted.effective()),
        with_extra(wanted.permitted()),
    );
    caps.set_bounding(b).set_effective(e).set_permitted(pm);
    p.set_capabilities(Some(caps));
    Ok(Some((
        p,
        FilterExecutor {
            bpf: Arc::new(bpf),
            flags,
            caps: wanted,
        },
    )))
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    c.set_bounding(None)
        .set_effective(None)
        .set_permitted(None)
        .set_inheritable(None)
        .set_ambient(None);
    c
}

/// The BPF of `seccomp`: from the cache, or compiled and stored there.
fn cached_bpf(seccomp: &LinuxSeccomp, dir: &Path) -> Result<Vec<u8>> {
    let version = libseccomp::ScmpVersion::current()
        .map(|v| v.to_string())
        .unwrap_or_default();
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(seccomp)?);
    h.update(std::env::consts::ARCH);
    h.update(version);
    // the program's form: libseccomp's, made compact (see seccomp_tree)
    h.update(b"compact-1");
    let path: PathBuf = dir.join(format!("{}.bpf", hex::encode(h.finalize())));
    if let Ok(bytes) = fs::read(&path) {
        if !bytes.is_empty() && bytes.len() % 8 == 0 {
            return Ok(bytes);
        }
    }
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut bytes = libseccomp_bpf(seccomp)?;
    if let Some(short) = seccomp_tree::compact(seccomp, &seccomp_tree::from_bytes(&bytes)) {
        bytes = seccomp_tree::to_bytes(&short);
    }
    let mut tmp = tempfile::NamedTempFile::new_in(dir).context("cannot write a seccomp filter")?;
    tmp.as_file_mut().write_all(&bytes)?;
    // concurrent runs may write the same file: each rename is atomic
    tmp.persist(&path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot store {}", path.display()))?;
    Ok(bytes)
}

/// What an argument condition compares, as runc reads it: (the value
/// compared, the mask). For SCMP_CMP_MASKED_EQ `value` is the mask and
/// `valueTwo` the value; any other operator compares `value`, unmasked.
pub(super) fn compared(a: &LinuxSeccompArg) -> (u64, u64) {
    match a.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => (a.value_two().unwrap_or(0), a.value()),
        _ => (a.value(), u64::MAX),
    }
}

/// Whether a rule's conditions name one argument twice: each condition is
/// then a rule of its own (either matches), as libcontainer and runc read it.
pub(super) fn repeats_an_index(args: &[LinuxSeccompArg]) -> bool {
    let mut seen = HashSet::new();
    args.iter().any(|a| !seen.insert(a.index()))
}

/// libseccomp's BPF of `seccomp`.
pub(super) fn libseccomp_bpf(seccomp: &LinuxSeccomp) -> Result<Vec<u8>> {
    let mut out = tempfile::tempfile().context("cannot export the seccomp filter")?;
    compile(seccomp)?
        .export_bpf(&out)
        .context("cannot export the seccomp filter")?;
    let mut bytes = Vec::new();
    std::io::Seek::rewind(&mut out)?;
    std::io::Read::read_to_end(&mut out, &mut bytes)?;
    if bytes.is_empty() || bytes.len() % 8 != 0 {
        bail!("libseccomp exported a filter of {} bytes", bytes.len());
    }
    Ok(bytes)
}

pub(super) fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let errno = errno.map(|e| e as i32).unwrap_or(libc::EPERM);
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => ScmpAction::KillThread,
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(errno),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(u16::try_from(errno).context("errnoRet of a trace")?),
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActNotify => bail!("SCMP_ACT_NOTIFY needs libcontainer's listener"),
    })
}

pub(super) fn scmp_arch(a: Arch) -> Result<ScmpArch> {
    // libseccomp's names are the OCI names
    let name = serde_json::to_value(a)?;
    let name = name.as_str().unwrap_or_default();
    name.parse::<ScmpArch>()
        .map_err(|_| anyhow::anyhow!("architecture {name} unknown to libseccomp"))
}

/// The libseccomp filter of an OCI seccomp object, with libcontainer's
/// (and runc's) rules: unknown syscalls skipped, rules with the default
/// action skipped, conditions on one argument given twice added as
/// separate rules (either matches).
fn compile(s: &LinuxSeccomp) -> Result<ScmpFilterContext> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).context("libseccomp: new filter")?;
    // a binary tree of syscall numbers: the kernel walks the filter once per
    // syscall number and architecture when it loads it (its action cache),
    // so a filter searched in log(n) loads several times faster
    if let Err(e) = ctx.set_filter_attr(libseccomp::ScmpFilterAttr::CtlOptimize, 2) {
        tracing::debug!("libseccomp: no binary tree optimization: {e}");
    }
    for a in s.architectures().iter().flatten() {
        if *a != Arch::ScmpArchNative {
            ctx.add_arch(scmp_arch(*a)?)
                .with_context(|| format!("libseccomp: add architecture {a:?}"))?;
        }
    }
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret())?;
        if act == default {
            continue;
        }
        let conds: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(|a| {
                let (datum, mask) = compared(a);
                let op = match a.op() {
                    LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
                    LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
                    LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
                    LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
                    LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
                    LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
                    LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(mask),
                };
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        let repeated = repeats_an_index(rule.args().as_deref().unwrap_or_default());
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                tracing::debug!("seccomp: syscall {name} unknown to libseccomp, skipped");
                continue;
            };
            let added = if conds.is_empty() {
                ctx.add_rule(act, sc)
            } else if repeated {
                conds
                    .iter()
                    .try_for_each(|c| ctx.add_rule_conditional(act, sc, std::slice::from_ref(c)).map(|_| ()))
                    .map(|_| &mut ctx)
            } else {
                ctx.add_rule_conditional(act, sc, &conds)
            };
            added.with_context(|| format!("libseccomp: rule for {name}"))?;
        }
    }
    Ok(ctx)
}

/// What [`ProcessExecutor`] does first in a filtered init: loads the filter
/// and sets the capabilities the spec asked for.
#[derive(Clone)]
pub struct FilterExecutor {
    bpf: Arc<Vec<u8>>,
    /// SECCOMP_FILTER_FLAG_*
    flags: libc::c_ulong,
    caps: LinuxCapabilities,
}

/// libcontainer's last step in every container's init (and every exec'd
/// process): the filter when there is one, then the process.
///
/// minirun ignores SIGPIPE while it changes state (see `main.rs`), and an
/// ignored disposition survives exec: the process gets the default back here,
/// as it would from runc, whose Go runtime does not ignore it.
#[derive(Clone, Default)]
pub struct ProcessExecutor {
    pub filter: Option<FilterExecutor>,
}

impl Executor for ProcessExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // SAFETY: the init is single-threaded; restoring a default disposition.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        if let Some(f) = &self.filter {
            f.load_and_drop().map_err(|e| ExecutorError::Other(format!("{e:#}")))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

impl FilterExecutor {
    pub(crate) fn load_and_drop(&self) -> Result<()> {
        let filters: Vec<libc::sock_filter> = self
            .bpf
            .chunks_exact(8)
            .map(|c| libc::sock_filter {
                code: u16::from_ne_bytes([c[0], c[1]]),
                jt: c[2],
                jf: c[3],
                k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect();
        let prog = libc::sock_fprog {
            len: u16::try_from(filters.len()).context("seccomp filter too long")?,
            filter: filters.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prog points at `filters`, alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot load the seccomp filter");
        }
        let set = |s: &Option<HashSet<Capability>>| -> caps::CapsHashSet {
            s.iter()
                .flatten()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str()?.parse::<caps::Capability>().ok())
                .collect()
        };
        let bounding = set(self.caps.bounding());
        for c in caps::read(None, caps::CapSet::Bounding)? {
            if !bounding.contains(&c) {
                caps::drop(None, caps::CapSet::Bounding, c)?;
            }
        }
        caps::set(None, caps::CapSet::Effective, &set(self.caps.effective()))?;
        caps::set(None, caps::CapSet::Permitted, &set(self.caps.permitted()))?;
        caps::set(None, caps::CapSet::Inheritable, &set(self.caps.inheritable()))?;
        Ok(())
    }
}
