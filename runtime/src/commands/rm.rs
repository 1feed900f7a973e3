//! `rm [-f] NAME...`

use anyhow::Result;

use super::Env;
use crate::cli::RmArgs;
use crate::container::teardown;

pub fn run(env: &Env, a: &RmArgs) -> Result<u8> {
    let ctx = env.ctx();
    for c in &a.containers {
        teardown::rm(&ctx, c, a.force)?;
        println!("{c}");
    }
    Ok(0)
}
