use super::*;
use crate::testutil::{docker_save, Layer, TestImage};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use tar::EntryType;

/// Lower layer: files and directories; upper layer: deletes some with
/// whiteouts and makes `b` opaque.
fn whiteout_image() -> TestImage {
    let lower = Layer::new()
        .dir("a")
        .entry("a/keep", EntryType::Regular, b"keep", |h| h.set_mode(0o4755))
        .hardlink("a/keep-link", "a/keep")
        .file("a/old", b"old")
        .dir("b")
        .file("b/file1", b"1")
        .dir("b/sub")
        .file("b/sub/deep", b"d")
        .file("del", b"del")
        .dir("deldir")
        .file("deldir/x", b"x")
        .symlink("link", "a/keep")
        .tar();
    let upper = Layer::new()
        .file(".wh.del", b"")
        .file(".wh.deldir", b"")
        .dir("b")
        .file("b/.wh..wh..opq", b"")
        .file("b/new", b"new")
        .dir("a")
        .file("a/.wh.old", b"")
        .file("a/added", b"added")
        .tar();
    TestImage::new(vec![lower, upper], "whiteouts")
}

fn loaded(img: &TestImage) -> (tempfile::TempDir, Store, Image) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("data")).unwrap();
    let archive = tmp.path().join("img.tar");
    fs::write(&archive, docker_save(&[(img, &["img:1"])], true).tar()).unwrap();
    store.load(&archive).unwrap();
    let image = store.resolve("img:1").unwrap();
    (tmp, store, image)
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn assert_merged_view(root: &Path) {
    assert_eq!(listing(root), ["a", "b", "link"]);
    assert_eq!(listing(&root.join("a")), ["added", "keep", "keep-link"]);
    assert_eq!(listing(&root.join("b")), ["new"], "b is opaque");
    assert_eq!(fs::read(root.join("a/keep")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("link")).unwrap(), b"keep");
    assert_eq!(fs::read(root.join("b/new")).unwrap(), b"new");
    assert_eq!(fs::metadata(root.join("a/keep")).unwrap().mode() & 0o7777, 0o4755);
}

/// overlayfs cannot be mounted at all here (not "we got it wrong").
fn overlay_unavailable(tmp: &Path) -> Option<Error> {
    let dirs: Vec<PathBuf> = ["l1", "l2", "u", "w", "t"].iter().map(|d| tmp.join(d)).collect();
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    match mount_overlay(&dirs[..2], &dirs[2], &dirs[3], &dirs[4], RootfsOptions::default()) {
        Ok(()) => {
            unmount_all(&dirs[4]).unwrap();
            None
        }
        Err(e @ Error::Mount { .. })
            if matches!(
                &e,
                Error::Mount { source, .. }
                    if matches!(source.raw_os_error(), Some(c) if c == Errno::PERM.raw_os_error() || c == Errno::NODEV.raw_os_error())
            ) =>
        {
            Some(e)
        }
        Err(e) => panic!("overlay probe failed unexpectedly: {}", error::chain(&e)),
    }
}

macro_rules! require_overlay {
    ($tmp:expr) => {
        if let Some(e) = overlay_unavailable(&$tmp.join("probe")) {
            eprintln!("skipping: overlayfs cannot be mounted here: {}", error::chain(&e));
            return;
        }
    };
}

#[test]
fn overlay_rootfs_applies_whiteouts_across_layers() {
    let img = whiteout_image();
    let (tmp, store, image) = loaded(&img);
    require_overlay!(tmp.path());
    let container = tmp.path().join("c1");
    let rootfs = store
        .prepare_rootfs(&image, &container, RootfsOptions::default())
        .unwrap();
    assert_eq!(rootfs, container.join("rootfs"));
    assert!(fsutil::is_mount_point(&rootfs).unwrap());
    assert!(!container.join(COPY_MARKER).exists());
    assert_merged_view(&rootfs);

    // Changes go to the container's upper dir, never into the shared layers.
    fs::write(rootfs.join("a/keep"), "changed").unwrap();
    fs::remove_file(rootfs.join("a/added")).unwrap();
    assert_eq!(fs::read(image.layers[0].join("a/keep")).unwrap(), b"keep");
    assert!(image.layers[1].join("a/added").exists());
    assert_eq!(fs::read(container.join("upper/a/keep")).unwrap(), b"changed");

    // Preparing a prepared container is a no-op.
    assert_eq!(
        store
            .prepare_rootfs(&image, &container, RootfsOptions::default())
            .unwrap(),
        rootfs
    );

    // A second container sees the pristine image.
    let other = tmp.path().join("c2");
    let rootfs2 = store.prepare_rootfs(&image, &other, RootfsOptions::default()).unwrap();
    assert_merged_view(&rootfs2);

    release_rootfs(&container).unwrap();
    assert!(!rootfs.exists());
    assert!(!container.join("upper").exists() && !container.join("work").exists());
    assert!(container.exists(), "the container dir itself belongs to the caller");
    release_rootfs(&container).unwrap();
    release_rootfs(&other).unwrap();
    assert_eq!(listing(&other), Vec::<String>::new());
}

/// The mount options of the mount at `target`, from /proc/self/mountinfo.
fn mount_options(target: &Path) -> String {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let t = target.to_str().unwrap();
    assert!(!t.is_empty() && t != "/");
    info.lines()
        .find(|l| l.split(' ').nth(4) == Some(t))
        .unwrap_or_else(|| panic!("{t} is not mounted"))
        .to_string()
}

#[test]
fn volatile_rootfs_skips_the_upper_sync_and_is_released_like_any() {
    let img = whiteout_image();
    let (tmp, store, image) = loaded(&img);
    require_overlay!(tmp.path());
    let container = tmp.path().join("v");
    let opts = RootfsOptions {
        volatile: true,
        ..Default::default()
    };
    let rootfs = store.prepare_rootfs(&image, &container, opts).unwrap();
    assert!(
        mount_options(&rootfs).contains("volatile"),
        "{}",
        mount_options(&rootfs)
    );
    fs::write(rootfs.join("a/keep"), "changed").unwrap();
    assert_eq!(fs::read(rootfs.join("a/keep")).unwrap(), b"changed");
    release_rootfs(&container).unwrap();
    assert!(!rootfs.exists() && !container.join("work").exists());
    // the same through mount(2)
    let dirs: Vec<PathBuf> = ["l", "u", "w", "t"].iter().map(|d| tmp.path().join(d)).collect();
    for d in &dirs {
        fs::create_dir_all(d).unwrap();
    }
    mount_overlay_legacy(&dirs[..1], &dirs[1], &dirs[2], &dirs[3], opts).unwrap();
    let legacy = mount_options(&dirs[3]);
    rmount::unmount(&dirs[3], UnmountFlags::empty()).unwrap();
    assert!(legacy.contains("volatile"), "{legacy}");
    let plain = tmp.path().join("p");
    let rootfs = store.prepare_rootfs(&image, &plain, RootfsOptions::default()).unwrap();
    assert!(!mount_options(&rootfs).contains("volatile"));
    release_rootfs(&plain).unwrap();
}

#[test]
fn readonly_overlay_rootfs_refuses_writes() {
    let (tmp, store, image) = loaded(&whiteout_image());
    require_overlay!(tmp.path());
    let container = tmp.path().join("ro");
    let rootfs = store
        .prepare_rootfs(
            &image,
            &container,
            RootfsOptions {
                readonly: true,
                ..Default::default()
            },
        )
        .unwrap();
    let err = fs::write(rootfs.join("new-file"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(Errno::ROFS.raw_os_error()));
    assert_merged_view(&rootfs);
    release_rootfs(&container).unwrap();
    assert!(!rootfs.exists());
}

#[test]
fn legacy_mount_call_gives_the_same_view() {
    let (tmp, _store, image) = loaded(&whiteout_image());
    require_overlay!(tmp.path());
    let c = tmp.path().join("legacy");
    let (upper, work, target) = (c.join("upper"), c.join("work"), c.join("rootfs"));
    for d in [&upper, &work, &target] {
        fs::create_dir_all(d).unwrap();
    }
    let lowers: Vec<PathBuf> = image.layers.iter().rev().cloned().collect();
    mount_overlay_legacy(&lowers, &upper, &work, &target, RootfsOptions::default()).unwrap();
    assert_merged_view(&target);
    release_rootfs(&c).unwrap();
    assert!(!target.exists());
}

#[test]
fn image_without_layers_gets_an_empty_rootfs() {
    let (tmp, store, image) = loaded(&TestImage::new(Vec::new(), "empty"));
    require_overlay!(tmp.path());
    let container = tmp.path().join("empty");
    let rootfs = store
        .prepare_rootfs(&image, &container, RootfsOptions::default())
        .unwrap();
    assert_eq!(listing(&rootfs), Vec::<String>::new());
    fs::write(rootfs.join("f"), "x").unwrap();
    release_rootfs(&container).unwrap();
    assert_eq!(listing(&container), Vec::<String>::new());
}

#[test]
fn copy_fallback_applies_whiteouts_by_deletion() {
    let (tmp, _store, image) = loaded(&whiteout_image());
    let rootfs = tmp.path().join("copy/rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    copy_layers(&image.layers, &rootfs).unwrap();
    assert_merged_view(&rootfs);
    let keep = fs::metadata(rootfs.join("a/keep")).unwrap();
    assert_eq!(keep.ino(), fs::metadata(rootfs.join("a/keep-link")).unwrap().ino());
    assert!(fs::symlink_metadata(rootfs.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    // No overlay artifacts in a plain copy.
    let b = fsutil::open_dir(&rootfs.join("b")).unwrap();
    assert!(!fsutil::is_opaque(b.as_fd()).unwrap());
    for entry in fs::read_dir(&rootfs).unwrap() {
        assert!(!entry.unwrap().file_type().unwrap().is_char_device());
    }
    // Directory times survive the copy of their contents.
    assert_eq!(
        fs::metadata(rootfs.join("a")).unwrap().mtime(),
        fs::metadata(image.layers[1].join("a")).unwrap().mtime()
    );
    // Release removes a copy just as well.
    release_rootfs(&tmp.path().join("copy")).unwrap();
    assert!(!rootfs.exists());
}

#[test]
fn umoci_whiteouts_and_opaque_directories() {
    if std::process::Command::new("umoci").arg("--version").output().is_err() {
        eprintln!("skipping: umoci is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("wh");
    let image_ref = format!("{}:latest", layout.display());
    let umoci = |args: &[&str]| {
        let out = std::process::Command::new("umoci").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "umoci {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("b")).unwrap();
    fs::write(src.join("a"), "a").unwrap();
    fs::write(src.join("b/old"), "old").unwrap();
    let src2 = tmp.path().join("src2");
    fs::create_dir_all(&src2).unwrap();
    fs::write(src2.join("new"), "new").unwrap();
    umoci(&["init", "--layout", layout.to_str().unwrap()]);
    umoci(&["new", "--image", &image_ref]);
    umoci(&["insert", "--image", &image_ref, src.to_str().unwrap(), "/data"]);
    umoci(&["insert", "--image", &image_ref, "--whiteout", "/data/a"]);
    umoci(&[
        "insert",
        "--image",
        &image_ref,
        "--opaque",
        src2.to_str().unwrap(),
        "/data/b",
    ]);

    let store = Store::open(&tmp.path().join("data")).unwrap();
    assert_eq!(store.load(&layout).unwrap(), ["wh:latest"]);
    let image = store.resolve("wh").unwrap();
    assert_eq!(image.layers.len(), 3);

    let copy = tmp.path().join("copy");
    fs::create_dir(&copy).unwrap();
    copy_layers(&image.layers, &copy).unwrap();
    assert_eq!(listing(&copy.join("data")), ["b"]);
    assert_eq!(listing(&copy.join("data/b")), ["new"]);

    if let Some(e) = overlay_unavailable(&tmp.path().join("probe")) {
        eprintln!("skipping the overlay half: {}", error::chain(&e));
        return;
    }
    let container = tmp.path().join("c");
    let rootfs = store
        .prepare_rootfs(&image, &container, RootfsOptions::default())
        .unwrap();
    assert_eq!(listing(&rootfs.join("data")), ["b"]);
    assert_eq!(listing(&rootfs.join("data/b")), ["new"]);
    release_rootfs(&container).unwrap();
}

#[test]
fn prepare_fails_cleanly_when_a_layer_is_missing() {
    let (tmp, store, image) = loaded(&whiteout_image());
    fs::remove_dir_all(&image.layers[1]).unwrap();
    let container = tmp.path().join("c");
    let err = store
        .prepare_rootfs(&image, &container, RootfsOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::MissingLayer { .. }), "{err}");
    assert!(err.to_string().contains(&image.id), "{err}");
    assert!(!container.join("rootfs").exists());
}

#[test]
fn release_without_a_rootfs_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    release_rootfs(&tmp.path().join("never-prepared")).unwrap();
    release_rootfs(tmp.path()).unwrap();
}

#[test]
fn ensure_dir_in_rootfs_resolves_symlinks_inside_the_root() {
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir(r.join("real")).unwrap();
    std::os::unix::fs::symlink("/real", r.join("abs")).unwrap();
    std::os::unix::fs::symlink(outside.path(), r.join("escape")).unwrap();
    crate::ensure_dir_in_rootfs(r, Path::new("/a/b/c")).unwrap();
    assert!(r.join("a/b/c").is_dir());
    // an absolute symlink resolves inside the rootfs, as in the container
    crate::ensure_dir_in_rootfs(r, Path::new("/abs/made")).unwrap();
    assert!(r.join("real/made").is_dir());
    // a link to a host path means that path inside the rootfs, never the
    // host's; dangling there, it is an error naming the path
    let err = crate::ensure_dir_in_rootfs(r, Path::new("/escape/x")).unwrap_err();
    assert!(err.to_string().contains("escape"), "{err}");
    assert!(!outside.path().join("x").exists(), "created outside the rootfs");
    let inside = outside.path().strip_prefix("/").unwrap();
    std::fs::create_dir_all(r.join(inside)).unwrap();
    crate::ensure_dir_in_rootfs(r, Path::new("/escape/x")).unwrap();
    assert!(r.join(inside).join("x").is_dir());
    assert!(!outside.path().join("x").exists(), "created outside the rootfs");
    // existing directories are fine
    crate::ensure_dir_in_rootfs(r, Path::new("/a/b")).unwrap();
}
