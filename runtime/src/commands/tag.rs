//! `tag SOURCE TARGET`: another name for an image.

use anyhow::Result;

use super::Env;
use crate::cli::TagArgs;

pub fn run(env: &Env, a: &TagArgs) -> Result<u8> {
    let tagged = env.ctx().store()?.tag(&a.source, &a.target)?;
    tracing::info!(source = %a.source, target = %tagged, "tagged");
    Ok(0)
}
