//! `rename OLD NEW`: a container's new name (its id stays).

use std::fs;

use anyhow::{bail, Result};

use super::Env;
use crate::cli::RenameArgs;
use crate::container::valid_name;

pub fn run(env: &Env, a: &RenameArgs) -> Result<u8> {
    let ctx = env.ctx();
    let new = a.new_name.trim_start_matches('/');
    valid_name(new)?;
    let r = super::inspect::container(&ctx, &a.container)?;
    if r.name == new {
        bail!("Error when allocating new name: Renaming a container with the same name as its current name");
    }
    ctx.reserve_name(Some(new), &r.id).map_err(|_| {
        anyhow::anyhow!("Error when allocating new name: The container name \"/{new}\" is already in use")
    })?;
    // the record, re-read right before it is written (its monitor may save it too)
    let mut now = ctx.load(&r.id)?;
    let old = std::mem::replace(&mut now.name, new.to_string());
    ctx.save(&now)?;
    let _ = fs::remove_file(ctx.names_dir().join(&old));
    Ok(0)
}
