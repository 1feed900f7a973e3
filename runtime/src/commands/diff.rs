//! `diff NAME`: what changed in a container's root filesystem, from its
//! overlay upper directory: `A` added, `C` changed, `D` deleted (whiteouts).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use anyhow::Result;
use libcontainer::oci_spec::runtime::Spec;

use super::Env;
use crate::cli::NameArg;

pub fn run(env: &Env, a: &NameArg) -> Result<u8> {
    let ctx = env.ctx();
    let r = super::inspect::container(&ctx, &a.container)?;
    let upper = ctx.dir(&r.id).join("upper");
    let layers = ctx
        .store()
        .ok()
        .and_then(|s| s.resolve(&r.image_id).ok())
        .map(|i| i.layers)
        .unwrap_or_default();
    let mut changes = BTreeMap::new();
    walk(&upper, Path::new("/"), &layers, &mut changes);
    // mount points minirun (libcontainer) made for /proc, /etc/hosts,
    // volumes...: docker keeps them in an init layer, out of the diff
    let mounts: Vec<PathBuf> = Spec::load(ctx.dir(&r.id).join("config.json"))
        .ok()
        .and_then(|s| s.mounts().clone())
        .unwrap_or_default()
        .iter()
        .map(|m| m.destination().clone())
        .collect();
    changes.retain(|p, _| !mounts.iter().any(|m| p.starts_with(m)));
    for (path, kind) in shown(&changes) {
        println!("{kind} {}", path.display());
    }
    Ok(0)
}

/// The changes as docker lists them: a directory only changed because
/// something under it did is listed when something under it is.
fn shown(changes: &BTreeMap<PathBuf, (char, bool)>) -> Vec<(&PathBuf, char)> {
    changes
        .iter()
        .filter(|(p, (kind, is_dir))| !(*kind == 'C' && *is_dir) || changes.keys().any(|q| q != *p && q.starts_with(p)))
        .map(|(p, (k, _))| (p, *k))
        .collect()
}

fn walk(dir: &Path, inside: &Path, layers: &[PathBuf], out: &mut BTreeMap<PathBuf, (char, bool)>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let path = inside.join(e.file_name());
        let Ok(md) = e.metadata() else { continue };
        let in_image = layers
            .iter()
            .any(|l| fs::symlink_metadata(l.join(path.strip_prefix("/").unwrap_or(&path))).is_ok());
        if md.file_type().is_char_device() && md.rdev() == 0 {
            out.insert(path, ('D', false));
            continue;
        }
        out.insert(path.clone(), (if in_image { 'C' } else { 'A' }, md.is_dir()));
        if md.is_dir() {
            walk(&e.path(), &path, layers, out);
        }
    }
}
