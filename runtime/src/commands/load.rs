//! `load -i ARCHIVE`: images from a docker-save archive or an OCI layout.

use anyhow::Result;

use super::Env;
use crate::cli::LoadArgs;

pub fn run(env: &Env, a: &LoadArgs) -> Result<u8> {
    for r in env.ctx().store()?.load(&a.input)? {
        println!("Loaded image: {r}");
    }
    Ok(0)
}
