//! A container's cgroup, through systemd or cgroupfs.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context, Result};
use libcgroups::common::{AnyCgroupManager, CgroupConfig, CgroupManager, CreateCgroupSetupError, FreezerState};
use libcontainer::oci_spec::runtime::Spec;

use crate::util::poll;

/// The manager of container `id`'s cgroup at `cgroup_path`, through systemd
/// or cgroupfs (see [`super::StateRoot::with_systemd`]).
pub fn manager(id: &str, cgroup_path: PathBuf, systemd: bool) -> Result<AnyCgroupManager, CreateCgroupSetupError> {
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path,
        systemd_cgroup: systemd,
        container_name: id.to_string(),
    })
}

type ManagerKey = (String, PathBuf, bool);

thread_local! {
    /// The managers this process opened for [`kill_once`] and [`kill_all`]
    /// of systemd cgroups (see [`Killer`]).
    static MANAGERS: RefCell<HashMap<ManagerKey, Rc<AnyCgroupManager>>> = RefCell::new(HashMap::new());
}

/// How the processes of a container's cgroup are found, killed and thawed.
enum Killer {
    /// A cgroupfs path (relative to the hierarchies' roots): read directly,
    /// in every hierarchy, on every round. Opening a libcgroups manager
    /// instead reads /proc/self/mountinfo once per v1 controller through
    /// pathrs's checked procfs (about 3 ms of CPU), first thing in `rm -f`.
    Dirs(PathBuf),
    /// A systemd `slice:prefix:name` path: through libcgroups.
    Manager(Rc<AnyCgroupManager>),
}

impl Killer {
    fn new(key: &ManagerKey) -> Result<Killer, CreateCgroupSetupError> {
        let (id, cgroup_path, systemd) = key;
        if !*systemd && is_cgroupfs_path(cgroup_path) {
            return Ok(Killer::Dirs(cgroup_path.clone()));
        }
        if let Some(m) = MANAGERS.with(|c| c.borrow().get(key).cloned()) {
            return Ok(Killer::Manager(m));
        }
        let m = Rc::new(manager(id, cgroup_path.clone(), *systemd)?);
        MANAGERS.with(|c| c.borrow_mut().insert(key.clone(), m.clone()));
        Ok(Killer::Manager(m))
    }

    /// The cgroup's directories as they are now (it may be made meanwhile,
    /// or removed): for one round of [`kill_listed`].
    fn dirs(&self) -> Vec<PathBuf> {
        match self {
            Killer::Dirs(path) => hierarchy_dirs(path).unwrap_or_default(),
            Killer::Manager(_) => Vec::new(),
        }
    }

    /// The pids the cgroup (in `dirs`, see [`Killer::dirs`]) and those below it list.
    fn pids(&self, dirs: &[PathBuf]) -> Vec<nix::unistd::Pid> {
        match self {
            Killer::Manager(m) => m.get_all_pids().unwrap_or_default(),
            Killer::Dirs(_) => {
                let mut pids = std::collections::BTreeSet::new();
                for dir in dirs {
                    collect_pids(dir, &mut pids);
                }
                pids.into_iter().map(nix::unistd::Pid::from_raw).collect()
            }
        }
    }

    /// Thaws the cgroup if it still exists, creating nothing: libcgroups'
    /// v1 `freeze` first creates the freezer directory, so thawing a cgroup
    /// that the container's monitor removed meanwhile (its processes died
    /// of our SIGKILL) would leave an empty freezer cgroup behind for every
    /// `rm -f`. (Its v2 `freeze`, for systemd cgroups, creates nothing.)
    fn thaw(&self, dirs: &[PathBuf]) {
        match self {
            Killer::Manager(m) => {
                let _ = m.freeze(FreezerState::Thawed);
            }
            Killer::Dirs(_) => {
                for dir in dirs {
                    for (file, thawed) in [("freezer.state", "THAWED"), ("cgroup.freeze", "0")] {
                        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(dir.join(file)) {
                            let _ = std::io::Write::write_all(&mut f, thawed.as_bytes());
                        }
                    }
                }
            }
        }
    }
}

/// Adds what `dir/cgroup.procs` and the cgroups below it list to `pids`.
fn collect_pids(dir: &std::path::Path, pids: &mut std::collections::BTreeSet<i32>) {
    pids.extend(listed(dir));
    for child in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if child.file_type().is_ok_and(|t| t.is_dir()) {
            collect_pids(&child.path(), pids);
        }
    }
}

/// SIGKILLs every process in a cgroup, waits for them to go, removes it.
pub fn kill_all(id: &str, cgroup_path: PathBuf, systemd: bool) -> Result<()> {
    let key = (id.to_string(), cgroup_path, systemd);
    let killer = Killer::new(&key).with_context(|| format!("cgroup of {id}"))?;
    poll::until(KILL_DEADLINE, || kill_listed(&killer) == 0);
    match killer {
        Killer::Dirs(path) => remove_stopped(&path).map(|_| ()),
        Killer::Manager(m) => {
            MANAGERS.with(|c| c.borrow_mut().remove(&key));
            m.remove().with_context(|| format!("cannot remove the cgroup of {id}"))
        }
    }
}

/// How long the processes of a cgroup may take to die once SIGKILLed (a
/// loaded machine takes far more than libcgroups' 100 ms of rmdir retries).
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// SIGKILLs every process in a cgroup and waits until it lists none (up to
/// [`KILL_DEADLINE`]); the cgroup stays. False when it cannot be opened.
pub fn kill_until_empty(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
    match Killer::new(&(id.to_string(), cgroup_path, systemd)) {
        Ok(k) => poll::until(KILL_DEADLINE, || kill_listed(&k) == 0),
        Err(_) => false,
    }
}

/// SIGKILLs every process in a cgroup once, without waiting; false when
/// the cgroup cannot be opened.
pub fn kill_once(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
    match Killer::new(&(id.to_string(), cgroup_path, systemd)) {
        Ok(k) => {
            kill_listed(&k);
            true
        }
        Err(_) => false,
    }
}

/// SIGKILLs the processes the cgroup lists and thaws it (on cgroup v1 a
/// frozen process only dies once thawed); how many there were. It never
/// freezes: a minirun killed between a freeze and its thaw would leave the
/// container frozen for good, its creator waiting on it forever. Callers
/// repeat it until nothing is listed, which also catches processes forked
/// meanwhile.
fn kill_listed(killer: &Killer) -> usize {
    let dirs = killer.dirs();
    let pids = killer.pids(&dirs);
    for pid in &pids {
        let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
    }
    killer.thaw(&dirs);
    pids.len()
}

/// The pids `dir/cgroup.procs` lists (none when it cannot be read).
fn listed(dir: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .collect()
}

/// Best effort: remove the cgroup a failed create may have made.
pub fn remove_for(spec: &Spec, id: &str, systemd: bool) {
    let path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .unwrap_or_else(|| crate::spec::default_cgroup_path(id));
    if let Ok(manager) = manager(id, path, systemd) {
        let _ = manager.remove();
    }
}

/// Whether the sub-cgroup `sub` (relative) of the cgroup at `cgroup_path`
/// exists, in every v1 hierarchy libcontainer moves a process into, or in
/// the v2 tree.
pub fn sub_cgroup_exists(cgroup_path: &std::path::Path, sub: &str) -> bool {
    use libcgroups::common::{get_cgroup_setup, CgroupSetup};
    use libcgroups::v1::{util::get_subsystem_mount_point, ControllerType as C};
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path).join(sub);
    match get_cgroup_setup() {
        Ok(CgroupSetup::Unified) => std::path::Path::new(libcgroups::common::DEFAULT_CGROUP_ROOT)
            .join(rel)
            .is_dir(),
        _ => [
            C::Cpu,
            C::CpuAcct,
            C::CpuSet,
            C::Devices,
            C::Memory,
            C::Pids,
            C::Blkio,
            C::Freezer,
        ]
        .iter()
        .filter_map(|c| get_subsystem_mount_point(c).ok())
        .all(|m| m.join(&rel).is_dir()),
    }
}

/// The directories of the cgroup at `cgroup_path` (relative to the
/// hierarchies' roots) in every v1 hierarchy, or in the v2 tree, that
/// exist. None for a systemd `slice:prefix:name` path (systemd's to manage)
/// and for the root cgroup.
fn hierarchy_dirs(cgroup_path: &std::path::Path) -> Option<Vec<PathBuf>> {
    if !is_cgroupfs_path(cgroup_path) {
        return None;
    }
    let rel = cgroup_path.to_string_lossy();
    let base = std::path::Path::new("/sys/fs/cgroup");
    let roots: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
        vec![base.to_path_buf()]
    } else {
        std::fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    Some(
        roots
            .into_iter()
            .map(|root| root.join(rel.trim_start_matches('/')))
            .filter(|dir| dir.is_dir())
            .collect(),
    )
}

/// Whether `cgroup_path` names a cgroupfs cgroup below the root (not a
/// systemd `slice:prefix:name`).
fn is_cgroupfs_path(cgroup_path: &std::path::Path) -> bool {
    let rel = cgroup_path.to_string_lossy();
    !rel.contains(':') && !rel.trim_matches('/').is_empty()
}

/// Removes the cgroups nested below a container's (made by a process in it,
/// or by `exec --cgroup`), deepest first, SIGKILLing what they hold:
/// libcgroups removes only the container's own directory, which fails
/// while any child exists. cgroupfs paths only (a systemd `slice:prefix:name`
/// is systemd's to clean up).
pub fn remove_nested(cgroup_path: &std::path::Path) {
    for dir in hierarchy_dirs(cgroup_path).unwrap_or_default() {
        remove_children(&dir);
    }
}

/// Removes a stopped container's cgroup, nested ones first, in every
/// hierarchy, SIGKILLing what they still list, as libcgroups' `remove` does
/// but without opening a manager
/// (which on cgroup v1 reads /proc/self/mountinfo and /proc/self/cgroup
/// once per controller through pathrs's checked procfs: about 3 ms of CPU
/// per container here). A directory still busy after [`KILL_DEADLINE`] is
/// an error. False when the path is not a cgroupfs one: the caller goes
/// through libcgroups.
pub fn remove_stopped(cgroup_path: &std::path::Path) -> Result<bool> {
    let Some(dirs) = hierarchy_dirs(cgroup_path) else {
        return Ok(false);
    };
    for dir in dirs {
        remove_children(&dir);
        if !kill_and_remove(&dir, KILL_DEADLINE) {
            anyhow::bail!("cannot remove cgroup {}: still busy", dir.display());
        }
    }
    Ok(true)
}

fn remove_children(dir: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for child in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        let path = child.path();
        remove_children(&path);
        kill_and_remove(&path, Duration::from_secs(2));
    }
}

/// SIGKILLs what the cgroup directory `dir` lists and removes it, again
/// until it is gone (true) or `deadline` passes.
fn kill_and_remove(dir: &std::path::Path, deadline: Duration) -> bool {
    poll::until(deadline, || {
        for pid in listed(dir) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        match std::fs::remove_dir(dir) {
            Ok(()) => true,
            Err(e) => e.kind() == std::io::ErrorKind::NotFound,
        }
    })
}
