//! `pause ID` (runc): freezes every process of a running container.

use anyhow::Result;

use super::Env;

pub fn run(env: &Env, id: &str) -> Result<u8> {
    env.state.pause(id)?;
    Ok(0)
}
