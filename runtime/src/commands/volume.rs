//! `volume create|ls|inspect|rm`: named volumes (see `container::volumes`).

use anyhow::{bail, Result};

use super::Env;
use crate::cli::VolumeCmd;
use crate::container::volumes;

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
    }
    Ok(0)
}
