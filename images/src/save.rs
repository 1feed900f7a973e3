//! `tag` and `save`: another name for an image, and images written out as
//! a `docker save` archive (`manifest.json`, `<id>.json`,
//! `<diff_id>/layer.tar`, `repositories`) that `docker load`, `podman load`
//! and `minirun load` read.
//!
//! The store keeps layers unpacked, not their original tars, so `save`
//! writes each layer anew from its directory (overlayfs whiteouts back to
//! `.wh.` files, opaque directories to `.wh..wh..opq`), in a fixed order.
//! Its tar is not byte for byte the one that was pulled or loaded, so the
//! saved config carries the new diff_ids: the saved image has its own id.

use crate::digest::{sha256_of, sha256_ref};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, OPAQUE_MARKER, WHITEOUT_PREFIX};
use crate::reference::{split_tagged, Reference};
use crate::store::{LockMode, Store, GC_LOCK};
use rustix::fs::{self as rfs, AtFlags, FileType};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

impl Store {
    /// Point `target` (`name[:tag]`) at the image `source` names. Returns the stored `name:tag`.
    pub fn tag(&self, source: &str, target: &str) -> Result<String> {
        let parsed = Reference::parse(target)?;
        if parsed.digest.is_some() {
            return Err(Error::InvalidReference {
                reference: target.to_string(),
                reason: "a tag cannot have a digest".into(),
            });
        }
        let tagged = parsed.tagged();
        let id = self.resolve(source)?.id;
        self.set_ref(&tagged, &id)?;
        Ok(tagged)
    }

    /// Write the images `references` name to `out` as a docker-save archive
    /// (replaced atomically: a failed save leaves no file).
    pub fn save(&self, references: &[String], out: &Path) -> Result<()> {
        let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
        let staging = tempfile::Builder::new()
            .prefix("save-")
            .tempdir_in(self.tmp_path())
            .ctx("create a directory in", self.tmp_path())?;
        // diff_id (stored) -> (diff_id of the tar written, its file)
        let mut layers: HashMap<PathBuf, (String, PathBuf)> = HashMap::new();
        let mut manifest = Vec::new();
        let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut members: Vec<(String, PathBuf)> = Vec::new();
        let mut configs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for reference in references {
            let image = self.resolve(reference)?;
            let tags: Vec<String> = match Reference::parse(reference) {
                Ok(r) if r.digest.is_none() && image.references.contains(&r.tagged()) => vec![r.tagged()],
                _ => image.references.clone(),
            };
            let mut diff_ids = Vec::new();
            let mut paths = Vec::new();
            for dir in &image.layers {
                if !layers.contains_key(dir) {
                    let file = staging.path().join(format!("layer-{}.tar", layers.len()));
                    let hex = write_layer_tar(dir, &file)?;
                    layers.insert(dir.clone(), (hex, file));
                }
                let (hex, file) = &layers[dir];
                diff_ids.push(sha256_ref(hex));
                let member = format!("{hex}/layer.tar");
                if !members.iter().any(|(m, _)| *m == member) {
                    members.push((member.clone(), file.clone()));
                }
                paths.push(member);
            }
            let config_path = self.blob_path(&image.id);
            let mut config: serde_json::Value =
                serde_json::from_slice(&fs::read(&config_path).ctx("read", &config_path)?).map_err(|e| {
                    Error::Index {
                        path: config_path.clone(),
                        reason: format!("config of image {}: {e}", sha256_ref(&image.id)),
                    }
                })?;
            config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": diff_ids});
            let bytes = serde_json::to_vec(&config).expect("a JSON value serializes");
            let id = sha256_of(&bytes);
            configs.insert(id.clone(), bytes);
            for t in &tags {
                let (repo, tag) = split_tagged(t);
                repositories.entry(repo.to_string()).or_default().insert(
                    tag.to_string(),
                    paths.last().map(|p| p[..64].to_string()).unwrap_or_default(),
                );
            }
            manifest.push(serde_json::json!({
                "Config": format!("{id}.json"),
                "RepoTags": tags,
                "Layers": paths,
            }));
        }
        let tmp = out.with_file_name(format!(
            ".{}.tmp-{}",
            out.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
            std::process::id()
        ));
        let result = (|| -> Result<()> {
            let file = File::create(&tmp).ctx("create", &tmp)?;
            let mut tar = tar::Builder::new(BufWriter::new(file));
            let mut add = |name: &str, data: &[u8]| {
                let mut h = tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, name, data).ctx("write", &tmp)
            };
            for (id, bytes) in &configs {
                add(&format!("{id}.json"), bytes)?;
            }
            add(
                "manifest.json",
                &serde_json::to_vec(&manifest).expect("a JSON value serializes"),
            )?;
            add(
                "repositories",
                &serde_json::to_vec(&repositories).expect("a JSON value serializes"),
            )?;
            for (member, path) in &members {
                let mut f = File::open(path).ctx("open", path)?;
                let mut h = tar::Header::new_ustar();
                h.set_size(f.metadata().ctx("stat", path)?.len());
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, member, &mut f).ctx("write", &tmp)?;
            }
            let mut w = tar.into_inner().ctx("write", &tmp)?;
            w.flush().ctx("write", &tmp)?;
            w.get_ref().sync_all().ctx("sync", &tmp)?;
            fs::rename(&tmp, out).ctx("replace", out)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Write the layer in `dir` (overlayfs form) to `out` as an uncompressed
/// layer tar; returns the hex sha256 of the tar (its diff_id).
pub(crate) fn write_layer_tar(dir: &Path, out: &Path) -> Result<String> {
    let file = File::create(out).ctx("create", out)?;
    let mut tar = tar::Builder::new(Hashing {
        inner: BufWriter::new(file),
        hasher: Sha256::new(),
    });
    let root = fsutil::open_dir(dir).ctx("open", dir)?;
    let mut links = HashMap::new();
    walk(&mut tar, root.as_fd(), dir, Path::new(""), &mut links).ctx("write a tar of layer", dir)?;
    let hashing = tar.into_inner().ctx("write", out)?;
    let Hashing { mut inner, hasher } = hashing;
    inner.flush().ctx("write", out)?;
    Ok(hex::encode(hasher.finalize()))
}

fn header_for(st: &rfs::Stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

fn walk<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: std::os::fd::BorrowedFd<'_>,
    abs: &Path,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut names = fsutil::list_dir(dir)?;
    names.sort();
    if fsutil::is_opaque(dir)? {
        let st = rfs::fstat(dir)?;
        let mut h = header_for(&st, tar::EntryType::Regular);
        h.set_mode(0o644);
        tar.append_data(&mut h, rel.join(OPAQUE_MARKER), io::empty())?;
    }
    for name in names {
        let path = rel.join(&name);
        let st = rfs::statat(dir, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            _ if fsutil::is_whiteout(&st) => {
                let mut h = header_for(&st, tar::EntryType::Regular);
                h.set_mode(0o644);
                let mut wh = OsStr::new(WHITEOUT_PREFIX).to_os_string();
                wh.push(&name);
                tar.append_data(&mut h, rel.join(wh), io::empty())?;
            }
            FileType::Directory => {
                let mut h = header_for(&st, tar::EntryType::Directory);
                tar.append_data(&mut h, &path, io::empty())?;
                let sub = fsutil::open_subdir(dir, &name)?;
                walk(tar, sub.as_fd(), &abs.join(&name), &path, links)?;
            }
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        let mut h = header_for(&st, tar::EntryType::Link);
                        tar.append_link(&mut h, &path, first)?;
                        continue;
                    }
                    links.insert(key, path.clone());
                }
                let mut h = header_for(&st, tar::EntryType::Regular);
                h.set_size(st.st_size as u64);
                let f = File::open(abs.join(&name))?;
                tar.append_data(&mut h, &path, f)?;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dir, name.as_os_str(), Vec::new())?;
                let mut h = header_for(&st, tar::EntryType::Symlink);
                tar.append_link(&mut h, &path, Path::new(OsStr::from_bytes(target.as_bytes())))?;
            }
            FileType::CharacterDevice | FileType::BlockDevice => {
                let kind = if FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = header_for(&st, kind);
                h.set_device_major(rfs::major(st.st_rdev))?;
                h.set_device_minor(rfs::minor(st.st_rdev))?;
                tar.append_data(&mut h, &path, io::empty())?;
            }
            FileType::Fifo => {
                let mut h = header_for(&st, tar::EntryType::Fifo);
                tar.append_data(&mut h, &path, io::empty())?;
            }
            _ => {
                tracing::warn!(path = %abs.join(&name).display(), "not saving a socket or unknown file type");
            }
        }
    }
    Ok(())
}
