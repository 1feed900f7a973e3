//! Named volumes, minimal and local as docker's `local` driver:
//! `<data-root>/volumes/<name>/_data` (what is mounted) and
//! `<data-root>/volumes/<name>/meta.json`. Made by `volume create` or on the
//! first `-v NAME:/path` / `--mount type=volume`; filled from the image on
//! its first mount while empty (unless `nocopy`), as docker does; removed by
//! `volume rm` only when no container (running or not) uses it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::record::now;
use super::store::Ctx;
use crate::util::json;

/// What `volume inspect` prints, as docker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub created_at: String,
    pub driver: String,
    pub labels: BTreeMap<String, String>,
    pub mountpoint: PathBuf,
    pub name: String,
    pub options: BTreeMap<String, String>,
    pub scope: String,
}

pub use crate::imagespec::mounts::valid_volume_name;

fn volumes_dir(ctx: &Ctx) -> PathBuf {
    ctx.data_root.join("volumes")
}

/// The directory a volume's content lives in (what containers mount).
pub fn data_dir(ctx: &Ctx, name: &str) -> PathBuf {
    volumes_dir(ctx).join(name).join("_data")
}

/// The volume `name`, made if missing; true if it was made now.
pub fn ensure(ctx: &Ctx, name: &str) -> Result<(VolumeInfo, bool)> {
    valid_volume_name(name)?;
    if let Ok(v) = get(ctx, name) {
        return Ok((v, false));
    }
    let dir = volumes_dir(ctx).join(name);
    fs::create_dir_all(dir.join("_data")).with_context(|| format!("cannot create volume {name}"))?;
    let info = VolumeInfo {
        created_at: now(),
        driver: "local".into(),
        labels: BTreeMap::new(),
        mountpoint: dir.join("_data"),
        name: name.into(),
        options: BTreeMap::new(),
        scope: "local".into(),
    };
    json::write_atomic(&dir.join("meta.json"), &info)?;
    Ok((info, true))
}

pub fn get(ctx: &Ctx, name: &str) -> Result<VolumeInfo> {
    let meta = volumes_dir(ctx).join(name).join("meta.json");
    if valid_volume_name(name).is_err() || !meta.exists() {
        bail!("no such volume: {name}");
    }
    json::read(&meta)
}

/// Every volume, by name.
pub fn list(ctx: &Ctx) -> Result<Vec<VolumeInfo>> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(volumes_dir(ctx)) {
        for e in rd.flatten() {
            if let Ok(v) = get(ctx, &e.file_name().to_string_lossy()) {
                out.push(v);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The containers (any state) that mount volume `name`.
pub fn users(ctx: &Ctx, name: &str) -> Result<Vec<String>> {
    let data = data_dir(ctx, name);
    Ok(ctx
        .all()?
        .into_iter()
        .filter(|r| r.volumes.iter().any(|m| m.source == data))
        .map(|r| r.id)
        .collect())
}

/// Removes volume `name` if no container uses it.
pub fn remove(ctx: &Ctx, name: &str) -> Result<()> {
    get(ctx, name)?;
    let users = users(ctx, name)?;
    if !users.is_empty() {
        bail!("remove {name}: volume is in use - [{}]", users.join(", "));
    }
    let dir = volumes_dir(ctx).join(name);
    // meta.json first: a removal cut short is no longer a volume
    fs::remove_file(dir.join("meta.json"))?;
    fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// Fills an empty volume from the image's directory at its destination
/// (`src`, inside the root filesystem), as docker's first mount does: the
/// files with their modes and owners, and the directory's own.
pub fn copy_up(src: &Path, data: &Path) -> Result<()> {
    let Ok(md) = fs::symlink_metadata(src) else {
        return Ok(());
    };
    if !md.is_dir() || fs::read_dir(data)?.next().is_some() {
        return Ok(());
    }
    copy_tree(src, data).with_context(|| format!("cannot copy the image's {} into the volume", src.display()))?;
    fs::set_permissions(data, fs::Permissions::from_mode(md.mode() & 0o7777))?;
    lchown(data, Some(md.uid()), Some(md.gid()))?;
    Ok(())
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    for e in fs::read_dir(src)? {
        let e = e?;
        let (from, to) = (e.path(), dst.join(e.file_name()));
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_tree(&from, &to)?;
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
        } else {
            continue; // devices, fifos, sockets: not copied
        }
        lchown(&to, Some(md.uid()), Some(md.gid()))?;
        if !ft.is_symlink() {
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_up_fills_only_an_empty_volume() {
        let d = tempfile::tempdir().unwrap();
        let (src, data) = (d.path().join("src"), d.path().join("data"));
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("sub/f"), "x").unwrap();
        fs::set_permissions(src.join("sub/f"), fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::symlink("sub/f", src.join("l")).unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o750)).unwrap();
        fs::create_dir(&data).unwrap();
        copy_up(&src, &data).unwrap();
        assert_eq!(fs::read_to_string(data.join("l")).unwrap(), "x");
        assert_eq!(fs::metadata(data.join("sub/f")).unwrap().mode() & 0o777, 0o640);
        assert_eq!(fs::metadata(&data).unwrap().mode() & 0o777, 0o750);
        fs::write(src.join("new"), "y").unwrap();
        copy_up(&src, &data).unwrap();
        assert!(!data.join("new").exists(), "a volume with content is left alone");
    }
}
