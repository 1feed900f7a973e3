//! `start ID` (runc): runs the process of a created container.

use anyhow::Result;

use super::Env;

pub fn run(env: &Env, id: &str) -> Result<u8> {
    env.state.start(id)?;
    Ok(0)
}
