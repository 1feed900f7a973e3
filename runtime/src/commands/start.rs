//! `start ID` (runc): runs the process of a created container; `start NAME`
//! (docker) of a container made from an image.

use anyhow::{bail, Result};

use super::{as_named, Env};
use crate::container::Status;

pub fn run(env: &Env, wanted: &str) -> Result<u8> {
    let (id, from_image) = env.resolve_shared(wanted)?;
    if from_image {
        let ctx = env.ctx();
        match ctx.status(&ctx.load(&id)?) {
            // docker prints the name and does nothing
            Status::Running => {
                println!("{wanted}");
                return Ok(0);
            }
            Status::Exited(_) => {
                crate::container::start_exited(&ctx, &id)?;
                println!("{wanted}");
                return Ok(0);
            }
            Status::Dead => bail!("cannot start container \"{wanted}\": it is dead (remove it)"),
            Status::Created => {}
        }
    }
    as_named(env.state.start(&id), &id, wanted)?;
    Ok(0)
}
