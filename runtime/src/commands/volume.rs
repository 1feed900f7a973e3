//! `volume create|ls|inspect|rm|prune`: named volumes (see `container::volumes`).

use anyhow::{bail, Result};

use super::Env;
use crate::cli::VolumeCmd;
use crate::container::{volumes, Ctx};

pub fn run(env: &Env, cmd: VolumeCmd) -> Result<u8> {
    let ctx = env.ctx();
    match cmd {
        VolumeCmd::Create { name, driver } => {
            if driver != "local" {
                bail!("volume driver \"{driver}\": only the local driver exists");
            }
            let name = match name {
                Some(n) => n,
                None => crate::container::run::random_volume_name()?,
            };
            let (v, _) = volumes::ensure(&ctx, &name)?;
            println!("{}", v.name);
        }
        VolumeCmd::Ls { quiet } => {
            let all = volumes::list(&ctx)?;
            if !quiet {
                println!("{:<10}VOLUME NAME", "DRIVER");
            }
            for v in all {
                if quiet {
                    println!("{}", v.name);
                } else {
                    println!("{:<10}{}", v.driver, v.name);
                }
            }
        }
        VolumeCmd::Inspect { names } => {
            let out = names
                .iter()
                .map(|n| volumes::get(&ctx, n))
                .collect::<Result<Vec<_>>>()?;
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCmd::Rm { force, names } => {
            let mut failed = Vec::new();
            for n in &names {
                if force && volumes::get(&ctx, n).is_err() {
                    continue;
                }
                match volumes::remove(&ctx, n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => failed.push(format!("{e:#}")),
                }
            }
            if !failed.is_empty() {
                bail!("{}", failed.join("; "));
            }
        }
        VolumeCmd::Prune { force } => {
            if !super::prune::confirmed(
                force,
                "WARNING! This will remove all local volumes not used by at least one container.",
            )? {
                return Ok(0);
            }
            let (deleted, space) = prune(&ctx)?;
            if !deleted.is_empty() {
                println!("Deleted Volumes:");
                for n in &deleted {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", super::format::human_size(space));
        }
    }
    Ok(0)
}

/// Removes the volumes no container (running or stopped) uses; their names
/// and the space they took (`volume prune`, `system prune --volumes`).
pub fn prune(ctx: &Ctx) -> Result<(Vec<String>, u64)> {
    let mut space = 0;
    let mut deleted = Vec::new();
    for v in volumes::list(ctx)? {
        if !volumes::users(ctx, &v.name)?.is_empty() {
            continue;
        }
        let size = super::ps_docker::dir_size(&volumes::data_dir(ctx, &v.name));
        // a container made since the listing keeps it: remove checks again
        if volumes::remove(ctx, &v.name).is_ok() {
            space += size;
            deleted.push(v.name);
        }
    }
    Ok((deleted, space))
}
