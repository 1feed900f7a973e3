//! `state ID` (runc): the OCI state as JSON.

use anyhow::Result;

use super::Env;

pub fn run(env: &Env, id: &str) -> Result<u8> {
    println!("{}", serde_json::to_string_pretty(&env.state.state(id)?)?);
    Ok(0)
}
