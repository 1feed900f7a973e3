//! Reliability (issue 13): `rm -f` racing starts, killed CLIs and monitors,
//! hooks, oversized environments, exit codes, names in the verbs docker has
//! too, gc of libcontainer state that outlived its container, and a seeded
//! fault-injection loop. Network-touching tests run in their own sandbox.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use minirun_integration::sandbox::*;
use minirun_integration::{cgroup_dirs, Env, Run};
use serde_json::{json, Value};

const SECOND: Duration = Duration::from_secs(1);
/// No minirun command may take longer than this: longer is a hang.
const HANG: Duration = Duration::from_secs(60);

/// Waits for a background minirun, failing the test if it hangs.
#[track_caller]
fn finish(mut p: Pending, what: &str) -> Run {
    let start = Instant::now();
    while p.child.try_wait().unwrap().is_none() {
        if start.elapsed() > HANG {
            let _ = p.child.kill();
            let _ = p.child.wait();
            panic!("{what} hung for {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    p.wait()
}

/// Processes still running that this sandbox's containers started: they
/// carry `MRTAG=<tag>` in their environment (every container of these tests
/// is run with `-e MRTAG=<tag>`), or name the sandbox's directory (minirun
/// itself, monitors, inits that have not exec'd yet).
fn our_processes(sb: &Sandbox) -> Vec<String> {
    let tag = format!("MRTAG={}", sb.tag);
    let mut out: Vec<String> = sb.processes().into_iter().map(|p| format!("{p:?}")).collect();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<i32>().is_err() {
            continue;
        }
        let Ok(environ) = fs::read(e.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == tag.as_bytes()) {
            let state = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // a zombie is gone for every purpose here
            if !state.contains(") Z ") {
                out.push(format!("{} {}", e.file_name().to_string_lossy(), state.trim()));
            }
        }
    }
    out
}

/// Polls until nothing at all is left: containers, names, libcontainer
/// state, network pieces, mounts, processes, cgroups of `ids`.
#[track_caller]
fn assert_all_gone(sb: &Sandbox, ids: &BTreeSet<String>, what: &str) {
    let start = Instant::now();
    loop {
        let left = sb.leftovers();
        let dirs = sb.container_dirs();
        let names = sb.names();
        let state: Vec<String> = sb.env.state_entries().into_iter().filter(|e| e != ".net").collect();
        let mounts = sb.env.container_mounts();
        let procs = our_processes(sb);
        let cgroups: Vec<_> = ids
            .iter()
            .flat_map(|id| cgroup_dirs(&format!("/minirun/{id}")))
            .collect();
        if left.is_empty()
            && dirs.is_empty()
            && names.is_empty()
            && state.is_empty()
            && mounts.is_empty()
            && procs.is_empty()
            && cgroups.is_empty()
        {
            return;
        }
        if start.elapsed() > 10 * SECOND {
            panic!(
                "{what}: left behind\nnetwork: {left:#?}\ncontainers: {dirs:?}\nnames: {names:?}\nstate: {state:?}\n\
                 mounts: {mounts:?}\nprocesses: {procs:#?}\ncgroups: {cgroups:?}\n{}",
                sb.run(["ps", "-a"]).stdout
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn ids_now(sb: &Sandbox, ids: &mut BTreeSet<String>) {
    ids.extend(sb.container_dirs());
}

#[test]
fn rm_force_while_run_d_is_starting_always_wins() {
    let sb = Sandbox::new();
    let tag = format!("MRTAG={}", sb.tag);
    // how long a whole detached start takes here, to aim inside it
    let t = Instant::now();
    let id = sb
        .run(["run", "-d", "--name", "probe", "-e", &tag, "busybox", "sleep", "600"])
        .ok()
        .stdout;
    let whole = t.elapsed();
    sb.run(["rm", "-f", "probe"]).ok();
    let mut ids = BTreeSet::from([id.trim().to_string()]);
    let mut removed_while_starting = 0;
    for i in 0..16u32 {
        let name = format!("r{i}");
        let run = sb.spawn([
            "run", "-d", "--name", &name, "-p", "8080:80", "-e", &tag, "busybox", "sleep", "600",
        ]);
        std::thread::sleep(whole.mul_f64(f64::from(i % 8 + 1) / 8.0));
        ids_now(&sb, &mut ids);
        let rm = finish(sb.spawn(["rm", "-f", &name]), "rm -f");
        let run = finish(run, "run -d");
        if run.code == 0 {
            ids.insert(run.stdout.trim().to_string());
        }
        if rm.code != 0 {
            // too early: the name was not there yet; then the run must have won
            assert!(rm.stderr.contains(&format!("\"{name}\" does not exist")), "{rm:#?}");
            assert_eq!(run.code, 0, "{run:#?}");
            finish(sb.spawn(["rm", "-f", &name]), "rm -f").ok();
        } else if run.code != 0 {
            removed_while_starting += 1;
            assert!(run.stderr.contains("removed while it was being started"), "{run:#?}");
        }
        assert!(
            !sb.run(["ps", "-a"]).stdout.contains(&name),
            "{name} still listed after rm -f"
        );
        // the port is free again: the next round publishes it once more
        assert!(sb.published_elements().is_empty(), "{:?}", sb.published_elements());
    }
    assert_all_gone(&sb, &ids, "rm -f racing run -d");
    eprintln!("{removed_while_starting} of 16 removed while starting");
}

#[test]
fn rm_force_right_after_a_killed_run_d() {
    let sb = Sandbox::new();
    let tag = format!("MRTAG={}", sb.tag);
    let t = Instant::now();
    sb.run(["run", "-d", "--name", "probe", "-e", &tag, "busybox", "sleep", "600"])
        .ok();
    let whole = t.elapsed();
    sb.run(["rm", "-f", "probe"]).ok();
    let mut ids = BTreeSet::new();
    for i in 0..12u32 {
        let name = format!("k{i}");
        let run = sb.spawn(["run", "-d", "--name", &name, "-e", &tag, "busybox", "sleep", "600"]);
        std::thread::sleep(whole.mul_f64(f64::from(i % 6 + 1) / 6.0));
        ids_now(&sb, &mut ids);
        // SAFETY: kill(2) of the minirun this test spawned.
        unsafe { libc::kill(run.pid(), libc::SIGKILL) };
        let _ = finish(run, "run -d");
        let rm = finish(sb.spawn(["rm", "-f", &name]), "rm -f");
        assert!(
            rm.code == 0 || rm.stderr.contains(&format!("\"{name}\" does not exist")),
            "rm -f after a killed run -d: {rm:#?}"
        );
        assert!(!rm.stderr.contains("cannot open"), "{rm:#?}");
    }
    finish(sb.spawn(["gc"]), "gc").ok();
    assert_all_gone(&sb, &ids, "rm -f after killed run -d, then gc");
}

#[test]
fn rm_force_ends_a_paused_container_and_one_whose_monitor_is_stuck() {
    let sb = Sandbox::new();
    let tag = format!("MRTAG={}", sb.tag);
    let mut ids = BTreeSet::new();
    let id = sb
        .run(["run", "-d", "--name", "p", "-e", &tag, "busybox", "sleep", "600"])
        .ok()
        .stdout;
    ids.insert(id.trim().to_string());
    sb.run(["pause", "p"]).ok();
    finish(sb.spawn(["rm", "-f", "p"]), "rm -f of a paused container").ok();

    // a monitor that never lets go (stopped with SIGSTOP): rm -f takes over
    let id = sb
        .run(["run", "-d", "--name", "s", "-e", &tag, "busybox", "sleep", "600"])
        .ok()
        .stdout;
    let id = id.trim().to_string();
    ids.insert(id.clone());
    let monitor = sb.meta(&id)["monitor_pid"].as_i64().unwrap() as i32;
    // SAFETY: kill(2) of the monitor this test started.
    unsafe { libc::kill(monitor, libc::SIGSTOP) };
    let t = Instant::now();
    finish(sb.spawn(["rm", "-f", "s"]), "rm -f with a stuck monitor").ok();
    assert!(t.elapsed() < 30 * SECOND, "took {:?}", t.elapsed());
    assert_all_gone(&sb, &ids, "rm -f of paused / stuck containers");
}

#[test]
fn gc_removes_libcontainer_state_that_outlived_its_container() {
    let sb = Sandbox::new();
    let tag = format!("MRTAG={}", sb.tag);
    let id = sb
        .run([
            "run", "-d", "--net", "none", "--name", "o", "-e", &tag, "busybox", "sleep", "600",
        ])
        .ok()
        .stdout;
    let id = id.trim().to_string();
    // keep a copy of its state, remove the container, put the copy back:
    // state of a container that no longer exists
    let state_dir = sb.env.root.join(&id);
    let saved = sb.env.path().join("saved-state");
    copy_dir(&state_dir, &saved);
    sb.run(["rm", "-f", "o"]).ok();
    assert!(!state_dir.exists());
    copy_dir(&saved, &state_dir);
    assert!(sb.env.state_entries().contains(&id));
    // a half-written private bundle copy of a create that was killed
    fs::create_dir_all(sb.env.root.join(".spec-deadbeef-Xy12Ab")).unwrap();
    // a runc container stays until `delete`, as with runc
    let b = sb.env.bundle("keep", &["true"], |_| {});
    sb.run(["create", "--bundle", b.to_str().unwrap(), "keep"]).ok();
    sb.run(["start", "keep"]).ok();
    sb.env.wait_status("keep", "stopped", 10 * SECOND);

    sb.run(["gc"]).ok();
    let entries = sb.env.state_entries();
    assert!(!entries.contains(&id), "{entries:?}");
    assert!(!entries.iter().any(|e| e.starts_with(".spec-")), "{entries:?}");
    assert!(entries.contains(&"keep".to_string()), "{entries:?}");
    sb.run(["delete", "keep"]).ok();
    assert_all_gone(&sb, &BTreeSet::from([id]), "gc of outlived state");
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let dest = to.join(e.file_name());
        let kind = e.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&e.path(), &dest);
        } else if kind.is_file() {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

#[test]
fn ps_never_shows_an_exit_code_the_container_did_not_have() {
    let sb = Sandbox::new();
    for i in 0..10 {
        let name = format!("e{i}");
        sb.run([
            "run",
            "-d",
            "--net",
            "none",
            "--name",
            &name,
            "busybox",
            "sh",
            "-c",
            "echo hi; exit 3",
        ])
        .ok();
        let logs = finish(sb.spawn(["logs", "-f", &name]), "logs -f").ok();
        assert_eq!(logs.stdout, "hi\n");
        let ps = sb.run(["ps", "-a"]).ok().stdout;
        let row = ps
            .lines()
            .find(|l| l.ends_with(&name))
            .unwrap_or_else(|| panic!("{ps}"));
        assert!(
            row.contains("Exited (3)") || row.contains("Up"),
            "right after logs -f: {row}"
        );
        let start = Instant::now();
        while !sb.run(["ps", "-a"]).ok().stdout.contains("Exited (3)") {
            assert!(start.elapsed() < 10 * SECOND, "the exit code 3 was never recorded");
            std::thread::sleep(Duration::from_millis(20));
        }
        sb.run(["rm", &name]).ok();
    }
    assert_all_gone(&sb, &BTreeSet::new(), "exited containers removed");
}

#[test]
fn hooks_get_the_bundle_and_may_leave_their_stdin_unread() {
    let env = Env::new();
    let out = env.path().join("hook-out");
    fs::create_dir_all(&out).unwrap();
    let script = env.path().join("hook.sh");
    fs::write(&script, "#!/bin/sh\ncat > \"$1\"\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    let hook = |kind: &str| json!({"path": script, "args": ["hook.sh", out.join(format!("{kind}.json"))]});
    let b = env.bundle("hooked", &["true"], |c| {
        c["hooks"] = json!({
            // exits at once without reading a state bigger than a pipe holds
            "prestart": [{"path": "/bin/true"}, hook("prestart")],
            "createRuntime": [hook("createRuntime")],
            "poststart": [hook("poststart")],
            "poststop": [{"path": "/bin/true"}, hook("poststop")],
        });
        c["annotations"] = json!({"big": "x".repeat(200_000)});
    });
    let bundle = b.canonicalize().unwrap();
    env.run(["create", "--bundle", b.to_str().unwrap(), "h"]).ok();
    env.run(["start", "h"]).ok();
    env.wait_status("h", "stopped", 10 * SECOND);
    env.run(["delete", "h"]).ok();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        let state: Value = serde_json::from_slice(&fs::read(out.join(format!("{kind}.json"))).unwrap()).unwrap();
        assert_eq!(state["bundle"], bundle.to_str().unwrap(), "{kind}");
        assert_eq!(state["id"], "h", "{kind}");
    }
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

/// minirun ignores SIGPIPE while it changes state (a closed pipe is an error
/// there, not a death halfway); the processes it starts must not inherit
/// that, or `yes | head` in a container would never end.
#[test]
fn container_processes_start_with_the_default_sigpipe() {
    let env = Env::with_busybox();
    let sigpipe_ignored = |r: &Run| -> bool {
        let mask = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .unwrap_or_else(|| panic!("no SigIgn line: {r:#?}"));
        u64::from_str_radix(mask.trim(), 16).unwrap() & (1 << (libc::SIGPIPE - 1)) != 0
    };
    let status = ["grep", "SigIgn", "/proc/self/status"];
    let mut args = vec!["run", "--rm", "--net", "none", "busybox"];
    args.extend(status);
    let r = env.run(&args).ok();
    assert!(!sigpipe_ignored(&r), "image run: {r:#?}");

    env.run(["run", "-d", "--net", "none", "--name", "s", "busybox", "sleep", "60"])
        .ok();
    let mut args = vec!["exec", "s"];
    args.extend(status);
    let r = env.run(&args).ok();
    assert!(!sigpipe_ignored(&r), "exec: {r:#?}");
    env.run(["rm", "-f", "s"]).ok();

    let b = env.bundle("sigpipe", &status, |_| {});
    let r = env.run(["run", "--bundle", b.to_str().unwrap(), "sigpipe"]).ok();
    assert!(!sigpipe_ignored(&r), "bundle run: {r:#?}");
    env.run(["delete", "sigpipe"]);
    env.assert_nothing_left();
}

#[test]
fn an_oversized_environment_is_refused_by_name_and_leaves_nothing() {
    let sb = Sandbox::new();
    let env_file = sb.env.path().join("big.env");
    fs::write(&env_file, format!("SMALL=1\nHUGE={}\n", "a".repeat(200_000))).unwrap();
    let r = sb.run([
        "run",
        "--rm",
        "--env-file",
        env_file.to_str().unwrap(),
        "busybox",
        "true",
    ]);
    assert_eq!(r.code, 125, "{r:#?}");
    let r = r.fails_with("\"HUGE\" is 200005 bytes long");
    assert!(r.stderr.starts_with("minirun: error: "), "{r:#?}");
    let r = sb.run([
        "run",
        "-d",
        "--name",
        "big",
        "--env-file",
        env_file.to_str().unwrap(),
        "busybox",
        "true",
    ]);
    r.fails_with("\"HUGE\"");
    assert_all_gone(&sb, &BTreeSet::new(), "oversized environment");
}

#[test]
fn exit_codes_and_error_lines_are_dockers() {
    let sb = Sandbox::new();
    let r = sb.run(["run", "--rm", "--net", "none", "busybox", "nosuchcmd"]);
    assert_eq!(r.code, 127, "{r:#?}");
    let r = r.fails_with("\"nosuchcmd\": executable file not found");
    assert!(r.stderr.starts_with("minirun: error: "), "{r:#?}");
    let r = sb.run(["run", "--rm", "--net", "none", "busybox", "/etc/passwd"]);
    assert_eq!(r.code, 126, "{r:#?}");
    let r = sb.run(["run", "--rm", "--net", "none", "no-such-image"]);
    assert_eq!(r.code, 125, "{r:#?}");
    r.fails_with("no-such-image");
    // a usage error of run is minirun's own too
    let r = sb.run(["run", "--no-such-flag", "busybox", "true"]);
    assert_eq!(r.code, 125, "{r:#?}");
    assert!(r.stderr.contains("--no-such-flag"), "{r:#?}");
    // the container's own code passes through
    assert_eq!(
        sb.run(["run", "--rm", "--net", "none", "busybox", "sh", "-c", "exit 3"])
            .code,
        3
    );
    // other verbs: 1, the name the user gave in the message
    let r = sb.run(["rm", "nosuch"]);
    assert_eq!(r.code, 1);
    assert!(r.fails_with("\"nosuch\"").stderr.starts_with("minirun: error: "));
    sb.run(["run", "-d", "--net", "none", "--name", "web", "busybox", "sleep", "600"])
        .ok();
    let r = sb.run(["exec", "web", "nosuchcmd"]);
    assert_eq!(r.code, 127, "{r:#?}");
    assert!(
        !r.stderr
            .contains(&sb.inspect("web")["Id"].as_str().unwrap().to_string()),
        "{r:#?}"
    );
    // rm of several: every one is tried, the failures reported, exit 1
    sb.run([
        "run", "-d", "--net", "none", "--name", "web2", "busybox", "sleep", "600",
    ])
    .ok();
    let r = sb.run(["rm", "-f", "web", "nosuch", "web2"]);
    assert_eq!((r.code, r.stdout.as_str()), (1, "web\nweb2\n"), "{r:#?}");
    r.fails_with("\"nosuch\" does not exist");
    assert_all_gone(&sb, &BTreeSet::new(), "exit codes");
}

#[test]
fn docker_verbs_take_names_and_prefixes_runc_verbs_exact_ids_first() {
    let sb = Sandbox::new();
    let id = sb
        .run(["run", "-d", "--net", "none", "--name", "web", "busybox", "sleep", "600"])
        .ok()
        .stdout;
    let id = id.trim().to_string();
    sb.run(["pause", "web"]).ok();
    assert_eq!(sb.env.state(&id).unwrap()["status"], "paused");
    sb.run(["unpause", &id[..12]]).ok();
    assert_eq!(sb.env.state(&id).unwrap()["status"], "running");
    let r = sb.run(["unpause", "web"]);
    r.fails_with("\"web\"");
    // a runc container whose id is that name wins for the runc verbs
    let b = sb.env.bundle("web", &["sleep", "600"], |_| {});
    sb.run(["create", "--bundle", b.to_str().unwrap(), "web"]).ok();
    sb.run(["start", "web"]).ok();
    sb.run(["kill", "web", "KILL"]).ok();
    sb.env.wait_status("web", "stopped", 10 * SECOND);
    assert_eq!(
        sb.env.state(&id).unwrap()["status"],
        "running",
        "the image container was hit"
    );
    sb.run(["delete", "web"]).ok();
    // now the name: docker's kill sends KILL, wait prints the code
    let waiting = sb.spawn(["wait", "web"]);
    sb.run(["kill", "web"]).ok();
    let w = finish(waiting, "wait");
    assert_eq!(w.ok().stdout, "137\n");
    sb.run(["kill", "web"]).fails_with("\"web\": it is not running");
    sb.run(["rm", "web"]).ok();
    assert_all_gone(&sb, &BTreeSet::from([id]), "names in the verbs");
}

/// A seeded random mix of runs, kills of the CLI and of monitors, `rm -f`
/// racing starts, stops and gc, bounded in time; afterwards nothing may be
/// left and no command may have hung. MRT_SEED=N repeats a run.
#[test]
fn fault_injection_leaves_nothing_and_nothing_hangs() {
    let sb = Sandbox::new();
    let tag = format!("MRTAG={}", sb.tag);
    let seed = std::env::var("MRT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            now.as_nanos() as u64 ^ u64::from(std::process::id())
        });
    eprintln!("fault injection seed: {seed} (MRT_SEED={seed} repeats it)");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut pending: Vec<(String, Pending)> = Vec::new();
    let mut ids = BTreeSet::new();
    let started = Instant::now();
    let mut actions = 0;
    while actions < 300 && started.elapsed() < 120 * SECOND {
        actions += 1;
        ids_now(&sb, &mut ids);
        let name = format!("f{}", rng.u32(0..12));
        match rng.u32(0..100) {
            0..=29 => {
                let mut args = vec!["run", "-d", "--name", &name, "-e", &tag];
                let port = format!("{}:80", 20000 + rng.u32(0..12));
                match rng.u32(0..3) {
                    0 => args.extend(["--net", "none"]),
                    1 => args.extend(["-p", &port]),
                    _ => {}
                }
                args.extend(["busybox", "sleep", "600"]);
                pending.push((format!("run -d {name}"), sb.spawn(args)));
            }
            30..=39 => {
                let args = ["run", "--rm", "-e", &tag, "busybox", "true"];
                pending.push(("run --rm".into(), sb.spawn(args)));
            }
            40..=54 => {
                // kill -9 of a minirun still working, at a random moment
                if let Some(i) = (!pending.is_empty()).then(|| rng.usize(0..pending.len())) {
                    std::thread::sleep(Duration::from_millis(rng.u64(0..40)));
                    // SAFETY: kill(2) of a minirun this test spawned.
                    unsafe { libc::kill(pending[i].1.pid(), libc::SIGKILL) };
                }
            }
            55..=64 => {
                // kill -9 of a random monitor
                let dirs = sb.container_dirs();
                if let Some(id) = (!dirs.is_empty()).then(|| &dirs[rng.usize(0..dirs.len())]) {
                    let meta = fs::read(sb.env.data_root.join("containers").join(id).join("meta.json"))
                        .ok()
                        .and_then(|m| serde_json::from_slice::<Value>(&m).ok());
                    if let Some(pid) = meta.and_then(|m| m["monitor_pid"].as_i64()) {
                        // SAFETY: kill(2) of a monitor of this sandbox (checked below by cmdline).
                        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                        if String::from_utf8_lossy(&cmd).contains(&*sb.env.path().to_string_lossy()) {
                            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                        }
                    }
                }
            }
            65..=84 => pending.push((format!("rm -f {name}"), sb.spawn(["rm", "-f", &name]))),
            85..=92 => pending.push((format!("stop {name}"), sb.spawn(["stop", "-t", "1", &name]))),
            _ => pending.push(("gc".into(), sb.spawn(["gc"]))),
        }
        // at most 4 at once; the oldest must finish in time
        while pending.len() > 4 {
            let (what, p) = pending.remove(0);
            let _ = finish(p, &what);
        }
        // a short random pause between actions
        std::thread::sleep(Duration::from_millis(rng.u64(0..30)));
    }
    for (what, p) in pending.drain(..) {
        let _ = finish(p, &what);
    }
    ids_now(&sb, &mut ids);
    // the user's clean-up: remove whatever is listed, then gc
    let ps = sb.run(["ps", "-a", "-q"]).ok().stdout;
    for id in ps.split_whitespace() {
        let r = finish(sb.spawn(["rm", "-f", id]), "final rm -f");
        assert!(
            r.code == 0 || r.stderr.contains("does not exist"),
            "seed {seed}: {r:#?}"
        );
    }
    finish(sb.spawn(["gc"]), "final gc").ok();
    assert_all_gone(&sb, &ids, &format!("fault injection, seed {seed}, {actions} actions"));
}
