//! Cleaning up after containers whose creator, monitor or remover died:
//! killing what is left by cgroup, deleting state nobody will, and reading a
//! state.json that libcontainer is rewriting.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use libcontainer::container::{Container, ContainerStatus};

use super::{cgroup, libcontainer_message, valid_id, StateRoot, ORIGINAL_BUNDLE, SHADOW_PREFIX};
use crate::util::proc;

impl StateRoot {
    /// Kills and deletes a container whose creator died mid-create, without
    /// the id lock: libcontainer's init inherited it and holds it until it is
    /// killed. Only for containers known to be abandoned.
    pub fn destroy_abandoned(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        let deleted = load_state(&dir)
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .and_then(|mut c| c.delete(true).map_err(|e| anyhow!(libcontainer_message(&e))));
        if let Err(e) = deleted {
            // killed while libcontainer wrote its state: go by the cgroup
            tracing::debug!("container {id}: {e:#}; killing its cgroup directly");
            let cgroup = libcontainer::config::YoukiConfig::load(&dir)
                .map(|c| c.cgroup_path)
                .unwrap_or_else(|_| crate::spec::default_cgroup_path(id));
            cgroup::kill_all(id, cgroup, self.systemd)?;
            fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        }
        let _ = fs::remove_file(self.lock_path(id));
        Ok(())
    }

    /// SIGKILLs every process of a container, whatever it is doing (being
    /// created, running, paused), without writing libcontainer's state: its
    /// creator or monitor may be writing it at the same time. Goes by the
    /// cgroup (the recorded one, or minirun's default before libcontainer
    /// recorded any), and by the init's pid when the state names it. Callers
    /// repeat it until the container is gone.
    pub fn terminate(&self, id: &str) {
        let dir = self.container_dir(id);
        let cgroup = libcontainer::config::YoukiConfig::load(&dir)
            .map(|c| c.cgroup_path)
            .unwrap_or_else(|_| crate::spec::default_cgroup_path(id));
        cgroup::kill_once(id, cgroup, self.systemd);
        if let Some(pid) = load_state(&dir).ok().and_then(|c| c.pid()) {
            if proc::is_running(pid.as_raw()) {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
        }
    }

    /// What creates cut short left under the root: private bundle copies
    /// and container directories without state, whose id nobody is
    /// creating (its lock is free; a create holds it throughout).
    pub fn gc_private(&self) {
        let Ok(rd) = fs::read_dir(&self.root) else { return };
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = match name.strip_prefix(SHADOW_PREFIX) {
                // the id is all but the random suffix
                Some(rest) => match rest.rsplit_once('-') {
                    Some((id, _)) => id.to_string(),
                    None => continue,
                },
                None if name.starts_with('.') => continue,
                None if entry.path().join("state.json").exists() => continue,
                None => name.clone(),
            };
            if valid_id(&id).is_err() || crate::util::lock::is_held(&self.lock_path(&id)) {
                continue;
            }
            if let Ok(Some(_lock)) = self.try_lock_id(&id, Duration::ZERO) {
                // checked again under the lock: a create may have finished meanwhile
                let path = entry.path();
                if name.starts_with(SHADOW_PREFIX) || !path.join("state.json").exists() {
                    tracing::debug!("removing {}, left by a create cut short", path.display());
                    let _ = fs::remove_dir_all(&path);
                }
            }
        }
    }

    /// Containers under the root that minirun made from an image whose
    /// directory is in `containers_dir` (the bundle they were created from),
    /// with their status (None: no readable state).
    pub fn made_in(&self, containers_dir: &Path) -> Vec<(String, Option<ContainerStatus>)> {
        let Ok(containers_dir) = fs::canonicalize(containers_dir) else {
            return Vec::new();
        };
        let Ok(rd) = fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for entry in rd.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            let Ok(bundle) = fs::read(entry.path().join(ORIGINAL_BUNDLE)) else {
                continue;
            };
            let bundle = PathBuf::from(String::from_utf8_lossy(&bundle).into_owned());
            if bundle.parent() == Some(containers_dir.as_path()) {
                let status = load_state(&entry.path()).ok().map(|c| c.status());
                out.push((id, status));
            }
        }
        out
    }
}

/// Removes a container's state directory. A `kill` that sent its signal just
/// before the container died records "stopped" afterwards, which can put
/// `state.json` back while the directory is being emptied: the removal then
/// meets a non-empty directory once and is simply done again.
pub(super) fn remove_state_dir(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// Whether libcontainer failed on a state.json caught while being rewritten.
pub fn is_torn_state(e: &dyn std::error::Error) -> bool {
    e.to_string().contains("failed to parse container state file")
}

/// A container's state from its directory. libcontainer rewrites
/// `state.json` in place (truncate, then write) whenever the status changes,
/// so a `start`, `kill` or `resume` running at the same time can show us an
/// empty or half-written file: that is read again for a moment, not taken
/// for a broken container.
pub(super) fn load_state(dir: &Path) -> std::result::Result<Container, libcontainer::error::LibcontainerError> {
    let mut result = Container::load(dir.to_path_buf());
    let deadline = std::time::Instant::now() + Duration::from_millis(500);
    while let Err(e) = &result {
        if !is_torn_state(e) || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
        result = Container::load(dir.to_path_buf());
    }
    result
}
