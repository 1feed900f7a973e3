//! `delete [--force] ID` (runc).

use anyhow::Result;

use super::Env;
use crate::cli::DeleteArgs;

pub fn run(env: &Env, a: &DeleteArgs) -> Result<u8> {
    env.state.delete(&a.id, a.force)?;
    Ok(0)
}
