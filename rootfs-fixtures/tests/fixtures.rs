//! Tests of the public API and of the `minirun-fixtures` binary. They need
//! Debian's busybox-static (`apt-get install busybox-static`) and nothing else.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rootfs_fixtures::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// One member of a tar as read back: raw name, link name, type, mode, header fields, data.
#[derive(Debug, Clone, PartialEq)]
struct Member {
    name: String,
    link: Option<String>,
    kind: tar::EntryType,
    mode: u32,
    data: Vec<u8>,
}

/// Read every member, asserting the normalized header fields on the way.
fn read_tar(bytes: &[u8]) -> Vec<Member> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        assert_eq!(h.mtime().unwrap(), SOURCE_DATE_EPOCH, "mtime of {name}");
        assert_eq!(h.uid().unwrap(), 0, "uid of {name}");
        assert_eq!(h.gid().unwrap(), 0, "gid of {name}");
        assert_eq!(h.username_bytes().unwrap_or_default(), b"", "uname of {name}");
        assert_eq!(h.groupname_bytes().unwrap_or_default(), b"", "gname of {name}");
        let link = e.link_name_bytes().map(|l| String::from_utf8(l.into_owned()).unwrap());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Member {
            name,
            link,
            kind: h.entry_type(),
            mode: h.mode().unwrap(),
            data,
        });
    }
    out
}

fn members_by_name(bytes: &[u8]) -> BTreeMap<String, Member> {
    read_tar(bytes).into_iter().map(|m| (m.name.clone(), m)).collect()
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    assert_eq!(&gz[3..8], &[0, 0, 0, 0, 0], "gzip FLG and MTIME must be zero");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz).read_to_end(&mut out).unwrap();
    out
}

/// Snapshot of a directory tree: relative path → (kind, mode, content or link target).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (String, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (String, u32, Vec<u8>)>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                let t = fs::read_link(&p).unwrap();
                out.insert(rel, ("symlink".into(), 0, t.into_os_string().into_encoded_bytes()));
            } else if m.is_dir() {
                out.insert(rel, ("dir".into(), mode, vec![]));
                walk(root, &p, out);
            } else {
                out.insert(rel, ("file".into(), mode, fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn applets() -> Vec<String> {
    let out = Command::new(busybox_path().unwrap())
        .arg("--list-full")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.to_string())
        .collect()
}

fn sh_in(rootfs: &Path, script: &str) -> String {
    let out = Command::new(rootfs.join("bin/sh"))
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

// ---------------------------------------------------------------------------
// rootfs and bundle
// ---------------------------------------------------------------------------

#[test]
fn rootfs_has_a_runnable_shell_and_the_expected_files() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootfs");
    build_rootfs(&root).unwrap();

    // /bin/sh is a relative symlink to an executable static busybox inside the rootfs.
    assert_eq!(fs::read_link(root.join("bin/sh")).unwrap(), Path::new("busybox"));
    let bb = fs::metadata(root.join("bin/busybox")).unwrap();
    assert!(bb.is_file());
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::read(root.join("bin/busybox")).unwrap(),
        fs::read(busybox_path().unwrap()).unwrap()
    );
    assert_eq!(
        fs::canonicalize(root.join("bin/sh")).unwrap(),
        fs::canonicalize(root.join("bin/busybox")).unwrap()
    );
    // ... and it actually runs (busybox is static: no chroot needed).
    assert_eq!(sh_in(&root, "echo $((6*7))"), "42\n");

    // Every applet busybox lists exists where --list-full puts it and resolves to our busybox.
    let all = applets();
    assert!(all.len() > 100, "{}", all.len());
    // (--list-full names bin/busybox itself too: that one is the binary.)
    for a in all.iter().filter(|a| a.as_str() != "bin/busybox") {
        let p = root.join(a);
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_symlink(), "{a}");
        assert_eq!(
            fs::canonicalize(&p).unwrap(),
            fs::canonicalize(root.join("bin/busybox")).unwrap(),
            "{a}"
        );
    }
    assert!(root.join("usr/bin/env").exists() && root.join("sbin/ifconfig").exists());

    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")), "{passwd}");
    assert!(
        passwd.lines().any(|l| l.starts_with("nobody:x:65534:65534:")),
        "{passwd}"
    );
    let group = fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.lines().any(|l| l.starts_with("root:x:0:")), "{group}");
    assert!(group.lines().any(|l| l.ends_with(":x:65534:")), "{group}");
    assert_eq!(
        fs::read_to_string(root.join("var/www/index.html")).unwrap(),
        "hello from minirun\n"
    );

    let mode = |p: &str| fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode(""), 0o755);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(mode("root"), 0o700);
    for d in ["proc", "sys", "dev", "tmp", "root"] {
        assert!(root.join(d).is_dir(), "{d}");
        assert_eq!(fs::read_dir(root.join(d)).unwrap().count(), 0, "{d} must be empty");
    }
}

#[test]
fn rootfs_is_deterministic_and_rebuild_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    build_rootfs(&a).unwrap();
    build_rootfs(&b).unwrap();
    let snap = snapshot(&a);
    assert!(snap.len() > 250, "{}", snap.len());
    assert_eq!(snap, snapshot(&b));
    // Building over an existing rootfs (even a damaged one) restores the same tree.
    fs::remove_file(a.join("bin/sh")).unwrap();
    fs::write(a.join("bin/ls"), b"not a symlink").unwrap();
    build_rootfs(&a).unwrap();
    assert_eq!(snapshot(&a), snap);
}

#[test]
fn bundle_config_is_a_runc_style_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bundle");
    build_bundle(&dir, &["httpd", "-f", "-p", "80"]).unwrap();
    assert!(dir.join("rootfs/bin/busybox").is_file());
    assert_eq!(sh_in(&dir.join("rootfs"), "echo hi"), "hi\n");

    let raw = fs::read(dir.join("config.json")).unwrap();
    let spec = oci_spec::runtime::Spec::load(dir.join("config.json")).unwrap();
    let process = spec.process().as_ref().unwrap();
    assert_eq!(process.args().as_ref().unwrap(), &["httpd", "-f", "-p", "80"]);
    assert_eq!(process.terminal(), Some(false));
    assert_eq!(process.cwd(), Path::new("/"));
    let env = process.env().as_ref().unwrap();
    assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin:")), "{env:?}");
    assert!(env.contains(&"TERM=xterm".to_string()));
    assert_eq!(process.user().uid(), 0);
    let caps = process.capabilities().as_ref().unwrap();
    let bounding: Vec<String> = caps
        .bounding()
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(bounding.len(), 3, "{bounding:?}");
    assert_eq!(spec.hostname().as_deref(), Some("minirun"));
    let root = spec.root().as_ref().unwrap();
    assert_eq!(root.path(), Path::new("rootfs"));
    assert_eq!(root.readonly(), Some(false));
    let mounts: Vec<&Path> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().as_path())
        .collect();
    assert_eq!(
        mounts,
        ["/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"].map(Path::new)
    );
    let linux = spec.linux().as_ref().unwrap();
    let mut ns: Vec<String> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| format!("{:?}", n.typ()).to_lowercase())
        .collect();
    ns.sort();
    assert_eq!(ns, ["ipc", "mount", "network", "pid", "uts"]);
    assert!(linux.namespaces().as_ref().unwrap().iter().all(|n| n.path().is_none()));
    assert!(linux
        .masked_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/kcore".to_string()));
    assert!(linux
        .readonly_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/sys".to_string()));

    // Same args → same bytes.
    let dir2 = tmp.path().join("bundle2");
    build_bundle(&dir2, &["httpd", "-f", "-p", "80"]).unwrap();
    assert_eq!(fs::read(dir2.join("config.json")).unwrap(), raw);
}

// ---------------------------------------------------------------------------
// images
// ---------------------------------------------------------------------------

/// What a docker archive says, checked for self-consistency.
struct DockerImage {
    config: Value,
    layers: Vec<Vec<u8>>, // uncompressed layer tars, bottom first
}

fn check_docker_archive(bytes: &[u8], reference: &str) -> DockerImage {
    let members = read_tar(bytes);
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "archive members must be sorted");
    let files: BTreeMap<String, Member> = members.into_iter().map(|m| (m.name.clone(), m)).collect();

    let manifest = json(&files["manifest.json"].data);
    let manifest = manifest.as_array().unwrap();
    assert_eq!(manifest.len(), 1);
    let m = &manifest[0];
    assert_eq!(m["RepoTags"], serde_json::json!([reference]));
    let config_name = m["Config"].as_str().unwrap();
    let config_bytes = &files[config_name].data;
    assert_eq!(
        config_name,
        format!("{}.json", sha(config_bytes)),
        "config name is its digest"
    );
    // It is a valid OCI image configuration too.
    oci_spec::image::ImageConfiguration::from_reader(&config_bytes[..]).unwrap();
    let config = json(config_bytes);

    let layer_paths: Vec<&str> = m["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(config["rootfs"]["type"], "layers");
    assert_eq!(layer_paths.len(), diff_ids.len());
    assert_eq!(config["history"].as_array().unwrap().len(), diff_ids.len());
    let mut layers = Vec::new();
    for (path, diff_id) in layer_paths.iter().zip(&diff_ids) {
        let data = &files[*path].data;
        let digest = sha(data);
        assert_eq!(*diff_id, format!("sha256:{digest}"), "diff_id of {path}");
        assert_eq!(*path, format!("{digest}/layer.tar"));
        assert!(files.contains_key(&format!("{digest}/")), "layer directory entry");
        layers.push(data.clone());
    }
    let (name, tag) = reference.rsplit_once(':').unwrap();
    let repos = json(&files["repositories"].data);
    let top = layer_paths.last().unwrap().trim_end_matches("/layer.tar");
    assert_eq!(repos, serde_json::json!({ name: { tag: top } }));
    DockerImage { config, layers }
}

fn check_busybox_config(config: &Value, n_layers: usize) {
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    let c = &config["config"];
    assert_eq!(c["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(c["WorkingDir"], "/");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert_eq!(
        c["Env"],
        serde_json::json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(config["rootfs"]["diff_ids"].as_array().unwrap().len(), n_layers);
}

/// The base layer holds exactly the rootfs that build_rootfs writes, and
/// unpacked with the tar crate it gives a working shell.
fn check_base_layer(layer: &[u8]) {
    let members = read_tar(layer);
    let names: Vec<String> = members
        .iter()
        .map(|m| m.name.trim_end_matches('/').to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "layer members must be sorted");
    let by: BTreeMap<_, _> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    assert_eq!(by["bin/sh"].kind, tar::EntryType::Symlink);
    assert_eq!(by["bin/sh"].link.as_deref(), Some("busybox"));
    assert_eq!(by["bin/busybox"].mode, 0o755);
    assert_eq!(by["tmp/"].mode, 0o1777);
    assert_eq!(by["tmp/"].kind, tar::EntryType::Directory);
    assert_eq!(by["var/www/index.html"].data, b"hello from minirun\n");

    let tmp = tempfile::tempdir().unwrap();
    let unpacked = tmp.path().join("u");
    let fresh = tmp.path().join("f");
    let mut ar = tar::Archive::new(layer);
    ar.set_preserve_permissions(true);
    ar.unpack(&unpacked).unwrap();
    build_rootfs(&fresh).unwrap();
    assert_eq!(sh_in(&unpacked, "echo unpacked"), "unpacked\n");
    let mut a = snapshot(&unpacked);
    let b = snapshot(&fresh);
    a.retain(|k, _| !k.as_os_str().is_empty());
    assert_eq!(a, b, "the layer is the same tree as build_rootfs writes");
}

#[test]
fn docker_archive_is_reproducible_and_self_consistent() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a.tar"), tmp.path().join("b.tar"));
    build_image(&a, "busybox:latest", ImageFormat::DockerArchive).unwrap();
    build_image(&b, "busybox:latest", ImageFormat::DockerArchive).unwrap();
    let bytes = fs::read(&a).unwrap();
    assert_eq!(bytes, fs::read(&b).unwrap(), "two builds must be byte-identical");

    let img = check_docker_archive(&bytes, "busybox:latest");
    check_busybox_config(&img.config, 1);
    assert!(img.layers[0].len() > 1_900_000, "layer holds busybox");
    check_base_layer(&img.layers[0]);

    // The name defaults to :latest and changes only the naming files.
    let c = tmp.path().join("c.tar");
    build_image(&c, "example/bb", ImageFormat::DockerArchive).unwrap();
    let img_c = check_docker_archive(&fs::read(&c).unwrap(), "example/bb:latest");
    assert_eq!(img_c.config, img.config);
    assert!(build_image(&c, "Bad Name", ImageFormat::DockerArchive).is_err());
}

/// Read an OCI layout given as relative path → bytes, checking every digest and size.
fn check_oci_layout(files: &BTreeMap<String, Vec<u8>>, name: &str, tag: &str) -> DockerImage {
    assert_eq!(
        json(&files["oci-layout"]),
        serde_json::json!({"imageLayoutVersion": "1.0.0"})
    );
    for (path, data) in files {
        if let Some(hex) = path.strip_prefix("blobs/sha256/") {
            assert_eq!(hex, sha(data), "blob {path} matches its digest");
        }
    }
    let blob = |d: &Value| -> &Vec<u8> {
        let digest = d["digest"].as_str().unwrap();
        let data = &files[&format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())];
        assert_eq!(d["size"].as_u64().unwrap(), data.len() as u64, "size of {digest}");
        data
    };
    oci_spec::image::ImageIndex::from_reader(&files["index.json"][..]).unwrap();
    let index = json(&files["index.json"]);
    assert_eq!(index["schemaVersion"], 2);
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    let md = &manifests[0];
    assert_eq!(md["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(md["annotations"]["org.opencontainers.image.ref.name"], tag);
    assert_eq!(md["annotations"]["io.containerd.image.name"], format!("{name}:{tag}"));
    let manifest_bytes = blob(md);
    oci_spec::image::ImageManifest::from_reader(&manifest_bytes[..]).unwrap();
    let manifest = json(manifest_bytes);
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(manifest["mediaType"], MEDIA_TYPE_OCI_MANIFEST);
    assert_eq!(manifest["config"]["mediaType"], MEDIA_TYPE_OCI_CONFIG);
    let config_bytes = blob(&manifest["config"]);
    oci_spec::image::ImageConfiguration::from_reader(&config_bytes[..]).unwrap();
    let config = json(config_bytes);
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layer_descs = manifest["layers"].as_array().unwrap();
    assert_eq!(diff_ids.len(), layer_descs.len());
    let mut layers = Vec::new();
    for (ld, diff_id) in layer_descs.iter().zip(diff_ids) {
        assert_eq!(ld["mediaType"], MEDIA_TYPE_OCI_LAYER_GZIP);
        let tar = gunzip(blob(ld));
        assert_eq!(
            diff_id.as_str().unwrap(),
            format!("sha256:{}", sha(&tar)),
            "diff_id = sha256 of the uncompressed tar"
        );
        layers.push(tar);
    }
    // Nothing but the referenced blobs.
    let blobs = files.keys().filter(|k| k.starts_with("blobs/sha256/")).count();
    assert_eq!(blobs, 2 + layer_descs.len());
    DockerImage { config, layers }
}

fn read_dir_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    snapshot(root)
        .into_iter()
        .filter(|(_, (kind, _, _))| kind == "file")
        .map(|(p, (_, _, data))| (p.to_string_lossy().into_owned(), data))
        .collect()
}

#[test]
fn oci_layout_dir_and_tar_are_reproducible_and_digests_match() {
    let tmp = tempfile::tempdir().unwrap();
    let (d1, d2) = (tmp.path().join("d1"), tmp.path().join("d2"));
    build_image(&d1, "busybox:latest", ImageFormat::OciDir).unwrap();
    build_image(&d2, "busybox:latest", ImageFormat::OciDir).unwrap();
    let files = read_dir_files(&d1);
    assert_eq!(files, read_dir_files(&d2), "two builds must be byte-identical");
    let img = check_oci_layout(&files, "busybox", "latest");
    check_busybox_config(&img.config, 1);
    check_base_layer(&img.layers[0]);

    let (t1, t2) = (tmp.path().join("t1.tar"), tmp.path().join("t2.tar"));
    build_image(&t1, "busybox:latest", ImageFormat::OciTar).unwrap();
    build_image(&t2, "busybox:latest", ImageFormat::OciTar).unwrap();
    let tar_bytes = fs::read(&t1).unwrap();
    assert_eq!(tar_bytes, fs::read(&t2).unwrap(), "two builds must be byte-identical");
    let members = read_tar(&tar_bytes);
    let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"]);
    let tar_files: BTreeMap<String, Vec<u8>> = members
        .into_iter()
        .filter(|m| m.kind == tar::EntryType::Regular)
        .map(|m| (m.name, m.data))
        .collect();
    assert_eq!(tar_files, files, "the OCI tar is the OCI directory packed");

    // The docker archive and the OCI layout describe the same image.
    let docker = tmp.path().join("docker.tar");
    build_image(&docker, "busybox:latest", ImageFormat::DockerArchive).unwrap();
    let dimg = check_docker_archive(&fs::read(&docker).unwrap(), "busybox:latest");
    assert_eq!(dimg.config, img.config);
    assert_eq!(dimg.layers, img.layers);

    // An OCI dir refuses a file as its output.
    assert!(matches!(
        build_image(&docker, "busybox:latest", ImageFormat::OciDir),
        Err(Error::NotADirectory { .. })
    ));
}

fn extra_layers() -> Vec<Vec<LayerEntry>> {
    vec![
        vec![
            LayerEntry::Dir {
                path: "app".into(),
                mode: 0o755,
            },
            LayerEntry::File {
                path: "app/run.sh".into(),
                content: b"#!/bin/sh\necho run\n".to_vec(),
                mode: 0o755,
            },
            LayerEntry::Symlink {
                path: "app/latest".into(),
                target: "run.sh".into(),
            },
            LayerEntry::Hardlink {
                path: "app/run2.sh".into(),
                target: "app/run.sh".into(),
            },
            LayerEntry::File {
                path: "etc/motd".into(),
                content: b"hi\n".to_vec(),
                mode: 0o644,
            },
        ],
        vec![
            LayerEntry::Whiteout {
                path: "etc/motd".into(),
            },
            LayerEntry::Whiteout { path: "linuxrc".into() },
            LayerEntry::Opaque { dir: "var/www".into() },
            LayerEntry::File {
                path: "var/www/index.html".into(),
                content: b"new\n".to_vec(),
                mode: 0o644,
            },
            // Hostile entries for escape tests are kept verbatim, in the given order.
            LayerEntry::Symlink {
                path: "evil".into(),
                target: "/etc".into(),
            },
            LayerEntry::File {
                path: "evil/pwned".into(),
                content: b"x".to_vec(),
                mode: 0o644,
            },
            LayerEntry::File {
                path: "../outside".into(),
                content: b"x".to_vec(),
                mode: 0o644,
            },
        ],
    ]
}

fn check_extra_layers(layers: &[Vec<u8>]) {
    assert_eq!(layers.len(), 3);
    check_base_layer(&layers[0]);
    let l1 = read_tar(&layers[1]);
    let summary = |ms: &[Member]| -> Vec<(String, tar::EntryType, Option<String>)> {
        ms.iter().map(|m| (m.name.clone(), m.kind, m.link.clone())).collect()
    };
    use tar::EntryType as T;
    assert_eq!(
        summary(&l1),
        vec![
            ("app/".into(), T::Directory, None),
            ("app/run.sh".into(), T::Regular, None),
            ("app/latest".into(), T::Symlink, Some("run.sh".into())),
            ("app/run2.sh".into(), T::Link, Some("app/run.sh".into())),
            ("etc/motd".into(), T::Regular, None),
        ]
    );
    assert_eq!(l1[1].mode, 0o755);
    assert_eq!(l1[1].data, b"#!/bin/sh\necho run\n");
    let l2 = read_tar(&layers[2]);
    assert_eq!(
        summary(&l2),
        vec![
            ("etc/.wh.motd".into(), T::Regular, None),
            (".wh.linuxrc".into(), T::Regular, None),
            ("var/www/.wh..wh..opq".into(), T::Regular, None),
            ("var/www/index.html".into(), T::Regular, None),
            ("evil".into(), T::Symlink, Some("/etc".into())),
            ("evil/pwned".into(), T::Regular, None),
            ("../outside".into(), T::Regular, None),
        ]
    );
    assert!(l2[..3].iter().all(|m| m.data.is_empty()), "whiteouts are empty files");
}

#[test]
fn extra_layers_produce_whiteouts_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let layers = extra_layers();

    let d = tmp.path().join("img.tar");
    build_image_with_layers(&d, "wh:test", ImageFormat::DockerArchive, &layers).unwrap();
    let bytes = fs::read(&d).unwrap();
    let img = check_docker_archive(&bytes, "wh:test");
    check_busybox_config(&img.config, 3);
    check_extra_layers(&img.layers);
    let d2 = tmp.path().join("img2.tar");
    build_image_with_layers(&d2, "wh:test", ImageFormat::DockerArchive, &layers).unwrap();
    assert_eq!(fs::read(&d2).unwrap(), bytes);

    let o = tmp.path().join("oci");
    build_image_with_layers(&o, "wh:test", ImageFormat::OciDir, &layers).unwrap();
    let oimg = check_oci_layout(&read_dir_files(&o), "wh", "test");
    check_extra_layers(&oimg.layers);
    assert_eq!(oimg.config, img.config);

    let t = tmp.path().join("oci.tar");
    build_image_with_layers(&t, "wh:test", ImageFormat::OciTar, &layers).unwrap();
    let files: BTreeMap<String, Vec<u8>> = read_tar(&fs::read(&t).unwrap())
        .into_iter()
        .filter(|m| m.kind == tar::EntryType::Regular)
        .map(|m| (m.name, m.data))
        .collect();
    assert_eq!(files, read_dir_files(&o));

    // layer_tar gives exactly the bytes of a layer.
    assert_eq!(layer_tar(&layers[1]).unwrap(), img.layers[2]);
    // An empty extra layer is a valid (empty) tar.
    let e = tmp.path().join("empty.tar");
    build_image_with_layers(&e, "e:1", ImageFormat::DockerArchive, &[vec![]]).unwrap();
    let eimg = check_docker_archive(&fs::read(&e).unwrap(), "e:1");
    assert!(read_tar(&eimg.layers[1]).is_empty());
}

// ---------------------------------------------------------------------------
// the binary
// ---------------------------------------------------------------------------

fn fixtures_bin(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_minirun-fixtures"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn binary_builds_the_same_fixtures_as_the_library() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n).to_string_lossy().into_owned();

    let out = fixtures_bin(&["image", &p("bin.tar")]);
    assert!(out.status.success(), "{out:?}");
    build_image(
        &tmp.path().join("lib.tar"),
        "busybox:latest",
        ImageFormat::DockerArchive,
    )
    .unwrap();
    assert_eq!(fs::read(p("bin.tar")).unwrap(), fs::read(p("lib.tar")).unwrap());

    let out = fixtures_bin(&["image", &p("oci"), "--name", "busybox:1", "--format", "oci-dir"]);
    assert!(out.status.success(), "{out:?}");
    check_oci_layout(&read_dir_files(&tmp.path().join("oci")), "busybox", "1");

    let out = fixtures_bin(&["image", &p("oci.tar"), "--format=oci-tar", "--name=x/y:z"]);
    assert!(out.status.success(), "{out:?}");
    let files: BTreeMap<String, Vec<u8>> = members_by_name(&fs::read(p("oci.tar")).unwrap())
        .into_values()
        .filter(|m| m.kind == tar::EntryType::Regular)
        .map(|m| (m.name, m.data))
        .collect();
    check_oci_layout(&files, "x/y", "z");

    let out = fixtures_bin(&["bundle", &p("b"), "--", "echo", "hi"]);
    assert!(out.status.success(), "{out:?}");
    let cfg = json(&fs::read(tmp.path().join("b/config.json")).unwrap());
    assert_eq!(cfg["process"]["args"], serde_json::json!(["echo", "hi"]));
    let out = fixtures_bin(&["bundle", &p("b2")]);
    assert!(out.status.success(), "{out:?}");
    let cfg = json(&fs::read(tmp.path().join("b2/config.json")).unwrap());
    assert_eq!(cfg["process"]["args"], serde_json::json!(["sh"]));

    let out = fixtures_bin(&["rootfs", &p("r")]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(snapshot(&tmp.path().join("r")), snapshot(&tmp.path().join("b/rootfs")));

    for bad in [
        &["image", &p("x.tar"), "--format", "zip"][..],
        &["nope"],
        &[],
        &["image"],
    ] {
        let out = fixtures_bin(bad);
        assert!(!out.status.success(), "{bad:?} must fail");
        assert!(!out.stderr.is_empty());
    }
    let out = fixtures_bin(&["busybox-path"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        busybox_path().unwrap().to_str().unwrap()
    );
}
