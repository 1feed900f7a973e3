//! Builders for the layer tars, docker-save archives and OCI layouts that the
//! unit tests load. Everything is made in memory with the `tar` crate.

use crate::digest::sha256_of;
use std::fs;
use std::io::Write;
use std::path::Path;
use tar::{EntryType, Header};

/// A layer tar under construction. Names are written into the header
/// verbatim (no validation), so tests can craft hostile archives.
pub(crate) struct Layer {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            b: tar::Builder::new(Vec::new()),
        }
    }

    /// Append one entry with full control of its header.
    pub fn entry(mut self, path: &str, kind: EntryType, data: &[u8], set: impl FnOnce(&mut Header)) -> Layer {
        let mut h = Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        assert!(path.len() < name.len(), "test path too long");
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(if kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        set(&mut h);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(self, path: &str) -> Layer {
        self.entry(path, EntryType::Directory, b"", |_| {})
    }

    pub fn file(self, path: &str, data: &[u8]) -> Layer {
        self.entry(path, EntryType::Regular, data, |_| {})
    }

    pub fn symlink(self, path: &str, target: &str) -> Layer {
        self.entry(path, EntryType::Symlink, b"", |h| {
            h.set_link_name_literal(target).unwrap()
        })
    }

    pub fn hardlink(self, path: &str, target: &str) -> Layer {
        self.entry(path, EntryType::Link, b"", |h| h.set_link_name_literal(target).unwrap())
    }

    /// PAX extended header describing the next entry.
    pub fn pax(mut self, records: &[(&str, &[u8])]) -> Layer {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub fn tar(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub(crate) fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// An image: its uncompressed layer tars and a config that lists their diff_ids.
pub(crate) struct TestImage {
    pub layers: Vec<Vec<u8>>,
    pub config: Vec<u8>,
    /// Hex sha256 of the config.
    pub id: String,
}

impl TestImage {
    /// `label` makes otherwise identical images distinct.
    pub fn new(layers: Vec<Vec<u8>>, label: &str) -> TestImage {
        Self::with_arch(layers, label, "amd64")
    }

    pub fn with_arch(layers: Vec<Vec<u8>>, label: &str, arch: &str) -> TestImage {
        let diff_ids: Vec<String> = layers.iter().map(|l| format!("sha256:{}", sha256_of(l))).collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "created": "2024-01-02T03:04:05Z",
            "config": {
                "Cmd": ["/bin/sh"],
                "Env": ["PATH=/usr/bin:/bin"],
                "Labels": {"test": label}
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids}
        }))
        .unwrap();
        let id = sha256_of(&config);
        TestImage { layers, config, id }
    }

    pub fn diff_id(&self, i: usize) -> String {
        sha256_of(&self.layers[i])
    }
}

pub(crate) enum Content {
    Data(Vec<u8>),
    Symlink(String),
}

/// The files of an archive or layout, written either as a tar or into a directory.
#[derive(Default)]
pub(crate) struct Files(pub Vec<(String, Content)>);

impl Files {
    pub fn add(&mut self, path: impl Into<String>, data: impl Into<Vec<u8>>) {
        let path = path.into();
        if !self.0.iter().any(|(p, _)| *p == path) {
            self.0.push((path, Content::Data(data.into())));
        }
    }

    pub fn symlink(&mut self, path: impl Into<String>, target: impl Into<String>) {
        self.0.push((path.into(), Content::Symlink(target.into())));
    }

    pub fn get_mut(&mut self, path: &str) -> &mut Vec<u8> {
        match self.0.iter_mut().find(|(p, _)| p == path) {
            Some((_, Content::Data(d))) => d,
            _ => panic!("no file {path}"),
        }
    }

    pub fn tar(&self) -> Vec<u8> {
        let mut layer = Layer::new();
        for (path, content) in &self.0 {
            layer = match content {
                Content::Data(d) => layer.file(path, d),
                Content::Symlink(t) => layer.symlink(path, t),
            };
        }
        layer.tar()
    }

    pub fn write_dir(&self, dir: &Path) {
        for (path, content) in &self.0 {
            let p = dir.join(path);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            match content {
                Content::Data(d) => fs::write(&p, d).unwrap(),
                Content::Symlink(t) => std::os::unix::fs::symlink(t, &p).unwrap(),
            }
        }
    }
}

/// A `docker save` archive. `blobs` selects the layout of docker >= 25
/// (`blobs/sha256/...`) instead of the legacy `<id>/layer.tar` one; the legacy
/// one stores a repeated layer once and links to it like docker does.
pub(crate) fn docker_save(images: &[(&TestImage, &[&str])], blobs: bool) -> Files {
    let mut files = Files::default();
    let mut manifest = Vec::new();
    for (img, tags) in images {
        let (config_path, layer_paths): (String, Vec<String>) = if blobs {
            let layers = img.layers.iter().map(|l| {
                let p = format!("blobs/sha256/{}", sha256_of(l));
                files.add(p.clone(), l.clone());
                p
            });
            let layers = layers.collect();
            let config = format!("blobs/sha256/{}", img.id);
            files.add(config.clone(), img.config.clone());
            (config, layers)
        } else {
            let mut paths: Vec<String> = Vec::new();
            for (i, l) in img.layers.iter().enumerate() {
                let p = format!("{}/layer.tar", sha256_of(format!("{}{i}", img.id).as_bytes()));
                match img.layers[..i].iter().position(|earlier| earlier == l) {
                    Some(j) => files.symlink(p.clone(), format!("../{}", paths[j])),
                    None => files.add(p.clone(), l.clone()),
                }
                paths.push(p);
            }
            let config = format!("{}.json", img.id);
            files.add(config.clone(), img.config.clone());
            (config, paths)
        };
        manifest.push(serde_json::json!({
            "Config": config_path,
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(tags) },
            "Layers": layer_paths,
        }));
    }
    files.add("manifest.json", serde_json::to_vec(&manifest).unwrap());
    files
}

/// Descriptor JSON for a blob added to `files`.
fn add_blob(files: &mut Files, media_type: &str, data: &[u8]) -> serde_json::Value {
    let hex = sha256_of(data);
    files.add(format!("blobs/sha256/{hex}"), data.to_vec());
    serde_json::json!({"mediaType": media_type, "digest": format!("sha256:{hex}"), "size": data.len()})
}

/// Add an image manifest (and its config and layers) to `files`; returns its descriptor.
pub(crate) fn oci_manifest(files: &mut Files, img: &TestImage, gzip_layers: bool) -> serde_json::Value {
    let config = add_blob(files, "application/vnd.oci.image.config.v1+json", &img.config);
    let layers: Vec<_> = img
        .layers
        .iter()
        .map(|l| {
            if gzip_layers {
                add_blob(files, "application/vnd.oci.image.layer.v1.tar+gzip", &gzip(l))
            } else {
                add_blob(files, "application/vnd.oci.image.layer.v1.tar", l)
            }
        })
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    }))
    .unwrap();
    add_blob(files, "application/vnd.oci.image.manifest.v1+json", &manifest)
}

/// Add an image index over `manifests` (descriptors) to `files`; returns its descriptor.
pub(crate) fn oci_index_blob(files: &mut Files, manifests: Vec<serde_json::Value>) -> serde_json::Value {
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    add_blob(files, "application/vnd.oci.image.index.v1+json", &index)
}

/// Finish a layout: `oci-layout` and an `index.json` listing `manifests`
/// (descriptors), each annotated with its ref name if given.
pub(crate) fn oci_finish(files: &mut Files, manifests: Vec<(serde_json::Value, Option<&str>)>) {
    let manifests: Vec<_> = manifests
        .into_iter()
        .map(|(mut desc, name)| {
            if let Some(name) = name {
                desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
            }
            desc
        })
        .collect();
    files.add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec());
    files.add(
        "index.json",
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": manifests})).unwrap(),
    );
}

/// A one-image OCI layout with gzip layers.
pub(crate) fn oci_layout(img: &TestImage, ref_name: Option<&str>) -> Files {
    let mut files = Files::default();
    let desc = oci_manifest(&mut files, img, true);
    oci_finish(&mut files, vec![(desc, ref_name)]);
    files
}
