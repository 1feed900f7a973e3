//! `restart [-t SECONDS] NAME...`: stop (SIGTERM, then SIGKILL after the
//! timeout), then start again: the same container, a new process.

use std::time::Duration;

use anyhow::Result;

use super::{each_container, Env};
use crate::cli::StopArgs;
use crate::container::{start_exited, teardown};

pub fn run(env: &Env, a: &StopArgs) -> Result<u8> {
    let ctx = env.ctx();
    each_container(env, &ctx, &a.containers, |c| {
        teardown::stop(&ctx, c, a.time.map(Duration::from_secs))?;
        start_exited(&ctx, c)
    })
}
