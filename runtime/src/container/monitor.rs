//! The monitor of `run -d` and of every `run -t`: a process forked from the
//! CLI that outlives it (docker's shim, podman's conmon). It creates and
//! starts the container with its output going to the log, tells the CLI it
//! runs (or why not), then waits for it, records the exit and tears it down.
//! With a terminal it holds the pty master and serves the attach socket
//! ([`super::attach`]): a foreground `run -t` and `attach` are its clients.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use libcontainer::oci_spec::runtime::Spec;
use nix::unistd::ForkResult;

use super::attach;
use super::launch::{self, Launch};
use super::record::{Record, UNKNOWN_EXIT};
use super::run::image_launch;
use super::store::Ctx;
use super::teardown;
use super::{health, restart};
use crate::oci::Stdio;
use crate::util::proc::ProcessIdentity;
use crate::{tty, util, wait};

/// How long the monitor of a foreground `run -t` holds the output back
/// while its CLI connects to the attach socket.
const FIRST_CLIENT_WAIT: Duration = Duration::from_secs(30);

/// Forks the monitor; returns once it reports the container running (the
/// inner result: whether it does). With `attached` (a foreground `run -t`)
/// the terminal's output waits for the CLI to attach.
pub fn spawn(ctx: &Ctx, record: &mut Record, spec: &Spec, attached: bool) -> Result<Result<()>> {
    let (rd, wr) = nix::unistd::pipe().context("pipe")?;
    let log_path = ctx.dir(&record.id).join("container.log");
    let log = OpenOptions::new().create(true).append(true).open(&log_path)?;
    // SAFETY: minirun is single-threaded here (no runtime, no helper thread
    // is alive after attach), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() }.context("cannot fork the monitor")? {
        ForkResult::Parent { .. } => {
            drop(wr);
            let mut msg = String::new();
            File::from(rd).read_to_string(&mut msg)?;
            Ok(match msg.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if msg.is_empty() => Err(anyhow!("the monitor of container {} died while starting it", record.id)),
                None => Err(anyhow!("{}", msg.trim_start_matches("err ").trim_end())),
            })
        }
        ForkResult::Child => {
            drop(rd);
            let code = monitor(ctx, record, spec, log, wr, attached);
            std::process::exit(code);
        }
    }
}

/// The container process's stdio: our own is /dev/null by now; without a
/// terminal its output goes to the log (with one, libcontainer's pty).
fn process_stdio(tty: bool, log: &File) -> Stdio {
    match (tty, log.try_clone(), log.try_clone()) {
        (false, Ok(out), Ok(err)) => Stdio {
            stdin: None,
            stdout: Some(out.into()),
            stderr: Some(err.into()),
        },
        _ => Stdio::default(),
    }
}

/// The monitor's life; returns its own exit code.
fn monitor(ctx: &Ctx, record: &mut Record, spec: &Spec, log: File, report: OwnedFd, attached: bool) -> i32 {
    let _ = nix::unistd::setsid();
    // the pty starts with the size of the terminal `run` was typed in
    let window = tty::WindowSize::of(std::io::stdin().as_fd());
    // Leave the CLI's stdio (it may be a pipe someone reads to EOF).
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let mut report = File::from(report);
    let id = record.id.clone();
    // a `stop` of an earlier life of this container no longer holds
    teardown::clear_stop_request(ctx, &id);
    // from now on the monitor is the one setting the container up
    record.creator = ProcessIdentity::current();
    let _ = ctx.save(record);
    let stdio = process_stdio(record.tty, &log);
    let dir = ctx.dir(&id);
    // when each piece of output arrived, for `logs -t/--since/--until`:
    // watched from here, by a thread started once no more process is forked
    let log_start = super::logtimes::length(&dir.join("container.log"));
    let started = (|| {
        // bound before the start, so a client may connect as soon as it runs
        let listener = attach::listen(&dir)?;
        let started = launch::create_and_start(
            ctx,
            &Launch {
                window,
                ..image_launch(record, &dir, spec)
            },
            stdio,
        )?;
        let server = attach::Server::start(listener, started.master.as_ref())?;
        anyhow::Ok((started, server))
    })();
    let (started, server) = match started {
        Ok(s) => s,
        Err(e) => {
            // undo everything, then tell the CLI why
            let _ = teardown::teardown(ctx, &id, None);
            // a container started again after it exited (it ran before) stays
            if record.started_at.is_none() {
                let _ = teardown::remove(ctx, &id);
            }
            let _ = write!(report, "err {e:#}");
            return 1;
        }
    };
    record.mark_running(started.pid.as_raw());
    record.monitor_pid = Some(std::process::id() as i32);
    save(ctx, record);
    crate::events::container(&ctx.data_root, "start", record, &[]);
    let meta = dir.join("meta.json");
    // health `starting` before `run -d` returns
    if record.run_flags.healthcheck.is_some() {
        health::reset(&meta);
    }
    let _ = write!(report, "ok");
    drop(report);
    // the CLI has its answer: a warm-up child still waiting may be waited for
    crate::oci::wait_migration_warmup();
    let checker = record
        .run_flags
        .healthcheck
        .clone()
        .map(|cfg| health::Checker::start(cfg, meta.clone(), id.clone(), globals(ctx)));
    let times = super::logtimes::watch(&dir.join("container.log"), log_start);
    // set-up is over: what it touched need not stay resident while we wait
    util::mem::shed_startup_pages();
    let mut started = started;
    let mut delay = None;
    let code = loop {
        let run_started = Instant::now();
        let output = started.master.take().map(|mut m| {
            let mut log = log.try_clone().expect("log");
            let server = server.clone();
            std::thread::spawn(move || {
                if attached {
                    server.wait_first_client(FIRST_CLIENT_WAIT);
                }
                tty::pump(&mut m, |chunk| {
                    let _ = log.write_all(chunk);
                    server.output(chunk);
                    true
                })
            })
        });
        let code = wait::wait_exit(started.pid).map(i32::from).unwrap_or(UNKNOWN_EXIT);
        // the real code, recorded at once: until teardown has, `ps` would
        // otherwise fall back to the unknown one
        record.exit_code = Some(code);
        // what others changed meanwhile (`rename`) is kept
        if let Ok(now) = ctx.load(&id) {
            record.name = now.name;
        }
        save(ctx, record);
        if let Some(t) = output {
            let _ = t.join();
        }
        // --restart: the monitor starts the process again after docker's back-off
        let policy = &record.run_flags.restart_policy;
        if !policy.should_restart(code, record.run_flags.restart_count) || restart_vetoed(ctx, &id) {
            break code;
        }
        let d = restart::next_delay(delay, run_started.elapsed());
        delay = Some(d);
        let _ = ctx.engine.delete(&id, true);
        record.run_flags.restarting = true;
        record.finished_at = Some(super::record::now());
        save(ctx, record);
        if util::poll::until(d, || restart_vetoed(ctx, &id)) {
            record.run_flags.restarting = false;
            break code;
        }
        let stdio = process_stdio(record.tty, &log);
        // the network, its DNS responder and the root filesystem stay; the
        // spec is read again (`update` keeps its limits there)
        let spec = Spec::load(dir.join("config.json")).unwrap_or_else(|_| spec.clone());
        let relaunch = Launch {
            network: None,
            ..image_launch(record, &dir, &spec)
        };
        // no thread of ours may be busy while libcontainer clones us
        let timeout = record
            .run_flags
            .healthcheck
            .as_ref()
            .map(|h| h.timeout())
            .unwrap_or_default();
        let paused = checker.as_ref().map(|c| c.pause(timeout));
        let relaunched = launch::create_and_start(ctx, &relaunch, stdio);
        drop(paused);
        match relaunched {
            Ok(s) => {
                started = s;
                record.run_flags.restart_count += 1;
                record.run_flags.restarting = false;
                record.exit_code = None;
                record.mark_running(started.pid.as_raw());
                save(ctx, record);
                crate::events::container(&ctx.data_root, "start", record, &[]);
                if record.run_flags.healthcheck.is_some() {
                    health::reset(&meta);
                }
            }
            Err(e) => {
                tracing::warn!("restart of {id}: {e:#}");
                record.run_flags.restarting = false;
                break code;
            }
        }
    };
    if let Some(c) = checker {
        c.stop();
    }
    drop(times);
    record.run_flags.restarting = false;
    save(ctx, record);
    // no new client; those attached learn the code once all is torn down
    let _ = std::fs::remove_file(dir.join(attach::SOCKET));
    if record.auto_remove || ctx.removal_requested(&id) {
        let _ = teardown::teardown_for_removal(ctx, &id, Some(code));
        let _ = teardown::remove(ctx, &id);
    } else {
        let _ = teardown::teardown(ctx, &id, Some(code));
        // an rm -f that came during the teardown
        if ctx.removal_requested(&id) {
            let _ = teardown::remove(ctx, &id);
        }
    }
    server.finish(code);
    0
}

/// Saves the monitor's record, keeping what its health checker wrote and the
/// networks `network connect`/`disconnect` and teardown wrote.
fn save(ctx: &Ctx, record: &mut Record) {
    let _g = health::RECORD_WRITE.lock();
    if let Ok(disk) = ctx.load(&record.id) {
        record.run_flags.health = disk.run_flags.health;
        record.network = disk.network;
        record.extra_networks = disk.extra_networks;
        record.first_network_disconnected = disk.first_network_disconnected;
    }
    let _ = ctx.save(record);
}

/// `stop` or `rm -f` asked for the container's end: no restart.
fn restart_vetoed(ctx: &Ctx, id: &str) -> bool {
    ctx.removal_requested(id) || teardown::stop_requested(ctx, id)
}

/// The global flags a `minirun exec` of this monitor's container needs.
fn globals(ctx: &Ctx) -> Vec<String> {
    vec![
        "--root".into(),
        ctx.root.display().to_string(),
        "--data-root".into(),
        ctx.data_root.display().to_string(),
    ]
}
