//! `start ID` (runc): runs the process of a created container; `start
//! [-a] [-i] NAME` (docker) of a container made from an image: a stopped one
//! runs again, and with `-a` we follow it until it exits, with its code.

use anyhow::{bail, Result};

use super::attach::{attach_running, detach_keys};
use super::{as_named, Env};
use crate::cli::StartArgs;
use crate::container::{logtimes, Status};

pub fn run(env: &Env, a: &StartArgs) -> Result<u8> {
    let wanted = a.id.id.as_str();
    let attach = a.attach || a.interactive;
    let (id, from_image) = env.resolve_shared(wanted)?;
    if !from_image {
        if attach {
            bail!("cannot attach to container \"{wanted}\": it was created from a bundle (its terminal goes to --console-socket)");
        }
        as_named(env.state.start(&id), &id, wanted)?;
        return Ok(0);
    }
    // bad keys are refused before anything starts
    let keys = attach.then(|| detach_keys(a.detach_keys.as_deref())).transpose()?;
    let ctx = env.ctx();
    // what it prints from now on is what -a shows (not the output of its earlier runs)
    let from = logtimes::length(&ctx.dir(&id).join("container.log"));
    match ctx.status(&ctx.load(&id)?) {
        // docker prints the name and does nothing (with -a: attaches)
        Status::Running => {}
        Status::Exited(_) => crate::container::start_exited(&ctx, &id)?,
        Status::Dead => bail!("cannot start container \"{wanted}\": it is dead (remove it)"),
        Status::Created => {
            as_named(env.state.start(&id), &id, wanted)?;
        }
    }
    let Some(keys) = keys else {
        println!("{wanted}");
        return Ok(0);
    };
    let r = ctx.load(&id)?;
    attach_running(&ctx, &r, keys, a.interactive, Some(from))
}
