//! The end of a container, however it comes: teardown after the process
//! ended, stop, rm, and gc of what crashed runs and killed monitors left.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libcontainer::container::ContainerStatus;

use super::record::{Phase, Record, Status};
use super::store::{is_container_dir, Ctx};
use crate::util::lock::{FileLock, TryLock};
use crate::util::poll;

/// After the process ended: record the exit, delete libcontainer's state
/// and cgroup, release the network, unmount the rootfs. Idempotent.
pub fn teardown(ctx: &Ctx, id: &str, exit_code: Option<i32>) -> Result<()> {
    teardown_with(ctx, id, exit_code, true)
}

/// [`teardown`] of a container [`remove`]d right after: the exited record is
/// not written, since remove deletes it (one synced write less on `run --rm`
/// and `rm -f`). Cut short in between, the record still says it runs, and
/// gc finds it abandoned and removes it.
pub fn teardown_for_removal(ctx: &Ctx, id: &str, exit_code: Option<i32>) -> Result<()> {
    teardown_with(ctx, id, exit_code, false)
}

fn teardown_with(ctx: &Ctx, id: &str, exit_code: Option<i32>, keep_record: bool) -> Result<()> {
    let started = Instant::now();
    let step = |what: &str| tracing::trace!(elapsed = ?started.elapsed(), "teardown: {what}");
    let mut errors = Vec::new();
    if ctx.engine.exists(id) {
        if let Err(e) = ctx.engine.delete(id, true) {
            errors.push(format!("{e:#}"));
        }
    }
    step("libcontainer's state deleted");
    let record = ctx.load(id).ok();
    let network = record
        .as_ref()
        .and_then(|r| r.network.clone())
        .or_else(|| ctx.net.recorded(id));
    let mut kept = None;
    if let Some(att) = &network {
        // the networks connected besides the first go with it
        let extras = ctx.net.extras(id);
        match ctx.net.release(att, ctx) {
            Ok(k) => {
                if let (false, Some(n)) = (k, &att.network) {
                    crate::events::network(&ctx.data_root, "disconnect", n, id);
                }
                if !k {
                    for n in extras.iter().filter_map(|a| a.network.as_deref()) {
                        crate::events::network(&ctx.data_root, "disconnect", n, id);
                    }
                }
                kept = Some(k)
            }
            Err(e) => errors.push(format!("network: {e:#}")),
        }
    }
    super::run::release_ipc_shm(&ctx.dir(id));
    step("network released");
    // unmounted, its changes kept (as docker): `start` runs it again on
    // them, `diff`, `cp` and `commit` read them; `remove` deletes them
    if let Err(e) = minirun_images::unmount_rootfs(&ctx.dir(id)) {
        errors.push(format!("rootfs: {e:#}"));
    }
    step("root filesystem unmounted");
    if let Some(mut r) = record {
        let mut changed = false;
        if r.phase != Phase::Exited {
            r.mark_exited(exit_code);
            let code = r.exit_code.unwrap_or_default().to_string();
            crate::events::container(&ctx.data_root, "die", &r, &[("exitCode", code)]);
            changed = true;
        }
        // released (not kept for joiners): the record no longer holds it
        if kept == Some(false) && r.network.take().is_some() {
            changed = true;
        }
        if changed && keep_record {
            ctx.save(&r)?;
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "container {id} torn down");
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("teardown of container {id}: {}", errors.join("; "))
    }
}

/// Deletes what is left of a torn-down container: its name and directory.
pub fn remove(ctx: &Ctx, id: &str) -> Result<()> {
    let dir = ctx.dir(id);
    let record = ctx.load(id).ok();
    if let Some(r) = &record {
        crate::events::container(&ctx.data_root, "destroy", r, &[]);
    }
    let name = record.map(|r| r.name).or_else(|| ctx.name_of(id));
    // meta.json first: a removal cut short is then an unfinished directory,
    // which gc removes (and the name with it); then the name, so that it is
    // free once this returns even if the directory resists
    let _ = fs::remove_file(dir.join("meta.json"));
    if let Err(e) = minirun_images::release_rootfs(&dir) {
        tracing::warn!("rootfs of {id}: {e:#}");
    }
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let _ = fs::remove_file(ctx.names_dir().join(name));
    }
    if dir.exists() && is_container_dir(ctx, &dir) {
        super::run::release_ipc_shm(&dir);
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    // last: a missing directory is what others wait for
    ctx.forget_lock(id);
    Ok(())
}

/// Cleans up a container nobody sets up or supervises any more. A create
/// cut short leaves libcontainer's init waiting for `start` - holding the
/// locks it inherited from its dead creator - so it is killed first.
fn reap(ctx: &Ctx, r: &Record) -> Result<()> {
    // a creator killed before libcontainer wrote its state leaves the init
    // too: destroy_abandoned then goes by the container's cgroup
    if ctx.engine.exists(&r.id) || r.phase == Phase::Creating {
        if let Err(e) = ctx.engine.destroy_abandoned(&r.id) {
            tracing::warn!("{e:#}");
        }
    }
    let Some(_lock) = take_over(ctx, r, &r.name, false)? else {
        return Ok(()); // removed meanwhile
    };
    teardown(ctx, &r.id, None)?;
    if r.phase == Phase::Creating || r.auto_remove {
        remove(ctx, &r.id)?;
    }
    Ok(())
}

/// What a crashed run or killed monitor left: containers nobody holds whose
/// process is gone get torn down (and removed if half-created or --rm).
pub fn gc(ctx: &Ctx) -> Result<Vec<String>> {
    let mut cleaned = gc_unfinished(ctx)?;
    for r in ctx.all()? {
        if ctx.is_alive(&r.id) || (r.phase == Phase::Exited && !r.auto_remove) {
            continue;
        }
        // an --rm container killed between its exit and its removal lands here too
        reap(ctx, &r)?;
        cleaned.push(r.id.clone());
    }
    cleaned.extend(gc_engine(ctx));
    ctx.gc_lock_files();
    // network pieces whose container is gone altogether
    ctx.net.gc(ctx)?;
    Ok(cleaned)
}

/// libcontainer's state of containers made from images that outlived
/// them: their record is gone, or says they exited, and nothing runs.
/// (Containers of the runc verbs stay until `delete`, as runc keeps them.)
fn gc_engine(ctx: &Ctx) -> Vec<String> {
    let mut cleaned = Vec::new();
    for (id, status) in ctx.engine.made_in(&ctx.containers_dir()) {
        if matches!(
            status,
            Some(ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created)
        ) {
            continue;
        }
        let outlived = match ctx.load(&id) {
            Ok(r) => r.phase == Phase::Exited && !ctx.is_alive(&id),
            Err(_) => !ctx.dir(&id).exists(),
        };
        if outlived {
            match ctx.engine.destroy_abandoned(&id) {
                Ok(()) => cleaned.push(id),
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
    ctx.engine.gc_private();
    cleaned
}

/// A run killed before it wrote meta.json leaves a directory nobody locks,
/// or a name whose directory is gone.
fn gc_unfinished(ctx: &Ctx) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    if let Ok(rd) = fs::read_dir(ctx.containers_dir()) {
        for entry in rd.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("meta.json").exists() {
                continue;
            }
            if let Ok(Some(_lock)) = ctx.try_lock(&id) {
                super::run::release_ipc_shm(&entry.path());
                fs::remove_dir_all(entry.path())?;
                ctx.forget_lock(&id);
                cleaned.push(id);
            }
        }
    }
    if let Ok(rd) = fs::read_dir(ctx.names_dir()) {
        for entry in rd.flatten() {
            let id = fs::read_to_string(entry.path()).unwrap_or_default();
            if !id.trim().is_empty() && !ctx.dir(id.trim()).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(cleaned)
}

/// The cheap version `run` does: one look at each container (its lock on
/// the runtime root's tmpfs; only where that is free its record's phase and
/// its process), one at each network record's container, reusing those
/// answers, and the real gc only when something looks abandoned. Every
/// `run` pays this once per existing container, so a container whose
/// monitor holds its lock costs three system calls on a tmpfs and no read
/// of the disk (where this VM's idle pages are evicted after a minute).
pub fn gc_quick(ctx: &Ctx) {
    let mut alive = std::collections::HashMap::new();
    let mut abandoned = false;
    for id in ctx.container_ids() {
        // a held lock: whoever holds it (monitor, creator) answers for the
        // container, and its record on the disk is not read
        if ctx.lock_held(&id) {
            alive.insert(id, true);
            continue;
        }
        let Some(v) = ctx.vitals(&id) else { continue };
        let live = ctx.alive_as(&id, Some(&v));
        if !live && v.phase != Phase::Exited {
            abandoned = true;
            break;
        }
        alive.insert(id, live);
    }
    // a record of a runc container (libcontainer state, no minirun record) is not abandoned
    let live = |id: &str| alive.get(id).copied().unwrap_or_else(|| ctx.is_alive(id)) || ctx.engine.exists(id);
    if abandoned || ctx.net.needs_gc(&live) {
        if let Err(e) = gc(ctx) {
            tracing::warn!("gc: {e:#}");
        }
    }
}

/// How long `rm` and `stop` let whoever holds a container (its monitor
/// recording the exit, its creator undoing a start) finish before ending
/// that process themselves and cleaning up as gc does after a killed monitor.
const HOLDER_GRACE: Duration = Duration::from_secs(10);
/// How long they try in all before giving up.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(30);

/// `stop`: SIGTERM (or `--stop-signal`), then SIGKILL after `timeout` (or
/// `--stop-timeout`, else 10 s); then the exit is recorded and the
/// container torn down. Its monitor restarts it no more.
pub fn stop(ctx: &Ctx, wanted: &str, timeout: Option<Duration>) -> Result<()> {
    let r = ctx.resolve(wanted)?;
    request_stop(ctx, &r.id);
    let (signal, timeout) = super::stop_opts::stop_opts(&r, timeout);
    if ctx.status(&r) == Status::Running {
        let _ = ctx.engine.kill(&r.id, &signal, true);
        if !wait_stopped(ctx, &r.id, timeout) {
            let _ = ctx.engine.kill(&r.id, "SIGKILL", true);
            wait_stopped(ctx, &r.id, Duration::from_secs(10));
        }
    }
    if let Some(_lock) = take_over(ctx, &r, wanted, false)? {
        teardown(ctx, &r.id, None)?;
        if r.auto_remove {
            remove(ctx, &r.id)?;
        }
    }
    Ok(())
}

/// Tells the container's monitor that `stop` ends it (no restart).
fn request_stop(ctx: &Ctx, id: &str) {
    let _ = fs::File::create(ctx.dir(id).join("stopping"));
}

/// Forgets a `stop` once the container is started again.
pub fn clear_stop_request(ctx: &Ctx, id: &str) {
    let _ = fs::remove_file(ctx.dir(id).join("stopping"));
}

/// Whether `stop` asked for the container's end.
pub fn stop_requested(ctx: &Ctx, id: &str) -> bool {
    ctx.dir(id).join("stopping").exists()
}

fn wait_stopped(ctx: &Ctx, id: &str, timeout: Duration) -> bool {
    poll::until(timeout, || ctx.engine.status(id) != Some(ContainerStatus::Running))
}

/// `rm [-f]`: a running or created container only with `force`; returns the
/// container's id. `rm -f` wins whatever the container is doing, as in
/// docker: while it is being started, run, paused or torn down, its
/// processes are killed, its creator gives up, and everything it held is
/// released.
pub fn rm(ctx: &Ctx, wanted: &str, force: bool) -> Result<String> {
    let r = ctx.resolve(wanted)?;
    match ctx.status(&r) {
        Status::Running | Status::Created if !force => {
            bail!("container \"{wanted}\" is running: stop it first or use rm --force")
        }
        Status::Dead => return reap(ctx, &r).map(|_| r.id),
        _ => {}
    }
    if force {
        ctx.request_removal(&r.id)?;
    }
    if let Some(_lock) = take_over(ctx, &r, wanted, force)? {
        teardown_for_removal(ctx, &r.id, None)?;
        remove(ctx, &r.id)?;
    }
    Ok(r.id)
}

/// Waits until nobody else holds container `r` and returns its lock; None
/// once it is gone (its monitor removed it). With `kill`, its processes are
/// killed on every round, so a start racing with us cannot win. A holder
/// still there after [`HOLDER_GRACE`] while the container's processes are
/// gone is stuck: it is killed, and the lock taken over.
fn take_over(ctx: &Ctx, r: &Record, wanted: &str, kill: bool) -> Result<Option<FileLock>> {
    let started = Instant::now();
    let mut holder_killed = false;
    let mut lock = None;
    let mut error = None;
    // The holder (its monitor, mostly) lets go when it ends: seen at once
    let holder = r
        .creator
        .filter(|c| c.is_running())
        .and_then(|c| crate::wait::pidfd_open(nix::unistd::Pid::from_raw(c.pid)).ok());
    let done = poll::until_or_ready(TAKEOVER_DEADLINE, holder.as_ref().map(std::os::fd::AsFd::as_fd), || {
        if !ctx.dir(&r.id).exists() {
            return true;
        }
        if kill {
            ctx.engine.terminate(&r.id);
        }
        match ctx.try_lock_existing(&r.id) {
            Ok(TryLock::Locked(l)) => {
                lock = Some(l);
                return true;
            }
            Ok(TryLock::Held) => {}
            // being removed by its holder (never make a new lock file there:
            // we would "hold" a lock nobody else sees); done once it is gone
            Ok(TryLock::Missing) if !ctx.dir(&r.id).exists() => return true,
            Ok(TryLock::Missing) => {
                if started.elapsed() >= HOLDER_GRACE {
                    // whoever removed it died halfway: finish as gc would
                    if let Err(e) = remove(ctx, &r.id) {
                        error = Some(e);
                    }
                    return true;
                }
            }
            Err(e) => {
                error = Some(e);
                return true;
            }
        }
        if !holder_killed && started.elapsed() >= HOLDER_GRACE && !runs(ctx, &r.id) {
            holder_killed = true;
            kill_holder(ctx, &r.id);
        }
        false
    });
    if let Some(e) = error {
        return Err(e);
    }
    if !done {
        bail!(
            "container \"{wanted}\" is still held by another minirun after {}s",
            TAKEOVER_DEADLINE.as_secs()
        );
    }
    Ok(lock)
}

fn runs(ctx: &Ctx, id: &str) -> bool {
    matches!(
        ctx.engine.status(id),
        Some(ContainerStatus::Running | ContainerStatus::Paused | ContainerStatus::Created)
    )
}

/// SIGKILLs the process that sets the container up or supervises it (its
/// creator: the CLI, then its monitor), if it still is that process.
fn kill_holder(ctx: &Ctx, id: &str) {
    if let Some(holder) = ctx.load(id).ok().and_then(|r| r.creator) {
        if holder.is_running() {
            tracing::warn!(
                "container {id}: process {} holds it with nothing to wait for; ending it",
                holder.pid
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(holder.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}
