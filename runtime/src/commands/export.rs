//! `export [-o FILE] NAME`: the container's root filesystem as a tar.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::rootfs::Rootfs;
use super::Env;
use crate::cli::ExportArgs;

pub fn run(env: &Env, a: &ExportArgs) -> Result<u8> {
    let ctx = env.ctx();
    let r = super::inspect::container(&ctx, &a.container)?;
    let root = Rootfs::open(&ctx, &r, None)?;
    match &a.output {
        Some(path) => {
            let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            write(&root.path, io::BufWriter::new(f))?;
        }
        None => write(&root.path, io::stdout().lock())?,
    }
    Ok(0)
}

/// Every entry under `root` (links as links), named relative to it.
fn write(root: &Path, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut entries: Vec<_> = std::fs::read_dir(root)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_type()?.is_dir() {
            tar.append_dir_all(e.file_name(), e.path())?;
        } else {
            tar.append_path_with_name(e.path(), e.file_name())?;
        }
    }
    tar.into_inner()?.flush()?;
    Ok(())
}
