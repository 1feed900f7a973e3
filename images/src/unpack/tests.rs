use super::*;
use crate::digest::sha256_of;
use crate::testutil::{gzip, zstd, Layer};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use tar::EntryType;

fn unpack(tar: &[u8], dest: &Path) -> Result<UnpackStats> {
    unpack_layer(tar, dest)
}

fn assert_unsafe(result: Result<UnpackStats>, expected_entry: &str) {
    match result {
        Err(Error::UnsafeEntry { entry, reason }) => {
            assert_eq!(entry, Path::new(expected_entry), "{reason}")
        }
        other => panic!("entry {expected_entry:?}: expected UnsafeEntry, got {other:?}"),
    }
}

/// A destination two levels below a scratch dir, so `..` escapes stay inside the scratch dir.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("a/dest");
    fs::create_dir_all(&dest).unwrap();
    (tmp, dest)
}

#[test]
fn rejects_absolute_paths() {
    let (_tmp, dest) = scratch();
    let probe = format!("/tmp/minirun-escape-{}", std::process::id());
    let tar = Layer::new().file(&probe, b"pwned").tar();
    assert_unsafe(unpack(&tar, &dest), &probe);
    assert!(!Path::new(&probe).exists());
}

#[test]
fn rejects_dotdot_escapes() {
    for path in ["../x", "a/../../x", "./../x", "a/b/../../../x"] {
        let (tmp, dest) = scratch();
        let tar = Layer::new().file(path, b"pwned").tar();
        assert_unsafe(unpack(&tar, &dest), path);
        assert!(!tmp.path().join("a/x").exists(), "{path}");
        assert!(!tmp.path().join("x").exists(), "{path}");
    }
    // `..` that stays inside is fine.
    let (_tmp, dest) = scratch();
    let tar = Layer::new().dir("d").file("d/../inside", b"ok").tar();
    unpack(&tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("inside")).unwrap(), b"ok");
}

#[test]
fn rejects_writes_through_a_symlink_to_an_absolute_path() {
    // The requirement's case: s -> /etc, then s/<file>. A name that cannot exist in
    // /etc keeps the host safe even if this test ever failed.
    let (_tmp, dest) = scratch();
    let name = format!("minirun-escape-{}", std::process::id());
    let tar = Layer::new()
        .symlink("s", "/etc")
        .file(&format!("s/{name}"), b"pwned")
        .tar();
    assert_unsafe(unpack(&tar, &dest), &format!("s/{name}"));
    assert!(!Path::new("/etc").join(&name).exists());

    // Same with a file that does exist at the symlink's target.
    let (tmp, dest) = scratch();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("passwd"), "root:x:0:0").unwrap();
    let tar = Layer::new()
        .symlink("s", outside.to_str().unwrap())
        .file("s/passwd", b"pwned")
        .tar();
    assert_unsafe(unpack(&tar, &dest), "s/passwd");
    assert_eq!(fs::read(outside.join("passwd")).unwrap(), b"root:x:0:0");
}

#[test]
fn rejects_writes_through_a_relative_symlink_that_climbs_out() {
    let (tmp, dest) = scratch();
    let tar = Layer::new().symlink("s", "../..").file("s/x", b"pwned").tar();
    assert_unsafe(unpack(&tar, &dest), "s/x");
    assert!(!tmp.path().join("x").exists());
    // Deeper: a directory inside, then a symlink in it climbing out.
    let (tmp, dest) = scratch();
    let tar = Layer::new().dir("d").symlink("d/up", "../../..").dir("d/up/evil").tar();
    assert_unsafe(unpack(&tar, &dest), "d/up/evil");
    assert!(!tmp.path().join("evil").exists());
}

#[test]
fn rejects_symlinks_laid_down_by_a_lower_layer() {
    // Applying onto a directory that already has a hostile symlink.
    let (tmp, dest) = scratch();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    unpack(&Layer::new().symlink("lib", outside.to_str().unwrap()).tar(), &dest).unwrap();
    let tar = Layer::new().file("lib/evil.so", b"pwned").tar();
    assert_unsafe(unpack(&tar, &dest), "lib/evil.so");
    assert!(!outside.join("evil.so").exists());
}

#[test]
fn follows_symlinks_that_stay_inside() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new()
        .dir("real")
        .symlink("alias", "real")
        .symlink("abs_inside", "/real") // absolute: refused even though "inside" in a chroot sense
        .file("alias/f", b"ok")
        .tar();
    unpack(&tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("real/f")).unwrap(), b"ok");
    let tar = Layer::new().file("abs_inside/g", b"x").tar();
    assert_unsafe(unpack(&tar, &dest), "abs_inside/g");
}

#[test]
fn rejects_hard_links_outside() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new().hardlink("shadow", "/etc/shadow").tar();
    assert_unsafe(unpack(&tar, &dest), "shadow");
    assert!(fs::symlink_metadata(dest.join("shadow")).is_err());

    let (tmp, dest) = scratch();
    fs::write(tmp.path().join("a/secret"), "s").unwrap();
    let tar = Layer::new().hardlink("h", "../secret").tar();
    assert_unsafe(unpack(&tar, &dest), "h");
    assert!(fs::symlink_metadata(dest.join("h")).is_err());
    assert_eq!(fs::metadata(tmp.path().join("a/secret")).unwrap().nlink(), 1);
}

#[test]
fn rejects_hard_links_through_a_symlink() {
    let (tmp, dest) = scratch();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("shadow"), "secret").unwrap();
    let tar = Layer::new()
        .symlink("s", outside.to_str().unwrap())
        .hardlink("h", "s/shadow")
        .tar();
    assert_unsafe(unpack(&tar, &dest), "h");
    assert!(fs::symlink_metadata(dest.join("h")).is_err());
    assert_eq!(fs::metadata(outside.join("shadow")).unwrap().nlink(), 1);

    let (_tmp, dest) = scratch();
    let tar = Layer::new().symlink("s", "/etc").hardlink("h", "s/shadow").tar();
    assert_unsafe(unpack(&tar, &dest), "h");

    // A hard link to a hostile symlink is that symlink again: writing through it is refused.
    let dest = tmp.path().join("a/dest2");
    let tar = Layer::new()
        .symlink("s", outside.to_str().unwrap())
        .hardlink("h", "s")
        .file("h/planted", b"x")
        .tar();
    assert_unsafe(unpack(&tar, &dest), "h/planted");
    assert!(!outside.join("planted").exists());
}

#[test]
fn hard_link_to_a_symlink_links_the_symlink_itself() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new().symlink("s", "/etc/shadow").hardlink("h", "s").tar();
    unpack(&tar, &dest).unwrap();
    let meta = fs::symlink_metadata(dest.join("h")).unwrap();
    assert!(meta.file_type().is_symlink());
    assert_eq!(meta.nlink(), 2);
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new()
        .file(".wh.gone", b"")
        .dir("d")
        .file("d/.wh..wh..opq", b"")
        .file("d/new", b"n")
        .file("e/.wh.sub", b"")
        .file(".wh..wh.plnk", b"")
        .tar();
    let stats = unpack(&tar, &dest).unwrap();
    assert_eq!(stats.entries, 6);
    let gone = fs::symlink_metadata(dest.join("gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(fs::symlink_metadata(dest.join("e/sub"))
        .unwrap()
        .file_type()
        .is_char_device());
    let d = fsutil::open_dir(&dest.join("d")).unwrap();
    assert!(fsutil::is_opaque(d.as_fd()).unwrap());
    let e = fsutil::open_dir(&dest.join("e")).unwrap();
    assert!(!fsutil::is_opaque(e.as_fd()).unwrap());
    // A directory replacing its own whiteout in the same layer is opaque.
    let (_tmp, dest2) = scratch();
    let tar = Layer::new().file(".wh.r", b"").dir("r").file("r/f", b"f").tar();
    unpack(&tar, &dest2).unwrap();
    let r = fsutil::open_dir(&dest2.join("r")).unwrap();
    assert!(fsutil::is_opaque(r.as_fd()).unwrap());

    let names: Vec<_> = fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with(".wh.")), "{names:?}");
}

#[test]
fn metadata_is_reproduced() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new()
        .entry("bin", EntryType::Directory, b"", |h| {
            h.set_mode(0o750);
            h.set_mtime(1_000_000_000);
            h.set_uid(12);
            h.set_gid(34);
        })
        .entry("bin/su", EntryType::Regular, b"#!binary", |h| {
            h.set_mode(0o4755);
            h.set_uid(1000);
            h.set_gid(1001);
            h.set_mtime(1_234_567_890);
        })
        .hardlink("bin/su-again", "bin/su")
        .symlink("bin/sh", "busybox")
        .entry("null", EntryType::Char, b"", |h| {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
            h.set_mode(0o666);
        })
        .entry("loop0", EntryType::Block, b"", |h| {
            h.set_device_major(7).unwrap();
            h.set_device_minor(0).unwrap();
        })
        .entry("fifo", EntryType::Fifo, b"", |h| h.set_mode(0o620))
        .pax(&[("SCHILY.xattr.user.minirun", b"v1"), ("mtime", b"1700000000.5")])
        .file("xattr", b"x")
        .tar();
    let stats = unpack(&tar, &dest).unwrap();
    assert_eq!(stats.file_bytes, 9);
    assert_eq!(stats.compression, Compression::None);

    let bin = fs::symlink_metadata(dest.join("bin")).unwrap();
    assert_eq!(bin.mode() & 0o7777, 0o750);
    assert_eq!((bin.uid(), bin.gid()), (12, 34));
    assert_eq!(bin.mtime(), 1_000_000_000, "directory mtime is set after its children");

    let su = fs::symlink_metadata(dest.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid survives chown");
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    assert_eq!(su.mtime(), 1_234_567_890);
    assert_eq!(su.nlink(), 2);
    assert_eq!(fs::metadata(dest.join("bin/su-again")).unwrap().ino(), su.ino());

    assert_eq!(fs::read_link(dest.join("bin/sh")).unwrap(), Path::new("busybox"));

    let null = fs::symlink_metadata(dest.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o777, 0o666);
    let loop0 = fs::symlink_metadata(dest.join("loop0")).unwrap();
    assert!(loop0.file_type().is_block_device());
    assert_eq!(loop0.rdev(), rustix::fs::makedev(7, 0));
    let fifo = fs::symlink_metadata(dest.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.mode() & 0o777, 0o620);

    let x = fs::symlink_metadata(dest.join("xattr")).unwrap();
    assert_eq!((x.mtime(), x.mtime_nsec()), (1_700_000_000, 500_000_000));
    let fd = rustix::fs::open(dest.join("xattr"), OFlags::RDONLY, Mode::empty()).unwrap();
    let xattrs = fsutil::read_xattrs(fd.as_fd()).unwrap();
    assert!(
        xattrs.contains(&(b"user.minirun".to_vec(), b"v1".to_vec())),
        "{xattrs:?}"
    );
}

#[test]
fn overlay_xattrs_from_the_archive_are_dropped() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new()
        .pax(&[("SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("d")
        .tar();
    unpack(&tar, &dest).unwrap();
    let d = fsutil::open_dir(&dest.join("d")).unwrap();
    assert!(fsutil::read_xattrs(d.as_fd()).unwrap().is_empty());
}

#[test]
fn later_entries_replace_earlier_ones() {
    let (_tmp, dest) = scratch();
    let tar = Layer::new()
        .file("x", b"file")
        .dir("x")
        .file("x/inner", b"i")
        .dir("y")
        .file("y/inner", b"i")
        .file("y", b"now a file")
        .symlink("z", "/nowhere")
        .file("z", b"now a file")
        .tar();
    unpack(&tar, &dest).unwrap();
    assert_eq!(fs::read(dest.join("x/inner")).unwrap(), b"i");
    assert_eq!(fs::read(dest.join("y")).unwrap(), b"now a file");
    assert_eq!(fs::read(dest.join("z")).unwrap(), b"now a file");
}

#[test]
fn missing_parent_directories_are_created() {
    let (_tmp, dest) = scratch();
    unpack(&Layer::new().file("a/b/c/f", b"f").tar(), &dest).unwrap();
    assert_eq!(fs::read(dest.join("a/b/c/f")).unwrap(), b"f");
    assert_eq!(fs::metadata(dest.join("a/b")).unwrap().mode() & 0o777, 0o755);
}

#[test]
fn compression_is_detected_and_diff_id_covers_the_tar() {
    let tar = Layer::new().dir("etc").file("etc/hostname", b"box\n").tar();
    let diff_id = format!("sha256:{}", sha256_of(&tar));
    for (data, compression) in [
        (tar.clone(), Compression::None),
        (gzip(&tar), Compression::Gzip),
        (zstd(&tar), Compression::Zstd),
    ] {
        let (_tmp, dest) = scratch();
        let stats = unpack(&data, &dest).unwrap();
        assert_eq!(stats.compression, compression);
        assert_eq!(stats.diff_id, diff_id);
        assert_eq!(stats.tar_bytes, tar.len() as u64);
        assert_eq!(fs::read(dest.join("etc/hostname")).unwrap(), b"box\n");
    }
}

#[test]
fn the_whole_input_is_consumed() {
    let tar = Layer::new().file("f", b"x").tar();
    let gz = gzip(&tar);
    let mut reader = crate::digest::HashReader::new(&gz[..]);
    let (_tmp, dest) = scratch();
    unpack_layer(&mut reader, &dest).unwrap();
    assert_eq!(reader.len(), gz.len() as u64);
}

#[test]
fn truncated_streams_are_errors() {
    let big = vec![7u8; 100_000];
    let tar = Layer::new().file("first", b"1").file("big", &big).tar();
    // Cut inside the file data.
    let (_tmp, dest) = scratch();
    match unpack(&tar[..60_000], &dest) {
        Err(Error::Stream { near, source }) => {
            assert_eq!(near.as_deref(), Some(Path::new("big")));
            assert_eq!(source.kind(), io::ErrorKind::UnexpectedEof);
        }
        other => panic!("{other:?}"),
    }
    // Cut inside a header.
    let (_tmp, dest) = scratch();
    assert!(matches!(unpack(&tar[..700], &dest), Err(Error::Stream { .. })));
    // Cut gzip.
    let gz = gzip(&tar);
    let (_tmp, dest) = scratch();
    let err = unpack(&gz[..gz.len() / 2], &dest).unwrap_err();
    assert!(matches!(err, Error::Stream { .. }), "{err}");
    // Unsupported compression is named.
    let (_tmp, dest) = scratch();
    let err = unpack(b"BZh91AY&SY....", &dest).unwrap_err();
    let msg = crate::error::chain(&err);
    assert!(msg.contains("bzip2"), "{msg}");
}

#[test]
fn a_stream_ending_right_after_the_last_data_is_accepted() {
    // What umoci 0.4 writes: no padding after the last file, no end-of-archive marker.
    let tar = Layer::new().dir("d").file("d/hello", b"hi\n").tar();
    let cut = &tar[..512 * 2 + 3];
    let (_tmp, dest) = scratch();
    let stats = unpack(cut, &dest).unwrap();
    assert_eq!(fs::read(dest.join("d/hello")).unwrap(), b"hi\n");
    assert_eq!(stats.diff_id, format!("sha256:{}", sha256_of(cut)));
    // Cut one byte earlier, the file is incomplete: an error.
    let (_tmp, dest) = scratch();
    assert!(matches!(unpack(&tar[..512 * 2 + 2], &dest), Err(Error::Stream { .. })));
    // Cut inside the padding: an error too (as in Go's archive/tar).
    let (_tmp, dest) = scratch();
    assert!(matches!(
        unpack(&tar[..512 * 2 + 100], &dest),
        Err(Error::Stream { .. })
    ));
}

#[test]
fn normalize_paths() {
    let n = |s: &str| normalize(s.as_bytes());
    assert_eq!(n("./a//b/./c/").unwrap(), Path::new("a/b/c"));
    assert_eq!(n("a/../b").unwrap(), Path::new("b"));
    assert_eq!(n("./").unwrap(), Path::new(""));
    assert_eq!(n("/etc"), Err(BadPath::Absolute));
    assert_eq!(n(".."), Err(BadPath::DotDot));
    assert_eq!(n("a/../../b"), Err(BadPath::DotDot));
    assert_eq!(parse_pax_time(b"12.25").unwrap().tv_nsec, 250_000_000);
    assert_eq!(parse_pax_time(b"12").unwrap().tv_sec, 12);
}

#[test]
fn a_root_entry_first_sets_the_layer_roots_metadata() {
    // `tar -C dir -c .`, umoci and rules_oci start layers with "./"
    for root in ["./", "."] {
        let (_tmp, dest) = scratch();
        let tar = Layer::new()
            .entry(root, EntryType::Directory, b"", |h| {
                h.set_mode(0o750);
                h.set_mtime(1_000_000);
            })
            .dir("./bin")
            .file("./bin/tool", b"x")
            .tar();
        let stats = unpack(&tar, &dest).unwrap();
        assert_eq!(stats.entries, 3, "{root}");
        let meta = fs::metadata(&dest).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o750, "{root}");
        assert_eq!(meta.mtime(), 1_000_000, "{root}");
        assert_eq!(fs::read(dest.join("bin/tool")).unwrap(), b"x");
    }
}

#[test]
fn whiteouts_of_dot_and_dotdot_are_refused_by_name() {
    for name in ["d/.wh..", "d/.wh..."] {
        let (_tmp, dest) = scratch();
        fs::create_dir_all(dest.join("d")).unwrap();
        fs::write(dest.join("d/keep"), b"k").unwrap();
        let tar = Layer::new().file(name, b"").tar();
        assert_unsafe(unpack(&tar, &dest), name);
        // nothing of the staging area was touched
        assert_eq!(fs::read(dest.join("d/keep")).unwrap(), b"k", "{name}");
    }
}
