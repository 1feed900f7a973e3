use std::fs;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{
    LinuxBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, RootBuilder, Spec, SpecBuilder,
};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::*;

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// Unmounts (lazily, deepest first) every mount at or below its directory
/// when dropped, and removes it: the test's scratch, never empty.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Scratch(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> PathBuf {
        fs::canonicalize(self.0.path()).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = self.path();
        assert!(
            dir.components().count() > 2,
            "refusing to unmount below {}",
            dir.display()
        );
        for m in mounts_in("/proc/self/mountinfo", &dir).into_iter().rev() {
            let _ = umount2(&m, MntFlags::MNT_DETACH);
        }
    }
}

/// Mount points at or below `dir` in a mountinfo file, in mount order.
fn mounts_in(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    fs::read_to_string(mountinfo)
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|m| m.starts_with(dir))
        .collect()
}

fn tmpfs(at: &Path) {
    fs::create_dir_all(at).unwrap();
    mount(Some("tmpfs"), at, Some("tmpfs"), MsFlags::empty(), Some("size=64k")).unwrap();
}

fn spec_with_root(root: &Path) -> Spec {
    SpecBuilder::default()
        .root(RootBuilder::default().path(root).build().unwrap())
        .mounts(vec![])
        .build()
        .unwrap()
}

/// Two containers' roots under a private mount point `dir`.
fn two_containers(s: &Scratch) -> (PathBuf, PathBuf, PathBuf) {
    let dir = s.path().join("containers");
    assert!(ensure_private_mount_root(&dir).unwrap());
    let (a, b) = (dir.join("a/rootfs"), dir.join("b/rootfs"));
    tmpfs(&a);
    tmpfs(&b);
    fs::write(dir.join("b/hosts"), "x").unwrap();
    (dir, a, b)
}

#[test]
fn a_directory_becomes_one_private_mount_point_once() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let dir = s.path().join("c");
    assert!(ensure_private_mount_root(&dir).unwrap());
    assert!(ensure_private_mount_root(&dir).unwrap());
    assert_eq!(mounts_in("/proc/self/mountinfo", &dir), vec![dir.clone()], "bound once");
    let line = fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap()))
        .unwrap()
        .to_string();
    let optional = line.split(" - ").next().unwrap();
    assert!(!optional.contains("shared:") && !optional.contains("master:"), "{line}");

    // mounts made before: a bind would hide them, so it is left alone
    let old = s.path().join("old");
    tmpfs(&old.join("x/rootfs"));
    assert!(!ensure_private_mount_root(&old).unwrap());
    assert_eq!(mounts_in("/proc/self/mountinfo", &old), vec![old.join("x/rootfs")]);
}

#[test]
fn the_launch_sees_its_own_mounts_only_and_the_host_keeps_all() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    // the containers' directory below a shared mount, as / is on systemd
    // hosts: an unmount in a peer of it would reach the host's
    let shared = s.path();
    mount(Some(&shared), &shared, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    mount(None::<&str>, &shared, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
    let (dir, a, b) = two_containers(&s);
    let ns = s.path().join("netns");
    assert!(ensure_private_mount_root(&ns).unwrap());
    let nsfile = ns.join("a");
    fs::write(&nsfile, "").unwrap();
    mount(
        Some("/proc/self/ns/net"),
        &nsfile,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let other = ns.join("b");
    fs::write(&other, "").unwrap();
    mount(
        Some("/proc/self/ns/net"),
        &other,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let before = mounts_in("/proc/self/mountinfo", &s.path());

    let mut spec = spec_with_root(Path::new("a/rootfs"));
    spec.set_mounts(Some(vec![MountBuilder::default()
        .destination("/etc/hosts")
        .typ("bind")
        .source(dir.join("b/hosts"))
        .options(vec!["rbind".to_string()])
        .build()
        .unwrap()]));
    let netns = LinuxNamespaceBuilder::default()
        .typ(LinuxNamespaceType::Network)
        .path(&nsfile)
        .build()
        .unwrap();
    spec.set_linux(Some(LinuxBuilder::default().namespaces(vec![netns]).build().unwrap()));
    let (seen, hosts) = trimmed(&[dir.clone(), ns.clone()], &spec, &dir, || {
        (
            mounts_in("/proc/thread-self/mountinfo", &s.path()),
            fs::read_to_string(dir.join("b/hosts")).unwrap(),
        )
    });
    assert!(seen.contains(&a), "its root is there: {seen:?}");
    assert!(
        seen.contains(&dir) && seen.contains(&ns) && seen.contains(&nsfile),
        "{seen:?}"
    );
    assert!(
        !seen.contains(&b) && !seen.contains(&other),
        "another container's mounts are not: {seen:?}"
    );
    assert_eq!(hosts, "x", "files of the directory itself stay visible");
    assert_eq!(
        mounts_in("/proc/self/mountinfo", &s.path()),
        before,
        "the host's mounts are unchanged"
    );
}

#[test]
fn a_path_inside_another_mount_leaves_the_launch_untrimmed() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let s = Scratch::new();
    let (dir, a, b) = two_containers(&s);
    fs::create_dir_all(b.join("data")).unwrap();
    let mut spec = spec_with_root(&a);
    spec.set_mounts(Some(vec![MountBuilder::default()
        .destination("/data")
        .typ("bind")
        .source(b.join("data"))
        .build()
        .unwrap()]));
    let seen = trimmed(std::slice::from_ref(&dir), &spec, &dir, || {
        mounts_in("/proc/thread-self/mountinfo", &s.path())
    });
    assert!(seen.contains(&b), "b's root is needed: {seen:?}");
    // so is a shared propagation, which only the host's namespace passes on
    let mut spec = spec_with_root(&a);
    spec.set_mounts(Some(vec![MountBuilder::default()
        .destination("/x")
        .typ("bind")
        .source(s.path())
        .options(vec!["rbind".to_string(), "rshared".to_string()])
        .build()
        .unwrap()]));
    let seen = trimmed(std::slice::from_ref(&dir), &spec, &dir, || {
        mounts_in("/proc/thread-self/mountinfo", &s.path())
    });
    assert!(seen.contains(&b), "{seen:?}");
}
