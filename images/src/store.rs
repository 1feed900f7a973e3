//! The content-addressed image store under `<data_root>/images`:
//!
//! ```text
//! images/
//!   index.json            refs (name:tag -> id), images (id -> layers, manifest), layer sizes;
//!                         replaced atomically (write temp + rename)
//!   blobs/sha256/<hex>    image configs (hex = image id) and OCI manifests, verified
//!   layers/<hex>/         one unpacked layer per diff_id, overlayfs whiteout form, shared
//!   tmp/                  staging of loads in progress; leftovers are removed on open/load
//!   gc.lock               shared: load, prepare_rootfs; exclusive: remove, leftover cleanup
//!   index.lock            exclusive around committing a load (renames + index update)
//! ```

use crate::archive::{Archive, PendingImage, PendingLayer};
use crate::digest::{is_lower_hex, is_sha256_hex, sha256_ref, HashReader, SHA256_PREFIX};
use crate::error::{Error, IoContext, Result};
use crate::reference::{split_tagged, Reference};
use crate::unpack::unpack_layer;
use oci_spec::image::ImageConfiguration;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

pub(crate) const GC_LOCK: &str = "gc.lock";
const INDEX_LOCK: &str = "index.lock";
const NONE: &str = "<none>";

/// One row of [`Store::list`]: one per reference, plus one per untagged image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// Familiar repository name (`busybox`, `ghcr.io/x/y`), `<none>` for untagged images.
    pub repository: String,
    /// `<none>` for untagged images.
    pub tag: String,
    /// 64 hex digits: the sha256 of the image config.
    pub id: String,
    /// Unpacked size: the bytes of regular-file content in the image's layers
    /// (each layer counted once).
    pub size: u64,
    /// The config's `created` (RFC 3339).
    pub created: Option<String>,
}

/// An image in the store, ready for building a container.
#[derive(Debug, Clone)]
pub struct Image {
    /// 64 hex digits: the sha256 of the image config.
    pub id: String,
    /// Every `name:tag` pointing at this image, sorted.
    pub references: Vec<String>,
    pub config: ImageConfiguration,
    /// Unpacked layer directories, bottom first (overlayfs whiteout form).
    pub layers: Vec<PathBuf>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    /// `name:tag` (familiar form) -> image id.
    #[serde(default)]
    refs: BTreeMap<String, String>,
    #[serde(default)]
    images: BTreeMap<String, ImageRecord>,
    /// diff_id hex -> unpacked layer facts.
    #[serde(default)]
    layers: BTreeMap<String, LayerRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    /// Hex digest of the OCI manifest, when the image came with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
    /// Hex digest of the image index (manifest list) it was pulled through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    index: Option<String>,
    /// Repositories it was pulled from by digest: `repo@sha256:...` finds it there.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    repos: BTreeSet<String>,
    /// diff_id hexes, bottom first.
    layers: Vec<String>,
    #[serde(default)]
    created: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct LayerRecord {
    /// Bytes of regular-file content.
    size: u64,
}

impl Index {
    fn refs_of(&self, id: &str) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(_, target)| *target == id)
            .map(|(r, _)| r.clone())
            .collect()
    }

    fn size_of(&self, record: &ImageRecord) -> u64 {
        let unique: BTreeSet<&String> = record.layers.iter().collect();
        unique
            .into_iter()
            .filter_map(|d| self.layers.get(d))
            .map(|l| l.size)
            .sum()
    }

    fn layers_in_use(&self) -> BTreeSet<&str> {
        self.images
            .values()
            .flat_map(|i| i.layers.iter().map(String::as_str))
            .collect()
    }

    /// Find the image `reference` names; also returns the `name:tag` when it
    /// was found by one (as opposed to by id or digest).
    fn lookup(&self, reference: &str) -> Result<(String, Option<String>)> {
        let not_found = || Error::NotFound {
            reference: reference.to_string(),
        };
        if let Some(hex) = reference.strip_prefix(SHA256_PREFIX) {
            return Ok((self.by_id_prefix(reference, hex)?, None));
        }
        if is_sha256_hex(reference) {
            return match self.images.contains_key(reference) {
                true => Ok((reference.to_string(), None)),
                false => Err(not_found()),
            };
        }
        match Reference::parse(reference) {
            Ok(r) => {
                if let Some(digest) = &r.digest {
                    let hex = &digest[SHA256_PREFIX.len()..];
                    return self
                        .images
                        .iter()
                        .find(|(id, record)| {
                            (id.as_str() == hex
                                || record.manifest.as_deref() == Some(hex)
                                || record.index.as_deref() == Some(hex))
                                && (record.repos.contains(&r.repository)
                                    || self.refs_of(id).iter().any(|t| split_tagged(t).0 == r.repository))
                        })
                        .map(|(id, _)| (id.clone(), None))
                        .ok_or_else(not_found);
                }
                let tagged = r.tagged();
                if let Some(id) = self.refs.get(&tagged).filter(|id| self.images.contains_key(*id)) {
                    return Ok((id.clone(), Some(tagged)));
                }
            }
            // Not a name, but maybe an id prefix.
            Err(e) if !is_lower_hex(reference) => return Err(e),
            Err(_) => {}
        }
        if is_lower_hex(reference) {
            return Ok((self.by_id_prefix(reference, reference)?, None));
        }
        Err(not_found())
    }

    fn by_id_prefix(&self, reference: &str, prefix: &str) -> Result<String> {
        if prefix.is_empty() || !is_lower_hex(prefix) {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "an image id is lowercase hexadecimal".to_string(),
            });
        }
        let matches: Vec<&String> = self
            .images
            .range(prefix.to_string()..)
            .map(|(id, _)| id)
            .take_while(|id| id.starts_with(prefix))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::NotFound {
                reference: reference.to_string(),
            }),
            [id] => Ok((*id).clone()),
            many => Err(Error::Ambiguous {
                reference: reference.to_string(),
                matches: many.iter().map(|id| sha256_ref(id)).collect(),
            }),
        }
    }
}

/// How [`Store::lock`] takes a lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// Any number of holders at once, but none while it is held exclusively.
    Shared,
    Exclusive,
}

/// A held lock on a lock file (std's file lock, flock(2) on Linux: one per
/// open file, so two `Lock`s exclude each other even within one process);
/// released when dropped.
pub(crate) struct Lock(#[allow(dead_code)] File);

/// The image store. Cheap to open; safe to use from several threads and
/// processes at once (file locks, see the module docs).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open (creating as needed) the store under `<data_root>/images`, and
    /// remove what interrupted loads or removals left behind.
    pub fn open(data_root: &Path) -> Result<Store> {
        let store = Store {
            root: data_root.join("images"),
        };
        for dir in [store.blob_path(""), store.layer_path(""), store.tmp_dir()] {
            fs::create_dir_all(&dir).ctx("create directory", &dir)?;
        }
        store.collect_garbage()?;
        Ok(store)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub(crate) fn blob_path(&self, hex: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(hex)
    }

    pub(crate) fn layer_path(&self, diff_id_hex: &str) -> PathBuf {
        self.root.join("layers").join(diff_id_hex)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn open_lock_file(&self, name: &str) -> Result<(File, PathBuf)> {
        let path = self.root.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open lock file", &path)?;
        Ok((file, path))
    }

    /// Wait for the lock file `name` and lock it.
    pub(crate) fn lock(&self, name: &str, mode: LockMode) -> Result<Lock> {
        let (file, path) = self.open_lock_file(name)?;
        loop {
            let locked = match mode {
                LockMode::Shared => file.lock_shared(),
                LockMode::Exclusive => file.lock(),
            };
            match locked {
                // std does not retry flock(2) when a signal interrupts the wait.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other.ctx("lock", &path)?,
            }
            return Ok(Lock(file));
        }
    }

    /// Lock the lock file `name` exclusively if nobody holds it; `None` if someone does.
    fn try_lock_exclusive(&self, name: &str) -> Result<Option<Lock>> {
        let (file, path) = self.open_lock_file(name)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(Lock(file))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(TryLockError::Error(e)) => Err(e).ctx("lock", &path),
        }
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| Error::Index {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(e).ctx("read", path),
        }
    }

    /// Replace index.json atomically and durably. Callers hold a lock that
    /// excludes other writers (index.lock, or gc.lock exclusively).
    fn write_index(&self, index: &Index) -> Result<()> {
        let path = self.index_path();
        let tmp_dir = self.tmp_dir();
        let mut tmp = tempfile::NamedTempFile::new_in(&tmp_dir).ctx("create a file in", &tmp_dir)?;
        serde_json::to_writer_pretty(&mut tmp, index)
            .map_err(io::Error::from)
            .ctx("write", tmp.path())?;
        tmp.as_file().sync_all().ctx("sync", tmp.path())?;
        tmp.persist(&path).map_err(|e| e.error).ctx("replace", &path)?;
        sync_dir(&self.root)
    }

    /// Remove leftovers of interrupted loads and removals: staging dirs, and
    /// layers or blobs that no index entry mentions. Skipped (not waited for)
    /// while any other store operation runs.
    pub(crate) fn collect_garbage(&self) -> Result<()> {
        let Some(_gc) = self.try_lock_exclusive(GC_LOCK)? else {
            return Ok(());
        };
        let tmp = self.tmp_dir();
        for entry in fs::read_dir(&tmp).ctx("read directory", &tmp)? {
            let path = entry.ctx("read directory", &tmp)?.path();
            tracing::warn!(path = %path.display(), "removing leftover of an interrupted image operation");
            remove_path(&path)?;
        }
        let index = self.read_index()?;
        let manifests: BTreeSet<&str> = index
            .images
            .values()
            .flat_map(|i| [i.manifest.as_deref(), i.index.as_deref()])
            .flatten()
            .collect();
        let sweep = |dir: PathBuf, keep: &dyn Fn(&str) -> bool| -> Result<()> {
            for entry in fs::read_dir(&dir).ctx("read directory", &dir)? {
                let entry = entry.ctx("read directory", &dir)?;
                if !entry.file_name().to_str().is_some_and(keep) {
                    tracing::warn!(path = %entry.path().display(), "removing content no image refers to");
                    remove_path(&entry.path())?;
                }
            }
            Ok(())
        };
        sweep(self.layer_path(""), &|name| index.layers.contains_key(name))?;
        sweep(self.blob_path(""), &|name| {
            index.images.contains_key(name) || manifests.contains(name)
        })
    }

    /// Load a `docker save` archive (tar, possibly gzip/zstd-compressed) or an
    /// OCI image layout (directory, tar, or compressed tar).
    ///
    /// Returns the references loaded (`busybox:latest`), or `sha256:<id>` for
    /// images without a name. Every blob is verified against its digest and
    /// size (layers against their diff_ids too) while it is read; if anything
    /// fails, nothing of the archive is stored. Layers already in the store
    /// are not unpacked again. An OCI layout entry whose `ref.name` is a bare
    /// tag is named after the archive file or directory (`busybox.tar`, tag
    /// `latest` -> `busybox:latest`).
    pub fn load(&self, path: &Path) -> Result<Vec<String>> {
        self.collect_garbage()?;
        // Shared: loads run in parallel, but no removal deletes a layer we rely on.
        let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
        let tmp_dir = self.tmp_dir();
        let staging = tempfile::Builder::new()
            .prefix("load-")
            .tempdir_in(&tmp_dir)
            .ctx("create a directory in", &tmp_dir)?;
        let archive = Archive::open(path, staging.path())?;
        let images = archive.images()?;

        let known = self.read_index()?;
        let layers_dir = staging.path().join("layers");
        fs::create_dir(&layers_dir).ctx("create directory", &layers_dir)?;
        let mut staged = BTreeMap::new();
        for layer in images.iter().flat_map(|i| &i.layers) {
            let present = known.layers.contains_key(&layer.diff_id) && self.layer_path(&layer.diff_id).is_dir();
            if present || staged.contains_key(&layer.diff_id) {
                continue;
            }
            let dest = layers_dir.join(&layer.diff_id);
            let size = unpack_verified(&archive, layer, &dest)?;
            staged.insert(layer.diff_id.clone(), LayerRecord { size });
        }
        let blobs_dir = staging.path().join("blobs");
        fs::create_dir(&blobs_dir).ctx("create directory", &blobs_dir)?;
        for (hex, bytes) in images.iter().flat_map(PendingImage::blobs) {
            let p = blobs_dir.join(hex);
            fs::write(&p, bytes).ctx("write", &p)?;
        }
        // Staged content must be on disk before the index points at it.
        let staging_fd = crate::fsutil::open_dir(staging.path()).ctx("open", staging.path())?;
        rustix::fs::syncfs(&staging_fd).ctx("sync file system of", staging.path())?;
        let loaded = self.commit(&images, &staged, staging.path())?;
        tracing::info!(archive = %path.display(), images = ?loaded, layers_unpacked = staged.len(), "loaded");
        Ok(loaded)
    }

    /// Move staged layers and blobs into place and record the images.
    fn commit(
        &self,
        images: &[PendingImage],
        staged: &BTreeMap<String, LayerRecord>,
        staging: &Path,
    ) -> Result<Vec<String>> {
        let _index_lock = self.lock(INDEX_LOCK, LockMode::Exclusive)?;
        let mut index = self.read_index()?;
        // Layers we did not stage must still be there (gc.lock keeps removals
        // out, but not someone deleting files by hand).
        for image in images {
            for layer in &image.layers {
                let path = self.layer_path(&layer.diff_id);
                let present = index.layers.contains_key(&layer.diff_id) && path.is_dir();
                if !present && !staged.contains_key(&layer.diff_id) {
                    return Err(Error::MissingLayer {
                        image: sha256_ref(&image.id),
                        layer: layer.diff_id.clone(),
                        path,
                    });
                }
            }
        }
        let (mut moved_layers, mut moved_blobs) = (false, false);
        for (diff_id, record) in staged {
            let target = self.layer_path(diff_id);
            // A concurrent load may have committed the same layer first: keep theirs.
            if !target.exists() {
                let from = staging.join("layers").join(diff_id);
                fs::rename(&from, &target).ctx("move into place", &target)?;
                moved_layers = true;
            }
            index.layers.entry(diff_id.clone()).or_insert(*record);
        }
        for (hex, _) in images.iter().flat_map(PendingImage::blobs) {
            let target = self.blob_path(hex);
            let from = staging.join("blobs").join(hex);
            if !target.exists() && from.exists() {
                fs::rename(&from, &target).ctx("move into place", &target)?;
                moved_blobs = true;
            }
        }
        // The renames must be on disk before the index that names their targets.
        if moved_layers {
            sync_dir(&self.layer_path(""))?;
        }
        if moved_blobs {
            sync_dir(&self.blob_path(""))?;
        }
        let mut loaded = Vec::new();
        for image in images {
            // The same image loaded or pulled again keeps what earlier ones recorded
            // (the digests it was pulled by, the repositories it came from).
            let previous = index.images.remove(&image.id);
            let mut repos: BTreeSet<String> = image.repos.iter().cloned().collect();
            repos.extend(previous.iter().flat_map(|p| p.repos.iter().cloned()));
            index.images.insert(
                image.id.clone(),
                ImageRecord {
                    manifest: image
                        .manifest
                        .as_ref()
                        .map(|(hex, _)| hex.clone())
                        .or_else(|| previous.as_ref().and_then(|p| p.manifest.clone())),
                    index: image
                        .index
                        .clone()
                        .or_else(|| previous.as_ref().and_then(|p| p.index.clone())),
                    repos,
                    layers: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
                    created: image.created.clone(),
                },
            );
            for r in &image.refs {
                if let Some(previous) = index.refs.insert(r.clone(), image.id.clone()) {
                    if previous != image.id {
                        tracing::info!(reference = %r, from = %sha256_ref(&previous), to = %sha256_ref(&image.id), "reference moved to the loaded image");
                    }
                }
            }
            if image.refs.is_empty() {
                loaded.push(sha256_ref(&image.id));
            } else {
                loaded.extend(image.refs.iter().cloned());
            }
        }
        self.write_index(&index)?;
        Ok(loaded)
    }

    /// One row per reference, plus `<none>` rows for untagged images; sorted.
    pub fn list(&self) -> Result<Vec<ImageSummary>> {
        let index = self.read_index()?;
        let row = |repository: &str, tag: &str, id: &str| {
            let record = &index.images[id];
            ImageSummary {
                repository: repository.to_string(),
                tag: tag.to_string(),
                id: id.to_string(),
                size: index.size_of(record),
                created: record.created.clone(),
            }
        };
        let mut rows: Vec<ImageSummary> = index
            .refs
            .iter()
            .filter(|(_, id)| index.images.contains_key(*id))
            .map(|(r, id)| {
                let (repository, tag) = split_tagged(r);
                row(repository, tag, id)
            })
            .collect();
        let tagged: BTreeSet<&String> = index.refs.values().collect();
        rows.extend(
            index
                .images
                .keys()
                .filter(|id| !tagged.contains(id))
                .map(|id| row(NONE, NONE, id)),
        );
        Ok(rows)
    }

    /// Find an image by `name[:tag]` (docker's normalization: `busybox`,
    /// `docker.io/library/busybox:latest`), `name@sha256:<hex>` (manifest or
    /// config digest), full id (with or without `sha256:`), or a unique id prefix.
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let index = self.read_index()?;
        let (id, _) = index.lookup(reference)?;
        self.image(&index, &id)
    }

    fn image(&self, index: &Index, id: &str) -> Result<Image> {
        let record = &index.images[id];
        let config_path = self.blob_path(id);
        let config = ImageConfiguration::from_file(&config_path).map_err(|e| Error::Index {
            path: config_path.clone(),
            reason: format!("config of image {}: {e}", sha256_ref(id)),
        })?;
        Ok(Image {
            id: id.to_string(),
            references: index.refs_of(id),
            config,
            layers: record.layers.iter().map(|d| self.layer_path(d)).collect(),
        })
    }

    /// Untag `reference` (by id: all its tags, if they are of one repository);
    /// when the image has no references left, delete its config and manifest
    /// and every layer no other image uses. Returns docker-style lines
    /// (`Untagged: busybox:latest`, `Deleted: sha256:...`). Containers using
    /// the image are the caller's to check.
    pub fn remove(&self, reference: &str) -> Result<Vec<String>> {
        let _gc = self.lock(GC_LOCK, LockMode::Exclusive)?;
        let mut index = self.read_index()?;
        let (id, tag) = index.lookup(reference)?;
        let untag = match tag {
            Some(tag) => vec![tag],
            None => {
                let refs = index.refs_of(&id);
                let repos: BTreeSet<&str> = refs.iter().map(|r| split_tagged(r).0).collect();
                if repos.len() > 1 {
                    return Err(Error::Conflict {
                        reference: reference.to_string(),
                        id: sha256_ref(&id),
                        references: refs,
                    });
                }
                refs
            }
        };
        let mut lines = Vec::new();
        for r in untag {
            index.refs.remove(&r);
            lines.push(format!("Untagged: {r}"));
        }
        let mut doomed = Vec::new();
        if index.refs_of(&id).is_empty() {
            let record = index.images.remove(&id).expect("looked up above");
            doomed.push(self.blob_path(&id));
            doomed.extend(record.manifest.iter().map(|m| self.blob_path(m)));
            doomed.extend(record.index.iter().map(|m| self.blob_path(m)));
            lines.push(format!("Deleted: {}", sha256_ref(&id)));
            let in_use: BTreeSet<String> = index.layers_in_use().into_iter().map(String::from).collect();
            for layer in record.layers {
                if !in_use.contains(&layer) && index.layers.remove(&layer).is_some() {
                    doomed.push(self.layer_path(&layer));
                    lines.push(format!("Deleted: {}", sha256_ref(&layer)));
                }
            }
            // Layers of pulls that were interrupted and never retried: kept
            // for the next pull until now, when no pull runs (gc.lock).
            let orphans: Vec<String> = index.layers.keys().filter(|l| !in_use.contains(*l)).cloned().collect();
            for layer in orphans {
                index.layers.remove(&layer);
                doomed.push(self.layer_path(&layer));
            }
        }
        // The index stops naming things before they go; a crash in between
        // leaves unreferenced files that the next open removes.
        self.write_index(&index)?;
        for path in doomed {
            remove_path(&path)?;
        }
        Ok(lines)
    }
}

impl Store {
    pub(crate) fn tmp_path(&self) -> PathBuf {
        self.tmp_dir()
    }

    /// Point `tagged` (`name:tag`) at image `id`.
    pub(crate) fn set_ref(&self, tagged: &str, id: &str) -> Result<()> {
        let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
        let _index_lock = self.lock(INDEX_LOCK, LockMode::Exclusive)?;
        let mut index = self.read_index()?;
        if !index.images.contains_key(id) {
            return Err(Error::NotFound {
                reference: sha256_ref(id),
            });
        }
        index.refs.insert(tagged.to_string(), id.to_string());
        self.write_index(&index)
    }

    /// The layers (diff_id hex) unpacked in the store.
    pub(crate) fn present_layers(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .read_index()?
            .layers
            .into_keys()
            .filter(|d| self.layer_path(d).is_dir())
            .collect())
    }

    /// True if the image (config hex) and all its layers are in the store.
    pub(crate) fn has_image(&self, id: &str) -> Result<bool> {
        let index = self.read_index()?;
        Ok(index.images.get(id).is_some_and(|record| {
            record
                .layers
                .iter()
                .all(|l| index.layers.contains_key(l) && self.layer_path(l).is_dir())
        }))
    }

    /// Unpack one layer blob read from `reader` and commit it to the store on
    /// its own, so that an interrupted pull keeps it for the next one. The
    /// blob is checked against `blob_hex` (and `size`), the tar against
    /// `diff_id`; on a mismatch nothing is stored. The caller holds gc.lock
    /// (shared). Returns the compression found and the unpacked size.
    pub(crate) fn add_layer(
        &self,
        reader: impl io::Read + Send,
        blob_hex: &str,
        size: u64,
        diff_id: &str,
        mismatch: &dyn Fn(String, String, String) -> Error,
    ) -> Result<u64> {
        let tmp_dir = self.tmp_dir();
        let staging = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(&tmp_dir)
            .ctx("create a directory in", &tmp_dir)?;
        let dest = staging.path().join("layer");
        let mut blob = HashReader::new(reader);
        let stats = unpack_layer(&mut blob, &dest)?;
        let len = blob.len();
        let (hex, _) = blob.finish();
        if hex != blob_hex || len != size {
            return Err(mismatch(
                format!("layer {} ({size} bytes)", sha256_ref(blob_hex)),
                sha256_ref(blob_hex),
                format!("{} ({len} bytes)", sha256_ref(&hex)),
            ));
        }
        if stats.diff_id != sha256_ref(diff_id) {
            return Err(mismatch(
                format!(
                    "layer {} (uncompressed, against the config's diff_id)",
                    sha256_ref(blob_hex)
                ),
                sha256_ref(diff_id),
                stats.diff_id,
            ));
        }
        let staging_fd = crate::fsutil::open_dir(staging.path()).ctx("open", staging.path())?;
        rustix::fs::syncfs(&staging_fd).ctx("sync file system of", staging.path())?;
        let _index_lock = self.lock(INDEX_LOCK, LockMode::Exclusive)?;
        let mut index = self.read_index()?;
        let target = self.layer_path(diff_id);
        if !target.exists() {
            fs::rename(&dest, &target).ctx("move into place", &target)?;
            sync_dir(&self.layer_path(""))?;
        }
        index
            .layers
            .entry(diff_id.to_string())
            .or_insert(LayerRecord { size: stats.file_bytes });
        self.write_index(&index)?;
        Ok(stats.file_bytes)
    }

    /// Record a pulled image whose layers are all in the store: its config
    /// and manifest become blobs, its references point at it.
    pub(crate) fn commit_pulled(&self, image: &PendingImage) -> Result<Vec<String>> {
        let tmp_dir = self.tmp_dir();
        let staging = tempfile::Builder::new()
            .prefix("pull-")
            .tempdir_in(&tmp_dir)
            .ctx("create a directory in", &tmp_dir)?;
        let blobs_dir = staging.path().join("blobs");
        fs::create_dir(&blobs_dir).ctx("create directory", &blobs_dir)?;
        let mut wrote = false;
        for (hex, bytes) in image.blobs() {
            if !self.blob_path(hex).exists() {
                let p = blobs_dir.join(hex);
                let mut f = File::create(&p).ctx("create", &p)?;
                io::Write::write_all(&mut f, bytes).ctx("write", &p)?;
                f.sync_all().ctx("sync", &p)?;
                wrote = true;
            }
        }
        if wrote {
            sync_dir(&blobs_dir)?;
        }
        self.commit(std::slice::from_ref(image), &BTreeMap::new(), staging.path())
    }
}

/// Unpack one layer from the archive into `dest`, verifying the blob digest
/// and size (when known) and the diff_id. Returns the unpacked size.
fn unpack_verified(archive: &Archive, layer: &PendingLayer, dest: &Path) -> Result<u64> {
    let name = layer.entry.display().to_string();
    let (reader, size) = archive.open_member(&layer.entry)?;
    if let Some((_, Some(expected))) = &layer.blob {
        if size != *expected {
            return Err(archive.err(format!(
                "layer {name}: {size} bytes, but its descriptor says {expected}"
            )));
        }
    }
    let mut blob = HashReader::new(reader);
    let stats = unpack_layer(&mut blob, dest).map_err(|e| Error::Layer {
        archive: archive.path().to_path_buf(),
        layer: name.clone(),
        source: Box::new(e),
    })?;
    let (blob_hex, _) = blob.finish();
    if let Some((expected, _)) = &layer.blob {
        if blob_hex != *expected {
            return Err(archive.mismatch(format!("layer {name}"), &sha256_ref(expected), &sha256_ref(&blob_hex)));
        }
    }
    let expected_diff_id = sha256_ref(&layer.diff_id);
    if stats.diff_id != expected_diff_id {
        return Err(archive.mismatch(
            format!("layer {name} (uncompressed, against the config's diff_id)"),
            &expected_diff_id,
            &stats.diff_id,
        ));
    }
    Ok(stats.file_bytes)
}

fn remove_path(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx("remove", path),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("sync directory", dir)
}

#[cfg(test)]
mod tests;
