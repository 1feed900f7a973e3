//! `rm [-f] NAME...`: as docker, every container is tried; the ones that
//! could not be removed are reported and make the exit code 1.

use anyhow::Result;

use super::{each_container, Env};
use crate::cli::RmArgs;
use crate::container::teardown;

pub fn run(env: &Env, a: &RmArgs) -> Result<u8> {
    let ctx = env.ctx();
    each_container(env, &ctx, &a.containers, |c| teardown::rm(&ctx, c, a.force).map(|_| ()))
}
