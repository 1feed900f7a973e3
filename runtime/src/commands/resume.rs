//! `resume ID` (runc): thaws a paused container.

use anyhow::Result;

use super::Env;

pub fn run(env: &Env, id: &str) -> Result<u8> {
    env.state.resume(id)?;
    Ok(0)
}
