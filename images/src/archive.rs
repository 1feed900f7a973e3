//! Reading image archives: `docker save` tars and OCI image layouts (a
//! directory, a tar, or a compressed tar), down to a list of verified
//! configs/manifests and the layers still to be unpacked and verified.

use crate::digest::{sha256_hex, sha256_of, sha256_ref};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::normalize;
use crate::reference::Reference;
use crate::unpack::{Compression, Decoder};
use oci_spec::image::{Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Os};
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Upper bound for JSON documents (manifests, configs, indexes) read into memory.
const MAX_JSON: u64 = 64 << 20;
const MAX_LINK_HOPS: usize = 16;
const MAX_INDEX_DEPTH: usize = 4;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";

/// An image read from an archive: config and manifest verified, layers not yet.
#[derive(Debug)]
pub(crate) struct PendingImage {
    /// Familiar `name:tag` references.
    pub refs: Vec<String>,
    /// Hex sha256 of `config`: the image id.
    pub id: String,
    pub config: Vec<u8>,
    pub created: Option<String>,
    /// The OCI manifest (hex digest, bytes); docker-save archives have none.
    pub manifest: Option<(String, Vec<u8>)>,
    /// Hex digest of the image index the manifest was chosen from (pulls only).
    pub index: Option<String>,
    /// Repositories the image was pulled from by digest (no tag to record).
    pub repos: Vec<String>,
    pub layers: Vec<PendingLayer>,
}

impl PendingImage {
    /// The blobs to store: the manifest (if any) and the config, as (hex digest, bytes).
    pub fn blobs(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let manifest = self.manifest.iter().map(|(hex, b)| (hex.as_str(), b.as_slice()));
        manifest.chain([(self.id.as_str(), self.config.as_slice())])
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PendingLayer {
    /// Where the layer is inside the archive.
    pub entry: PathBuf,
    /// Expected hex sha256 (and size) of the layer as stored, when known.
    pub blob: Option<(String, Option<u64>)>,
    /// Expected hex sha256 of the uncompressed tar.
    pub diff_id: String,
}

enum Item {
    File { offset: u64, size: u64 },
    Link(PathBuf),
}

enum Source {
    Dir(PathBuf),
    /// An uncompressed tar (the archive itself, or its decompressed copy) and
    /// where each member is in it.
    Tar {
        file: PathBuf,
        items: HashMap<PathBuf, Item>,
    },
}

/// An opened archive or layout.
pub(crate) struct Archive {
    /// The path as given, for messages.
    path: PathBuf,
    source: Source,
}

impl Archive {
    /// Open `path`: a directory, or a tar file (gzip/zstd-compressed ones are
    /// decompressed into `scratch` first, so that members can be read in any order).
    pub fn open(path: &Path, scratch: &Path) -> Result<Archive> {
        let meta = fs::metadata(path).ctx("open archive", path)?;
        let mut archive = Archive {
            path: path.to_path_buf(),
            source: Source::Dir(path.to_path_buf()),
        };
        if meta.is_dir() {
            return Ok(archive);
        }
        if meta.len() == 0 {
            return Err(archive.err("the file is empty"));
        }
        let file = File::open(path).ctx("open archive", path)?;
        let (compression, mut decoder) = Decoder::new(file).map_err(|e| archive.err(e.to_string()))?;
        let tar = if compression == Compression::None {
            path.to_path_buf()
        } else {
            let copy = scratch.join("archive.tar");
            let mut out = File::create(&copy).ctx("create", &copy)?;
            io::copy(&mut decoder, &mut out)
                .map_err(|e| archive.err(format!("corrupt or truncated {compression} data: {e}")))?;
            copy
        };
        archive.source = Source::Tar {
            items: archive.index_tar(&tar)?,
            file: tar,
        };
        Ok(archive)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn err(&self, reason: impl Into<String>) -> Error {
        // Reasons may quote bytes of the archive (the tar crate puts header
        // fields into its messages): keep the error on one line.
        let mut one_line = String::new();
        for c in reason.into().chars() {
            if c.is_control() {
                one_line.extend(c.escape_default());
            } else {
                one_line.push(c);
            }
        }
        Error::Archive {
            archive: self.path.clone(),
            reason: one_line,
        }
    }

    pub fn mismatch(&self, object: impl Into<String>, expected: &str, actual: &str) -> Error {
        Error::DigestMismatch {
            archive: self.path.clone(),
            object: object.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }

    /// Where every member of a tar is; checks that none runs past the end.
    fn index_tar(&self, tar: &Path) -> Result<HashMap<PathBuf, Item>> {
        let file = File::open(tar).ctx("open", tar)?;
        let len = file.metadata().ctx("stat", tar)?.len();
        let mut archive = tar::Archive::new(BufReader::new(file));
        let mut items = HashMap::new();
        let mut end = 0;
        let not_tar = |e: io::Error| self.err(format!("not a valid tar archive: {e}"));
        for entry in archive.entries_with_seek().map_err(not_tar)? {
            let entry = entry.map_err(not_tar)?;
            let raw = entry.path_bytes();
            let (offset, size) = (entry.raw_file_position(), entry.size());
            end = (offset + size).next_multiple_of(512);
            if end > len {
                return Err(self.err(format!(
                    "truncated: member {:?} needs {} bytes past the end of the file",
                    String::from_utf8_lossy(&raw),
                    end - len
                )));
            }
            let Ok(name) = normalize(&raw) else {
                tracing::debug!(archive = %self.path.display(), entry = ?String::from_utf8_lossy(&raw), "ignoring member outside the archive root");
                continue;
            };
            let kind = entry.header().entry_type();
            let item = match kind {
                tar::EntryType::Regular | tar::EntryType::Continuous => Item::File { offset, size },
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let Some(target) = entry.link_name_bytes() else {
                        continue;
                    };
                    // Hard link targets are archive paths; symlinks are relative
                    // to their directory, or to the archive root when absolute.
                    let target = match target.strip_prefix(b"/") {
                        _ if kind == tar::EntryType::Link => target.to_vec(),
                        Some(absolute) => absolute.to_vec(),
                        None => {
                            let dir = name.parent().unwrap_or(Path::new(""));
                            [dir.as_os_str().as_bytes(), b"/", &target].concat()
                        }
                    };
                    match normalize(&target) {
                        Ok(target) => Item::Link(target),
                        Err(_) => continue,
                    }
                }
                _ => continue,
            };
            items.insert(name, item);
        }
        if items.is_empty() {
            return Err(self.err("not a tar archive, or an empty one"));
        }
        // Writers end a tar with two zero blocks; without them it was cut short.
        if len < end + 1024 {
            return Err(self.err("truncated: the end-of-archive marker is missing"));
        }
        Ok(items)
    }

    fn has(&self, name: &Path) -> bool {
        match &self.source {
            Source::Dir(root) => root.join(name).is_file(),
            Source::Tar { .. } => self.locate(name).is_some(),
        }
    }

    fn locate(&self, name: &Path) -> Option<(u64, u64)> {
        let Source::Tar { items, .. } = &self.source else {
            return None;
        };
        let mut name = name;
        for _ in 0..MAX_LINK_HOPS {
            match items.get(name)? {
                Item::File { offset, size } => return Some((*offset, *size)),
                Item::Link(target) => name = target,
            }
        }
        None
    }

    /// Open member `name` (a path from the archive's own metadata); returns it and its size.
    pub fn open_member(&self, name: &Path) -> Result<(Box<dyn Read + Send>, u64)> {
        let missing = || self.err(format!("{} is missing", name.display()));
        match &self.source {
            Source::Dir(root) => {
                let path = root.join(name);
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => missing(),
                    _ => self.err(format!("{}: {e}", name.display())),
                })?;
                let size = file.metadata().ctx("stat", &path)?.len();
                Ok((Box::new(file), size))
            }
            Source::Tar { file, .. } => {
                let (offset, size) = self.locate(name).ok_or_else(missing)?;
                let mut f = File::open(file).ctx("open", file)?;
                f.seek(SeekFrom::Start(offset)).ctx("seek", file)?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// Read a small member entirely, optionally checking its sha256 and size.
    fn read_member(&self, name: &Path, what: &str, expect: Option<(&str, u64)>) -> Result<Vec<u8>> {
        let (reader, size) = self.open_member(name)?;
        if let Some((_, expected_size)) = expect {
            if size != expected_size {
                return Err(self.err(format!(
                    "{what} {}: {size} bytes, but its descriptor says {expected_size}",
                    name.display()
                )));
            }
        }
        if size > MAX_JSON {
            return Err(self.err(format!("{what} {}: too large ({size} bytes)", name.display())));
        }
        let mut data = Vec::with_capacity(size as usize);
        reader
            .take(size)
            .read_to_end(&mut data)
            .map_err(|e| self.err(format!("{what} {}: {e}", name.display())))?;
        if data.len() as u64 != size {
            return Err(self.err(format!("{what} {}: truncated", name.display())));
        }
        if let Some((hex, _)) = expect {
            let actual = sha256_of(&data);
            if actual != hex {
                return Err(self.mismatch(
                    format!("{what} {}", name.display()),
                    &sha256_ref(hex),
                    &sha256_ref(&actual),
                ));
            }
        }
        Ok(data)
    }

    /// Read and verify the blob a descriptor points to.
    fn read_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let hex = self.descriptor_hex(desc, what)?;
        self.read_member(&blob_path(&hex), what, Some((&hex, desc.size())))
    }

    fn descriptor_hex(&self, desc: &Descriptor, what: &str) -> Result<String> {
        desc.as_digest_sha256()
            .map(str::to_string)
            .ok_or_else(|| self.err(format!("{what} {}: only sha256 digests are supported", desc.digest())))
    }

    fn json<T: serde::de::DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|e| self.err(format!("{what}: invalid JSON: {e}")))
    }

    fn config(&self, bytes: &[u8], what: &str) -> Result<ImageConfiguration> {
        let config: ImageConfiguration = self.json(bytes, what)?;
        if *config.os() != Os::Linux {
            tracing::warn!(archive = %self.path.display(), os = %config.os(), "image is not a linux image");
        }
        Ok(config)
    }

    /// The images in the archive, with configs and manifests verified.
    pub fn images(&self) -> Result<Vec<PendingImage>> {
        let images = if self.has(Path::new("manifest.json")) {
            self.docker_images()?
        } else if self.has(Path::new("index.json")) {
            self.oci_images()?
        } else {
            return Err(self.err("neither manifest.json (docker save) nor index.json (OCI image layout) found"));
        };
        if images.is_empty() {
            return Err(self.err("no image for this platform in the archive"));
        }
        Ok(images)
    }

    fn docker_images(&self) -> Result<Vec<PendingImage>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            #[serde(default)]
            layers: Vec<String>,
        }
        let manifest = self.read_member(Path::new("manifest.json"), "manifest", None)?;
        let entries: Vec<Entry> = self.json(&manifest, "manifest.json")?;
        let mut images = Vec::new();
        for entry in entries {
            let config_name = self.member_name(&entry.config)?;
            let config = self.read_member(&config_name, "config", None)?;
            let id = sha256_of(&config);
            if let Some(named) = digest_in_name(&config_name) {
                if named != id {
                    return Err(self.mismatch(
                        format!("config {}", entry.config),
                        &sha256_ref(&named),
                        &sha256_ref(&id),
                    ));
                }
            }
            let parsed = self.config(&config, &entry.config)?;
            let diff_ids = self.diff_ids(&parsed, &entry.config, entry.layers.len())?;
            let layers = entry
                .layers
                .iter()
                .zip(diff_ids)
                .map(|(path, diff_id)| {
                    let name = self.member_name(path)?;
                    Ok(PendingLayer {
                        blob: digest_in_name(&name).map(|hex| (hex, None)),
                        entry: name,
                        diff_id,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let refs = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|tag| {
                    Reference::parse(tag)
                        .map(|r| r.tagged())
                        .map_err(|e| self.err(format!("manifest.json: RepoTags: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            images.push(PendingImage {
                refs,
                id,
                created: parsed.created().clone(),
                config,
                manifest: None,
                index: None,
                repos: Vec::new(),
                layers,
            });
        }
        Ok(images)
    }

    fn oci_images(&self) -> Result<Vec<PendingImage>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Layout {
            image_layout_version: String,
        }
        let layout_file = Path::new("oci-layout");
        if self.has(layout_file) {
            let layout: Layout = self.json(&self.read_member(layout_file, "oci-layout", None)?, "oci-layout")?;
            if !layout.image_layout_version.starts_with("1.") {
                return Err(self.err(format!(
                    "unsupported OCI layout version {}",
                    layout.image_layout_version
                )));
            }
        } else {
            tracing::warn!(archive = %self.path.display(), "OCI layout without an oci-layout file");
        }
        let index: ImageIndex = self.json(&self.read_member(Path::new("index.json"), "index", None)?, "index.json")?;
        let mut images = Vec::new();
        for desc in index.manifests() {
            let Some((manifest_hex, manifest_bytes, manifest)) = self.select_manifest(desc, 0)? else {
                continue;
            };
            let config_desc = manifest.config();
            let config_type = config_desc.media_type().to_string();
            if config_type != OCI_CONFIG && config_type != DOCKER_CONFIG {
                tracing::info!(archive = %self.path.display(), media_type = %config_type, "skipping a manifest that is not a container image");
                continue;
            }
            let config = self.read_blob(config_desc, "config")?;
            let id = self.descriptor_hex(config_desc, "config")?;
            let parsed = self.config(&config, &format!("config {}", config_desc.digest()))?;
            let diff_ids = self.diff_ids(
                &parsed,
                &format!("config {}", config_desc.digest()),
                manifest.layers().len(),
            )?;
            let layers = manifest
                .layers()
                .iter()
                .zip(diff_ids)
                .map(|(layer, diff_id)| {
                    let hex = self.descriptor_hex(layer, "layer")?;
                    Ok(PendingLayer {
                        entry: blob_path(&hex),
                        blob: Some((hex, Some(layer.size()))),
                        diff_id,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            images.push(PendingImage {
                refs: self.oci_refs(desc),
                id,
                created: parsed.created().clone(),
                config,
                manifest: Some((manifest_hex, manifest_bytes)),
                index: None,
                repos: Vec::new(),
                layers,
            });
        }
        Ok(images)
    }

    /// Follow a descriptor to an image manifest, choosing this machine's
    /// platform in (nested) indexes. `None` for things that are not images.
    fn select_manifest(&self, desc: &Descriptor, depth: usize) -> Result<Option<(String, Vec<u8>, ImageManifest)>> {
        let media_type = desc.media_type().to_string();
        match media_type.as_str() {
            OCI_MANIFEST | DOCKER_MANIFEST => {
                let bytes = self.read_blob(desc, "manifest")?;
                let manifest: ImageManifest = self.json(&bytes, &format!("manifest {}", desc.digest()))?;
                Ok(Some((self.descriptor_hex(desc, "manifest")?, bytes, manifest)))
            }
            OCI_INDEX | DOCKER_MANIFEST_LIST => {
                if depth >= MAX_INDEX_DEPTH {
                    return Err(self.err(format!("image index {}: nested too deeply", desc.digest())));
                }
                let bytes = self.read_blob(desc, "image index")?;
                let index: ImageIndex = self.json(&bytes, &format!("image index {}", desc.digest()))?;
                let chosen = pick_platform(index.manifests()).ok_or_else(|| {
                    self.err(format!(
                        "image index {}: no manifest for linux/{}",
                        desc.digest(),
                        Arch::default()
                    ))
                })?;
                self.select_manifest(chosen, depth + 1)
            }
            other => {
                tracing::debug!(archive = %self.path.display(), media_type = other, "skipping descriptor");
                Ok(None)
            }
        }
    }

    /// Names for an index.json entry: a full reference, or a bare tag
    /// completed with the archive's file name (`busybox.tar` + `latest`).
    fn oci_refs(&self, desc: &Descriptor) -> Vec<String> {
        let annotations = desc.annotations().as_ref();
        let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
        let candidate = match (get(ANNOTATION_IMAGE_NAME), get(ANNOTATION_REF_NAME)) {
            (Some(full), _) => full.to_string(),
            (None, Some(name)) if name.contains(['/', ':', '@']) => name.to_string(),
            (None, Some(tag)) => match self.name_hint() {
                Some(repo) => format!("{repo}:{tag}"),
                None => {
                    tracing::warn!(archive = %self.path.display(), tag, "no repository name for this tag; loading the image untagged");
                    return Vec::new();
                }
            },
            (None, None) => return Vec::new(),
        };
        match Reference::parse(&candidate) {
            Ok(r) if r.digest.is_none() || r.tag.is_some() => vec![r.tagged()],
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::warn!(archive = %self.path.display(), error = %e, "ignoring an unusable image name");
                Vec::new()
            }
        }
    }

    /// A repository name from the archive's file or directory name.
    fn name_hint(&self) -> Option<String> {
        let file = self.path.file_name()?.to_str()?.to_ascii_lowercase();
        let stem = [".tar.gz", ".tgz", ".tar.zst", ".tar", ".oci"]
            .iter()
            .find_map(|ext| file.strip_suffix(ext))
            .unwrap_or(&file);
        Reference::parse(stem)
            .ok()
            .filter(|r| r.tag.is_none() && r.digest.is_none())
            .map(|r| r.repository)
    }

    fn diff_ids(&self, config: &ImageConfiguration, what: &str, layers: usize) -> Result<Vec<String>> {
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != layers {
            return Err(self.err(format!(
                "{what}: lists {} layer diff_ids but the manifest has {layers} layers",
                diff_ids.len()
            )));
        }
        diff_ids
            .iter()
            .map(|d| {
                sha256_hex(d)
                    .map(str::to_string)
                    .ok_or_else(|| self.err(format!("{what}: invalid diff_id {d:?}")))
            })
            .collect()
    }

    /// A member path from the archive's metadata, refused if it leaves the root.
    fn member_name(&self, raw: &str) -> Result<PathBuf> {
        normalize(raw.as_bytes())
            .ok()
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or_else(|| self.err(format!("invalid member path {raw:?}")))
    }
}

fn blob_path(hex: &str) -> PathBuf {
    PathBuf::from(format!("blobs/sha256/{hex}"))
}

/// The digest a member's name promises: `blobs/sha256/<hex>` or `<hex>.json`.
fn digest_in_name(name: &Path) -> Option<String> {
    let s = name.to_str()?;
    let hex = s
        .strip_prefix("blobs/sha256/")
        .or_else(|| s.strip_suffix(".json").filter(|h| !h.contains('/')))?;
    crate::digest::is_sha256_hex(hex).then(|| hex.to_string())
}

/// This machine's platform (linux/<arch>) among an index's manifests, or
/// the only manifest when there is one.
fn pick_platform(manifests: &[Descriptor]) -> Option<&Descriptor> {
    let arch = Arch::default();
    manifests
        .iter()
        .find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| *p.os() == Os::Linux && *p.architecture() == arch)
        })
        .or(match manifests {
            [only] => Some(only),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_in_member_names() {
        let hex = "a".repeat(64);
        assert_eq!(digest_in_name(&blob_path(&hex)), Some(hex.clone()));
        assert_eq!(digest_in_name(Path::new(&format!("{hex}.json"))), Some(hex.clone()));
        assert_eq!(digest_in_name(Path::new(&format!("{hex}/layer.tar"))), None);
        assert_eq!(digest_in_name(Path::new("blobs/sha256/abc")), None);
    }
}
