use super::*;
use std::ffi::OsString;

#[test]
fn missing_package_error_says_how_to_install() {
    let err = busybox_path_from(None, Path::new("/nonexistent/busybox-static.list")).unwrap_err();
    assert!(matches!(err, Error::BusyboxMissing { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install busybox-static"), "{err}");

    let err = busybox_path_from(Some(OsString::from("/nonexistent/busybox")), Path::new(DPKG_LIST)).unwrap_err();
    assert!(err.to_string().contains("apt-get install busybox-static"), "{err}");
}

#[test]
fn dynamic_busybox_is_refused() {
    // /bin/ls is dynamically linked on Debian: it has a PT_INTERP header.
    let err = busybox_path_from(Some(OsString::from("/bin/ls")), Path::new(DPKG_LIST)).unwrap_err();
    assert!(matches!(err, Error::BusyboxNotStatic { .. }), "{err:?}");
    assert!(err.to_string().contains("apt-get install busybox-static"), "{err}");
    // A text file is not an ELF at all.
    let err = check_static_elf(Path::new(DPKG_LIST)).unwrap_err();
    assert!(err.to_string().contains("not an ELF"), "{err}");
}

#[test]
fn busybox_comes_from_the_debian_package() {
    let p = busybox_path_from(None, Path::new(DPKG_LIST)).unwrap();
    assert!(p.ends_with("bin/busybox"), "{}", p.display());
    let listed = fs::read_to_string(DPKG_LIST).unwrap();
    assert!(
        listed.lines().any(|l| Path::new(l) == p),
        "{} not in {DPKG_LIST}",
        p.display()
    );
    check_static_elf(&p).unwrap();
}

#[test]
fn whiteout_and_opaque_names() {
    let wh = |p: &str| LayerEntry::Whiteout { path: p.into() }.tar_path();
    let opq = |d: &str| LayerEntry::Opaque { dir: d.into() }.tar_path();
    assert_eq!(wh("etc/motd"), "etc/.wh.motd");
    assert_eq!(wh("a/b/c/"), "a/b/.wh.c");
    assert_eq!(wh("top"), ".wh.top");
    assert_eq!(opq("var/www"), "var/www/.wh..wh..opq");
    assert_eq!(opq("var/www/"), "var/www/.wh..wh..opq");
    assert_eq!(opq(""), ".wh..wh..opq");
    assert_eq!(
        LayerEntry::Dir {
            path: "d".into(),
            mode: 0o755
        }
        .tar_path(),
        "d/"
    );
    assert_eq!(
        LayerEntry::Dir {
            path: "d/".into(),
            mode: 0o755
        }
        .tar_path(),
        "d/"
    );
}

#[test]
fn references() {
    let ok = |r: &str| split_reference(r).unwrap();
    assert_eq!(ok("busybox"), ("busybox".into(), "latest".into()));
    assert_eq!(ok("busybox:1.36"), ("busybox".into(), "1.36".into()));
    assert_eq!(ok("localhost:5000/a/b"), ("localhost:5000/a/b".into(), "latest".into()));
    assert_eq!(ok("localhost:5000/a/b:v1"), ("localhost:5000/a/b".into(), "v1".into()));
    for bad in [
        "",
        "Busybox",
        "busybox:",
        "busybox@sha256:00",
        "/x",
        "x/",
        "a:b c",
        "x:-t",
    ] {
        let err = split_reference(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidReference { .. }), "{bad:?}: {err:?}");
    }
    assert_eq!("docker".parse::<ImageFormat>().unwrap(), ImageFormat::DockerArchive);
    assert_eq!("oci-dir".parse::<ImageFormat>().unwrap(), ImageFormat::OciDir);
    assert_eq!("oci-tar".parse::<ImageFormat>().unwrap(), ImageFormat::OciTar);
    assert!("zip".parse::<ImageFormat>().is_err());
}

#[test]
fn long_and_hostile_names_are_written_verbatim() {
    let long = format!("{}/file", "d".repeat(150));
    let long_target = format!("/{}", "t".repeat(140));
    let tar = layer_tar(&[
        LayerEntry::File {
            path: long.clone(),
            content: b"x".to_vec(),
            mode: 0o100644,
        },
        LayerEntry::Symlink {
            path: "link".into(),
            target: long_target.clone(),
        },
        LayerEntry::File {
            path: "../escape".into(),
            content: b"y".to_vec(),
            mode: 0o600,
        },
        LayerEntry::File {
            path: "/abs".into(),
            content: vec![],
            mode: 0o644,
        },
    ])
    .unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    let got: Vec<(String, Option<String>, u32)> = ar
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let link = e.link_name_bytes().map(|l| String::from_utf8(l.into_owned()).unwrap());
            (name, link, e.header().mode().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (long, None, 0o644),
            ("link".to_string(), Some(long_target), 0o777),
            ("../escape".to_string(), None, 0o600),
            ("/abs".to_string(), None, 0o644),
        ]
    );
}

#[test]
fn gzip_has_no_timestamp_or_name() {
    let gz = gzip(b"hello").unwrap();
    assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
    assert_eq!(gz[3], 0, "FLG: no FNAME/FCOMMENT/FEXTRA");
    assert_eq!(&gz[4..8], &[0, 0, 0, 0], "MTIME");
    assert_eq!(gzip(b"hello").unwrap(), gz);
}
