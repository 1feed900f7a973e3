//! `kill [--all] ID [SIGNAL]` (runc) and `kill [-s SIGNAL] NAME` (docker).

use anyhow::{bail, Result};

use super::{as_named, Env};
use crate::cli::KillArgs;
use crate::container::Status;

pub fn run(env: &Env, a: &KillArgs) -> Result<u8> {
    if a.signal_flag.is_some() && a.signal.is_some() {
        bail!("kill: give the signal either with -s or after the container, not both");
    }
    let (id, from_image) = env.resolve_shared(&a.id)?;
    let given = a.signal_flag.as_deref().or(a.signal.as_deref());
    let signal = if from_image {
        // as docker: only a running container, and KILL unless told otherwise
        let ctx = env.ctx();
        if ctx.status(&ctx.load(&id)?) != Status::Running {
            bail!("cannot kill container \"{}\": it is not running", a.id);
        }
        given.unwrap_or("SIGKILL")
    } else {
        given.unwrap_or("SIGTERM")
    };
    as_named(env.state.kill(&id, signal, a.all), &id, &a.id)?;
    Ok(0)
}
