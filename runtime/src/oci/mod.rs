//! Container lifecycle on youki's libcontainer: create, start, state, kill,
//! delete and list, with the state of every container under `--root`.

mod cgroup;
mod cleanup;
mod errors;
mod resources;
pub mod seccomp_bpf;
mod seccomp_tree;
mod state;
pub mod trim;
mod warmup;

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::state::StateError;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use libcontainer::oci_spec::runtime::{LinuxResources, Spec};
use libcontainer::signal::Signal;
use libcontainer::syscall::syscall::SyscallType;

pub use cgroup::{manager as cgroup_manager, sub_cgroup_exists};
pub use cleanup::is_torn_state;
use cleanup::{load_state, remove_state_dir};
pub use errors::libcontainer_message;
pub use state::{status_name, OciState};
pub use warmup::{reap_migration_warmup, start_before_reexec, start_migration_grace_period, wait_migration_warmup};

use crate::util::lock::FileLock;
use crate::util::proc;

/// File in a container's state dir naming the bundle it was created from.
const ORIGINAL_BUNDLE: &str = "minirun.bundle";
/// Private bundle copies made during a create: `.spec-<id>-XXXXXX`.
const SHADOW_PREFIX: &str = ".spec-";

/// What `create` needs besides the id: the prepared spec and runc's options.
#[derive(Clone, Copy)]
pub struct CreateRequest<'a> {
    pub id: &'a str,
    /// The bundle reported by `state` (the user's, not minirun's private copy).
    pub bundle: &'a Path,
    /// The spec to run, already through [`crate::spec::prepare_for_create`].
    pub spec: &'a Spec,
    pub pid_file: Option<&'a Path>,
    pub console_socket: Option<&'a Path>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    /// false when the caller stays and waits (run in the foreground)
    pub detach: bool,
    /// Directories whose mounts (other containers') libcontainer's
    /// processes start without, see [`trim`].
    pub trim: &'a [PathBuf],
}

impl<'a> CreateRequest<'a> {
    /// A request with none of runc's options, waited for by its caller.
    pub fn new(id: &'a str, bundle: &'a Path, spec: &'a Spec) -> Self {
        Self {
            id,
            bundle,
            spec,
            pid_file: None,
            console_socket: None,
            preserve_fds: 0,
            no_pivot: false,
            detach: false,
            trim: &[],
        }
    }
}

/// Descriptors to give the container instead of this process's own.
#[derive(Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

/// The state root (`--root`) and everything kept in it.
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
    /// `--systemd-cgroup`: cgroups of new containers through systemd (cgroup v2
    /// hosts with a `slice:prefix:name` cgroupsPath; elsewhere cgroupfs, as runc).
    systemd: bool,
    /// Where compiled seccomp filters are kept (`<data-root>/seccomp`; None: `<root>/.seccomp`).
    seccomp_cache: Option<PathBuf>,
}

impl StateRoot {
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root.join(".locks"))
            .with_context(|| format!("cannot create state root {}", root.display()))?;
        let root = fs::canonicalize(root)?;
        Ok(Self {
            root,
            systemd: false,
            seccomp_cache: None,
        })
    }

    /// Creates containers with systemd managing their cgroups (`--systemd-cgroup`).
    pub fn with_systemd(mut self, systemd: bool) -> Self {
        self.systemd = systemd;
        self
    }

    /// Keeps compiled seccomp filters in `dir` (see [`seccomp_bpf`]).
    pub fn with_seccomp_cache(mut self, dir: PathBuf) -> Self {
        self.seccomp_cache = Some(dir);
        self
    }

    pub fn seccomp_cache(&self) -> PathBuf {
        self.seccomp_cache.clone().unwrap_or_else(|| self.root.join(".seccomp"))
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    pub fn exists(&self, id: &str) -> bool {
        self.container_dir(id).join("state.json").exists()
    }

    /// The file an id's lock is taken on.
    fn lock_path(&self, id: &str) -> PathBuf {
        self.root.join(".locks").join(id)
    }

    /// Held while an id is being created or deleted, so two invocations with
    /// the same id never interleave.
    fn lock_id(&self, id: &str) -> Result<FileLock> {
        FileLock::exclusive(&self.lock_path(id))
    }

    /// The id lock, waiting at most `timeout`; None if it stayed taken.
    fn try_lock_id(&self, id: &str, timeout: Duration) -> Result<Option<FileLock>> {
        FileLock::within(&self.lock_path(id), timeout)
    }

    /// Every container id with state under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with('.') && entry.path().join("state.json").exists() {
                ids.push(name);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Resolves what the user typed to a container id: the exact id, else a
    /// unique id prefix.
    pub fn resolve(&self, wanted: &str) -> Result<String> {
        if valid_id(wanted).is_ok() && self.exists(wanted) {
            return Ok(wanted.to_string());
        }
        let matches: Vec<String> = self.ids()?.into_iter().filter(|id| id.starts_with(wanted)).collect();
        match matches.as_slice() {
            [one] if !wanted.is_empty() => Ok(one.clone()),
            [] | [_] => bail!("container \"{wanted}\" does not exist"),
            _ => bail!(
                "container id prefix \"{wanted}\" is ambiguous ({} matches)",
                matches.len()
            ),
        }
    }

    /// The id itself if a container has it. runc's verbs take exact ids:
    /// an engine deleting "t1" twice must not reach "t10" by prefix.
    pub fn exact(&self, id: &str) -> Result<String> {
        if valid_id(id).is_ok() && self.exists(id) {
            Ok(id.to_string())
        } else {
            bail!("container \"{id}\" does not exist")
        }
    }

    /// A container by its exact id (see [`Self::exact`]).
    pub fn load(&self, id: &str) -> Result<Container> {
        let id = self.exact(id)?;
        load_state(&self.container_dir(&id)).with_context(|| format!("cannot load the state of container \"{id}\""))
    }

    /// Creates a container; on failure nothing of it stays under the root or
    /// in the cgroup tree.
    pub fn create(&self, req: &CreateRequest) -> Result<Container> {
        self.create_with_stdio(req, Stdio::default())
    }

    /// Like [`Self::create`], with some of the container's stdio given
    /// (the rest is inherited from this process).
    pub fn create_with_stdio(&self, req: &CreateRequest, stdio: Stdio) -> Result<Container> {
        valid_id(req.id)?;
        let t = std::time::Instant::now();
        let step = |what: &str| tracing::trace!(elapsed = ?t.elapsed(), "create: {what}");
        // the intermediate process joins the cgroup in a few milliseconds
        start_migration_grace_period();
        crate::spec::check_exec_size(req.spec)?;
        if let Some(r) = req.spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            resources::check(r).with_context(|| format!("cannot create container \"{}\"", req.id))?;
        }
        let _lock = self.lock_id(req.id)?;
        if self.container_dir(req.id).exists() {
            bail!("container \"{}\" already exists", req.id);
        }
        let shadow = tempfile::Builder::new()
            .prefix(&format!("{SHADOW_PREFIX}{}-", req.id))
            .tempdir_in(&self.root)
            .context("cannot create a private bundle directory")?;
        // minirun's image specs: the seccomp filter compiled once and loaded by our executor
        let fast = seccomp_bpf::prepare(req.spec, &self.seccomp_cache())
            .with_context(|| format!("cannot create container \"{}\": seccomp filter", req.id))?;
        // a bundle's own filter, applied by libcontainer: masked arguments as runc reads them
        let masked = match &fast {
            None => seccomp_bpf::masked_args_for_libcontainer(req.spec),
            Some(_) => None,
        };
        let launched = fast.as_ref().map(|f| &f.spec).or(masked.as_ref()).unwrap_or(req.spec);
        launched
            .save(shadow.path().join("config.json"))
            .context("cannot write the prepared spec")?;

        step("seccomp prepared, spec written");
        let recorded_differs = fast.is_some() || masked.is_some();
        let result = self.build(req, shadow.path(), stdio, fast.map(|f| f.executor), recorded_differs);
        step("libcontainer's create done");
        reap_migration_warmup();
        if result.is_err() {
            // libcontainer removes its directory and cgroup when the failure
            // happens inside process creation, not when it happens before.
            let dir = self.container_dir(req.id);
            if dir.exists() {
                let _ = fs::remove_dir_all(&dir);
            }
            cgroup::remove_for(req.spec, req.id, self.systemd);
            // nothing of the id stays, not even its lock file
            let _ = fs::remove_file(self.lock_path(req.id));
        }
        result
    }

    fn build(
        &self,
        req: &CreateRequest,
        shadow: &Path,
        stdio: Stdio,
        executor: Option<seccomp_bpf::FilterExecutor>,
        recorded_differs: bool,
    ) -> Result<Container> {
        // the builder (not Send) is made on the thread that runs it
        let built = trim::trimmed(req.trim, req.spec, req.bundle, move || -> Result<_> {
            let mut base = ContainerBuilder::new(req.id.to_string(), SyscallType::default())
                .with_executor(seccomp_bpf::ProcessExecutor { filter: executor });
            if let Some(fd) = stdio.stdin {
                base = base.with_stdin(fd);
            }
            if let Some(fd) = stdio.stdout {
                base = base.with_stdout(fd);
            }
            if let Some(fd) = stdio.stderr {
                base = base.with_stderr(fd);
            }
            let builder = base
                .with_root_path(&self.root)?
                .with_pid_file(req.pid_file)?
                .with_console_socket(req.console_socket)
                .with_preserved_fds(req.preserve_fds)
                .validate_id()?
                .as_init(shadow)
                .with_systemd(self.systemd)
                .with_detach(req.detach)
                .with_no_pivot(req.no_pivot);
            // Relative paths in a bundle (mount sources) are relative to the bundle.
            let cwd = std::env::current_dir().ok();
            std::env::set_current_dir(req.bundle)
                .with_context(|| format!("cannot enter bundle {}", req.bundle.display()))?;
            // no other thread of ours may be running when libcontainer clones
            // us (the caller of a trimmed create waits in a join)
            let built = builder.build();
            if let Some(cwd) = cwd {
                let _ = std::env::set_current_dir(cwd);
            }
            Ok(built)
        })?;
        let mut container = built
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot create container \"{}\"", req.id))?;
        if let Err(e) = self.apply_missing_resources(&container, req.spec) {
            let _ = container.delete(true);
            return Err(e.context(format!("cannot create container \"{}\"", req.id)));
        }
        // libcontainer re-reads the spec from the bundle for exec (a tenant
        // joins the cgroup the spec names), so the bundle it records is the
        // prepared copy, kept with the state; `state` reports the user's.
        let dir = self.container_dir(req.id);
        fs::rename(shadow.join("config.json"), dir.join("config.json"))?;
        if recorded_differs {
            // the spec asked for (with its seccomp and capabilities), not the one launched
            req.spec.save(dir.join("config.json"))?;
        }
        fs::write(
            dir.join(ORIGINAL_BUNDLE),
            fs::canonicalize(req.bundle)?.as_os_str().as_encoded_bytes(),
        )?;
        container.state.bundle = dir;
        container.save()?;
        Ok(container)
    }

    /// What libcgroups left out of the spec's resources (see [`resources`]).
    fn apply_missing_resources(&self, container: &Container, spec: &Spec) -> Result<()> {
        let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
            return Ok(());
        };
        let cgroup_path = container
            .spec()
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .context("cannot read the container's config")?
            .cgroup_path;
        resources::apply_missing(&cgroup_path, r)
    }

    pub fn start(&self, id: &str) -> Result<Container> {
        let mut container = self.load(id)?;
        if !container.can_start() {
            bail!(
                "container \"{}\" cannot be started: it is {}",
                container.id(),
                status_name(container.status())
            );
        }
        container
            .start()
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot start container \"{}\"", container.id()))?;
        Ok(container)
    }

    /// runc kill. A container that has ended fails with runc's "container
    /// not running", which engines match to mean "already finished".
    pub fn kill(&self, id: &str, signal: &str, all: bool) -> Result<()> {
        let signal = parse_signal(signal)?;
        signal_loaded(&mut self.load(id)?, signal, all)
    }

    /// runc pause: freeze every process of a running container.
    pub fn pause(&self, id: &str) -> Result<()> {
        let mut container = self.load(id)?;
        if container.status() != ContainerStatus::Running {
            bail!(
                "cannot pause container \"{}\": container not running (it is {})",
                container.id(),
                status_name(container.status())
            );
        }
        container
            .pause()
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot pause container \"{}\"", container.id()))
    }

    /// runc resume: thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<()> {
        let mut container = self.load(id)?;
        if container.status() != ContainerStatus::Paused {
            bail!(
                "cannot resume container \"{}\": container not paused (it is {})",
                container.id(),
                status_name(container.status())
            );
        }
        container
            .resume()
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot resume container \"{}\"", container.id()))
    }

    /// runc update: applies new cgroup limits to a container that has not
    /// ended. Device rules are not changed by an update (as in runc); only the
    /// fields present in `resources` are written, and the OOM killer stays as
    /// it is unless `memory.disableOOMKiller` is given.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        use libcgroups::common::{CgroupManager, ControllerOpt};
        let container = self.load(id)?;
        if container.status() == ContainerStatus::Stopped {
            bail!("cannot update container \"{}\": container not running", container.id());
        }
        let failed = || format!("cannot update container \"{}\"", container.id());
        let mut resources = resources.clone();
        resources.set_devices(None);
        resources::check(&resources).with_context(failed)?;
        let cgroup_path = container
            .spec()
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot read the config of container \"{}\"", container.id()))?
            .cgroup_path;
        let manager = cgroup::manager(container.id(), cgroup_path.clone(), container.systemd())
            .map_err(|e| anyhow!("cannot open the cgroup of container \"{}\": {e}", container.id()))?;
        // libcgroups writes memory.oom_control whenever memory is given
        let disable_oom_killer = resources
            .memory()
            .as_ref()
            .and_then(|m| m.disable_oom_killer())
            .unwrap_or_else(|| resources::oom_killer_disabled(&cgroup_path));
        manager
            .apply(&ControllerOpt {
                resources: &resources,
                disable_oom_killer,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(failed)?;
        resources::apply_missing(&cgroup_path, &resources).with_context(failed)
    }

    /// runc delete. With --force an unknown id is not an error (engines
    /// clean up with it after a failed create), and a directory left without
    /// state by an aborted create goes too.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let id = match self.exact(id) {
            Ok(id) => id,
            // no such container: done, unless an aborted create left a
            // directory without state
            Err(e) if force && valid_id(id).is_ok() => {
                tracing::debug!("delete --force: {e:#}");
                let dir = self.container_dir(id);
                if !dir.exists() {
                    return Ok(());
                }
                let Some(_lock) = self.try_lock_id(id, Duration::from_secs(1))? else {
                    bail!("container \"{id}\" is being created: try again when it is");
                };
                if self.exists(id) {
                    bail!("container \"{id}\" was created meanwhile: delete it again");
                }
                fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
                let _ = fs::remove_file(self.lock_path(id));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let _lock = match self.try_lock_id(&id, Duration::from_secs(3))? {
            Some(lock) => lock,
            // A creator killed mid-create leaves the init holding the lock.
            None if force => return self.destroy_abandoned(&id),
            None => bail!("container \"{id}\" is busy (being created or deleted); use --force if its creator died"),
        };
        let mut container = self.load(&id)?;
        if !force && container.status() == ContainerStatus::Running {
            bail!("container \"{id}\" is running: stop it first or use --force");
        }
        if let Ok(config) = libcontainer::config::YoukiConfig::load(self.container_dir(&id)) {
            // --force: every process gone first. libcontainer SIGKILLs them and
            // gives their exit 100 ms of rmdir retries, which a loaded machine
            // overruns ("could not delete" the cgroup, the container half gone);
            // with the init dead it finds the container stopped and only removes.
            if force && container.status() != ContainerStatus::Stopped {
                cgroup::kill_until_empty(&id, config.cgroup_path.clone(), container.systemd());
            }
            // (the quick delete removes nested cgroups itself)
            if container.status() == ContainerStatus::Stopped && self.delete_stopped(&container, &config)? {
                let _ = fs::remove_file(self.lock_path(&id));
                return Ok(());
            }
            cgroup::remove_nested(&config.cgroup_path);
        }
        container
            .delete(force)
            .map_err(|e| anyhow!(libcontainer_message(&e)))
            .with_context(|| format!("cannot delete container \"{id}\""))?;
        let _ = fs::remove_file(self.lock_path(&id));
        Ok(())
    }

    /// libcontainer's delete of a stopped container (remove the cgroup,
    /// then the state directory) without its cgroup manager, whose set-up
    /// costs more than the rest of a delete (see [`cgroup::remove_stopped`]).
    /// False, having done nothing, where libcontainer has more to do:
    /// poststop hooks, an Intel RDT group, a systemd cgroup.
    fn delete_stopped(&self, container: &Container, config: &libcontainer::config::YoukiConfig) -> Result<bool> {
        let has_poststop = config
            .hooks
            .as_ref()
            .and_then(|h| h.poststop().as_ref())
            .is_some_and(|p| !p.is_empty());
        if has_poststop || container.intel_rdt_dir().is_some() || container.systemd() {
            return Ok(false);
        }
        let id = container.id();
        if !cgroup::remove_stopped(&config.cgroup_path).with_context(|| format!("cannot delete container \"{id}\""))? {
            return Ok(false);
        }
        remove_state_dir(&container.root).with_context(|| {
            format!(
                "cannot delete container \"{id}\": cannot remove {}",
                container.root.display()
            )
        })?;
        Ok(true)
    }

    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(OciState::of(&self.load(id)?))
    }

    pub fn list(&self) -> Result<Vec<OciState>> {
        let mut out = Vec::new();
        for id in self.ids()? {
            // A container deleted while we list is simply not listed.
            if let Ok(c) = load_state(&self.container_dir(&id)) {
                out.push(OciState::of(&c));
            }
        }
        Ok(out)
    }
}

/// Signal names (TERM, SIGTERM, term) and numbers (15).
pub fn parse_signal(s: &str) -> Result<Signal> {
    match s.parse::<i32>() {
        Ok(n) => Signal::try_from(n).map_err(|_| anyhow!("invalid signal \"{s}\"")),
        Err(_) => Signal::try_from(s).map_err(|_| anyhow!("invalid signal \"{s}\"")),
    }
}

/// runc's rule for ids, which keeps them usable as file and cgroup names
/// (minirun-net's, so the runtime and the network agree).
pub fn valid_id(id: &str) -> Result<()> {
    if minirun_net::attach::valid_container_id(id) {
        Ok(())
    } else {
        bail!("invalid container id \"{id}\": use letters, digits, _ + - and . (not first)")
    }
}

/// Sends `signal` to a loaded container (see [`StateRoot::kill`]).
fn signal_loaded(container: &mut Container, signal: Signal, all: bool) -> Result<()> {
    let before = container.status();
    // --all on a stopped container still reaches what is left in its cgroup
    if !(container.can_kill() || (all && before == ContainerStatus::Stopped)) {
        bail!(
            "cannot signal container \"{}\": container not running (it is {})",
            container.id(),
            status_name(before)
        );
    }
    match container.kill(signal, all) {
        Ok(()) => {}
        // libcontainer records "stopped" after sending the signal; the
        // container's owner (run, its monitor) may have seen it die and
        // removed its directory first. The signal went out: done.
        Err(LibcontainerError::State(StateError::OpenStateFile { source, .. }))
            if source.kind() == std::io::ErrorKind::NotFound && !container.root.exists() =>
        {
            return Ok(());
        }
        Err(e) => {
            return Err(anyhow!(libcontainer_message(&e)))
                .with_context(|| format!("cannot signal container \"{}\"", container.id()))
        }
    }
    // libcontainer records "stopped" after any signal; a created or
    // paused container that survived it (SIGWINCH, SIGUSR1, a signal it
    // ignores) is still created or paused.
    if matches!(before, ContainerStatus::Created | ContainerStatus::Paused)
        && container.pid().is_some_and(|p| proc::is_running(p.as_raw()))
    {
        container
            .set_status(before)
            .save()
            .map_err(|e| anyhow!(libcontainer_message(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
