//! A container's own mounts, end to end through the real binary: `--tmpfs`,
//! `--mount type=bind|tmpfs`, `-v` options (rw, z/Z, propagation), with and
//! without `--read-only`; errors that name the bad value and leave nothing.
//! Every container uses `--net none`; host mounts made here are undone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use minirun_integration::{Env, Run};

/// `run --rm --net none FLAGS... busybox sh -c SCRIPT`
fn sh(env: &Env, flags: &[&str], script: &str) -> Run {
    let mut all = vec!["run", "--rm", "--net", "none"];
    all.extend_from_slice(flags);
    all.extend(["busybox", "sh", "-c", script]);
    env.run(all)
}

/// The options of the mount at `dest` in a container run with `flags`.
fn mount_options(env: &Env, flags: &[&str], dest: &str) -> Vec<String> {
    let r = sh(env, flags, "cat /proc/self/mounts").ok();
    let line = r
        .stdout
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}: {r:#?}"));
    line.split(' ').nth(3).unwrap().split(',').map(String::from).collect()
}

/// Unmounts a test's own mount when the test ends, passed or not.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn tmpfs_with_docker_defaults_and_options() {
    let env = Env::with_busybox();
    let opts = mount_options(&env, &["--tmpfs", "/scratch"], "/scratch");
    for o in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&o.to_string()), "{o} missing: {opts:?}");
    }
    let opts = mount_options(&env, &["--tmpfs", "/scratch:size=1m,mode=700,exec"], "/scratch");
    assert!(
        opts.contains(&"size=1024k".into()) && opts.contains(&"mode=700".into()),
        "{opts:?}"
    );
    assert!(!opts.contains(&"noexec".into()), "{opts:?}");
    // noexec by default, exec when asked
    let exec = "cp /bin/busybox /scratch/true && /scratch/true && echo ran";
    let r = sh(&env, &["--tmpfs", "/scratch"], exec);
    assert!(r.code != 0 && r.stderr.contains("Permission denied"), "{r:#?}");
    assert_eq!(sh(&env, &["--tmpfs", "/scratch:exec"], exec).ok().stdout, "ran\n");
    // --mount type=tmpfs: size in bytes, mode in octal
    let m = ["--mount", "type=tmpfs,destination=/t,tmpfs-size=2m,tmpfs-mode=1770"];
    let opts = mount_options(&env, &m, "/t");
    assert!(
        opts.contains(&"size=2048k".into()) && opts.contains(&"mode=1770".into()),
        "{opts:?}"
    );
    // a tmpfs over a default mount replaces it, as docker
    let opts = mount_options(&env, &["--tmpfs", "/dev/shm:size=3m"], "/dev/shm");
    assert!(opts.contains(&"size=3072k".into()), "{opts:?}");
}

#[test]
fn read_only_root_with_writable_tmpfs_and_volumes() {
    let env = Env::with_busybox();
    let vol = env.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let rw = format!("{}:/rw:rw,z", vol.display());
    let ro = format!("type=bind,src={},dst=/ro,readonly", vol.display());
    let flags = [
        "--read-only",
        "--tmpfs",
        "/run",
        "--mount",
        "type=tmpfs,target=/cache",
        "-v",
        &rw,
        "--mount",
        &ro,
    ];
    let r = sh(
        &env,
        &flags,
        "touch /run/a /cache/b /rw/c /dev/shm/d && echo writable; touch /etc/x || echo root read-only; \
         touch /ro/y || echo bind read-only",
    )
    .ok();
    assert_eq!(r.stdout, "writable\nroot read-only\nbind read-only\n", "{r:#?}");
    assert!(vol.join("c").exists() && !vol.join("y").exists());
}

#[test]
fn volume_propagation() {
    let env = Env::with_busybox();
    // a shared host directory, and a mount made in it once the containers run
    let src = env.path().join("shared");
    fs::create_dir_all(&src).unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&src)
        .arg(&src)
        .status()
        .unwrap();
    assert!(st.success());
    let _u = Unmount(src.clone());
    assert!(Command::new("mount")
        .arg("--make-shared")
        .arg(&src)
        .status()
        .unwrap()
        .success());
    let start = |mode: &str| {
        let v = format!("{}:/data{mode}", src.display());
        env.run(["run", "-d", "--net", "none", "-v", &v, "busybox", "sleep", "60"])
            .ok()
            .stdout
            .trim()
            .to_string()
    };
    let slave = start(":rslave");
    let private = start("");
    let sub = src.join("sub");
    fs::create_dir_all(&sub).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sub)
        .status()
        .unwrap();
    assert!(st.success());
    let _u2 = Unmount(sub.clone());
    let sees = |id: &str| {
        let r = env.run(["exec", id, "grep", "-c", " /data/sub ", "/proc/self/mounts"]);
        r.stdout.trim().to_string()
    };
    assert_eq!(sees(&slave), "1", "rslave receives the host's new mount");
    assert_eq!(sees(&private), "0", "rprivate (the default) does not");
    env.run(["rm", "-f", &slave, &private]).ok();
}

#[test]
fn bad_mounts_name_the_value_and_leave_nothing() {
    let env = Env::with_busybox();
    let vol = env.path().join("v");
    fs::create_dir_all(&vol).unwrap();
    let v = vol.display().to_string();
    for (flags, says) in [
        (
            vec![
                "--mount".to_string(),
                format!("type=bind,source={v},target=/x,colour=red"),
            ],
            "unexpected key 'colour'",
        ),
        (
            vec![
                "--mount".into(),
                "type=bind,source=/nonexistent/minirun,target=/x".into(),
            ],
            "/nonexistent/minirun",
        ),
        (
            vec!["--mount".into(), "type=volume,target=/x".into()],
            "anonymous volumes are not supported yet",
        ),
        (
            vec![
                "--mount".into(),
                format!("type=bind,source={v},target=/x,bind-propagation=sideways"),
            ],
            "sideways",
        ),
        (vec!["--tmpfs".into(), "/x:size=1m,bogus".into()], "\"bogus\""),
        (vec!["-v".into(), format!("{v}:/x:ro,shared,slave")], "conflicting"),
        (vec!["-v".into(), format!("{v}:/x:rx")], "\"rx\""),
        (vec!["--shm-size".into(), "lots".into()], "\"lots\""),
        (
            vec!["--tmpfs".into(), "/x".into(), "-v".into(), format!("{v}:/x")],
            "Duplicate mount point: /x",
        ),
    ] {
        let mut all: Vec<String> = vec!["run".into(), "--rm".into(), "--net".into(), "none".into()];
        all.extend(flags.iter().cloned());
        all.extend(["busybox".into(), "true".into()]);
        let r = env.run(&all);
        assert_eq!(r.code, 125, "{flags:?}: {r:#?}");
        assert!(r.stderr.contains(says), "{flags:?}: {r:#?}");
        env.assert_nothing_left();
    }
    assert!(
        !Path::new("/nonexistent/minirun").exists(),
        "--mount never creates a bind source"
    );
}

/// `--volumes-from`: another container's named and bind volumes at the same
/// places (`:ro` makes them read-only); `volume prune` (and `system prune
/// --volumes`) removes only what no container, running or stopped, uses.
#[test]
fn volumes_from_and_volume_prune() {
    let env = Env::with_busybox();
    let host = env.path().join("bind-src");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("f"), "from-host\n").unwrap();
    let bind = format!("{}:/b", host.display());
    let src = env
        .run([
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            "src",
            "-v",
            "shared:/v",
            "-v",
            &bind,
            "busybox",
            "sh",
            "-c",
            "echo from-src > /v/f",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.run(["wait", &src]).ok();
    env.run(["volume", "create", "unused"]).ok();
    let r = sh(
        &env,
        &["--volumes-from", "src"],
        "cat /v/f /b/f; echo again > /v/g && echo rw",
    )
    .ok();
    assert_eq!(r.stdout, "from-src\nfrom-host\nrw\n");
    let r = sh(
        &env,
        &["--volumes-from", "src:ro"],
        "cat /v/g; touch /v/h 2>/dev/null || echo ro",
    )
    .ok();
    assert_eq!(r.stdout, "again\nro\n");
    env.run([
        "run",
        "--rm",
        "--net",
        "none",
        "--volumes-from",
        "nosuch",
        "busybox",
        "true",
    ])
    .fails_with("nosuch");
    env.run([
        "run",
        "--rm",
        "--net",
        "none",
        "--volumes-from",
        "src:rx",
        "busybox",
        "true",
    ])
    .fails_with("src:rx");

    // the stopped src still uses "shared": only "unused" goes
    let r = env.run(["volume", "prune", "-f"]).ok();
    assert!(
        r.stdout
            .starts_with("Deleted Volumes:\nunused\n\nTotal reclaimed space:"),
        "{r:#?}"
    );
    assert_eq!(env.run(["volume", "ls", "-q"]).ok().stdout, "shared\n");
    // without -f it asks; "n" keeps everything
    env.run(["rm", &src]).ok();
    let r = env.run_with_stdin(&["volume", "prune"], b"n\n").ok();
    assert!(r.stdout.contains("Are you sure you want to continue? [y/N]"), "{r:#?}");
    assert_eq!(env.run(["volume", "ls", "-q"]).ok().stdout, "shared\n");
    let r = env.run_with_stdin(&["volume", "prune"], b"y\n").ok();
    assert!(r.stdout.contains("Deleted Volumes:\nshared\n"), "{r:#?}");
    assert_eq!(env.run(["volume", "ls", "-q"]).ok().stdout, "");

    // system prune takes volumes only with --volumes, as docker
    env.run(["volume", "create", "spare"]).ok();
    env.run(["system", "prune", "-f"]).ok();
    assert_eq!(env.run(["volume", "ls", "-q"]).ok().stdout, "spare\n");
    let r = env.run(["system", "prune", "-f", "--volumes"]).ok();
    assert!(r.stdout.contains("Deleted Volumes:\nspare\n"), "{r:#?}");
    assert_eq!(env.run(["volume", "ls", "-q"]).ok().stdout, "");
}

#[test]
fn named_volumes() {
    let env = Env::with_busybox();
    assert_eq!(env.run(["volume", "create", "made"]).ok().stdout, "made\n");
    let r = env.run(["volume", "inspect", "made"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Driver"], "local");
    let data = PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    assert!(data.starts_with(&env.data_root) && data.is_dir());

    // first mount: made if missing, filled from the image; then its own content
    let r = sh(
        &env,
        &["-v", "conf:/etc"],
        "test -f /etc/passwd && echo copied; echo mine > /etc/mine",
    )
    .ok();
    assert_eq!(r.stdout, "copied\n");
    let r = sh(
        &env,
        &["--mount", "type=volume,source=conf,target=/data,readonly"],
        "cat /data/mine; touch /data/x || echo ro",
    )
    .ok();
    assert_eq!(r.stdout, "mine\nro\n");
    // nocopy: left empty
    let r = sh(&env, &["-v", "empty:/etc:nocopy"], "ls /etc | grep -c passwd").ok_or_empty();
    assert_eq!(r, "0");
    let r = env.run(["volume", "ls", "-q"]).ok();
    assert_eq!(r.stdout, "conf\nempty\nmade\n");

    // in use by a container (even stopped) it stays
    let id = env
        .run(["run", "-d", "--net", "none", "-v", "made:/m", "busybox", "true"])
        .ok()
        .stdout
        .trim()
        .to_string();
    env.run(["wait", &id]).ok();
    let r = env.run(["volume", "rm", "made"]);
    assert!(
        r.code != 0 && r.stderr.contains("volume is in use") && r.stderr.contains(&id),
        "{r:#?}"
    );
    env.run(["rm", &id]).ok();
    env.run(["volume", "rm", "made", "conf", "empty"]).ok();
    assert!(!data.exists());
    let r = env.run(["volume", "rm", "made"]);
    assert!(r.code != 0 && r.stderr.contains("no such volume: made"), "{r:#?}");
    env.run(["volume", "rm", "-f", "made"]).ok();

    for bad in ["-v", "--mount"] {
        let spec = if bad == "-v" {
            "b@d:/x".to_string()
        } else {
            "type=volume,src=b@d,dst=/x".to_string()
        };
        let r = env.run(["run", "--rm", "--net", "none", bad, &spec, "busybox", "true"]);
        assert!(r.code == 125 && r.stderr.contains("\"b@d\""), "{r:#?}");
    }
    env.assert_nothing_left();
}

trait OkOrEmpty {
    fn ok_or_empty(self) -> String;
}

impl OkOrEmpty for Run {
    /// stdout trimmed, whatever the exit code (`grep -c` exits 1 on 0 matches)
    fn ok_or_empty(self) -> String {
        self.stdout.trim().to_string()
    }
}
