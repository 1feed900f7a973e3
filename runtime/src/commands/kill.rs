//! `kill [--all] ID [SIGNAL]` (runc).

use anyhow::Result;

use super::Env;
use crate::cli::KillArgs;

pub fn run(env: &Env, a: &KillArgs) -> Result<u8> {
    env.state.kill(&a.id, &a.signal, a.all)?;
    Ok(0)
}
