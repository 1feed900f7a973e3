//! `attach [--detach-keys KEYS] [--no-stdin] NAME` (docker's attach).
//!
//! A container with a terminal: our terminal is relayed to it through its
//! monitor's attach socket (see `container/attach.rs`), with our input when
//! it was started with `-i` (and not `--no-stdin`), until it exits (its exit
//! code is ours) or the detach keys are typed (0; it runs on).
//!
//! A container without a terminal has no stdin to attach to (its monitor
//! gave it /dev/null): `attach` follows its output from now on, as its log
//! records it (stdout and stderr interleaved, on our stdout), until it ends,
//! and exits with its exit code, which its monitor reports on the attach
//! socket (also with `--rm`). No detach keys then: Ctrl-C is forwarded. In both cases SIGINT, SIGTERM and SIGHUP
//! we receive go to the container's process, as docker's `--sig-proxy`.

use std::fs::File;
use std::io::{IsTerminal, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use super::Env;
use crate::cli::AttachArgs;
use crate::container::attach::{self, ClientOpts, Ended};
use crate::container::{Ctx, Record, Status};
use crate::tty;
use crate::util::poll;
use crate::wait::SignalForwarder;

pub fn run(env: &Env, a: &AttachArgs) -> Result<u8> {
    let detach_keys = detach_keys(a.detach_keys.as_deref())?;
    let ctx = env.ctx();
    let r = ctx.resolve(&a.container)?;
    if ctx.status(&r) != Status::Running {
        bail!("cannot attach to container \"{}\": it is not running", a.container);
    }
    attach_running(&ctx, &r, detach_keys, !a.no_stdin, None)
}

/// `--detach-keys`, or docker's default.
pub(super) fn detach_keys(keys: Option<&str>) -> Result<Vec<u8>> {
    tty::parse_detach_keys(keys.unwrap_or(tty::DEFAULT_DETACH_KEYS))
}

/// Attaches to the running container `r`: its terminal (with our input when
/// `stdin` and it was started with `-i`), or else its output from log
/// offset `from` (the log's end when None); the container's exit code.
pub(super) fn attach_running(
    ctx: &Ctx,
    r: &Record,
    detach_keys: Vec<u8>,
    stdin: bool,
    from: Option<u64>,
) -> Result<u8> {
    let pid = r.pid.map(Pid::from_raw);
    if !r.tty {
        return follow(ctx, r, pid, from);
    }
    // as docker: a terminal's input must come from a terminal
    if stdin && !std::io::stdin().is_terminal() {
        bail!("{} (use --no-stdin)", tty::NOT_A_TTY);
    }
    let opts = ClientOpts {
        stdin: r.interactive && stdin,
        detach_keys,
    };
    match attach::attach(ctx, &r.id, pid, opts)? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Ok(0),
    }
}

/// Follows the log of a container without a terminal from offset `from`
/// (its current end when None); its exit code comes from its monitor (or,
/// without one, from its record).
fn follow(ctx: &Ctx, r: &Record, pid: Option<Pid>, from: Option<u64>) -> Result<u8> {
    let mut file = File::open(ctx.dir(&r.id).join("container.log"))
        .with_context(|| format!("container \"{}\" keeps no log to attach to", r.name))?;
    // connected before the end, so the monitor reports the exit to us
    let monitor = attach::watch_exit(ctx, &r.id);
    file.seek(from.map_or(SeekFrom::End(0), SeekFrom::Start))?;
    // none when the process is gone already (it ended before we attached)
    let forwarder = pid.and_then(|p| SignalForwarder::start_pidfd(p).ok());
    let copied = super::logs::copy(ctx, r, file, true);
    let reported = match monitor {
        Some(conn) => attach::wait_exit(conn),
        None => Ok(None),
    };
    if let Some(f) = forwarder {
        f.stop();
    }
    copied?;
    if let Some(code) = reported? {
        return Ok(code);
    }
    // no monitor (killed): once the exit is recorded
    let mut code = None;
    poll::until(Duration::from_secs(30), || {
        code = ctx.load(&r.id).ok().map(|now| now.exit_code);
        !matches!(code, Some(None))
    });
    match code {
        Some(Some(c)) => Ok(c as u8),
        None => bail!(
            "container \"{}\" ended and was removed before its exit code was read",
            r.name
        ),
        Some(None) => bail!("container \"{}\" ended, but no exit code was recorded", r.name),
    }
}
