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
    /// The managers this process opened for [`kill_once`] and [`kill_all`].
    /// On cgroup v1 opening one reads /proc/self/mountinfo once per
    /// hierarchy, each through pathrs's checked procfs (about 150 syscalls
    /// in all), and `rm -f` kills on every round of its take-over, then
    /// again in the teardown.
    static MANAGERS: RefCell<HashMap<ManagerKey, Rc<Killer>>> = RefCell::new(HashMap::new());
}

/// A cgroup manager, and on cgroup v1 the path of the cgroup's freezer
/// directory, thawed without libcgroups (see [`Killer::thaw`]).
struct Killer {
    manager: AnyCgroupManager,
    v1_freezer: Option<PathBuf>,
}

impl Killer {
    /// Thaws the cgroup if it still exists. libcgroups' v1 `freeze` first
    /// creates the freezer directory, so thawing a cgroup that the
    /// container's monitor removed meanwhile (its processes died of our
    /// SIGKILL) would leave an empty freezer cgroup behind for every
    /// `rm -f`; here the state file is opened without creating anything.
    /// (v2's `freeze` creates nothing.)
    fn thaw(&self) {
        match (&self.manager, &self.v1_freezer) {
            (AnyCgroupManager::V1(_), Some(dir)) => {
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(dir.join("freezer.state")) {
                    let _ = std::io::Write::write_all(&mut f, b"THAWED");
                }
            }
            (AnyCgroupManager::V1(_), None) => {}
            (m, _) => {
                let _ = m.freeze(FreezerState::Thawed);
            }
        }
    }
}

fn cached_manager(key: &ManagerKey) -> Result<Rc<Killer>, CreateCgroupSetupError> {
    if let Some(m) = MANAGERS.with(|c| c.borrow().get(key).cloned()) {
        return Ok(m);
    }
    let (id, cgroup_path, systemd) = key;
    let manager = manager(id, cgroup_path.clone(), *systemd)?;
    let v1_freezer = match manager {
        AnyCgroupManager::V1(_) => v1_freezer_dir(cgroup_path),
        _ => None,
    };
    let m = Rc::new(Killer { manager, v1_freezer });
    MANAGERS.with(|c| c.borrow_mut().insert(key.clone(), m.clone()));
    Ok(m)
}

/// The v1 freezer directory of the cgroup at `cgroup_path` (relative to
/// the hierarchy's root, as libcontainer records it).
fn v1_freezer_dir(cgroup_path: &std::path::Path) -> Option<PathBuf> {
    use libcgroups::v1::{util::get_subsystem_mount_point, ControllerType};
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if rel.as_os_str().is_empty() {
        return None;
    }
    Some(get_subsystem_mount_point(&ControllerType::Freezer).ok()?.join(rel))
}

/// SIGKILLs every process in a cgroup, waits for them to go, removes it.
pub fn kill_all(id: &str, cgroup_path: PathBuf, systemd: bool) -> Result<()> {
    let key = (id.to_string(), cgroup_path, systemd);
    let manager = cached_manager(&key).with_context(|| format!("cgroup of {id}"))?;
    poll::until(KILL_DEADLINE, || kill_listed(&manager) == 0);
    MANAGERS.with(|c| c.borrow_mut().remove(&key));
    manager
        .manager
        .remove()
        .with_context(|| format!("cannot remove the cgroup of {id}"))
}

/// How long the processes of a cgroup may take to die once SIGKILLed (a
/// loaded machine takes far more than libcgroups' 100 ms of rmdir retries).
const KILL_DEADLINE: Duration = Duration::from_secs(5);

/// SIGKILLs every process in a cgroup and waits until it lists none (up to
/// [`KILL_DEADLINE`]); the cgroup stays. False when it cannot be opened.
pub fn kill_until_empty(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
    match cached_manager(&(id.to_string(), cgroup_path, systemd)) {
        Ok(m) => poll::until(KILL_DEADLINE, || kill_listed(&m) == 0),
        Err(_) => false,
    }
}

/// SIGKILLs every process in a cgroup once, without waiting; false when
/// the cgroup cannot be opened.
pub fn kill_once(id: &str, cgroup_path: PathBuf, systemd: bool) -> bool {
    match cached_manager(&(id.to_string(), cgroup_path, systemd)) {
        Ok(m) => {
            kill_listed(&m);
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
    let pids = killer.manager.get_all_pids().unwrap_or_default();
    for pid in &pids {
        let _ = nix::sys::signal::kill(*pid, nix::sys::signal::Signal::SIGKILL);
    }
    killer.thaw();
    pids.len()
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

/// Removes the cgroups nested below a container's (made by a process in it,
/// or by `exec --cgroup`), deepest first, SIGKILLing what they hold:
/// libcgroups removes only the container's own directory, which fails
/// while any child exists. cgroupfs paths only (a systemd `slice:prefix:name`
/// is systemd's to clean up).
pub fn remove_nested(cgroup_path: &std::path::Path) {
    let rel = cgroup_path.to_string_lossy();
    if rel.contains(':') || rel.trim_matches('/').is_empty() {
        return;
    }
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
    for root in roots {
        let dir = root.join(rel.trim_start_matches('/'));
        if dir.is_dir() {
            remove_children(&dir);
        }
    }
}

fn remove_children(dir: &std::path::Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for child in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
        let path = child.path();
        remove_children(&path);
        poll::until(Duration::from_secs(2), || {
            let procs = std::fs::read_to_string(path.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            std::fs::remove_dir(&path).is_ok() || !path.exists()
        });
    }
}
