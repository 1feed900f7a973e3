//! `resume ID` (runc), `unpause NAME` (docker): thaws a paused container.

use anyhow::Result;

use super::{as_named, Env};

pub fn run(env: &Env, wanted: &str) -> Result<u8> {
    let (id, _) = env.resolve_shared(wanted)?;
    as_named(env.state.resume(&id), &id, wanted)?;
    Ok(0)
}
