//! The seam between the container state machine and libcontainer: the few
//! operations it needs, so its logic runs on an in-memory fake in unit tests
//! (as youki's `Syscall` trait and its test double).

use std::path::Path;

use anyhow::Result;
use libcontainer::container::ContainerStatus;
use nix::unistd::Pid;

use crate::oci::{CreateRequest, StateRoot, Stdio};

pub trait Engine {
    /// The container's status, None when libcontainer has no state for it.
    fn status(&self, id: &str) -> Option<ContainerStatus>;
    /// Creates the container (its init waits for `start`); on failure
    /// nothing of it is left.
    fn create(&self, req: &CreateRequest, stdio: Stdio) -> Result<Pid>;
    fn start(&self, id: &str) -> Result<()>;
    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()>;
    /// Deletes libcontainer's state and cgroup (`force`: also of a running one).
    fn delete(&self, id: &str, force: bool) -> Result<()>;
    /// Kills and deletes a container whose creator died mid-create.
    fn destroy_abandoned(&self, id: &str) -> Result<()>;
    /// SIGKILLs every process of the container, whatever its state, without
    /// writing libcontainer's state (see [`StateRoot::terminate`]).
    fn terminate(&self, id: &str);
    /// Containers minirun made from images in `containers_dir`, with their
    /// status (None: no readable state); see [`StateRoot::made_in`].
    fn made_in(&self, containers_dir: &Path) -> Vec<(String, Option<ContainerStatus>)>;
    /// Removes what creates cut short left (see [`StateRoot::gc_private`]).
    fn gc_private(&self);

    fn exists(&self, id: &str) -> bool {
        self.status(id).is_some()
    }
}

impl Engine for StateRoot {
    fn status(&self, id: &str) -> Option<ContainerStatus> {
        if !StateRoot::exists(self, id) {
            return None;
        }
        self.load(id).ok().map(|c| c.status())
    }

    fn create(&self, req: &CreateRequest, stdio: Stdio) -> Result<Pid> {
        let container = self.create_with_stdio(req, stdio)?;
        match container.pid() {
            Some(pid) => Ok(pid),
            None => {
                let _ = StateRoot::delete(self, req.id, true);
                anyhow::bail!("created container \"{}\" has no pid", req.id)
            }
        }
    }

    fn start(&self, id: &str) -> Result<()> {
        StateRoot::start(self, id).map(|_| ())
    }

    fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        StateRoot::kill(self, id, signal, all)
    }

    fn delete(&self, id: &str, force: bool) -> Result<()> {
        StateRoot::delete(self, id, force)
    }

    fn destroy_abandoned(&self, id: &str) -> Result<()> {
        StateRoot::destroy_abandoned(self, id)
    }

    fn terminate(&self, id: &str) {
        StateRoot::terminate(self, id)
    }

    fn made_in(&self, containers_dir: &Path) -> Vec<(String, Option<ContainerStatus>)> {
        StateRoot::made_in(self, containers_dir)
    }

    fn gc_private(&self) {
        StateRoot::gc_private(self)
    }
}
