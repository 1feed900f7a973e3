//! The end of a container, however it comes: teardown after the process
//! ended, stop, rm, and gc of what crashed runs and killed monitors left.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libcontainer::container::ContainerStatus;

use super::record::{Phase, Record, Status};
use super::store::{is_container_dir, Ctx};
use crate::util::poll;

/// After the process ended: record the exit, delete libcontainer's state
/// and cgroup, release the network, unmount the rootfs. Idempotent.
pub fn teardown(ctx: &Ctx, id: &str, exit_code: Option<i32>) -> Result<()> {
    let started = Instant::now();
    let mut errors = Vec::new();
    if ctx.engine.exists(id) {
        if let Err(e) = ctx.engine.delete(id, true) {
            errors.push(format!("{e:#}"));
        }
    }
    let record = ctx.load(id).ok();
    let network = record
        .as_ref()
        .and_then(|r| r.network.clone())
        .or_else(|| ctx.net.recorded(id));
    let mut kept = None;
    if let Some(att) = &network {
        match ctx.net.release(att, ctx) {
            Ok(k) => kept = Some(k),
            Err(e) => errors.push(format!("network: {e:#}")),
        }
    }
    if let Err(e) = minirun_images::release_rootfs(&ctx.dir(id)) {
        errors.push(format!("rootfs: {e:#}"));
    }
    if let Some(mut r) = record {
        let mut changed = false;
        if r.phase != Phase::Exited {
            r.mark_exited(exit_code);
            changed = true;
        }
        // released (not kept for joiners): the record no longer holds it
        if kept == Some(false) && r.network.take().is_some() {
            changed = true;
        }
        if changed {
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

/// Deletes what is left of a torn-down container: its directory and name.
pub fn remove(ctx: &Ctx, id: &str) -> Result<()> {
    let name = ctx.load(id).map(|r| r.name).ok();
    let dir = ctx.dir(id);
    if dir.exists() && is_container_dir(ctx, &dir) {
        // meta.json first: a removal cut short is then an unfinished
        // directory, which gc removes
        let _ = fs::remove_file(dir.join("meta.json"));
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let _ = fs::remove_file(ctx.names_dir().join(name));
    }
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
    let _lock = ctx.lock_within(&r.id, Duration::from_secs(10))?;
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
    // network pieces whose container is gone altogether
    ctx.net.gc(ctx)?;
    Ok(cleaned)
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
                fs::remove_dir_all(entry.path())?;
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

/// The cheap version `run` does: reads the small state files and runs the
/// real gc only when something looks abandoned.
pub fn gc_quick(ctx: &Ctx) {
    let abandoned_container = ctx
        .all()
        .unwrap_or_default()
        .iter()
        .any(|r| r.phase != Phase::Exited && !ctx.is_alive(&r.id));
    // a record of a runc container (libcontainer state, no minirun record) is not abandoned
    let live = |id: &str| ctx.is_alive(id) || ctx.engine.exists(id);
    if abandoned_container || ctx.net.needs_gc(&live) {
        if let Err(e) = gc(ctx) {
            tracing::warn!("gc: {e:#}");
        }
    }
}

/// `stop`: SIGTERM, then SIGKILL after `timeout`; then the exit is recorded
/// and the container torn down.
pub fn stop(ctx: &Ctx, wanted: &str, timeout: Duration) -> Result<()> {
    let r = ctx.resolve(wanted)?;
    if ctx.status(&r) == Status::Running {
        let _ = ctx.engine.kill(&r.id, "SIGTERM", true);
        if !wait_stopped(ctx, &r.id, timeout) {
            let _ = ctx.engine.kill(&r.id, "SIGKILL", true);
            wait_stopped(ctx, &r.id, Duration::from_secs(10));
        }
    }
    finish_after_stop(ctx, &r)
}

fn wait_stopped(ctx: &Ctx, id: &str, timeout: Duration) -> bool {
    poll::until(timeout, || ctx.engine.status(id) != Some(ContainerStatus::Running))
}

/// After the process is gone: wait for the monitor to record the exit and
/// tear down; if nobody supervises the container any more, do it here.
fn finish_after_stop(ctx: &Ctx, r: &Record) -> Result<()> {
    if !ctx.dir(&r.id).exists() {
        return Ok(()); // --rm: the monitor removed it
    }
    let _lock = ctx.lock_within(&r.id, Duration::from_secs(30))?;
    if ctx.dir(&r.id).join("meta.json").exists() {
        teardown(ctx, &r.id, None)?;
        if r.auto_remove {
            remove(ctx, &r.id)?;
        }
    }
    Ok(())
}

/// `rm [-f]`: a running or created container only with `force` (killed
/// first); returns the container's id.
pub fn rm(ctx: &Ctx, wanted: &str, force: bool) -> Result<String> {
    let r = ctx.resolve(wanted)?;
    match ctx.status(&r) {
        Status::Running | Status::Created if !force => {
            bail!("container \"{wanted}\" is running: stop it first or use rm --force")
        }
        Status::Running | Status::Created => {
            let _ = ctx.engine.kill(&r.id, "SIGKILL", true);
            wait_stopped(ctx, &r.id, Duration::from_secs(10));
        }
        Status::Dead => return reap(ctx, &r).map(|_| r.id),
        Status::Exited(_) => {}
    }
    finish_after_stop(ctx, &r)?;
    if ctx.dir(&r.id).exists() {
        let _lock = ctx.lock_within(&r.id, Duration::from_secs(30))?;
        teardown(ctx, &r.id, None)?;
        remove(ctx, &r.id)?;
    }
    Ok(r.id)
}
