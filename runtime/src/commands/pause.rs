//! `pause ID` (runc, docker): freezes every process of a running container.

use anyhow::Result;

use super::{as_named, Env};

pub fn run(env: &Env, wanted: &str) -> Result<u8> {
    let (id, _) = env.resolve_shared(wanted)?;
    as_named(env.state.pause(&id), &id, wanted)?;
    Ok(0)
}
