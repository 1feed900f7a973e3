//! `stop [-t SECONDS] NAME...`: SIGTERM, then SIGKILL after the timeout.

use std::time::Duration;

use anyhow::Result;

use super::Env;
use crate::cli::StopArgs;
use crate::container::teardown;

pub fn run(env: &Env, a: &StopArgs) -> Result<u8> {
    let ctx = env.ctx();
    for c in &a.containers {
        teardown::stop(&ctx, c, Duration::from_secs(a.time))?;
        println!("{c}");
    }
    Ok(0)
}
