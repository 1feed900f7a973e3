//! `exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] NAME COMMAND...` (docker),
//! and runc's `exec --process FILE [--detach] [--pid-file F]
//! [--console-socket S] ID` and `exec [--cap C] [-g GID] [--cwd DIR] ... ID
//! COMMAND...` (see [`super::exec_opts`]).

use std::fs::File;

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{Process, Spec};
use libcontainer::syscall::syscall::SyscallType;

use super::{exec_opts, Env};
use crate::cli::ExecArgs;
use crate::container::{launch, Ctx};
use crate::imagespec;
use crate::oci::{libcontainer_message, seccomp_bpf, sub_cgroup_exists};
use crate::{tty, wait};

pub fn run(env: &Env, a: &ExecArgs) -> Result<u8> {
    tty::check_input_is_terminal(a.interactive, a.tty)?;
    let ctx = env.ctx();
    let id = match ctx.resolve(&a.container) {
        // an exited container made from an image has no libcontainer state left
        Ok(r) if !env.state.exists(&r.id) => {
            bail!("cannot exec in container \"{}\": container not running", a.container)
        }
        Ok(r) => r.id,
        Err(_) => env.state.resolve(&a.container)?,
    };
    let container = env.state.load(&id)?;
    match container.status() {
        ContainerStatus::Running => {}
        ContainerStatus::Paused if a.runc.ignore_paused => {}
        ContainerStatus::Paused => bail!(
            "cannot exec in container \"{}\": container is paused (--ignore-paused execs anyway)",
            a.container
        ),
        _ => bail!("cannot exec in container \"{}\": container not running", a.container),
    }
    let sub_cgroup = exec_opts::sub_cgroup(&a.runc.cgroup)?;
    if let Some(sub) = &sub_cgroup {
        let cgroup = container
            .spec()
            .map_err(|e| anyhow!(libcontainer_message(&e)))?
            .cgroup_path;
        if !sub_cgroup_exists(&cgroup, sub) {
            bail!("--cgroup {sub}: no such sub-cgroup of {}", cgroup.display());
        }
    }
    if a.process.is_none() && a.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    crate::seal::ensure_sealed().context("cannot seal minirun before entering the container")?;
    // docker-style exec: the container's own process settings with the
    // command, terminal, env, cwd and user changed, as a process.json
    let generated = match &a.process {
        Some(_) => {
            if a.runc.changes_process() || !a.env.is_empty() || a.workdir.is_some() || a.user.is_some() {
                tracing::warn!("exec --process: the process options are ignored, the file gives the process (as runc)");
            }
            None
        }
        None => Some(process_file(&ctx, &container, &id, a)?),
    };
    let process = a
        .process
        .clone()
        .or_else(|| generated.as_ref().map(|f| f.path().to_path_buf()));
    // the container's seccomp filter, which libcontainer leaves out of exec (runc applies it)
    let filtered = match &process {
        Some(p) => with_container_filter(&container, p, &env.state.seccomp_cache())?,
        None => None,
    };
    let process = filtered.as_ref().map(|(f, _)| f.path().to_path_buf()).or(process);
    // -t without a console socket of the caller's: our own, relayed here
    let sock_dir = if a.tty && a.console_socket.is_none() {
        Some(launch::console_dir()?)
    } else {
        None
    };
    let own_console = match &sock_dir {
        Some(d) => Some(tty::ConsoleSocket::listen(&d.path().join("console.sock"))?),
        None => None,
    };
    let console_path = a
        .console_socket
        .clone()
        .or_else(|| own_console.as_ref().map(|c| c.path().to_path_buf()));
    // the intermediate process joins the container's cgroup in a few milliseconds
    crate::oci::start_migration_grace_period();
    let build = || -> Result<_> {
        let mut builder = ContainerBuilder::new(id.clone(), SyscallType::default())
            .with_root_path(env.state.path())?
            .with_pid_file(a.pid_file.as_ref())?
            .with_console_socket(console_path.as_ref())
            .with_preserved_fds(a.preserve_fds)
            .with_executor(seccomp_bpf::ProcessExecutor {
                filter: filtered.as_ref().map(|(_, e)| e.clone()),
            })
            .validate_id()?;
        if !a.interactive && a.process.is_none() && console_path.is_none() {
            builder = builder.with_stdin(File::open("/dev/null")?);
        }
        let tenant = builder
            .as_tenant()
            .with_process(process.as_ref())
            .with_ignore_paused(a.runc.ignore_paused)
            .with_sub_cgroup(sub_cgroup.clone())
            // libcontainer takes a console socket only for a detached process
            .with_detach(a.detach || console_path.is_some());
        Ok(tenant.build())
    };
    // libcontainer reads the state first thing, before anything is made: a
    // state.json being rewritten by a concurrent resume/start/kill is read
    // again (see oci::load_state), everything else is an error at once
    let mut built = build()?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while let Err(e) = &built {
        if !crate::oci::is_torn_state(e) || std::time::Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        built = build()?;
    }
    crate::oci::reap_migration_warmup();
    let pid = built
        .map_err(|e| anyhow!(libcontainer_message(&e)))
        .with_context(|| format!("cannot exec in container \"{}\"", a.container))?;
    if a.detach {
        return Ok(0);
    }
    let forwarder = wait::SignalForwarder::start(pid)?;
    let code = match own_console {
        Some(console) => launch::attach_terminal(console.master()?, a.interactive, pid),
        None => wait::wait_exit(pid),
    };
    forwarder.stop();
    code
}

/// The process file `exec` runs, made ready for the container's seccomp
/// filter (see `oci::seccomp_bpf`), with the executor that loads it.
fn with_container_filter(
    container: &Container,
    process: &std::path::Path,
    cache: &std::path::Path,
) -> Result<Option<(tempfile::NamedTempFile, seccomp_bpf::FilterExecutor)>> {
    let spec = Spec::load(container.bundle().join("config.json")).context("cannot read the container's spec")?;
    let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok(None);
    };
    let text = std::fs::read(process).with_context(|| format!("cannot read {}", process.display()))?;
    let proc: Process =
        serde_json::from_slice(&text).with_context(|| format!("invalid process {}", process.display()))?;
    let Some((proc, executor)) = seccomp_bpf::prepare_process(seccomp, &proc, cache)? else {
        return Ok(None);
    };
    let file = tempfile::Builder::new()
        .prefix("exec-")
        .suffix(".json")
        .tempfile_in(&container.root)?;
    serde_json::to_writer(&file, &proc)?;
    Ok(Some((file, executor)))
}

/// A process.json for `exec`: the container's process with this exec's
/// command, terminal, environment, working directory and user.
fn process_file(ctx: &Ctx, container: &Container, id: &str, a: &ExecArgs) -> Result<tempfile::NamedTempFile> {
    let spec = Spec::load(container.bundle().join("config.json")).context("cannot read the container's spec")?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(a.command.clone()));
    process.set_terminal(Some(a.tty));
    let mut env = process.env().clone().unwrap_or_default();
    if a.tty {
        env.push("TERM=xterm".into());
    }
    for e in &a.env {
        env.extend(imagespec::expand_env(e)?);
    }
    process.set_env(Some(imagespec::merge_env(&[&env])));
    if let Some(w) = &a.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &a.user {
        // the spec's root is absolute (prepared at create), for images and bundles alike
        let rootfs = spec.root().as_ref().map(|r| r.path().clone());
        let rootfs = rootfs.unwrap_or_else(|| ctx.dir(id).join("rootfs"));
        let (uid, gid, extra) = imagespec::resolve_user(u, &rootfs)?;
        let mut user = process.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids(Some(extra));
        process.set_user(user);
    }
    exec_opts::apply(&a.runc, &mut process)?;
    let file = tempfile::Builder::new()
        .prefix("exec-")
        .suffix(".json")
        .tempfile_in(&container.root)?;
    serde_json::to_writer(&file, &process)?;
    Ok(file)
}
