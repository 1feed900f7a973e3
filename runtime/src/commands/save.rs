//! `save -o FILE IMAGE...`: images as a docker-save archive (docker load,
//! podman load and minirun load read it).

use std::io::IsTerminal;

use anyhow::{bail, Result};

use super::Env;
use crate::cli::SaveArgs;

pub fn run(env: &Env, a: &SaveArgs) -> Result<u8> {
    let out = match &a.output {
        Some(path) => path.clone(),
        None if std::io::stdout().is_terminal() => {
            bail!("refusing to write an archive to a terminal: use -o FILE or redirect the output")
        }
        None => std::path::PathBuf::from("/dev/stdout"),
    };
    let store = env.ctx().store()?;
    if out == std::path::Path::new("/dev/stdout") {
        let dir = tempfile::tempdir()?;
        let tmp = dir.path().join("save.tar");
        store.save(&a.images, &tmp)?;
        std::io::copy(&mut std::fs::File::open(&tmp)?, &mut std::io::stdout().lock())?;
    } else {
        store.save(&a.images, &out)?;
    }
    Ok(0)
}
