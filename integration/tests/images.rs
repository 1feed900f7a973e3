//! Images the docker way, end to end through the real binary: load (our
//! fixtures and layouts written by skopeo and umoci), whiteouts, escape
//! attempts, bad archives, and the container verbs run/ps/logs/exec/stop/
//! rm/inspect with the `run` flags, `--rm`, parallel runs and a killed monitor.
//!
//! Every container here uses `--net none`: networking has its own suite,
//! and these tests must never touch the machine's real network.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use minirun_integration::{tool, wait_until, Env, Run};
use minirun_net::paths::{attachments_dir, netns_dir, netns_path, record_path, STATE_DIR};
use rootfs_fixtures::{build_image, build_image_with_layers, ImageFormat, LayerEntry, DEFAULT_PATH, INDEX_HTML};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);

/// docker's default capability set (14 caps) as /proc/PID/status shows it.
const DOCKER_CAPS: &str = "00000000a80425fb";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

/// The busybox fixture in `format`, written under the env's scratch dir.
fn fixture(env: &Env, reference: &str, format: ImageFormat) -> PathBuf {
    let name = format!("{}-{format:?}", reference.replace([':', '/'], "_"));
    let out = env.path().join("fixtures").join(name);
    build_image(&out, reference, format).expect("cannot build the busybox image fixture");
    out
}

/// `minirun load -i PATH`.
fn load(env: &Env, path: &Path) -> Run {
    env.run(["load", "-i", path.to_str().unwrap()])
}

/// `run --net none ARGS...` (the --net goes right after `run`).
fn run(env: &Env, args: &[&str]) -> Run {
    let mut all = vec!["run", "--net", "none"];
    all.extend_from_slice(args);
    env.run(all)
}

/// `run --rm --net none ARGS...`, asserting success; returns stdout.
fn run_rm(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["--rm"];
    all.extend_from_slice(args);
    run(env, &all).ok().stdout
}

/// `run -d --net none ARGS...`, asserting it prints a 64-hex id.
fn run_d(env: &Env, args: &[&str]) -> String {
    let mut all = vec!["-d"];
    all.extend_from_slice(args);
    let r = run(env, &all).ok();
    let id = r.stdout.trim().to_string();
    assert!(is_hex64(&id), "run -d did not print a 64-hex id: {r:#?}");
    assert_eq!(r.stdout, format!("{id}\n"), "run -d printed more than the id: {r:#?}");
    id
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// `images` output as rows of (REPOSITORY, TAG, IMAGE ID, SIZE), header checked
/// (docker's columns, at least three spaces apart: CREATED is words).
fn images(env: &Env) -> Vec<(String, String, String, String)> {
    let r = env.run(["images"]).ok();
    let cells = |l: &str| -> Vec<String> {
        l.split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut lines = r.stdout.lines();
    let header = cells(lines.next().expect("images prints a header"));
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], "{r:#?}");
    lines
        .map(|l| {
            let f = cells(l);
            assert_eq!(f.len(), 5, "bad images row {l:?}");
            (f[0].clone(), f[1].clone(), f[2].clone(), f[4].clone())
        })
        .collect()
}

/// Everything the image store holds: unpacked layers, blobs, staging
/// leftovers, and the index itself.
fn store_snapshot(env: &Env) -> (BTreeSet<String>, Vec<u8>) {
    let images = env.data_root.join("images");
    let mut names = BTreeSet::new();
    for sub in ["layers", "blobs/sha256", "tmp"] {
        if let Ok(rd) = fs::read_dir(images.join(sub)) {
            for e in rd.flatten() {
                names.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    let index = fs::read(images.join("index.json")).unwrap_or_default();
    (names, index)
}

fn layer_dirs(env: &Env) -> Vec<String> {
    match fs::read_dir(env.data_root.join("images/layers")) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn dir_entries(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Nothing of container `id` is left: no dir, no name, no libcontainer
/// state, no network record or netns file, no mount.
#[track_caller]
fn assert_gone(env: &Env, id: &str) {
    assert!(
        !env.data_root.join("containers").join(id).exists(),
        "container dir of {id} left"
    );
    for name in dir_entries(&env.data_root.join("names")) {
        let owner = fs::read_to_string(env.data_root.join("names").join(&name)).unwrap_or_default();
        assert_ne!(owner.trim(), id, "name {name} of {id} left");
    }
    assert!(!env.root.join(id).exists(), "libcontainer state of {id} left");
    assert!(!netns_path(&env.root, id).exists(), "netns file of {id} left");
    assert!(!record_path(&env.root, id).exists(), "network record of {id} left");
    let mounts: Vec<String> = env.container_mounts().into_iter().filter(|m| m.contains(id)).collect();
    assert!(mounts.is_empty(), "mounts of {id} left: {mounts:?}");
}

/// No container at all: no dirs, no names, no state, no mounts under the env.
#[track_caller]
fn assert_no_containers(env: &Env) {
    assert_eq!(
        dir_entries(&env.data_root.join("containers")),
        Vec::<String>::new(),
        "container dirs left"
    );
    assert_eq!(
        dir_entries(&env.root.join(".container-locks")),
        Vec::<String>::new(),
        "container lock files left"
    );
    assert_eq!(
        dir_entries(&env.data_root.join("names")),
        Vec::<String>::new(),
        "names left"
    );
    let state: Vec<String> = env.state_entries().into_iter().filter(|e| e != STATE_DIR).collect();
    assert_eq!(state, Vec::<String>::new(), "libcontainer state left");
    assert_eq!(
        dir_entries(&netns_dir(&env.root)),
        Vec::<String>::new(),
        "netns files left"
    );
    assert_eq!(
        dir_entries(&attachments_dir(&env.root)),
        Vec::<String>::new(),
        "network records left"
    );
    assert_eq!(
        env.container_mounts(),
        Vec::<String>::new(),
        "mounts left under {}",
        env.path().display()
    );
}

fn meta(env: &Env, id: &str) -> Value {
    let path = env.data_root.join("containers").join(id).join("meta.json");
    serde_json::from_slice(&fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).unwrap()
}

fn inspect(env: &Env, name: &str) -> Value {
    let r = env.run(["inspect", name]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("inspect is not JSON ({e}): {r:#?}"));
    let arr = v.as_array().expect("inspect prints a JSON array");
    assert_eq!(arr.len(), 1, "{v:#}");
    arr[0].clone()
}

/// `ps` / `ps -a` rows (header dropped) that mention `needle`.
fn ps_rows(env: &Env, all: bool, needle: &str) -> Vec<String> {
    let r = if all { env.run(["ps", "-a"]) } else { env.run(["ps"]) }.ok();
    let mut lines = r.stdout.lines();
    let header = lines.next().unwrap_or_default();
    for col in ["CONTAINER ID", "IMAGE", "COMMAND", "STATUS", "NAMES"] {
        assert!(header.contains(col), "ps header lacks {col}: {r:#?}");
    }
    lines.filter(|l| l.contains(needle)).map(str::to_string).collect()
}

/// The state letter of /proc/PID/stat (R, S, Z, ...), None when gone.
fn proc_state(pid: i64) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.chars().next()
}

/// Alive and not a zombie.
fn alive(pid: i64) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

fn ppid(pid: i64) -> Option<i64> {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

fn kill(pid: i64, sig: i32) {
    // SAFETY: plain kill(2).
    let rc = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}): {}", std::io::Error::last_os_error());
}

/// Collects the paths under `dir` whose file name contains `needle`
/// (recursive, symlinks not followed).
fn find_named(dir: &Path, needle: &str, found: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().contains(needle) {
            found.push(p.clone());
        }
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            find_named(&p, needle, found);
        }
    }
}

fn file(path: &str, content: &str) -> LayerEntry {
    LayerEntry::File {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    }
}

fn dir(path: &str) -> LayerEntry {
    LayerEntry::Dir {
        path: path.into(),
        mode: 0o755,
    }
}

// ---------------------------------------------------------------------------
// load / images / rmi
// ---------------------------------------------------------------------------

/// The one line `load` prints for one image, as its reference.
fn loaded_ref(r: &Run) -> String {
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected one loaded image: {r:#?}");
    lines[0]
        .strip_prefix("Loaded image: ")
        .unwrap_or_else(|| panic!("odd load output: {r:#?}"))
        .to_string()
}

#[test]
fn loads_layouts_written_by_skopeo_and_umoci() {
    let env = Env::new();
    let archive = fixture(&env, "busybox:latest", ImageFormat::DockerArchive);
    let sk = env.path().join("skopeo");
    fs::create_dir_all(&sk).unwrap();
    let layout = sk.join("layout");
    let oci_tar = sk.join("image.tar");
    // docker-save archive -> OCI layout dir and oci-archive, offline
    tool(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:v1", layout.display())),
    );
    tool(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci-archive:{}:v2", oci_tar.display())),
    );
    assert!(layout.join("index.json").is_file() && layout.join("oci-layout").is_file());

    let from_dir = loaded_ref(&load(&env, &layout).ok());
    assert!(from_dir.ends_with(":v1"), "{from_dir}");
    let from_tar = loaded_ref(&load(&env, &oci_tar).ok());
    assert!(from_tar.ends_with(":v2"), "{from_tar}");
    // and the docker archive skopeo read
    assert_eq!(loaded_ref(&load(&env, &archive).ok()), "busybox:latest");

    assert_eq!(
        run_rm(&env, &[&from_dir, "echo", "from", "skopeo", "dir"]),
        "from skopeo dir\n"
    );
    assert_eq!(
        run_rm(&env, &[&from_tar, "echo", "from", "skopeo", "tar"]),
        "from skopeo tar\n"
    );
    assert_eq!(run_rm(&env, &[&from_dir, "cat", "/var/www/index.html"]), INDEX_HTML);

    // skopeo rewrote the config as OCI: one image id for v1 and v2, another for the docker archive
    let rows = images(&env);
    let id_of = |r: &str| {
        let (repo, tag) = r.rsplit_once(':').unwrap();
        rows.iter()
            .find(|x| x.0 == repo && x.1 == tag)
            .unwrap_or_else(|| panic!("{r} not in {rows:?}"))
            .2
            .clone()
    };
    assert_eq!(id_of(&from_dir), id_of(&from_tar), "{rows:?}");
    // all three share the one unpacked layer (same diff_id)
    assert_eq!(layer_dirs(&env).len(), 1, "{:?}", layer_dirs(&env));

    // umoci: unpack v1, delete a file and add one, repack as v3 — a layer
    // (with a whiteout) written by a third-party tool
    let bundle = sk.join("umoci-bundle");
    tool(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    fs::write(bundle.join("rootfs/etc/umoci-was-here"), "umoci\n").unwrap();
    fs::remove_file(bundle.join("rootfs/var/www/index.html")).unwrap();
    tool(
        Command::new("umoci")
            .arg("repack")
            .arg("--image")
            .arg(format!("{}:v3", layout.display()))
            .arg(&bundle),
    );
    let r = load(&env, &layout).ok();
    let v3 = r
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Loaded image: "))
        .find(|l| l.ends_with(":v3"));
    let v3 = v3.unwrap_or_else(|| panic!("v3 not loaded: {r:#?}")).to_string();
    let out = run_rm(
        &env,
        &[
            &v3,
            "sh",
            "-c",
            "cat /etc/umoci-was-here; ls -A /var/www; test -e /var/www/index.html || echo deleted",
        ],
    );
    assert_eq!(out, "umoci\ndeleted\n");
    assert_eq!(
        layer_dirs(&env).len(),
        2,
        "umoci's layer is stored once, the base is shared"
    );
    assert_no_containers(&env);
}

#[test]
fn loads_the_fixture_formats_twice_lists_and_removes_them() {
    let env = Env::new();
    let docker = fixture(&env, "fx-docker:one", ImageFormat::DockerArchive);
    let oci_dir = fixture(&env, "fx-ocidir:two", ImageFormat::OciDir);
    let oci_tar = fixture(&env, "fx-ocitar:three", ImageFormat::OciTar);
    // the OCI tar compressed once more: .tar.gz
    let tgz = env.path().join("fixtures/fx.tar.gz");
    let gz = tool(Command::new("sh").arg("-c").arg(format!(
        "gzip -n -c {} > {} && echo ok",
        oci_tar.display(),
        tgz.display()
    )));
    assert_eq!(gz, "ok\n");

    assert_eq!(loaded_ref(&load(&env, &docker).ok()), "fx-docker:one");
    assert_eq!(loaded_ref(&load(&env, &oci_dir).ok()), "fx-ocidir:two");
    assert_eq!(loaded_ref(&load(&env, &oci_tar).ok()), "fx-ocitar:three");
    let rows = images(&env);
    assert_eq!(rows.len(), 3, "{rows:?}");
    // the same config in all three formats: one image id, one shared layer
    let ids: BTreeSet<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(ids.len(), 1, "{rows:?}");
    let id12 = rows[0].2.clone();
    assert_eq!(id12.len(), 12);
    assert!(rows.iter().all(|r| r.3.ends_with('B')), "SIZE has a unit: {rows:?}");
    assert_eq!(layer_dirs(&env).len(), 1);
    for (name, tag) in [("fx-docker", "one"), ("fx-ocidir", "two"), ("fx-ocitar", "three")] {
        assert!(
            rows.iter().any(|r| r.0 == name && r.1 == tag),
            "{name}:{tag} not in {rows:?}"
        );
        let out = run_rm(&env, &[&format!("{name}:{tag}"), "echo", name]);
        assert_eq!(out, format!("{name}\n"));
    }

    // loading again is harmless: same output, same rows, same store
    let before = store_snapshot(&env);
    for (path, r) in [
        (&docker, "fx-docker:one"),
        (&oci_dir, "fx-ocidir:two"),
        (&oci_tar, "fx-ocitar:three"),
    ] {
        assert_eq!(loaded_ref(&load(&env, path).ok()), r);
    }
    assert_eq!(images(&env), rows);
    assert_eq!(store_snapshot(&env).0, before.0);
    // .tar.gz of a layout works too
    assert_eq!(loaded_ref(&load(&env, &tgz).ok()), "fx-ocitar:three");
    assert_eq!(images(&env), rows);

    // by id prefix and by full name
    assert_eq!(run_rm(&env, &[&id12[..8], "echo", "by-id"]), "by-id\n");

    // rmi untags, and deletes the image with its last reference
    let r = env.run(["rmi", "fx-docker:one"]).ok();
    assert!(r.stdout.contains("Untagged: fx-docker:one"), "{r:#?}");
    assert_eq!(images(&env).len(), 2);
    assert_eq!(layer_dirs(&env).len(), 1, "the layer is still used by the others");
    env.run(["rmi", "fx-ocidir:two", "fx-ocitar:three"]).ok();
    assert_eq!(images(&env), vec![]);
    assert_eq!(layer_dirs(&env), Vec::<String>::new(), "the last rmi deletes the layer");
    env.run(["rmi", "fx-ocidir:two"]).fails_with("fx-ocidir:two");
    env.run(["run", "--rm", "--net", "none", "fx-docker:one", "true"])
        .fails_with("fx-docker:one");
    assert_no_containers(&env);
}

#[test]
fn parallel_loads_do_not_corrupt_the_store() {
    let env = Env::new();
    let docker = fixture(&env, "busybox:latest", ImageFormat::DockerArchive);
    let oci_dir = fixture(&env, "p2:x", ImageFormat::OciDir);
    let oci_tar = fixture(&env, "p3:y", ImageFormat::OciTar);
    let layered = env.path().join("p4.tar");
    build_image_with_layers(
        &layered,
        "p4:z",
        ImageFormat::DockerArchive,
        &[vec![dir("p4"), file("p4/f", "p4\n")]],
    )
    .unwrap();
    let inputs = [
        &docker, &docker, &docker, &oci_dir, &oci_tar, &layered, &oci_dir, &layered,
    ];
    let results: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = inputs.iter().map(|p| s.spawn(|| load(&env, p))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        r.ok();
    }
    let rows = images(&env);
    let names: BTreeSet<String> = rows.iter().map(|r| format!("{}:{}", r.0, r.1)).collect();
    let want: BTreeSet<String> = ["busybox:latest", "p2:x", "p3:y", "p4:z"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want, "{rows:?}");
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert_eq!(layer_dirs(&env).len(), 2, "{:?}", layer_dirs(&env));
    assert_eq!(
        dir_entries(&env.data_root.join("images/tmp")),
        Vec::<String>::new(),
        "staging leftovers"
    );
    let index: Value = serde_json::from_slice(&fs::read(env.data_root.join("images/index.json")).unwrap())
        .expect("index.json is JSON");
    assert!(index.is_object());
    assert_eq!(
        run_rm(&env, &["p4:z", "cat", "/p4/f", "/var/www/index.html"]),
        format!("p4\n{INDEX_HTML}")
    );
    assert_eq!(run_rm(&env, &["p2:x", "echo", "ok"]), "ok\n");
}

#[test]
fn rmi_of_an_image_in_use_is_refused() {
    let env = Env::with_busybox();
    // an exited (not removed) container still uses its image, as in docker
    let r = run(&env, &["--name", "user", "busybox", "true"]);
    assert_eq!(r.code, 0, "{r:#?}");
    env.run(["rmi", "busybox"]).fails_with("busybox");
    assert_eq!(images(&env).len(), 1);
    assert_eq!(run_rm(&env, &["busybox", "echo", "still", "there"]), "still there\n");
    env.run(["rm", "user"]).ok();
    let r = env.run(["rmi", "busybox"]).ok();
    assert!(
        r.stdout.contains("Untagged: busybox:latest") && r.stdout.contains("Deleted: sha256:"),
        "{r:#?}"
    );
    assert_eq!(images(&env), vec![]);
    assert_eq!(layer_dirs(&env), Vec::<String>::new());
    let blobs = dir_entries(&env.data_root.join("images/blobs/sha256"));
    assert_eq!(blobs, Vec::<String>::new(), "blobs of a removed image left");
}

// ---------------------------------------------------------------------------
// layers: whiteouts, escapes, corrupt archives
// ---------------------------------------------------------------------------

#[test]
fn whiteouts_across_two_layers_seen_from_a_container() {
    let env = Env::new();
    let lower = vec![
        dir("data"),
        file("data/keep", "kept\n"),
        file("data/gone", "should be deleted\n"),
        dir("data/gonedir"),
        file("data/gonedir/inner", "x\n"),
        dir("opq"),
        file("opq/old", "hidden by the opaque marker\n"),
        dir("opq/sub"),
        file("opq/sub/deep", "hidden too\n"),
    ];
    let upper = vec![
        LayerEntry::Whiteout {
            path: "data/gone".into(),
        },
        LayerEntry::Whiteout {
            path: "data/gonedir".into(),
        },
        LayerEntry::Opaque { dir: "opq".into() },
        file("opq/new", "new\n"),
        // a file of the base (busybox) layer, two layers down
        LayerEntry::Whiteout {
            path: "var/www/index.html".into(),
        },
    ];
    for (i, format) in [ImageFormat::DockerArchive, ImageFormat::OciDir]
        .into_iter()
        .enumerate()
    {
        let out = env.path().join(format!("wh-{i}"));
        build_image_with_layers(&out, &format!("wh:{i}"), format, &[lower.clone(), upper.clone()]).unwrap();
        load(&env, &out).ok();
        let script = "ls -A /data; echo --; ls -A /opq; echo --; cat /data/keep /opq/new; \
                      test -e /data/gone || echo no-gone; test -e /data/gonedir || echo no-gonedir; \
                      test -e /var/www/index.html || echo no-index; ls -A /var/www; echo --; \
                      find / -xdev -name '.wh.*' | wc -l";
        let out = run_rm(&env, &[&format!("wh:{i}"), "sh", "-c", script]);
        assert_eq!(
            out, "keep\n--\nnew\n--\nkept\nnew\nno-gone\nno-gonedir\nno-index\n--\n0\n",
            "format {format:?}"
        );
        // the container's upper layer sees the same, and writing works
        let out = run_rm(
            &env,
            &[
                &format!("wh:{i}"),
                "sh",
                "-c",
                "echo w > /opq/old && cat /opq/old && ls -A /opq | sort | tr '\\n' ' '",
            ],
        );
        assert_eq!(out, "w\nnew old ");
    }
    // both images share the three layers
    assert_eq!(layer_dirs(&env).len(), 3, "{:?}", layer_dirs(&env));
    assert_no_containers(&env);
}

#[test]
fn escape_attempts_are_rejected_at_load_and_nothing_is_stored() {
    let env = Env::with_busybox();
    let marker = format!("minirun-escape-{}", std::process::id());
    let m = |s: &str| format!("{s}-{marker}");
    let cases: Vec<(String, Vec<LayerEntry>)> = vec![
        // an absolute path
        (
            format!("/{}", m("abs")),
            vec![file(&format!("/{}", m("abs")), "pwned\n")],
        ),
        // climbing out with ..
        (
            format!("../../../../../../{}", m("dotdot")),
            vec![file(&format!("../../../../../../{}", m("dotdot")), "pwned\n")],
        ),
        (
            format!("a/../../{}", m("dotdot2")),
            vec![dir("a"), file(&format!("a/../../{}", m("dotdot2")), "pwned\n")],
        ),
        // a relative symlink that points out, then a write through it
        (
            format!("esc/{}", m("rel-symlink")),
            vec![
                LayerEntry::Symlink {
                    path: "esc".into(),
                    target: "../../../../../../../../tmp".into(),
                },
                file(&format!("esc/{}", m("rel-symlink")), "pwned\n"),
            ],
        ),
        // an absolute symlink, then a write through it
        (
            format!("abs/{}", m("abs-symlink")),
            vec![
                LayerEntry::Symlink {
                    path: "abs".into(),
                    target: "/tmp".into(),
                },
                file(&format!("abs/{}", m("abs-symlink")), "pwned\n"),
            ],
        ),
        // a symlinked directory deeper down, then a directory through it
        (
            format!("d/l/{}/", m("deep")),
            vec![
                dir("d"),
                LayerEntry::Symlink {
                    path: "d/l".into(),
                    target: "../../../../../../../../../tmp".into(),
                },
                dir(&format!("d/l/{}", m("deep"))),
            ],
        ),
        // hard links to files outside the layer
        (
            "hl".to_string(),
            vec![LayerEntry::Hardlink {
                path: "hl".into(),
                target: "../../../../../../../../etc/passwd".into(),
            }],
        ),
        (
            "hl-abs".to_string(),
            vec![LayerEntry::Hardlink {
                path: "hl-abs".into(),
                target: "/etc/passwd".into(),
            }],
        ),
        // a hard link through an escaping symlink laid down earlier
        (
            "hl-via".to_string(),
            vec![
                LayerEntry::Symlink {
                    path: "etcdir".into(),
                    target: "/etc".into(),
                },
                LayerEntry::Hardlink {
                    path: "hl-via".into(),
                    target: "etcdir/passwd".into(),
                },
            ],
        ),
        // a whiteout that climbs out
        (
            format!("../../../.wh.{}", m("wh")),
            vec![LayerEntry::Whiteout {
                path: format!("../../../{}", m("wh")),
            }],
        ),
    ];
    let rows = images(&env);
    let store = store_snapshot(&env);
    let passwd_links = fs::metadata("/etc/passwd")
        .map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
        .unwrap_or(0);
    for (i, (entry, layer)) in cases.iter().enumerate() {
        let out = env.path().join(format!("escape-{i}.tar"));
        build_image_with_layers(
            &out,
            &format!("escape:{i}"),
            ImageFormat::DockerArchive,
            std::slice::from_ref(layer),
        )
        .unwrap();
        let r = load(&env, &out);
        assert_ne!(r.code, 0, "escape {entry:?} was loaded: {r:#?}");
        r.fails_with(&format!("\"{entry}\""));
        assert_eq!(images(&env), rows, "after escape {entry:?}");
        assert_eq!(store_snapshot(&env), store, "the store changed after escape {entry:?}");
    }
    // nothing landed anywhere
    let mut found = Vec::new();
    find_named(env.path(), &marker, &mut found);
    for top in ["/", "/etc", "/tmp"] {
        for e in dir_entries(Path::new(top)) {
            if e.contains(&marker) {
                found.push(Path::new(top).join(e));
            }
        }
    }
    // the fixture tars themselves carry the marker in member names, not in file names
    found.retain(|p| !p.starts_with(env.path().join("fixtures")));
    assert_eq!(found, Vec::<PathBuf>::new(), "an escape wrote outside the layer");
    let now_links = fs::metadata("/etc/passwd")
        .map(|m| std::os::unix::fs::MetadataExt::nlink(&m))
        .unwrap_or(0);
    assert_eq!(now_links, passwd_links, "/etc/passwd gained a hard link");
    // the store still works
    assert_eq!(run_rm(&env, &["busybox", "echo", "ok"]), "ok\n");
}

#[test]
fn symlinks_and_hardlinks_inside_the_layer_are_fine() {
    // the safe twins of the escape cases must keep working
    let env = Env::new();
    let layer = vec![
        dir("app"),
        file("app/real", "real\n"),
        LayerEntry::Symlink {
            path: "app/rel".into(),
            target: "real".into(),
        },
        LayerEntry::Symlink {
            path: "app/abs".into(),
            target: "/app/real".into(),
        },
        LayerEntry::Symlink {
            path: "app/dirlink".into(),
            target: "../var/www".into(),
        },
        LayerEntry::Hardlink {
            path: "app/hard".into(),
            target: "app/real".into(),
        },
        // a relative symlink to a directory inside the layer, written through
        LayerEntry::Symlink {
            path: "lnk".into(),
            target: "app".into(),
        },
        file("lnk/through", "through\n"),
    ];
    let out = env.path().join("links.tar");
    build_image_with_layers(&out, "links:1", ImageFormat::DockerArchive, &[layer]).unwrap();
    load(&env, &out).ok();
    let script = "cat /app/rel /app/abs /app/hard /app/dirlink/index.html /app/through; \
                  stat -c %h /app/real; readlink /app/abs";
    let out = run_rm(&env, &["links:1", "sh", "-c", script]);
    assert_eq!(out, format!("real\nreal\nreal\n{INDEX_HTML}through\n2\n/app/real\n"));
}

#[test]
fn corrupt_truncated_and_wrong_digest_archives_store_nothing() {
    let env = Env::with_busybox();
    let rows = images(&env);
    let store = store_snapshot(&env);
    let check_nothing = |what: &str| {
        assert_eq!(images(&env), rows, "images changed after {what}");
        assert_eq!(store_snapshot(&env), store, "the store changed after {what}");
    };
    let good = fixture(&env, "bad:1", ImageFormat::DockerArchive);
    let bytes = fs::read(&good).unwrap();

    // not an archive at all
    let junk = env.path().join("junk.tar");
    fs::write(&junk, b"this is not a tar archive, not even close\n".repeat(40)).unwrap();
    load(&env, &junk).fails_with("junk.tar");
    check_nothing("junk");
    // empty file
    let empty = env.path().join("empty.tar");
    fs::write(&empty, b"").unwrap();
    load(&env, &empty).fails_with("empty.tar");
    check_nothing("empty");
    // a path that does not exist
    load(&env, &env.path().join("nope.tar")).fails_with("nope.tar");
    check_nothing("missing file");

    // truncated in the middle of the layer, and just before the end
    for (i, cut) in [bytes.len() / 2, bytes.len() - 1024 - 100].into_iter().enumerate() {
        let t = env.path().join(format!("truncated-{i}.tar"));
        fs::write(&t, &bytes[..cut]).unwrap();
        load(&env, &t).fails_with(&format!("truncated-{i}.tar"));
        check_nothing("truncated");
    }

    // one byte of a layer changed (the tar stays valid: file data is not
    // covered by the header checksum), so the diff_id does not match
    let needle = INDEX_HTML.as_bytes();
    let pos = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("index.html in the archive");
    let mut edited = bytes.clone();
    edited[pos] = b'j';
    // (in a fresh store: where the layer is already unpacked, minirun rightly
    // skips reading it again, as containerd does, so nothing bad is stored)
    let fresh = Env::new();
    let wrong = fresh.path().join("wrong-digest.tar");
    fs::write(&wrong, &edited).unwrap();
    let r = load(&fresh, &wrong).fails_with("wrong-digest.tar");
    assert!(
        r.stderr.contains("digest"),
        "the error should say digest mismatch: {r:#?}"
    );
    assert_eq!(images(&fresh), vec![]);
    assert_eq!(
        store_snapshot(&fresh).0,
        BTreeSet::new(),
        "a wrong digest left things in the store"
    );
    // the already-known layer: loading is allowed, but the tampered bytes are not used
    let r = load(&env, &wrong);
    if r.code == 0 {
        assert_eq!(layer_dirs(&env).len(), 1);
        assert_eq!(run_rm(&env, &["bad:1", "cat", "/var/www/index.html"]), INDEX_HTML);
        env.run(["rmi", "bad:1"]).ok();
    }
    check_nothing("wrong digest (docker archive)");

    // OCI layout: a layer blob recompressed after a one-byte edit (valid
    // gzip, valid tar, wrong sha256), and a config blob edited in place
    for what in ["layer", "config"] {
        let layout = env.path().join(format!("oci-{what}"));
        build_image(&layout, "bad:2", ImageFormat::OciDir).unwrap();
        let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
        let mdigest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let manifest: Value =
            serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(&mdigest)).unwrap()).unwrap();
        let blob = |d: &Value| {
            layout
                .join("blobs/sha256")
                .join(d["digest"].as_str().unwrap().trim_start_matches("sha256:"))
        };
        if what == "layer" {
            let path = blob(&manifest["layers"][0]);
            let raw = env.path().join("layer.raw");
            tool(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("gzip -dc < {} > {}", path.display(), raw.display())),
            );
            let mut tar = fs::read(&raw).unwrap();
            let pos = tar.windows(needle.len()).position(|w| w == needle).unwrap();
            tar[pos] = b'j';
            fs::write(&raw, &tar).unwrap();
            tool(
                Command::new("sh")
                    .arg("-c")
                    .arg(format!("gzip -n -c < {} > {}", raw.display(), path.display())),
            );
            // keep the descriptor's size right (gzip may compress differently),
            // so only the digest is wrong: a new manifest, pointed at by index.json
            let mut manifest = manifest.clone();
            manifest["layers"][0]["size"] = fs::metadata(&path).unwrap().len().into();
            let bytes = serde_json::to_vec(&manifest).unwrap();
            let hex = rootfs_fixtures::sha256_hex(&bytes);
            fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
            let mut index = index.clone();
            index["manifests"][0]["digest"] = format!("sha256:{hex}").into();
            index["manifests"][0]["size"] = bytes.len().into();
            fs::write(layout.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        } else {
            let path = blob(&manifest["config"]);
            let text = fs::read_to_string(&path)
                .unwrap()
                .replace("\"Cmd\":[\"sh\"]", "\"Cmd\":[\"ls\"]");
            fs::write(&path, text).unwrap();
        }
        let fresh = Env::new();
        let r = load(&fresh, &layout).fails_with(&format!("oci-{what}"));
        assert!(
            r.stderr.contains("digest"),
            "{what}: the error should say digest mismatch: {r:#?}"
        );
        assert_eq!(images(&fresh), vec![]);
        assert_eq!(
            store_snapshot(&fresh).0,
            BTreeSet::new(),
            "a wrong {what} digest left things in the store"
        );
    }
    assert_no_containers(&env);
}

#[test]
fn unknown_image_for_run_leaves_nothing() {
    let env = Env::with_busybox();
    run(&env, &["--name", "ghost", "no-such-image:1", "true"]).fails_with("no-such-image:1");
    run(&env, &["-d", "--name", "ghost", "no-such-image", "true"]).fails_with("no-such-image");
    run(&env, &["--rm", "ghost/sub:latest", "true"]).fails_with("ghost/sub:latest");
    assert_no_containers(&env);
    // the name was not kept
    run(&env, &["--rm", "--name", "ghost", "busybox", "true"]).ok();
    // a command the image does not have: a clear error, and nothing left either
    let r = run(&env, &["--name", "nocmd", "busybox", "/no/such/binary"]);
    assert_ne!(r.code, 0, "{r:#?}");
    let r = run(&env, &["-d", "--name", "nocmd-d", "busybox", "/no/such/binary"]);
    assert_ne!(r.code, 0, "{r:#?}");
    assert!(
        r.stderr.contains("/no/such/binary"),
        "the error should name the missing binary: {r:#?}"
    );
    assert_eq!(
        ps_rows(&env, true, "nocmd-d"),
        Vec::<String>::new(),
        "a failed run -d left a container"
    );
    assert_eq!(env.container_mounts(), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// run / ps / logs / exec / stop / rm / inspect
// ---------------------------------------------------------------------------

/// The root filesystem of a `--rm` container is a volatile overlay (its
/// changes are discarded anyway; no unmount waits for the upper filesystem's
/// sync), as podman mounts those; a kept container's is not.
#[test]
fn only_rm_containers_get_a_volatile_root() {
    let env = Env::with_busybox();
    let root_mount = ["busybox", "grep", " / / ", "/proc/self/mountinfo"];
    let rm = run_rm(&env, &root_mount);
    assert!(rm.contains("overlay") && rm.contains("volatile"), "{rm}");
    let mut kept = vec!["--name", "kept"];
    kept.extend(root_mount);
    let r = run(&env, &kept).ok();
    assert!(r.stdout.contains("overlay") && !r.stdout.contains("volatile"), "{r:#?}");
    // started again, it mounts the same upper layer once more
    env.run(["start", "kept"]).ok();
    assert_eq!(env.run(["wait", "kept"]).ok().stdout, "0\n");
    env.run(["rm", "kept"]).ok();
    env.assert_nothing_left();
}

#[test]
fn run_rm_leaves_nothing_even_when_the_process_fails() {
    let env = Env::with_busybox();
    let r = env.run(["run", "--rm", "--net", "none", "busybox", "echo", "hi"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("hi\n", ""));
    assert_no_containers(&env);

    let r = run(&env, &["--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (3, "out\n", "err\n"),
        "{r:#?}"
    );
    assert_no_containers(&env);

    // detached --rm: the monitor removes it when it ends
    let id = run_d(
        &env,
        &["--rm", "--name", "gone", "busybox", "sh", "-c", "sleep 0.3; exit 3"],
    );
    wait_until("the --rm -d container to go", 20 * SECOND, || {
        !env.data_root.join("containers").join(&id).exists()
    });
    assert_gone(&env, &id);
    assert_no_containers(&env);
    env.run(["inspect", "gone"]).fails_with("gone");

    // without --rm the container stays, exited, with its code
    let r = run(&env, &["--name", "kept", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(r.code, 3);
    let i = inspect(&env, "kept");
    assert_eq!(
        (i["State"]["Status"].as_str(), i["State"]["ExitCode"].as_i64()),
        (Some("exited"), Some(3)),
        "{i:#}"
    );
    assert_eq!(ps_rows(&env, true, "kept").len(), 1);
    assert!(ps_rows(&env, true, "kept")[0].contains("Exited (3)"));
    // it holds no mount once exited
    assert_eq!(env.container_mounts(), Vec::<String>::new());
    let id = i["Id"].as_str().unwrap().to_string();
    env.run(["rm", "kept"]).ok();
    assert_gone(&env, &id);
    assert_no_containers(&env);
}

#[test]
fn detached_web_server_through_ps_exec_inspect_stop_rm() {
    let env = Env::with_busybox();
    let start = Instant::now();
    let id = run_d(&env, &["--name", "web", "busybox", "httpd", "-f", "-p", "80"]);
    assert!(start.elapsed() < 10 * SECOND, "run -d took {:?}", start.elapsed());
    let short = &id[..12];
    // what assert_gone checks for does exist while it runs (so those checks are not vacuous)
    assert!(env.data_root.join("containers").join(&id).join("meta.json").is_file());
    assert_eq!(fs::read_to_string(env.data_root.join("names/web")).unwrap().trim(), id);
    assert!(
        env.root.join(&id).is_dir(),
        "no libcontainer state at {}",
        env.root.join(&id).display()
    );
    assert!(netns_path(&env.root, &id).exists(), "no netns file");
    let mounts = env.container_mounts();
    assert!(
        mounts.iter().any(|m| m.contains(&id) && m.ends_with("/rootfs")),
        "{mounts:?}"
    );
    assert!(mounts.iter().any(|m| m.ends_with(&format!("netns/{id}"))), "{mounts:?}");

    // ps, ps -q
    let rows = ps_rows(&env, false, "web");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].starts_with(short) && rows[0].contains("Up") && rows[0].contains("busybox"),
        "{rows:?}"
    );
    assert_eq!(env.run(["ps", "-q"]).ok().stdout, format!("{short}\n"));

    // exec: PID 1 is httpd; env; exit codes; default env
    let out = env.run(["exec", "web", "ps"]).ok().stdout;
    let pid1 = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_default();
    assert!(pid1.contains("httpd -f -p 80"), "PID 1 is not httpd:\n{out}");
    assert_eq!(
        env.run(["exec", "-e", "X=1", "web", "sh", "-c", "echo $X"]).ok().stdout,
        "1\n"
    );
    assert_eq!(env.run(["exec", "web", "sh", "-c", "exit 4"]).code, 4);
    assert_eq!(
        env.run(["exec", "-w", "/var/www", "web", "cat", "index.html"])
            .ok()
            .stdout,
        INDEX_HTML
    );
    assert_eq!(
        env.run(["exec", "-u", "nobody", "web", "id", "-u"]).ok().stdout,
        "65534\n"
    );
    assert_eq!(env.run(["exec", "web", "hostname"]).ok().stdout, format!("{short}\n"));
    let out = env
        .run(["exec", "-t", "web", "sh", "-c", "echo $TERM; tty"])
        .ok()
        .stdout
        .replace('\r', "");
    assert!(out.starts_with("xterm\n/dev/pts/"), "exec -t: {out:?}");
    // the server answers inside the container's own network namespace
    let r = env
        .run([
            "exec",
            "web",
            "sh",
            "-c",
            "printf 'GET /var/www/index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80",
        ])
        .ok();
    assert!(
        r.stdout.starts_with("HTTP/1.") && r.stdout.ends_with(INDEX_HTML),
        "{r:#?}"
    );

    // inspect by name, full id and unique prefix
    let i = inspect(&env, "web");
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["Name"], "/web");
    assert_eq!(i["Config"]["Image"], "busybox");
    assert!(i["Image"].as_str().is_some_and(|s| s.starts_with("sha256:")), "{i:#}");
    assert_eq!(i["State"]["Status"], "running");
    assert_eq!(i["State"]["Running"], true);
    let pid = i["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 1 && alive(pid), "State.Pid {pid} is not a live process");
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(),
        "httpd\0-f\0-p\080\0"
    );
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["httpd", "-f", "-p", "80"]));
    assert_eq!(inspect(&env, &id)["Id"], id.as_str());
    assert_eq!(inspect(&env, &id[..5])["Id"], id.as_str());
    assert_eq!(env.run(["exec", &id[..7], "true"]).code, 0);

    // refusals that leave it alone
    run(&env, &["-d", "--name", "web", "busybox", "true"]).fails_with("web");
    assert_eq!(
        dir_entries(&env.data_root.join("containers")).len(),
        1,
        "a refused duplicate name left a container"
    );
    env.run(["rm", "web"]).fails_with("web");
    assert!(alive(pid), "rm without -f touched a running container");

    // stop -t 1: httpd as PID 1 ignores SIGTERM, so SIGKILL after a second
    let start = Instant::now();
    env.run(["stop", "-t", "1", "web"]).ok();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < 10 * SECOND,
        "stop -t 1 took {took:?}"
    );
    assert!(!alive(pid), "the container process survived stop");
    assert_eq!(
        ps_rows(&env, false, "web"),
        Vec::<String>::new(),
        "ps lists a stopped container"
    );
    assert_eq!(env.run(["ps", "-q"]).ok().stdout, "");
    let rows = ps_rows(&env, true, "web");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0].contains("Exited (137)") || rows[0].contains("Exited (143)"),
        "{rows:?}"
    );
    let i = inspect(&env, short);
    assert_eq!(i["State"]["Status"], "exited");
    assert!(matches!(i["State"]["ExitCode"].as_i64(), Some(137 | 143)), "{i:#}");
    assert_eq!(i["State"]["Running"], false);
    assert_eq!(i["State"]["Pid"], 0);
    assert_eq!(env.run(["ps", "-a", "-q"]).ok().stdout, format!("{short}\n"));
    // exec into an exited container is refused
    assert_ne!(env.run(["exec", "web", "true"]).code, 0);
    // stopping again is fine
    env.run(["stop", "-t", "1", "web"]).ok();
    assert_eq!(
        env.container_mounts(),
        Vec::<String>::new(),
        "an exited container keeps mounts"
    );

    env.run(["rm", "web"]).ok();
    assert_gone(&env, &id);
    assert_no_containers(&env);
    assert_eq!(env.run(["ps", "-a"]).ok().stdout.lines().count(), 1, "only the header");
    // the name is free again
    let id2 = run_d(&env, &["--name", "web", "busybox", "sleep", "30"]);
    assert_ne!(id2, id);
    env.run(["rm", "-f", "web"]).ok();
    assert_gone(&env, &id2);
}

#[test]
fn unknown_containers_are_named_in_errors() {
    let env = Env::with_busybox();
    for verb in [
        &["logs"][..],
        &["logs", "-f"],
        &["exec"],
        &["stop"],
        &["rm"],
        &["rm", "-f"],
        &["inspect"],
    ] {
        let mut args: Vec<&str> = verb.to_vec();
        args.push("nosuchbox");
        if verb == ["exec"] {
            args.push("true");
        }
        env.run(&args).fails_with("nosuchbox");
    }
    // an ambiguous prefix is an error too, not a guess
    let a = run_d(&env, &["busybox", "sleep", "30"]);
    let b = run_d(&env, &["busybox", "sleep", "30"]);
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let prefix = &a[..common];
    if !prefix.is_empty() {
        let r = env.run(["inspect", prefix]);
        assert_ne!(r.code, 0, "ambiguous prefix {prefix:?} resolved: {r:#?}");
    }
    env.run(["rm", "-f", &a[..common + 1], &b[..common + 1]]).ok();
    assert_no_containers(&env);
}

#[test]
fn logs_of_detached_containers() {
    let env = Env::with_busybox();
    let id = run_d(&env, &["--name", "lg", "busybox", "sh", "-c", "echo out; echo err >&2"]);
    wait_until("lg to exit", 20 * SECOND, || {
        ps_rows(&env, true, "lg").iter().any(|r| r.contains("Exited (0)"))
    });
    let r = env.run(["logs", "lg"]).ok();
    assert_eq!(r.stdout, "out\nerr\n", "{r:#?}");
    // by id prefix too, and -f of an exited container returns at once
    assert_eq!(env.run(["logs", &id[..10]]).ok().stdout, "out\nerr\n");
    assert_eq!(env.run(["logs", "-f", "lg"]).ok().stdout, "out\nerr\n");

    // -f follows a container that prints over time, and returns when it ends
    run_d(
        &env,
        &[
            "--name",
            "fl",
            "busybox",
            "sh",
            "-c",
            "for i in 1 2 3 4; do echo line$i; sleep 0.4; done; exit 2",
        ],
    );
    let start = Instant::now();
    let mut child = env
        .cmd(["logs", "-f", "fl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + 30 * SECOND;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("logs -f did not return after the container ended");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "line1\nline2\nline3\nline4\n");
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "logs -f returned before the end ({:?})",
        start.elapsed()
    );
    let rows = ps_rows(&env, true, "fl");
    assert!(rows.len() == 1 && rows[0].contains("Exited (2)"), "{rows:?}");
    // an attached container keeps no log: a clear error
    run(&env, &["--name", "att", "busybox", "true"]).ok();
    env.run(["logs", "att"]).fails_with("att");
}

// ---------------------------------------------------------------------------
// run flags and the container's environment
// ---------------------------------------------------------------------------

#[test]
fn run_flags_env_workdir_user_entrypoint_hostname() {
    let env = Env::with_busybox();
    // default environment: PATH and HOSTNAME (= hostname), no TERM without -t
    let out = run_rm(
        &env,
        &[
            "busybox",
            "sh",
            "-c",
            "echo $PATH; echo $HOSTNAME; hostname; echo ${TERM-unset}; echo $$",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], DEFAULT_PATH);
    assert!(
        lines[1].len() == 12 && lines[1].chars().all(|c| c.is_ascii_hexdigit()),
        "HOSTNAME {:?}",
        lines[1]
    );
    assert_eq!(lines[1], lines[2]);
    assert_eq!(lines[3], "unset");
    assert_eq!(lines[4], "1", "the process is not PID 1");

    // -e and --env-file: file first, -e overrides; a bare KEY takes minirun's own value
    let envfile = env.path().join("env.list");
    fs::write(&envfile, "# a comment\n\nA=from-file\nB=two words\nPASSED\n").unwrap();
    let out = env
        .cmd([
            "run",
            "--rm",
            "--net",
            "none",
            "--env-file",
            envfile.to_str().unwrap(),
            "-e",
            "A=from-flag",
            "-e",
            "C=3",
            "-e",
            "PASSED2",
            "busybox",
            "sh",
            "-c",
            "echo \"$A|$B|$C|$PASSED|$PASSED2\"",
        ])
        .env("PASSED", "p1")
        .env("PASSED2", "p2")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-flag|two words|3|p1|p2\n");
    run(&env, &["--rm", "--env-file", "/no/such/env-file", "busybox", "true"]).fails_with("/no/such/env-file");
    // -e PATH replaces the default
    assert_eq!(
        run_rm(&env, &["-e", "PATH=/bin", "busybox", "sh", "-c", "echo $PATH"]),
        "/bin\n"
    );

    // -w
    assert_eq!(
        run_rm(&env, &["-w", "/var/www", "busybox", "sh", "-c", "pwd; cat index.html"]),
        format!("/var/www\n{INDEX_HTML}")
    );
    // -u by name, by uid:gid; non-root gets no capabilities
    assert_eq!(
        run_rm(
            &env,
            &[
                "-u",
                "nobody",
                "busybox",
                "sh",
                "-c",
                "id -u; id -g; grep CapEff /proc/self/status"
            ]
        ),
        "65534\n65534\nCapEff:\t0000000000000000\n"
    );
    assert_eq!(
        run_rm(&env, &["-u", "1234:5678", "busybox", "sh", "-c", "id -u; id -g"]),
        "1234\n5678\n"
    );
    assert_eq!(
        run_rm(&env, &["-u", "0:nogroup", "busybox", "sh", "-c", "id -u; id -g"]),
        "0\n65534\n"
    );
    run(&env, &["--rm", "-u", "no-such-user", "busybox", "true"]).fails_with("no-such-user");
    assert_no_containers(&env);
    // --entrypoint replaces the image's and drops its Cmd
    assert_eq!(run_rm(&env, &["--entrypoint", "echo", "busybox", "a", "b"]), "a b\n");
    assert_eq!(run_rm(&env, &["--entrypoint", "hostname", "busybox"]).len(), 13);
    // --hostname / -h
    assert_eq!(
        run_rm(
            &env,
            &[
                "--hostname",
                "box1",
                "busybox",
                "sh",
                "-c",
                "hostname; echo $HOSTNAME; cat /etc/hostname"
            ]
        ),
        "box1\nbox1\nbox1\n"
    );
    assert_eq!(run_rm(&env, &["-h", "box2", "busybox", "hostname"]), "box2\n");
    // the image's Cmd (sh) with no command: reads stdin
    let r = env
        .run_with_stdin(&["run", "--rm", "-i", "--net", "none", "busybox"], b"echo from-stdin\n")
        .ok();
    assert_eq!(r.stdout, "from-stdin\n");
    let r = env
        .run_with_stdin(&["run", "--rm", "-i", "--net", "none", "busybox", "cat"], b"piped\n")
        .ok();
    assert_eq!(r.stdout, "piped\n");
    // without -i stdin is empty
    let r = env
        .run_with_stdin(&["run", "--rm", "--net", "none", "busybox", "cat"], b"not seen\n")
        .ok();
    assert_eq!(r.stdout, "");
    assert_no_containers(&env);
}

#[test]
fn run_t_gives_a_terminal_and_term() {
    let env = Env::with_busybox();
    let out = run_rm(
        &env,
        &[
            "-t",
            "busybox",
            "sh",
            "-c",
            "echo $TERM; tty; test -t 1 && echo stdout-is-a-tty",
        ],
    );
    assert_eq!(out.replace('\r', ""), "xterm\n/dev/pts/0\nstdout-is-a-tty\n");
    // detached with -t: the terminal's output goes to the log
    run_d(
        &env,
        &["-t", "--name", "tty-d", "busybox", "sh", "-c", "echo $TERM; tty"],
    );
    wait_until("tty-d to exit", 20 * SECOND, || {
        ps_rows(&env, true, "tty-d").iter().any(|r| r.contains("Exited (0)"))
    });
    assert_eq!(
        env.run(["logs", "tty-d"]).ok().stdout.replace('\r', ""),
        "xterm\n/dev/pts/0\n"
    );
    env.run(["rm", "tty-d"]).ok();
    assert_no_containers(&env);
}

#[test]
fn read_only_root() {
    let env = Env::with_busybox();
    let rw = env.path().join("vol-rw");
    fs::create_dir_all(&rw).unwrap();
    let v_rw = format!("{}:/mnt/rw", rw.display());
    // --read-only: / refuses writes (docker: /tmp too), the kernel
    // filesystems, the /etc files and volumes still work
    let script = "touch /x 2>/dev/null && echo root-writable || echo root-refused; \
                  touch /tmp/x 2>/dev/null && echo tmp-writable || echo tmp-refused; \
                  touch /dev/shm/x && echo shm-ok; echo v > /mnt/rw/ro-run && echo vol-ok; \
                  hostname; awk '$5 == \"/\" {print $6}' /proc/self/mountinfo | cut -d, -f1";
    let out = run_rm(
        &env,
        &["--read-only", "-h", "rofs", "-v", &v_rw, "busybox", "sh", "-c", script],
    );
    assert_eq!(out, "root-refused\ntmp-refused\nshm-ok\nvol-ok\nrofs\nro\n");
    assert_eq!(fs::read_to_string(rw.join("ro-run")).unwrap(), "v\n");
    // the same detached
    run_d(&env, &["--read-only", "--name", "ro-d", "busybox", "sleep", "30"]);
    let r = env.run(["exec", "ro-d", "sh", "-c", "touch /y 2>&1; echo $?"]).ok();
    assert!(
        r.stdout.contains("Read-only file system") && r.stdout.ends_with("1\n"),
        "{r:#?}"
    );
    env.run(["rm", "-f", "ro-d"]).ok();
    // without it / is writable (into the container's own upper layer)
    assert_eq!(
        run_rm(&env, &["busybox", "sh", "-c", "touch /x && echo root-writable"]),
        "root-writable\n"
    );
    assert_no_containers(&env);
}

#[test]
fn a_working_directory_the_image_lacks_is_created() {
    // as docker does: -w /new/dir makes the directory in the container's layer
    let env = Env::with_busybox();
    assert_eq!(
        run_rm(&env, &["-w", "/made/for/me", "busybox", "pwd"]),
        "/made/for/me\n"
    );
    assert_eq!(
        run_rm(&env, &["-u", "nobody", "-w", "/made/for/nobody", "busybox", "pwd"]),
        "/made/for/nobody\n"
    );
    // the image's layers are untouched
    for layer in layer_dirs(&env) {
        assert!(!env.data_root.join("images/layers").join(layer).join("made").exists());
    }
    assert_no_containers(&env);
}

#[test]
fn exec_in_an_exited_container_says_it_is_not_running() {
    let env = Env::with_busybox();
    run(&env, &["--name", "done", "busybox", "true"]).ok();
    let r = env.run(["exec", "done", "true"]).fails_with("not running");
    assert!(!r.stderr.contains("does not exist"), "{r:#?}");
    env.run(["exec", "-w", "/", "done", "true"]).fails_with("not running");
}

#[test]
fn volumes_read_write_and_read_only() {
    let env = Env::with_busybox();
    let rw = env.path().join("vol-rw");
    let ro = env.path().join("vol-ro");
    fs::create_dir_all(&rw).unwrap();
    fs::create_dir_all(&ro).unwrap();
    fs::write(ro.join("host-file"), "from host\n").unwrap();
    let v_rw = format!("{}:/mnt/rw", rw.display());
    let v_ro = format!("{}:/mnt/ro:ro", ro.display());
    let script = "echo written > /mnt/rw/ctr-file; cat /mnt/ro/host-file; \
                  touch /mnt/ro/x 2>/dev/null && echo ro-writable || echo ro-refused";
    assert_eq!(
        run_rm(&env, &["-v", &v_rw, "-v", &v_ro, "busybox", "sh", "-c", script]),
        "from host\nro-refused\n"
    );
    assert_eq!(fs::read_to_string(rw.join("ctr-file")).unwrap(), "written\n");
    assert!(!ro.join("x").exists());
    // a missing host directory is created, as docker does
    let fresh = env.path().join("vol-new/deeper");
    assert_eq!(
        run_rm(
            &env,
            &[
                "-v",
                &format!("{}:/data", fresh.display()),
                "busybox",
                "sh",
                "-c",
                "touch /data/f && echo ok"
            ]
        ),
        "ok\n"
    );
    assert!(fresh.join("f").exists());
    // bad specs are refused before anything is made
    // (a relative name is a named volume, as in docker: this one is not a valid name)
    run(&env, &["--rm", "-v", "rel@tive:/x", "busybox", "true"]).fails_with("rel@tive:/x");
    run(
        &env,
        &["--rm", "-v", &format!("{}:/x:rx", rw.display()), "busybox", "true"],
    )
    .fails_with(":/x:rx");

    // inspect shows the mounts
    let id = run_d(
        &env,
        &["--name", "vols", "-v", &v_rw, "-v", &v_ro, "busybox", "sleep", "30"],
    );
    let i = inspect(&env, "vols");
    let mounts = i["Mounts"].as_array().expect("Mounts is an array").clone();
    assert_eq!(mounts.len(), 2, "{i:#}");
    let field = |m: &Value, names: &[&str]| names.iter().find_map(|n| m.get(*n).cloned()).unwrap_or(Value::Null);
    let find = |dest: &str| {
        mounts
            .iter()
            .find(|m| field(m, &["Destination", "destination"]) == dest)
            .cloned()
            .unwrap_or_else(|| panic!("no mount at {dest}: {i:#}"))
    };
    let m_rw = find("/mnt/rw");
    let m_ro = find("/mnt/ro");
    assert_eq!(field(&m_rw, &["Source", "source"]), rw.to_str().unwrap());
    assert_eq!(field(&m_ro, &["Source", "source"]), ro.to_str().unwrap());
    // docker says RW: true/false; minirun may say read_only
    let read_only = |m: &Value| match (m.get("RW"), m.get("read_only")) {
        (Some(rw), _) => !rw.as_bool().unwrap(),
        (None, Some(r)) => r.as_bool().unwrap(),
        _ => panic!("mount without RW / read_only: {m}"),
    };
    assert!(!read_only(&m_rw) && read_only(&m_ro), "{i:#}");
    env.run(["rm", "-f", "vols"]).ok();
    assert_gone(&env, &id);
    // the volume's content survives the container
    assert!(rw.join("ctr-file").exists() && ro.join("host-file").exists());

    assert_no_containers(&env);
}

#[test]
fn kernel_filesystems_capabilities_and_masked_paths_are_dockers() {
    let env = Env::with_busybox();
    let script = "awk '{for (i = 7; i < NF; i++) if ($i == \"-\") {print $5, $(i+1); break}}' /proc/self/mountinfo; echo --; grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb)' /proc/self/status; \
                  echo --; wc -c < /proc/keys; wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; \
                  echo x > /proc/sys/kernel/hostname 2>/dev/null && echo procsys-writable || echo procsys-ro";
    let out = run_rm(&env, &["busybox", "sh", "-c", script]);
    let mut parts = out.split("--\n");
    let mounts: Vec<(String, String)> = parts
        .next()
        .unwrap()
        .lines()
        .map(|l| {
            let (a, b) = l.split_once(' ').unwrap();
            (a.to_string(), b.to_string())
        })
        .collect();
    for (point, fstype) in [
        ("/", "overlay"),
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/sys", "sysfs"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
    ] {
        assert!(
            mounts.iter().any(|(p, t)| p == point && t == fstype),
            "{point} ({fstype}) not mounted: {mounts:?}"
        );
    }
    // /etc/hosts, /etc/hostname, /etc/resolv.conf are the container's own
    for f in ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"] {
        assert!(mounts.iter().any(|(p, _)| p == f), "{f} not mounted: {mounts:?}");
    }
    let caps: Vec<&str> = parts.next().unwrap().lines().collect();
    assert_eq!(
        caps,
        [
            "CapInh:\t0000000000000000".to_string(),
            format!("CapPrm:\t{DOCKER_CAPS}"),
            format!("CapEff:\t{DOCKER_CAPS}"),
            format!("CapBnd:\t{DOCKER_CAPS}"),
            "CapAmb:\t0000000000000000".to_string(),
        ]
    );
    // masked: /proc/keys and /proc/timer_list read as /dev/null, /sys/firmware is empty;
    // /proc/sys is read-only
    assert_eq!(parts.next().unwrap(), "0\n0\n0\nprocsys-ro\n", "{out}");
    // (the host does have content there, so the masks are what made them empty)
    assert!(fs::read_to_string("/proc/timer_list")
        .map(|s| !s.is_empty())
        .unwrap_or(false));
    // /proc/kcore is masked where the kernel has one
    if Path::new("/proc/kcore").exists() {
        assert_eq!(run_rm(&env, &["busybox", "sh", "-c", "wc -c < /proc/kcore"]), "0\n");
    }
    // the container's own loopback, and nothing else, with --net none
    let out = run_rm(
        &env,
        &[
            "busybox",
            "sh",
            "-c",
            "ls /sys/class/net | sort | tr '\\n' ' '; ip -o link show lo | grep -c UP",
        ],
    );
    assert_eq!(out, "lo 1\n");
}

// ---------------------------------------------------------------------------
// concurrency
// ---------------------------------------------------------------------------

#[test]
fn ten_parallel_runs_of_the_same_image() {
    let env = Env::with_busybox();
    let results: Vec<Run> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let env = &env;
                s.spawn(move || {
                    env.run([
                        "run",
                        "--rm",
                        "--net",
                        "none",
                        "busybox",
                        "sh",
                        "-c",
                        &format!("echo run-{i}"),
                    ])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, format!("run-{i}\n").as_str()),
            "run {i}: {r:#?}"
        );
    }
    assert_no_containers(&env);

    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..10)
            .map(|_| s.spawn(|| run(&env, &["-d", "busybox", "sleep", "60"])))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().ok().stdout.trim().to_string())
            .collect()
    });
    let distinct: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 10, "{ids:?}");
    assert!(ids.iter().all(|id| is_hex64(id)), "{ids:?}");
    let q = env.run(["ps", "-q"]).ok().stdout;
    let listed: BTreeSet<&str> = q.lines().collect();
    let want: BTreeSet<&str> = ids.iter().map(|id| &id[..12]).collect();
    assert_eq!(listed, want, "ps -q");
    let names: BTreeSet<String> = ids
        .iter()
        .map(|id| meta(&env, id)["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 10, "generated names collide: {names:?}");
    for id in &ids {
        let i = inspect(&env, id);
        assert_eq!(i["State"]["Status"], "running", "{i:#}");
        assert!(alive(i["State"]["Pid"].as_i64().unwrap()));
    }
    // all removed in one call
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    env.run(&args).ok();
    assert_no_containers(&env);
}

// ---------------------------------------------------------------------------
// the monitor
// ---------------------------------------------------------------------------

/// The monitor of a detached container: its pid from meta.json, checked to
/// be a minirun process that outlived the CLI (its parent is init or a
/// subreaper, not us).
fn monitor_of(env: &Env, id: &str) -> i64 {
    let m = meta(env, id);
    let pid = m["monitor_pid"]
        .as_i64()
        .unwrap_or_else(|| panic!("no monitor_pid in {m:#}"));
    let cmdline = fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&str> = cmdline.split('\0').collect();
    assert!(
        argv[0].ends_with("minirun") && argv.contains(&"-d") && argv.contains(&"run"),
        "monitor {pid} runs {argv:?}"
    );
    let parent = ppid(pid).unwrap();
    assert_ne!(parent, std::process::id() as i64, "the monitor is still our child");
    pid
}

/// Every child of `pid` (of all its threads), live or zombie.
fn children(pid: i64) -> BTreeSet<i64> {
    let mut all = BTreeSet::new();
    for task in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let list = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        all.extend(list.split_whitespace().map(|c| c.parse::<i64>().unwrap()));
    }
    all
}

#[test]
fn the_monitor_keeps_no_child_but_the_container() {
    // The monitor forks a cgroup warm-up child at the container's create
    // (oci/warmup.rs); one still waiting when the create ends must not stay
    // a zombie for the container's life.
    let env = Env::with_busybox();
    let id = run_d(&env, &["--name", "lonely", "busybox", "sleep", "300"]);
    let monitor = monitor_of(&env, &id);
    let pid = meta(&env, &id)["pid"].as_i64().unwrap();
    let only_the_container = BTreeSet::from([pid]);
    wait_until("the monitor to have only the container as child", 10 * SECOND, || {
        children(monitor) == only_the_container
    });
    env.run(["rm", "-f", "lonely"]).ok();
    assert_no_containers(&env);
}

#[test]
fn killing_the_monitor_leaves_the_container_manageable() {
    let env = Env::with_busybox();
    let id = run_d(&env, &["--name", "orphan", "busybox", "sleep", "300"]);
    let monitor = monitor_of(&env, &id);
    let pid = meta(&env, &id)["pid"].as_i64().unwrap();
    assert!(alive(pid));
    kill(monitor, libc::SIGKILL);
    wait_until("the monitor to die", 10 * SECOND, || !alive(monitor));
    std::thread::sleep(Duration::from_millis(200));
    // the container keeps running and is still listed and usable
    assert!(alive(pid), "the container died with its monitor");
    let rows = ps_rows(&env, false, "orphan");
    assert!(rows.len() == 1 && rows[0].contains("Up"), "{rows:?}");
    assert_eq!(inspect(&env, "orphan")["State"]["Running"], true);
    assert_eq!(env.run(["exec", "orphan", "echo", "alive"]).ok().stdout, "alive\n");
    // rm without -f is still refused; rm -f cleans everything
    env.run(["rm", "orphan"]).fails_with("orphan");
    env.run(["rm", "-f", "orphan"]).ok();
    wait_until("the container process to end", 10 * SECOND, || !alive(pid));
    assert_gone(&env, &id);
    assert_no_containers(&env);
}

#[test]
fn a_container_that_exits_after_its_monitor_died_shows_exit_255() {
    // Nobody waits for it any more, so its real exit status is lost; like
    // docker (which reports 255 when the shim is gone), minirun says 255.
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &[
            "--name",
            "late",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 5' TERM; while true; do sleep 0.1; done",
        ],
    );
    let monitor = monitor_of(&env, &id);
    let pid = meta(&env, &id)["pid"].as_i64().unwrap();
    kill(monitor, libc::SIGKILL);
    wait_until("the monitor to die", 10 * SECOND, || !alive(monitor));
    assert!(alive(pid));
    // signalled from here: an `exec`'d trigger could itself be killed (137)
    // when PID 1 exits right after it made its mark
    kill(pid, libc::SIGTERM);
    wait_until("late to exit", 20 * SECOND, || !alive(pid));
    wait_until("ps -a to show Exited (255)", 10 * SECOND, || {
        ps_rows(&env, true, "late").iter().any(|r| r.contains("Exited (255)"))
    });
    assert_eq!(
        ps_rows(&env, false, "late"),
        Vec::<String>::new(),
        "ps lists an exited container"
    );
    let i = inspect(&env, "late");
    assert_eq!(i["State"]["Status"], "exited", "{i:#}");
    assert_eq!(i["State"]["ExitCode"], 255, "{i:#}");
    // gc tears down what the monitor would have: state, mounts, netns
    env.run(["gc"]).ok();
    assert!(!env.root.join(&id).exists(), "gc left libcontainer's state");
    assert_eq!(env.container_mounts(), Vec::<String>::new(), "gc left mounts");
    assert!(!netns_path(&env.root, &id).exists(), "gc left the netns file");
    // the container itself stays (it was not --rm), still exited with 255
    let i = inspect(&env, "late");
    assert_eq!(
        (i["State"]["Status"].as_str(), i["State"]["ExitCode"].as_i64()),
        (Some("exited"), Some(255)),
        "{i:#}"
    );
    env.run(["rm", "late"]).ok();
    assert_gone(&env, &id);

    // a --rm container whose monitor died: gc removes it entirely once it ends
    let id = run_d(
        &env,
        &[
            "--rm",
            "--name",
            "late-rm",
            "busybox",
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.1; done",
        ],
    );
    let monitor = monitor_of(&env, &id);
    let pid = meta(&env, &id)["pid"].as_i64().unwrap();
    kill(monitor, libc::SIGKILL);
    wait_until("the monitor to die", 10 * SECOND, || !alive(monitor));
    env.run(["exec", "late-rm", "touch", "/tmp/go"]).ok();
    wait_until("late-rm to exit", 20 * SECOND, || !alive(pid));
    env.run(["gc"]).ok();
    assert_gone(&env, &id);
    assert_no_containers(&env);
}
