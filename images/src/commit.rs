//! `commit`: a new image from an image and a container's changes (its
//! overlayfs upper directory: whiteouts become `.wh.` files in the new
//! layer), loaded into the store like any docker-save archive.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::digest::{sha256_of, sha256_ref};
use crate::error::{Error, IoContext, Result};
use crate::save::write_layer_tar;
use crate::store::{Image, LockMode, Store, GC_LOCK};

impl Store {
    /// Makes the image of `base` with `upper` as one more layer and its
    /// config changed by `edit` (the JSON of an OCI image config), tagged
    /// `reference` if given; `scratch` is a directory for the archive (not
    /// the store's own tmp). Returns the new image's id (64 hex digits).
    pub fn commit_container(
        &self,
        base: &Image,
        upper: &Path,
        scratch: &Path,
        reference: Option<&str>,
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Result<String> {
        let staging = tempfile::Builder::new()
            .prefix("commit-")
            .tempdir_in(scratch)
            .ctx("create a directory in", scratch)?;
        let mut members = Vec::new();
        let mut diff_ids = Vec::new();
        {
            let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
            for (i, dir) in base.layers.iter().map(|l| l.as_path()).chain([upper]).enumerate() {
                let file = staging.path().join(format!("layer-{i}.tar"));
                let hex = write_layer_tar(dir, &file)?;
                diff_ids.push(sha256_ref(&hex));
                members.push((format!("{hex}/layer.tar"), file));
            }
        }
        let config_path = self.blob_path(&base.id);
        let mut config: serde_json::Value = serde_json::from_slice(&fs::read(&config_path).ctx("read", &config_path)?)
            .map_err(|e| Error::Index {
                path: config_path.clone(),
                reason: format!("config of image {}: {e}", sha256_ref(&base.id)),
            })?;
        config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
        edit(&mut config);
        let bytes = serde_json::to_vec(&config).expect("a JSON value serializes");
        let id = sha256_of(&bytes);
        let tags: Vec<String> = reference.map(|r| vec![r.to_string()]).unwrap_or_default();
        let manifest = serde_json::json!([{
            "Config": format!("{id}.json"),
            "RepoTags": tags,
            "Layers": members.iter().map(|(m, _)| m.clone()).collect::<Vec<_>>(),
        }]);
        let archive = staging.path().join("image.tar");
        {
            let file = File::create(&archive).ctx("create", &archive)?;
            let mut tar = tar::Builder::new(BufWriter::new(file));
            let add = |tar: &mut tar::Builder<BufWriter<File>>, name: &str, data: &mut dyn std::io::Read, len: u64| {
                let mut h = tar::Header::new_ustar();
                h.set_size(len);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, name, data).ctx("write", &archive)
            };
            add(
                &mut tar,
                &format!("{id}.json"),
                &mut bytes.as_slice(),
                bytes.len() as u64,
            )?;
            let m = serde_json::to_vec(&manifest).expect("a JSON value serializes");
            add(&mut tar, "manifest.json", &mut m.as_slice(), m.len() as u64)?;
            for (member, path) in &members {
                let mut f = File::open(path).ctx("open", path)?;
                let len = f.metadata().ctx("stat", path)?.len();
                add(&mut tar, member, &mut f, len)?;
            }
            let mut w = tar.into_inner().ctx("write", &archive)?;
            w.flush().ctx("write", &archive)?;
        }
        self.load(&archive)?;
        Ok(id)
    }
}
