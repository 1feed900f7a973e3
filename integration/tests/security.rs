//! Confinement of containers made from images, end to end through the real
//! binary: the default seccomp profile, custom profiles, capabilities,
//! --privileged, no-new-privileges, groups; and a bundle's own seccomp.
//!
//! Syscalls are tried by `sysprobe` (tests/security/sysprobe.c, built static
//! with the host's cc and bind-mounted read-only into the containers): it
//! prints `ok` or the errno's name. Every container uses `--net none`;
//! nothing here writes outside the test's own directories.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use minirun_integration::{Env, Run};
use rootfs_fixtures::{build_image, ImageFormat};

/// docker's default capability set as /proc/PID/status shows it.
const DOCKER_CAPS: &str = "00000000a80425fb";

/// An env with busybox:latest loaded and sysprobe built in its directory.
fn setup() -> (Env, PathBuf) {
    let env = Env::new();
    let tar = env.path().join("busybox.tar");
    build_image(&tar, "busybox:latest", ImageFormat::DockerArchive).expect("cannot build the busybox image");
    env.run(["load", "-i", tar.to_str().unwrap()]).ok();
    let dir = env.path().join("probe");
    fs::create_dir_all(&dir).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/security/sysprobe.c");
    let out = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(dir.join("sysprobe"))
        .arg(&src)
        .output()
        .expect("cannot run cc (the security tests need cc and libc6-dev)");
    assert!(out.status.success(), "building sysprobe failed: {out:?}");
    (env, dir)
}

/// `run --rm --net none -v PROBE:/probe:ro FLAGS... busybox ARGS...`
fn run(env: &Env, probe: &Path, flags: &[&str], args: &[&str]) -> Run {
    let vol = format!("{}:/probe:ro", probe.display());
    let mut all = vec!["run", "--rm", "--net", "none", "-v", &vol];
    all.extend_from_slice(flags);
    all.push("busybox");
    all.extend_from_slice(args);
    env.run(all)
}

/// What sysprobe prints for `what` in a container run with `flags`.
fn probe(env: &Env, dir: &Path, flags: &[&str], what: &[&str]) -> String {
    let mut args = vec!["/probe/sysprobe"];
    args.extend_from_slice(what);
    let r = run(env, dir, flags, &args);
    assert!(r.code == 0 || r.code == 1, "sysprobe {what:?} with {flags:?}: {r:#?}");
    r.stdout.trim().to_string()
}

/// The value of a /proc/self/status field in a container run with `flags`.
fn status(env: &Env, dir: &Path, flags: &[&str], field: &str) -> String {
    let r = run(env, dir, flags, &["cat", "/proc/self/status"]).ok();
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {r:#?}"))
        .trim()
        .to_string()
}

#[test]
fn default_seccomp_profile_blocks_what_docker_blocks() {
    let (env, dir) = setup();
    assert_eq!(status(&env, &dir, &[], "Seccomp"), "2");
    assert_eq!(status(&env, &dir, &[], "CapEff"), DOCKER_CAPS);
    assert_eq!(status(&env, &dir, &[], "NoNewPrivs"), "0");
    let unconfined = ["--security-opt", "seccomp=unconfined"];
    assert_eq!(status(&env, &dir, &unconfined, "Seccomp"), "0");

    for what in ["add_key", "keyctl", "unshare_user"] {
        assert_eq!(
            probe(&env, &dir, &[], &[what]),
            "EPERM",
            "{what} under the default profile"
        );
        assert_eq!(probe(&env, &dir, &unconfined, &[what]), "ok", "{what} unconfined");
    }
    // clone without namespace flags works, with one it does not
    assert_eq!(probe(&env, &dir, &[], &["fork"]), "ok");
    assert_eq!(probe(&env, &dir, &[], &["clone_newns"]), "EPERM");
    // busybox's own unshare, as a user would try it
    let r = run(&env, &dir, &[], &["unshare", "-U", "true"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:#?}");
    run(&env, &dir, &unconfined, &["unshare", "-U", "true"]).ok();
    // CAP_SYS_ADMIN opens what needs it, as in docker
    assert_eq!(probe(&env, &dir, &["--cap-add", "SYS_ADMIN"], &["clone_newns"]), "ok");

    // exec'd processes run under the container's filter too (as runc)
    let vol = format!("{}:/probe:ro", dir.display());
    let r = env
        .run(["run", "-d", "--net", "none", "-v", &vol, "busybox", "sleep", "60"])
        .ok();
    let id = r.stdout.trim().to_string();
    let r = env.run(["exec", &id, "/probe/sysprobe", "add_key"]);
    assert_eq!(r.stdout.trim(), "EPERM", "{r:#?}");
    let r = env
        .run(["exec", &id, "grep", "-E", "^(Seccomp|CapEff):", "/proc/self/status"])
        .ok();
    assert_eq!(r.stdout, format!("CapEff:\t{DOCKER_CAPS}\nSeccomp:\t2\n"));
    env.run(["rm", "-f", &id]).ok();
}

#[test]
fn seccomp_profile_files() {
    let (env, dir) = setup();
    let profile = env.path().join("nomkdir.json");
    fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let r = run(&env, &dir, &["--security-opt", &opt], &["mkdir", "/x"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:#?}");
    // the default profile's blocks are gone with it
    assert_eq!(probe(&env, &dir, &["--security-opt", &opt], &["add_key"]), "ok");
    run(&env, &dir, &[], &["mkdir", "/x"]).ok();

    // a profile that does not parse: one line naming the file and the field, nothing left
    let bad = env.path().join("bad.json");
    fs::write(
        &bad,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_EROR"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", bad.display());
    let r = run(&env, &dir, &["--security-opt", &opt], &["true"]);
    assert_eq!(r.code, 125, "{r:#?}");
    r.fails_with(&format!(
        "invalid seccomp profile {}: syscalls[0].action",
        bad.display()
    ));
    let opt = format!("seccomp={}", env.path().join("missing.json").display());
    run(&env, &dir, &["--security-opt", &opt], &["true"]).fails_with("missing.json");
    run(&env, &dir, &["--security-opt", "seccomp"], &["true"]).fails_with("\"seccomp\"");
    env.assert_nothing_left();
}

#[test]
fn capabilities_added_and_dropped() {
    let (env, dir) = setup();
    // as root, CAP_CHOWN and CAP_MKNOD by default
    assert_eq!(probe(&env, &dir, &[], &["chown", "/etc/passwd"]), "ok");
    assert_eq!(probe(&env, &dir, &[], &["mknod", "/tmp/n"]), "ok");

    let drop_chown = ["--cap-drop", "chown"];
    assert_eq!(status(&env, &dir, &drop_chown, "CapEff"), "00000000a80425fa");
    assert_eq!(probe(&env, &dir, &drop_chown, &["chown", "/etc/passwd"]), "EPERM");
    assert_eq!(
        probe(&env, &dir, &["--cap-drop", "CAP_MKNOD"], &["mknod", "/tmp/n"]),
        "EPERM"
    );

    let only_mknod = ["--cap-drop", "ALL", "--cap-add", "mknod"];
    assert_eq!(status(&env, &dir, &only_mknod, "CapEff"), "0000000008000000");
    assert_eq!(probe(&env, &dir, &only_mknod, &["mknod", "/tmp/n"]), "ok");
    assert_eq!(probe(&env, &dir, &only_mknod, &["chown", "/etc/passwd"]), "EPERM");

    let net_admin = status(&env, &dir, &["--cap-add", "NET_ADMIN"], "CapEff");
    assert_eq!(net_admin, "00000000a80435fb", "CAP_NET_ADMIN is bit 12");

    // a user other than root keeps the bounding set, not the effective one
    assert_eq!(status(&env, &dir, &["-u", "1000"], "CapEff"), "0000000000000000");
    assert_eq!(status(&env, &dir, &["-u", "1000"], "CapBnd"), DOCKER_CAPS);

    for (flag, bad) in [("--cap-add", "CAP_FLY"), ("--cap-drop", "nope")] {
        let r = run(&env, &dir, &[flag, bad], &["true"]);
        assert_eq!(r.code, 125, "{r:#?}");
        r.fails_with(&format!("{flag}: unknown capability \"{bad}\""));
    }
    env.assert_nothing_left();
}

#[test]
fn privileged_and_security_opts() {
    let (env, dir) = setup();
    let own_bounding = fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:").map(|v| v.trim().to_string()))
        .unwrap();
    let p = ["--privileged"];
    assert_eq!(status(&env, &dir, &p, "CapEff"), own_bounding);
    assert_eq!(status(&env, &dir, &p, "Seccomp"), "0");
    let r = run(&env, &dir, &p, &["cat", "/proc/mounts"]).ok();
    assert!(
        r.stdout.lines().any(|l| l.starts_with("sysfs /sys sysfs rw,")),
        "{r:#?}"
    );
    assert!(!r.stdout.contains(" /proc/sys "), "no read-only /proc/sys: {r:#?}");
    assert!(!r.stdout.contains(" /proc/kcore "), "no masked path: {r:#?}");
    // the host's devices are there (only looked at)
    let r = run(&env, &dir, &p, &["ls", "/dev"]).ok();
    let host: Vec<String> = fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_type().is_ok_and(|t| {
                use std::os::unix::fs::FileTypeExt;
                t.is_char_device() || t.is_block_device()
            })
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "console")
        .collect();
    for d in &host {
        assert!(r.stdout.lines().any(|l| l == d), "/dev/{d} missing: {r:#?}");
    }

    let nnp = ["--security-opt", "no-new-privileges"];
    assert_eq!(status(&env, &dir, &nnp, "NoNewPrivs"), "1");
    assert_eq!(status(&env, &dir, &nnp, "Seccomp"), "2");
    let r = run(
        &env,
        &dir,
        &["-u", "1000:1000", "--group-add", "10", "--group-add", "nogroup"],
        &["id"],
    )
    .ok();
    assert_eq!(r.stdout, "uid=1000 gid=1000 groups=10,65534(nobody)\n");
    let r = run(&env, &dir, &["--group-add", "wheel"], &["true"]);
    assert_eq!(r.code, 125, "{r:#?}");
    r.fails_with("--group-add wheel");

    if !libcontainer_apparmor_enabled() {
        run(&env, &dir, &["--security-opt", "apparmor=docker-default"], &["true"])
            .fails_with("AppArmor is not enabled");
    }
    run(&env, &dir, &["--security-opt", "bogus=1"], &["true"]).fails_with("\"bogus=1\"");
    env.assert_nothing_left();
}

fn libcontainer_apparmor_enabled() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.starts_with('Y'))
}

#[test]
fn a_bundles_own_seccomp_is_applied_as_written() {
    let env = Env::new();
    // no linux.seccomp: none at all, as runc
    let plain = env.bundle("plain", &["grep", "^Seccomp:", "/proc/self/status"], |_| {});
    let r = env
        .run(["run", "--bundle", plain.to_str().unwrap(), "sec-bundle-plain-1"])
        .ok();
    assert_eq!(r.stdout, "Seccomp:\t0\n");
    // its own: mkdir blocked, nothing else
    let own = env.bundle("own", &["mkdir", "/tmp/x"], |c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        });
    });
    let r = env.run(["run", "--bundle", own.to_str().unwrap(), "sec-bundle-own-1"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:#?}");
}

/// Unmounts a test's own mount when the test ends, passed or not.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn read_only_volumes_are_read_only_all_the_way_down() {
    let (env, dir) = setup();
    // a scratch tree with a tmpfs mounted inside it
    let tree = env.path().join("tree");
    let sub = tree.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success(), "cannot mount a tmpfs on {}", sub.display());
    let _unmount = Unmount(sub.clone());
    let ro = format!("{}:/data:ro", tree.display());
    let r = run(&env, &dir, &["-v", &ro], &["touch", "/data/sub/x"]);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stderr.contains("Read-only file system"), "{r:#?}");
    let r = run(&env, &dir, &["-v", &ro], &["touch", "/data/y"]);
    assert!(r.stderr.contains("Read-only file system"), "{r:#?}");
    assert!(!sub.join("x").exists() && !tree.join("y").exists());
    // :rw (and no mode) stay writable below too
    let rw = format!("{}:/data:rw", tree.display());
    run(&env, &dir, &["-v", &rw], &["touch", "/data/sub/x"]).ok();
    assert!(sub.join("x").exists());

    // the host's root read-only: every mount below it is (only looked at)
    let r = run(&env, &dir, &["-v", "/:/host:ro"], &["cat", "/proc/mounts"]).ok();
    for m in ["/host/proc", "/host/sys", "/host/dev"] {
        let line = r.stdout.lines().find(|l| l.split(' ').nth(1) == Some(m));
        if let Some(line) = line {
            let opts = line.split(' ').nth(3).unwrap();
            assert!(opts.split(',').any(|o| o == "ro"), "{m} not read-only: {line}");
        }
    }
}

#[test]
fn symlinks_in_the_image_resolve_inside_it() {
    use rootfs_fixtures::{build_image_with_layers, LayerEntry};
    let env = Env::new();
    let dir = |path: &str| LayerEntry::Dir {
        path: path.into(),
        mode: 0o755,
    };
    let link = |path: &str, target: &str| LayerEntry::Symlink {
        path: path.into(),
        target: target.into(),
    };
    let layer = vec![
        dir("srv"),
        dir("srv/data"),
        dir("opt"),
        // a volume's destination: absolute and relative links, one to a missing dir
        link("data", "/srv/data"),
        link("cache", "srv/cache"),
        // /etc/hosts elsewhere (an absolute target means the image's /run, never the host's)
        dir("run"),
        link("etc/hosts", "/run/hosts"),
        // the working directory below a link, the last part missing
        link("work", "/opt"),
    ];
    let tar = env.path().join("links.tar");
    build_image_with_layers(&tar, "links:latest", ImageFormat::DockerArchive, &[layer]).unwrap();
    env.run(["load", "-i", tar.to_str().unwrap()]).ok();
    let vol = env.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("f"), "from the host\n").unwrap();
    let v1 = format!("{}:/data:ro", vol.display());
    let v2 = format!("{}:/cache", vol.display());
    let r = env.run([
        "run",
        "--rm",
        "--net",
        "none",
        "--hostname",
        "linked",
        "-v",
        &v1,
        "-v",
        &v2,
        "-w",
        "/work/app",
        "links",
        "sh",
        "-c",
        "cat /srv/data/f /srv/cache/f; pwd; grep -c linked /run/hosts",
    ]);
    assert_eq!(r.stdout, "from the host\nfrom the host\n/opt/app\n1\n", "{r:#?}");
    // nothing was made on the host through the links
    assert!(!Path::new("/run/hosts").exists() || fs::read_to_string("/run/hosts").is_ok_and(|t| !t.contains("linked")));
    assert!(!Path::new("/srv/cache").exists() || fs::read_dir("/srv/cache").is_ok());
}

/// `mknod` a character device in `dir` (a node of the host's, made where
/// the container can see it without --device).
fn mknod_char(path: &Path, major: u32, minor: u32) {
    let st = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "mknod {}", path.display());
}

#[test]
fn devices_only_with_device_flags() {
    let (env, dir) = setup();
    if !Path::new("/dev/loop-control").exists() {
        eprintln!("skipped: no /dev/loop-control on this host");
        return;
    }
    // the same device (10:237) as a node in a bind-mounted directory
    let nodes = env.path().join("nodes");
    fs::create_dir_all(&nodes).unwrap();
    mknod_char(&nodes.join("lc"), 10, 237);
    let v = format!("{}:/nodes", nodes.display());
    let open = |flags: &[&str], path: &str, mode: &str| {
        let mut all = vec!["-v", &v];
        all.extend_from_slice(flags);
        probe(&env, &dir, &all, &["open", path, mode])
    };
    // without --device: not in /dev, and the device cgroup refuses the node elsewhere
    assert_eq!(open(&[], "/dev/loop-control", "r"), "ENOENT");
    assert_eq!(open(&[], "/nodes/lc", "r"), "EPERM");
    // --device: there, readable and writable
    assert_eq!(
        open(&["--device", "/dev/loop-control"], "/dev/loop-control", "rw"),
        "ok"
    );
    assert_eq!(open(&["--device", "/dev/loop-control"], "/nodes/lc", "rw"), "ok");
    // at another path, read-only in the cgroup
    let ro = ["--device", "/dev/loop-control:/dev/lc:r"];
    assert_eq!(open(&ro, "/dev/lc", "r"), "ok");
    assert_eq!(open(&ro, "/dev/lc", "w"), "EPERM");
    assert_eq!(open(&ro, "/dev/loop-control", "r"), "ENOENT");
    // a device cgroup rule alone: the node, no /dev entry
    let rule = ["--device-cgroup-rule", "c 10:237 rwm"];
    assert_eq!(open(&rule, "/nodes/lc", "rw"), "ok");
    assert_eq!(open(&["--device-cgroup-rule", "c 10:* r"], "/nodes/lc", "w"), "EPERM");

    // errors name the bad value and leave nothing behind
    for (flags, says) in [
        (
            vec!["--device", "/dev/nonexistent-minirun"],
            "\"/dev/nonexistent-minirun\"",
        ),
        (vec!["--device", "/dev/null:/dev/n:rx"], "invalid device mode: rx"),
        (vec!["--device", "/etc/hostname"], "not a device node"),
        (vec!["--device-cgroup-rule", "c 1:3 rwx"], "'c 1:3 rwx'"),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(flags.iter().copied());
        all.extend(["busybox", "true"]);
        let r = env.run(all);
        assert_eq!(r.code, 125, "{flags:?}: {r:#?}");
        assert!(r.stderr.contains(says), "{flags:?}: {r:#?}");
        env.assert_nothing_left();
    }
}

#[test]
fn namespaced_sysctls_only() {
    let (env, dir) = setup();
    let r = run(
        &env,
        &dir,
        &[
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--sysctl",
            "kernel.shmmax=123456789",
            "--sysctl",
            "fs.mqueue.msg_max=17",
        ],
        &[
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
            "/proc/sys/kernel/shmmax",
            "/proc/sys/fs/mqueue/msg_max",
        ],
    )
    .ok();
    assert_eq!(r.stdout, "1\n123456789\n17\n");
    // the host's stay as they were
    assert_ne!(fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(), "123456789\n");

    for (flags, says) in [
        (
            vec!["--sysctl", "kernel.panic=1"],
            "sysctl \"kernel.panic\" is not allowed",
        ),
        (vec!["--sysctl", "vm.swappiness=1"], "\"vm.swappiness\""),
        (
            vec!["--net", "host", "--sysctl", "net.ipv4.ip_forward=1"],
            "\"net.ipv4.ip_forward\"",
        ),
        (
            vec!["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
            "\"kernel.shmmax\"",
        ),
        (vec!["--sysctl", "net.ipv4.ip_forward"], "\"net.ipv4.ip_forward\""),
        // namespaced but unknown to the kernel: refused at create, undone
        (vec!["--sysctl", "net.ipv4.no_such_knob=1"], "no_such_knob"),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(flags.iter().copied());
        all.extend(["busybox", "true"]);
        let r = env.run(all);
        assert_ne!(r.code, 0, "{flags:?}: {r:#?}");
        assert!(r.stderr.contains(says), "{flags:?}: {r:#?}");
        env.assert_nothing_left();
    }
}

/// The namespace `kind` of process `pid` ("self": this test).
fn ns_of(pid: &str, kind: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn ipc_pid_and_uts_modes() {
    let (env, dir) = setup();
    let ns = |flags: &[&str], kind: &str| -> String {
        let path = format!("/proc/self/ns/{kind}");
        run(&env, &dir, flags, &["readlink", &path])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    for kind in ["ipc", "pid", "uts"] {
        assert_ne!(ns(&[], kind), ns_of("self", kind), "{kind}: its own by default");
        let flag = format!("--{kind}");
        assert_eq!(ns(&[&flag, "host"], kind), ns_of("self", kind), "--{kind} host");
    }
    // --uts host: the host's name, which it cannot be given
    let host_name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let r = run(&env, &dir, &["--uts", "host"], &["hostname"]).ok();
    assert_eq!(r.stdout, host_name);
    let r = env.run(["run", "--rm", "--uts", "host", "--hostname", "x", "busybox", "true"]);
    assert!(r.code == 125 && r.stderr.contains("conflicting options"), "{r:#?}");
    // --ipc none: no /dev/shm; --shm-size: its size; the default 64m
    let shm = |flags: &[&str]| run(&env, &dir, flags, &["grep", "-c", " /dev/shm ", "/proc/mounts"]);
    assert_eq!(shm(&["--ipc", "none"]).stdout.trim(), "0");
    let r = run(&env, &dir, &["--shm-size", "1m"], &["df", "-k", "/dev/shm"]).ok();
    assert!(
        r.stdout.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("1024"),
        "{r:#?}"
    );
    let r = run(&env, &dir, &[], &["df", "-k", "/dev/shm"]).ok();
    assert!(
        r.stdout.lines().nth(1).unwrap().split_whitespace().nth(1) == Some("65536"),
        "{r:#?}"
    );

    // container:X joins a shareable donor's IPC namespace and /dev/shm, and its PID namespace
    let vol = format!("{}:/probe:ro", dir.display());
    let donor = ["run", "-d", "--net", "none", "-v", &vol, "--name"];
    let r = env.run(
        [
            &donor[..],
            &[
                "donor",
                "--ipc",
                "shareable",
                "busybox",
                "sh",
                "-c",
                "echo hi > /dev/shm/f; sleep 60",
            ],
        ]
        .concat(),
    );
    let donor_id = r.ok().stdout.trim().to_string();
    let inspect: serde_json::Value = serde_json::from_str(&env.run(["inspect", "donor"]).ok().stdout).unwrap();
    let donor_pid = inspect[0]["State"]["Pid"].to_string();
    assert_eq!(
        ns(&["--ipc", "container:donor"], "ipc"),
        ns_of(&donor_pid, "ipc"),
        "--ipc container:donor"
    );
    let mut f = 0;
    while !Path::new(&format!("/proc/{donor_pid}/root/dev/shm/f")).exists() && f < 50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        f += 1;
    }
    let r = run(&env, &dir, &["--ipc", "container:donor"], &["cat", "/dev/shm/f"]).ok();
    assert_eq!(r.stdout, "hi\n");
    assert_eq!(
        ns(&["--pid", &format!("container:{donor_id}")], "pid"),
        ns_of(&donor_pid, "pid")
    );
    let r = run(&env, &dir, &["--pid", "container:donor"], &["ps", "-o", "args"]).ok();
    assert!(r.stdout.contains("sleep 60"), "{r:#?}");
    // a donor that is not shareable, or gone, is refused by name
    env.run([
        "run", "-d", "--net", "none", "--name", "private", "busybox", "sleep", "60",
    ])
    .ok();
    let r = env.run(["run", "--rm", "--ipc", "container:private", "busybox", "true"]);
    assert!(
        r.code == 125 && r.stderr.contains("\"private\"") && r.stderr.contains("shareable"),
        "{r:#?}"
    );
    env.run(["rm", "-f", "donor", "private"]).ok();
    for flag in ["--ipc", "--pid"] {
        let r = env.run(["run", "--rm", flag, "container:donor", "busybox", "true"]);
        assert!(r.code == 125 && r.stderr.contains("\"donor\""), "{flag}: {r:#?}");
    }
    env.assert_nothing_left();
}
