//! `rmi IMAGE...`: refused while a container uses the image.

use anyhow::{bail, Result};

use super::Env;
use crate::cli::RmiArgs;

pub fn run(env: &Env, a: &RmiArgs) -> Result<u8> {
    let ctx = env.ctx();
    let store = ctx.store()?;
    for r in &a.images {
        let image = store.resolve(r)?;
        let users: Vec<String> = ctx
            .all()?
            .into_iter()
            .filter(|c| c.image_id == image.id)
            .map(|c| c.name)
            .collect();
        if !users.is_empty() {
            bail!(
                "image \"{r}\" is used by container(s) {}: remove them first",
                users.join(", ")
            );
        }
        for line in store.remove(r)? {
            println!("{line}");
        }
    }
    Ok(0)
}
