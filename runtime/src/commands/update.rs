//! `update --resources FILE|- ID` (runc): new cgroup limits.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use libcontainer::oci_spec::runtime::LinuxResources;

use super::Env;
use crate::cli::UpdateArgs;

pub fn run(env: &Env, a: &UpdateArgs) -> Result<u8> {
    env.state.update(&a.id, &read_resources(&a.resources)?)?;
    Ok(0)
}

/// OCI LinuxResources JSON from a file or stdin.
fn read_resources(from: &Path) -> Result<LinuxResources> {
    let text = if from == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read resources from stdin")?;
        buf
    } else {
        std::fs::read(from).with_context(|| format!("cannot read resources from {}", from.display()))?
    };
    serde_json::from_slice(&text).with_context(|| format!("invalid resources JSON in {}", from.display()))
}
