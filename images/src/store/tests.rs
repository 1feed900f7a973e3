use super::*;
use crate::digest::sha256_of;
use crate::testutil::{
    docker_save, gzip, oci_finish, oci_index_blob, oci_layout, oci_manifest, Files, Layer, TestImage,
};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Barrier};

struct Fixture {
    tmp: tempfile::TempDir,
    store: Store,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(&tmp.path().join("data")).unwrap();
        Fixture { tmp, store }
    }

    fn data_root(&self) -> PathBuf {
        self.tmp.path().join("data")
    }

    /// Write `files` as a tar (gzip-compressed when the name ends in .gz) and return its path.
    fn archive(&self, name: &str, files: &Files) -> PathBuf {
        let path = self.tmp.path().join(name);
        let tar = files.tar();
        fs::write(&path, if name.ends_with(".gz") { gzip(&tar) } else { tar }).unwrap();
        path
    }

    fn layout_dir(&self, name: &str, files: &Files) -> PathBuf {
        let path = self.tmp.path().join(name);
        files.write_dir(&path);
        path
    }

    fn images_dir(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.data_root().join("images").join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Nothing stored: no references, images, layers, blobs or staging leftovers.
    fn assert_empty(&self) {
        assert!(self.store.list().unwrap().is_empty());
        assert_eq!(self.images_dir("layers"), Vec::<String>::new());
        assert_eq!(self.images_dir("blobs/sha256"), Vec::<String>::new());
        assert_eq!(self.images_dir("tmp"), Vec::<String>::new());
    }
}

fn base_layer() -> Vec<u8> {
    Layer::new()
        .dir("bin")
        .file("bin/sh", b"#!/bin/sh\n")
        .dir("etc")
        .file("etc/os-release", b"ID=minirun\n")
        .tar()
}

fn app_layer(name: &str) -> Vec<u8> {
    Layer::new()
        .dir("app")
        .file(&format!("app/{name}"), name.as_bytes())
        .tar()
}

fn two_layer_image(app: &str) -> TestImage {
    TestImage::new(vec![base_layer(), app_layer(app)], app)
}

#[test]
fn loads_a_legacy_docker_save_archive() {
    let f = Fixture::new();
    // A layer repeated in one image: the legacy layout stores it once and links to it.
    let img = TestImage::new(vec![base_layer(), app_layer("x"), base_layer()], "legacy");
    let files = docker_save(&[(&img, &["busybox:latest", "docker.io/library/busybox:1.36"])], false);
    let path = f.archive("busybox.tar", &files);
    let loaded = f.store.load(&path).unwrap();
    assert_eq!(loaded, ["busybox:latest", "busybox:1.36"]);

    let image = f.store.resolve("docker.io/library/busybox").unwrap();
    assert_eq!(image.id, img.id);
    assert_eq!(image.references, ["busybox:1.36", "busybox:latest"]);
    assert_eq!(image.layers.len(), 3);
    assert_eq!(image.layers[0], image.layers[2]);
    assert_eq!(fs::read(image.layers[0].join("bin/sh")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(fs::read(image.layers[1].join("app/x")).unwrap(), b"x");
    let cmd = image.config.config().as_ref().unwrap().cmd().clone();
    assert_eq!(cmd, Some(vec!["/bin/sh".to_string()]));

    let rows = f.store.list().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].repository.as_str(), rows[0].tag.as_str(), rows[0].id.as_str()),
        ("busybox", "1.36", img.id.as_str())
    );
    // bin/sh + etc/os-release + app/x, the repeated base layer counted once.
    assert_eq!(rows[0].size, 10 + 11 + 1);
    assert_eq!(rows[0].created.as_deref(), Some("2024-01-02T03:04:05Z"));
    assert_eq!(f.images_dir("layers").len(), 2);
    assert_eq!(f.images_dir("tmp"), Vec::<String>::new());
}

#[test]
fn loads_a_blobs_layout_docker_save_archive_compressed() {
    let f = Fixture::new();
    let a = two_layer_image("a");
    let b = two_layer_image("b");
    let untagged = TestImage::new(vec![app_layer("c")], "c");
    let files = docker_save(&[(&a, &["a:1"]), (&b, &["ghcr.io/org/b:2"]), (&untagged, &[])], true);
    let path = f.archive("images.tar.gz", &files);
    let loaded = f.store.load(&path).unwrap();
    assert_eq!(
        loaded,
        [
            "a:1".to_string(),
            "ghcr.io/org/b:2".to_string(),
            sha256_ref(&untagged.id)
        ]
    );
    // Base layer shared: a's base, a's app, b's app, c's app.
    assert_eq!(f.images_dir("layers").len(), 4);
    let rows = f.store.list().unwrap();
    let row = rows.iter().find(|r| r.id == untagged.id).unwrap();
    assert_eq!((row.repository.as_str(), row.tag.as_str()), ("<none>", "<none>"));
    assert_eq!(f.store.resolve(&untagged.id).unwrap().references, Vec::<String>::new());
}

#[test]
fn loads_oci_layouts_as_directory_tar_and_tar_gz() {
    let f = Fixture::new();
    let img = two_layer_image("oci");
    // Bare tag: the repository comes from the directory or file name.
    let dir = f.layout_dir("myapp", &oci_layout(&img, Some("v1")));
    assert_eq!(f.store.load(&dir).unwrap(), ["myapp:v1"]);
    let tar = f.archive("other.tar", &oci_layout(&img, Some("docker.io/library/alpine:3")));
    assert_eq!(f.store.load(&tar).unwrap(), ["alpine:3"]);
    let tgz = f.archive("third.tar.gz", &oci_layout(&img, Some("edge")));
    assert_eq!(f.store.load(&tgz).unwrap(), ["third:edge"]);
    let unnamed = f.archive("unnamed.tar", &oci_layout(&img, None));
    assert_eq!(f.store.load(&unnamed).unwrap(), [sha256_ref(&img.id)]);

    let image = f.store.resolve("alpine:3").unwrap();
    assert_eq!(image.id, img.id);
    assert_eq!(image.references, ["alpine:3", "myapp:v1", "third:edge"]);
    assert_eq!(fs::read(image.layers[1].join("app/oci")).unwrap(), b"oci");
    // The manifest is kept next to the config.
    assert_eq!(f.images_dir("blobs/sha256").len(), 2);
    assert_eq!(f.images_dir("layers").len(), 2);
}

#[test]
fn oci_index_picks_this_platform() {
    let f = Fixture::new();
    let amd = TestImage::with_arch(vec![app_layer("amd64")], "amd", "amd64");
    let arm = TestImage::with_arch(vec![app_layer("arm64")], "arm", "arm64");
    let mut files = Files::default();
    let platform = |arch: &str| serde_json::json!({"os": "linux", "architecture": arch});
    let mut arm_desc = oci_manifest(&mut files, &arm, true);
    arm_desc["platform"] = platform("arm64");
    let mut amd_desc = oci_manifest(&mut files, &amd, true);
    amd_desc["platform"] = platform(&oci_spec::image::Arch::default().to_string());
    let attestation = serde_json::json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{}", "0".repeat(64)), "size": 1,
        "platform": {"os": "unknown", "architecture": "unknown"}
    });
    let inner = oci_index_blob(&mut files, vec![arm_desc, attestation, amd_desc]);
    // Nested: index.json -> index -> index -> manifests.
    let outer = oci_index_blob(&mut files, vec![inner]);
    oci_finish(&mut files, vec![(outer, Some("multi"))]);
    let path = f.archive("multi.tar", &files);
    assert_eq!(f.store.load(&path).unwrap(), ["multi:multi"]);
    assert_eq!(f.store.resolve("multi:multi").unwrap().id, amd.id);

    // No manifest for this platform: a clear error, nothing stored.
    let g = Fixture::new();
    let mut files = Files::default();
    let mut arm_desc = oci_manifest(&mut files, &arm, true);
    arm_desc["platform"] = platform("arm64");
    let mut s390 = oci_manifest(&mut files, &amd, true);
    s390["platform"] = platform("s390x");
    let index = oci_index_blob(&mut files, vec![arm_desc, s390]);
    oci_finish(&mut files, vec![(index, Some("x"))]);
    let path = g.archive("armonly.tar", &files);
    let err = g.store.load(&path).unwrap_err();
    assert!(err.to_string().contains("no manifest for linux/"), "{err}");
    assert!(err.to_string().contains("armonly.tar"), "{err}");
    g.assert_empty();
}

#[test]
fn loads_an_oci_layout_made_by_umoci() {
    let Ok(status) = std::process::Command::new("umoci").arg("--version").output() else {
        eprintln!("skipping: umoci is not installed");
        return;
    };
    assert!(status.status.success());
    let f = Fixture::new();
    let layout = f.tmp.path().join("umoci-img");
    let src = f.tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/hello"), "hello from umoci\n").unwrap();
    let image = format!("{}:stable", layout.display());
    let umoci = |args: &[&str]| {
        let out = std::process::Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image]);
    umoci(&["insert", "--image", &image, src.to_str().unwrap(), "/data"]);
    umoci(&["config", "--image", &image, "--config.cmd", "/bin/true"]);

    assert_eq!(f.store.load(&layout).unwrap(), ["umoci-img:stable"]);
    let img = f.store.resolve("umoci-img:stable").unwrap();
    let cmd = img.config.config().as_ref().unwrap().cmd().clone();
    assert_eq!(cmd, Some(vec!["/bin/true".to_string()]));
    assert_eq!(img.layers.len(), 1);
    assert_eq!(
        fs::read_to_string(img.layers[0].join("data/sub/hello")).unwrap(),
        "hello from umoci\n"
    );
}

#[test]
fn a_layer_digest_mismatch_stores_nothing() {
    let f = Fixture::new();
    let img = two_layer_image("bad");
    let mut files = Files::default();
    let desc = oci_manifest(&mut files, &img, false);
    oci_finish(&mut files, vec![(desc, Some("bad"))]);
    // Same size, different content: flip a byte of app/bad's data (not its header) in the second layer.
    let blob = files.get_mut(&format!("blobs/sha256/{}", img.diff_id(1)));
    let pos = blob.windows(3).rposition(|w| w == b"bad").unwrap();
    blob[pos] ^= 0x20;
    let path = f.archive("bad.tar", &files);
    match f.store.load(&path) {
        Err(Error::DigestMismatch {
            archive,
            object,
            expected,
            actual,
        }) => {
            assert_eq!(archive, path);
            assert!(object.contains(&img.diff_id(1)), "{object}");
            assert_eq!(expected, format!("sha256:{}", img.diff_id(1)));
            assert_ne!(actual, expected);
        }
        other => panic!("{other:?}"),
    }
    f.assert_empty();
}

#[test]
fn a_diff_id_mismatch_in_a_docker_archive_stores_nothing() {
    let f = Fixture::new();
    let img = two_layer_image("dock");
    let mut files = docker_save(&[(&img, &["dock:1"])], false);
    let (_, content) = files
        .0
        .iter_mut()
        .find(|(_, c)| matches!(c, crate::testutil::Content::Data(d) if d.windows(4).any(|w| w == b"dock")))
        .unwrap();
    let crate::testutil::Content::Data(layer) = content else {
        unreachable!()
    };
    let pos = layer.windows(4).rposition(|w| w == b"dock").unwrap();
    layer[pos] = b'D';
    let path = f.archive("dock.tar", &files);
    let err = f.store.load(&path).unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains("diff_id"), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    f.assert_empty();
}

#[test]
fn a_config_digest_mismatch_stores_nothing() {
    let f = Fixture::new();
    let img = two_layer_image("cfg");
    let mut files = oci_layout(&img, Some("cfg"));
    let config = files.get_mut(&format!("blobs/sha256/{}", img.id));
    let pos = config.windows(3).position(|w| w == b"cfg").unwrap();
    config[pos] = b'C';
    let dir = f.layout_dir("cfg", &files);
    let err = f.store.load(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { object, .. } if object.contains(&img.id)),
        "{err}"
    );
    f.assert_empty();
}

#[test]
fn truncated_and_corrupt_archives_are_clear_errors() {
    let f = Fixture::new();
    let big = Layer::new().file("big", &vec![1u8; 200_000]).tar();
    let img = TestImage::new(vec![big], "t");
    let tar = docker_save(&[(&img, &["t:1"])], false).tar();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cut.tar", tar[..tar.len() / 2].to_vec(), "truncated"),
        ("cut-at-block.tar", tar[..tar.len() - 1024].to_vec(), "truncated"),
        ("cut.tar.gz", gzip(&tar)[..1000].to_vec(), "truncated"),
        (
            "garbage.tar",
            b"this is not a tar archive at all, no no".repeat(20),
            "not",
        ),
        ("empty.tar", Vec::new(), "empty"),
    ];
    for (name, data, expect) in cases {
        let path = f.tmp.path().join(name);
        fs::write(&path, data).unwrap();
        let err = f.store.load(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
        assert!(msg.contains(expect), "{name}: {msg}");
        f.assert_empty();
    }
    let missing = f.tmp.path().join("missing.tar");
    assert!(f.store.load(&missing).unwrap_err().to_string().contains("missing.tar"));
    let not_image = f.tmp.path().join("not-an-image");
    fs::create_dir(&not_image).unwrap();
    let err = f.store.load(&not_image).unwrap_err();
    assert!(err.to_string().contains("neither manifest.json"), "{err}");
}

#[test]
fn an_unsafe_layer_is_named_and_stores_nothing() {
    let f = Fixture::new();
    let evil = Layer::new().symlink("s", "/etc").file("s/evil", b"x").tar();
    let img = TestImage::new(vec![base_layer(), evil], "evil");
    let path = f.archive("evil.tar", &docker_save(&[(&img, &["evil:1"])], true));
    match f.store.load(&path) {
        Err(Error::Layer { archive, layer, source }) => {
            assert_eq!(archive, path);
            assert!(layer.contains(&img.diff_id(1)), "{layer}");
            assert!(
                matches!(*source, Error::UnsafeEntry { ref entry, .. } if entry == Path::new("s/evil")),
                "{source}"
            );
        }
        other => panic!("{other:?}"),
    }
    f.assert_empty();
}

#[test]
fn loading_twice_is_cheap_and_harmless() {
    let f = Fixture::new();
    let img = two_layer_image("twice");
    let path = f.archive("twice.tar", &docker_save(&[(&img, &["twice:1"])], false));
    f.store.load(&path).unwrap();
    let layer = f.store.resolve("twice:1").unwrap().layers[1].clone();
    let before = fs::metadata(&layer).unwrap();
    let index_before = fs::read(f.data_root().join("images/index.json")).unwrap();
    assert_eq!(f.store.load(&path).unwrap(), ["twice:1"]);
    let after = fs::metadata(&layer).unwrap();
    // Not unpacked again: the very same directory.
    assert_eq!((before.ino(), before.ctime_nsec()), (after.ino(), after.ctime_nsec()));
    assert_eq!(fs::read(f.data_root().join("images/index.json")).unwrap(), index_before);
    assert_eq!(f.store.list().unwrap().len(), 1);
    assert_eq!(f.images_dir("tmp"), Vec::<String>::new());
}

#[test]
fn concurrent_loads_do_not_corrupt_the_store() {
    let f = Fixture::new();
    // Layers big enough for the loads to overlap.
    let payload: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
    let shared = Layer::new().file("shared", &payload).tar();
    let a = TestImage::new(vec![shared.clone(), app_layer("a")], "a");
    let b = TestImage::new(vec![shared, app_layer("b")], "b");
    let same = f.archive("a.tar", &docker_save(&[(&a, &["a:1"])], false));
    let other = f.archive("b.tar.gz", &docker_save(&[(&b, &["b:1"])], true));
    let jobs = [same.clone(), same.clone(), same, other];
    let barrier = Arc::new(Barrier::new(jobs.len()));
    let handles: Vec<_> = jobs
        .into_iter()
        .map(|path| {
            let data_root = f.data_root();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let store = Store::open(&data_root).unwrap();
                barrier.wait();
                store.load(&path).unwrap()
            })
        })
        .collect();
    let results: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, [vec!["a:1"], vec!["a:1"], vec!["a:1"], vec!["b:1"]]);
    let rows = f.store.list().unwrap();
    assert_eq!(
        rows.iter().map(|r| r.repository.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(f.images_dir("layers").len(), 3);
    assert_eq!(f.images_dir("tmp"), Vec::<String>::new());
    for name in ["a:1", "b:1"] {
        let image = f.store.resolve(name).unwrap();
        assert_eq!(fs::read(image.layers[0].join("shared")).unwrap(), payload);
    }
}

/// Two images whose ids share their first hex digit.
fn images_sharing_a_prefix() -> (TestImage, TestImage) {
    let mut seen: HashMap<char, TestImage> = HashMap::new();
    for i in 0.. {
        let img = TestImage::new(vec![app_layer("p")], &format!("prefix-{i}"));
        let first = img.id.chars().next().unwrap();
        if let Some(other) = seen.remove(&first) {
            return (other, img);
        }
        seen.insert(first, img);
    }
    unreachable!()
}

use std::collections::HashMap;

#[test]
fn resolve_by_name_id_prefix_and_digest() {
    let f = Fixture::new();
    let (one, two) = images_sharing_a_prefix();
    let mut files = Files::default();
    let d1 = oci_manifest(&mut files, &one, true);
    let d2 = oci_manifest(&mut files, &two, true);
    let manifest_digest = d1["digest"].as_str().unwrap().to_string();
    oci_finish(
        &mut files,
        vec![(d1, Some("docker.io/library/one:1")), (d2, Some("two:latest"))],
    );
    f.store.load(&f.archive("pair.tar", &files)).unwrap();

    for r in ["one:1", "docker.io/library/one:1", "library/one:1"] {
        assert_eq!(f.store.resolve(r).unwrap().id, one.id, "{r}");
    }
    for r in [
        "two",
        "two:latest",
        "docker.io/two",
        "index.docker.io/library/two:latest",
    ] {
        assert_eq!(f.store.resolve(r).unwrap().id, two.id, "{r}");
    }
    assert_eq!(f.store.resolve(&one.id).unwrap().id, one.id);
    assert_eq!(f.store.resolve(&format!("sha256:{}", one.id)).unwrap().id, one.id);
    assert_eq!(f.store.resolve(&one.id[..12]).unwrap().id, one.id);
    assert_eq!(
        f.store.resolve(&format!("sha256:{}", &two.id[..12])).unwrap().id,
        two.id
    );
    assert_eq!(f.store.resolve(&format!("one@{manifest_digest}")).unwrap().id, one.id);
    assert_eq!(f.store.resolve(&format!("one@sha256:{}", one.id)).unwrap().id, one.id);

    let prefix = &one.id[..1];
    match f.store.resolve(prefix) {
        Err(Error::Ambiguous { reference, matches }) => {
            assert_eq!(reference, prefix);
            let mut expected = vec![format!("sha256:{}", one.id), format!("sha256:{}", two.id)];
            expected.sort();
            assert_eq!(matches, expected);
        }
        other => panic!("{other:?}"),
    }
    for missing in ["one:2", "three", "ffffffffffff", &format!("two@{manifest_digest}")] {
        let err = f.store.resolve(missing).unwrap_err();
        assert!(
            matches!(&err, Error::NotFound { reference } if reference == missing),
            "{missing}: {err}"
        );
    }
    let err = f.store.resolve("Not/Valid").unwrap_err();
    assert!(matches!(err, Error::InvalidReference { .. }), "{err}");
}

#[test]
fn remove_untags_then_deletes_and_keeps_shared_layers() {
    let f = Fixture::new();
    let a = two_layer_image("a");
    let b = two_layer_image("b");
    let path = f.archive("ab.tar", &docker_save(&[(&a, &["a:1", "a:2"]), (&b, &["b:1"])], true));
    f.store.load(&path).unwrap();
    let base = f.store.layer_path(&a.diff_id(0));
    let a_app = f.store.layer_path(&a.diff_id(1));

    assert_eq!(f.store.remove("a:1").unwrap(), ["Untagged: a:1"]);
    assert_eq!(f.store.resolve("a:2").unwrap().id, a.id);
    assert!(a_app.is_dir());

    assert_eq!(
        f.store.remove("a:2").unwrap(),
        [
            "Untagged: a:2".to_string(),
            format!("Deleted: sha256:{}", a.id),
            format!("Deleted: sha256:{}", a.diff_id(1)),
        ]
    );
    assert!(!a_app.exists());
    assert!(base.is_dir(), "the base layer is still used by b");
    assert!(matches!(f.store.resolve(&a.id), Err(Error::NotFound { .. })));
    let b_image = f.store.resolve("b:1").unwrap();
    assert!(b_image.layers.iter().all(|l| l.is_dir()));

    // By id prefix: untags and deletes the rest.
    let lines = f.store.remove(&b.id[..10]).unwrap();
    assert_eq!(lines[0], "Untagged: b:1");
    assert_eq!(lines.len(), 4);
    f.assert_empty();
}

#[test]
fn remove_by_id_refuses_images_in_several_repositories() {
    let f = Fixture::new();
    let img = two_layer_image("c");
    f.store
        .load(&f.archive("c.tar", &docker_save(&[(&img, &["c:1", "d:1"])], false)))
        .unwrap();
    match f.store.remove(&img.id) {
        Err(Error::Conflict { references, .. }) => assert_eq!(references, ["c:1", "d:1"]),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.store.list().unwrap().len(), 2);
    assert!(matches!(f.store.remove("nope:1"), Err(Error::NotFound { .. })));
}

#[test]
fn a_moved_tag_leaves_the_old_image_untagged() {
    let f = Fixture::new();
    let old = two_layer_image("old");
    let new = two_layer_image("new");
    f.store
        .load(&f.archive("old.tar", &docker_save(&[(&old, &["app:1"])], false)))
        .unwrap();
    f.store
        .load(&f.archive("new.tar", &docker_save(&[(&new, &["app:1"])], false)))
        .unwrap();
    assert_eq!(f.store.resolve("app:1").unwrap().id, new.id);
    let rows = f.store.list().unwrap();
    assert!(rows.iter().any(|r| r.id == old.id && r.repository == "<none>"));
}

#[test]
fn open_removes_leftovers_of_interrupted_operations() {
    let f = Fixture::new();
    let img = two_layer_image("keep");
    f.store
        .load(&f.archive("keep.tar", &docker_save(&[(&img, &["keep:1"])], false)))
        .unwrap();
    let images = f.data_root().join("images");
    fs::create_dir_all(images.join("tmp/load-interrupted/layers/x")).unwrap();
    fs::write(images.join("tmp/.tmpindex"), "{").unwrap();
    let orphan_layer = images.join("layers").join(sha256_of(b"orphan"));
    fs::create_dir_all(orphan_layer.join("usr")).unwrap();
    let orphan_blob = images.join("blobs/sha256").join(sha256_of(b"blob"));
    fs::write(&orphan_blob, "{}").unwrap();

    // While another operation holds the store, leftovers are left alone ...
    let held = f.store.lock(GC_LOCK, LockMode::Shared).unwrap();
    Store::open(&f.data_root()).unwrap();
    assert!(orphan_layer.exists());
    drop(held);
    // ... and removed by the next open.
    let store = Store::open(&f.data_root()).unwrap();
    assert_eq!(f.images_dir("tmp"), Vec::<String>::new());
    assert!(!orphan_layer.exists());
    assert!(!orphan_blob.exists());
    let image = store.resolve("keep:1").unwrap();
    assert!(image.layers.iter().all(|l| l.is_dir()));
}

#[test]
fn a_corrupt_index_is_reported_with_its_path() {
    let f = Fixture::new();
    let index = f.data_root().join("images/index.json");
    fs::write(&index, "{not json").unwrap();
    let err = f.store.list().unwrap_err();
    assert!(matches!(&err, Error::Index { path, .. } if *path == index), "{err}");
}
