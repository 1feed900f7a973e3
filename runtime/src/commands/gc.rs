//! `gc`: removes what crashed runs and killed monitors left.

use anyhow::Result;

use super::Env;
use crate::container::teardown;

pub fn run(env: &Env) -> Result<u8> {
    for id in teardown::gc(&env.ctx())? {
        println!("{id}");
    }
    Ok(0)
}
