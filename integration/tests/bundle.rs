//! OCI bundles through the runc-compatible verbs of the real binary.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use minirun_integration::{cgroup_dirs, Env};
use serde_json::{json, Value};

const SECOND: Duration = Duration::from_secs(1);

fn no_edit(_: &mut Value) {}

/// A container id unique to this test process: bundles get the cgroup
/// `/minirun/<id>`, which another suite running at the same time must not share.
fn id(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[test]
fn run_exits_with_the_container_code() {
    let env = Env::new();
    let zero = env.bundle("zero", &["true"], no_edit);
    let r = env.run(["run", "--bundle", zero.to_str().unwrap(), "c0"]);
    assert_eq!(r.code, 0, "{r:?}");
    let seven = env.bundle("seven", &["sh", "-c", "echo out; echo err >&2; exit 7"], no_edit);
    let r = env.run(["run", "--bundle", seven.to_str().unwrap(), "c7"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (7, "out\n", "err\n"));
    // run deletes the container when it ends, as runc does without --keep
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

/// runc takes a relative --root from where it was started; libcontainer
/// enters the bundle directory to create the container, so a relative root
/// used as given would be looked up there.
#[test]
fn relative_roots_are_taken_from_the_working_directory() {
    let env = Env::new();
    let b = env.bundle("rel", &["sleep", "30"], no_edit);
    let rel = |args: &[&str]| {
        let mut c = std::process::Command::new(minirun_integration::minirun_bin());
        c.current_dir(env.path())
            .args(["--root", "run", "--data-root", "data"])
            .args(args);
        env.run_cmd(c, None).ok().stdout
    };
    let c = id("rel");
    rel(&["create", "--bundle", b.to_str().unwrap(), c.as_str()]);
    // the state is where the absolute --root of the same directory finds it
    assert_eq!(
        env.state(&c).expect("not created under the env's root")["status"],
        "created"
    );
    let state: Value = serde_json::from_str(&rel(&["state", c.as_str()])).unwrap();
    assert_eq!(state["status"], "created");
    rel(&["delete", "--force", c.as_str()]);
    assert!(env.state(&c).is_none());
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let env = Env::new();
    let b = env.bundle("sleep", &["sleep", "60"], no_edit);
    let child = env.spawn(&["run", "--bundle", b.to_str().unwrap(), "sig"]);
    env.wait_status("sig", "running", 10 * SECOND);
    env.run(["kill", "sig", "KILL"]).ok();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137), "{out:?}");
}

#[test]
fn run_forwards_signals_and_stdio() {
    let env = Env::new();
    let b = env.bundle(
        "trap",
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 42' TERM; echo ready; while :; do sleep 0.1; done",
        ],
        no_edit,
    );
    let child = env.spawn(&["run", "--bundle", b.to_str().unwrap(), "fwd"]);
    env.wait_status("fwd", "running", 10 * SECOND);
    std::thread::sleep(Duration::from_millis(300)); // let the trap be installed
    nix_kill(child.id() as i32, libc::SIGTERM);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot-term\n");

    let cat = env.bundle("cat", &["cat"], no_edit);
    let r = env.run_with_stdin(&["run", "--bundle", cat.to_str().unwrap(), "cat"], b"through stdin\n");
    assert_eq!((r.code, r.stdout.as_str()), (0, "through stdin\n"), "{r:?}");
}

#[test]
fn process_is_pid_1_with_the_configured_hostname() {
    let env = Env::new();
    let b = env.bundle("ns", &["sh", "-c", "echo $$; hostname"], |c| {
        c["hostname"] = json!("fixture-host");
    });
    let r = env.run(["run", "--bundle", b.to_str().unwrap(), "ns"]).ok();
    assert_eq!(r.stdout, "1\nfixture-host\n");
}

#[test]
fn create_start_state_kill_delete_cycle() {
    let env = Env::new();
    let b = env.bundle("cycle", &["sleep", "60"], no_edit);
    let pid_file = env.path().join("pid");
    // options after the id work too
    env.run([
        "create",
        id("cyc").as_str(),
        "--bundle",
        b.to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
    ])
    .ok();
    let state = env.state(id("cyc").as_str()).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id("cyc").as_str());
    assert_eq!(state["bundle"], b.canonicalize().unwrap().to_str().unwrap());
    let pid: i64 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert_eq!(state["pid"], pid);
    assert!(
        !cgroup_dirs(&format!("/minirun/{}", id("cyc"))).is_empty(),
        "no cgroup /minirun/cyc while created"
    );

    let list = env.run(["list", "--format", "json"]).ok();
    let list: Value = serde_json::from_str(&list.stdout).unwrap();
    assert_eq!(list[0]["id"], id("cyc").as_str());
    assert_eq!(env.run(["list", "-q"]).ok().stdout, format!("{}\n", id("cyc")));

    env.run(["start", id("cyc").as_str()]).ok();
    assert_eq!(env.state(id("cyc").as_str()).unwrap()["status"], "running");
    env.run(["start", id("cyc").as_str()]).fails_with("running");
    env.run(["delete", id("cyc").as_str()]).fails_with("running");

    env.run(["kill", id("cyc").as_str(), "9"]).ok();
    let state = env.wait_status(id("cyc").as_str(), "stopped", 10 * SECOND);
    assert_eq!(state["pid"], 0);

    env.run(["delete", id("cyc").as_str()]).ok();
    assert!(env.state(id("cyc").as_str()).is_none());
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
    assert!(
        cgroup_dirs(&format!("/minirun/{}", id("cyc"))).is_empty(),
        "cgroup left: {:?}",
        cgroup_dirs(&format!("/minirun/{}", id("cyc")))
    );
}

#[test]
fn kill_by_name_and_delete_force() {
    let env = Env::new();
    let b = env.bundle(
        "term",
        &["sh", "-c", "trap 'exit 3' TERM; while :; do sleep 0.1; done"],
        no_edit,
    );
    env.run(["create", "--bundle", b.to_str().unwrap(), "t"]).ok();
    env.run(["start", "t"]).ok();
    std::thread::sleep(Duration::from_millis(300));
    env.run(["kill", "t", "SIGTERM"]).ok();
    env.wait_status("t", "stopped", 10 * SECOND);
    env.run(["delete", "t"]).ok();

    let b = env.bundle("forever", &["sleep", "60"], no_edit);
    env.run(["create", "--bundle", b.to_str().unwrap(), id("f").as_str()])
        .ok();
    env.run(["start", id("f").as_str()]).ok();
    env.run(["delete", "--force", id("f").as_str()]).ok();
    assert!(env.state(id("f").as_str()).is_none());
    assert!(cgroup_dirs(&format!("/minirun/{}", id("f"))).is_empty());
}

#[test]
fn seccomp_profile_blocks_mkdir() {
    let env = Env::new();
    let b = env.bundle(
        "seccomp",
        &["sh", "-c", "mkdir /tmp/blocked && echo created || echo denied"],
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
            });
        },
    );
    let r = env.run(["run", "--bundle", b.to_str().unwrap(), "sc"]).ok();
    assert_eq!(r.stdout, "denied\n", "{r:?}");
    // and without the profile the same command succeeds
    let b = env.bundle(
        "noseccomp",
        &["sh", "-c", "mkdir /tmp/blocked && echo created || echo denied"],
        no_edit,
    );
    let r = env.run(["run", "--bundle", b.to_str().unwrap(), "nsc"]).ok();
    assert_eq!(r.stdout, "created\n", "{r:?}");
}

#[test]
fn console_socket_receives_the_terminal() {
    let env = Env::new();
    let b = env.bundle("tty", &["sh", "-c", "tty; echo on-the-tty"], |c| {
        c["process"]["terminal"] = json!(true);
    });
    let sock_path = env.path().join("console.sock");
    let listener = UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        recv_fd(stream.as_raw_fd())
    });
    env.run([
        "create",
        "--bundle",
        b.to_str().unwrap(),
        "--console-socket",
        sock_path.to_str().unwrap(),
        "tty",
    ])
    .ok();
    let master = receiver.join().unwrap();
    env.run(["start", "tty"]).ok();
    let mut out = String::new();
    let mut file = fs::File::from(master);
    let mut buf = [0u8; 256];
    // read until the container's output is complete (EIO once the slave closes)
    while !out.contains("on-the-tty") {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(out.contains("/dev/pts/") || out.contains("/dev/console"), "{out:?}");
    assert!(out.contains("on-the-tty"), "{out:?}");
    env.wait_status("tty", "stopped", 10 * SECOND);
    env.run(["delete", "tty"]).ok();
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let env = Env::new();
    let good = env.bundle("good", &["sleep", "60"], no_edit);
    let good = good.to_str().unwrap();

    env.run(["create", "--bundle", "/nonexistent/bundle", "a"])
        .fails_with("/nonexistent/bundle");

    let unreadable = env.path().join("unreadable");
    fs::create_dir_all(unreadable.join("config.json")).unwrap(); // a directory is not readable as a file
    env.run(["create", "--bundle", unreadable.to_str().unwrap(), "b"])
        .fails_with("config.json");

    let invalid = env.bundle("invalid", &["true"], |c| c["process"]["user"]["uid"] = json!("root"));
    env.run(["create", "--bundle", invalid.to_str().unwrap(), "c"])
        .fails_with("process.user.uid");
    let no_args = env.bundle("noargs", &["true"], |c| c["process"]["args"] = json!([]));
    env.run(["run", "--bundle", no_args.to_str().unwrap(), "d"])
        .fails_with("process.args");
    let no_rootfs = env.bundle("norootfs", &["true"], |c| c["root"]["path"] = json!("missing"));
    env.run(["create", "--bundle", no_rootfs.to_str().unwrap(), "e"])
        .fails_with("root.path");

    env.run(["create", "--bundle", good, "bad/id"]).fails_with("bad/id");

    for verb in ["start", "state", "delete"] {
        env.run([verb, "ghost"]).fails_with("\"ghost\" does not exist");
    }
    env.run(["kill", "ghost", "TERM"])
        .fails_with("\"ghost\" does not exist");

    for id in ["a", "b", "c", "d", "e", "bad/id"] {
        assert!(cgroup_dirs(&format!("/minirun/{id}")).is_empty(), "cgroup of {id} left");
    }
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());

    env.run(["create", "--bundle", good, id("dup").as_str()]).ok();
    env.run(["create", "--bundle", good, id("dup").as_str()])
        .fails_with(&format!("\"{}\" already exists", id("dup")));
    assert_eq!(
        env.state(id("dup").as_str()).unwrap()["status"],
        "created",
        "the first dup must survive"
    );
    env.run(["kill", id("dup").as_str(), "NOSUCHSIG"])
        .fails_with("\"NOSUCHSIG\"");
    env.run(["kill", id("dup").as_str(), "99"]).fails_with("\"99\"");
    env.run(["delete", "--force", id("dup").as_str()]).ok();
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
    assert!(cgroup_dirs(&format!("/minirun/{}", id("dup"))).is_empty());
}

fn nix_kill(pid: i32, sig: i32) {
    // SAFETY: plain kill(2).
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

/// Receives one file descriptor sent with SCM_RIGHTS on `sock`.
fn recv_fd(sock: i32) -> OwnedFd {
    let mut data = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut cmsg = [0u8; 64];
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = cmsg.len();
    // SAFETY: msg points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock, &mut msg, 0) };
    assert!(n >= 0, "recvmsg failed");
    // SAFETY: the kernel filled the control buffer; walk it with the libc macros.
    unsafe {
        let hdr = libc::CMSG_FIRSTHDR(&msg);
        assert!(!hdr.is_null(), "no fd received");
        assert_eq!((*hdr).cmsg_type, libc::SCM_RIGHTS);
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(hdr) as *const i32);
        OwnedFd::from_raw_fd(fd)
    }
}

/// CVE-2019-5736: while a container runs, the minirun process it could reach
/// must execute from a read-only mount, so its binary cannot be rewritten
/// through /proc/<pid>/exe.
#[test]
fn the_running_runtime_binary_is_read_only() {
    let env = Env::new();
    let b = env.bundle("sleeper", &["sleep", "30"], no_edit);
    let mut child = env.spawn(&["run", "--bundle", b.to_str().unwrap(), "sealed"]);
    env.wait_status("sealed", "running", 10 * SECOND);
    let exe = std::ffi::CString::new(format!("/proc/{}/exe", child.id())).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    let rc = unsafe { libc::statvfs(exe.as_ptr(), &mut st) };
    assert_eq!(rc, 0);
    let readonly = st.f_flag & libc::ST_RDONLY != 0;
    env.run(["kill", "sealed", "KILL"]).ok();
    child.wait().unwrap();
    assert!(readonly, "minirun runs from a writable mount");
    // the binary on disk stays writable for the admin: it is the mount that is read-only
    let on_disk = fs::metadata(minirun_integration::minirun_bin()).unwrap();
    assert!(!on_disk.permissions().readonly());
}

/// What engines call besides the lifecycle: exec with a process.json (also
/// detached with a pid file), ps ID and features.
#[test]
fn exec_process_file_ps_and_features() {
    let env = Env::new();
    let b = env.bundle("exec", &["sleep", "60"], no_edit);
    env.run(["create", "--bundle", b.to_str().unwrap(), id("ex").as_str()])
        .ok();
    env.run(["start", id("ex").as_str()]).ok();
    let process = env.path().join("process.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo in-$FROM_PROCESS_FILE; exit 5"],
            "env": ["PATH=/bin:/usr/bin", "FROM_PROCESS_FILE=yes"],
            "cwd": "/"
        }))
        .unwrap(),
    )
    .unwrap();
    let r = env.run(["exec", "--process", process.to_str().unwrap(), id("ex").as_str()]);
    assert_eq!((r.code, r.stdout.as_str()), (5, "in-yes\n"), "{r:?}");

    // docker-style exec of a bundle container, by command
    let r = env.run(["exec", id("ex").as_str(), "sh", "-c", "echo $$"]).ok();
    assert_ne!(r.stdout.trim(), "1", "exec must not be the container's init");

    // detached exec writes the pid, and ps lists it with init
    let pid_file = env.path().join("exec.pid");
    env.run([
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        id("ex").as_str(),
        "sleep",
        "30",
    ])
    .ok();
    let exec_pid: i64 = fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let init_pid = env.state(id("ex").as_str()).unwrap()["pid"].as_i64().unwrap();
    let ps: Vec<i64> =
        serde_json::from_str(&env.run(["ps", "--format", "json", id("ex").as_str()]).ok().stdout).unwrap();
    assert!(
        ps.contains(&init_pid) && ps.contains(&exec_pid),
        "ps {ps:?} lacks {init_pid} or {exec_pid}"
    );

    let features: Value = serde_json::from_str(&env.run(["features"]).ok().stdout).unwrap();
    assert_eq!(features["linux"]["seccomp"]["enabled"], true);
    assert!(features["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("network")));

    env.run(["exec", "ghost", "true"]).fails_with("\"ghost\"");
    env.run(["delete", "--force", id("ex").as_str()]).ok();
    assert!(cgroup_dirs(&format!("/minirun/{}", id("ex"))).is_empty());
}

/// The runc verbs engines call besides the lifecycle: pause/resume,
/// update --resources, kill of created and stopped containers, delete
/// --force of an unknown id, and errors as JSON lines in the log file.
#[test]
fn pause_resume_update_and_engine_errors() {
    let env = Env::new();
    let b = env.bundle("engine", &["sleep", "60"], no_edit);
    env.run(["create", "--bundle", b.to_str().unwrap(), id("eng").as_str()])
        .ok();
    // a signal the process survives leaves a created container created
    env.run(["kill", id("eng").as_str(), "28"]).ok(); // SIGWINCH
    assert_eq!(env.state(id("eng").as_str()).unwrap()["status"], "created");
    env.run(["pause", id("eng").as_str()])
        .fails_with("container not running");
    env.run(["start", id("eng").as_str()]).ok();

    env.run(["pause", id("eng").as_str()]).ok();
    assert_eq!(env.state(id("eng").as_str()).unwrap()["status"], "paused");
    if let Some(freezer) = cgroup_dirs(&format!("/minirun/{}", id("eng")))
        .into_iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/freezer"))
    {
        assert_eq!(
            fs::read_to_string(freezer.join("freezer.state")).unwrap().trim(),
            "FROZEN"
        );
    }
    env.run(["kill", id("eng").as_str(), "WINCH"]).ok();
    assert_eq!(env.state(id("eng").as_str()).unwrap()["status"], "paused");
    env.run(["resume", id("eng").as_str()]).ok();
    assert_eq!(env.state(id("eng").as_str()).unwrap()["status"], "running");
    env.run(["resume", id("eng").as_str()])
        .fails_with("container not paused");

    // update from a file (podman) and from stdin (containerd's shim)
    let resources = env.path().join("resources.json");
    fs::write(&resources, r#"{"pids": {"limit": 42}}"#).unwrap();
    env.run([
        "update",
        &format!("--resources={}", resources.display()),
        id("eng").as_str(),
    ])
    .ok();
    let pids_max = |want: &str| {
        for d in cgroup_dirs(&format!("/minirun/{}", id("eng"))) {
            if d.join("pids.max").exists() {
                assert_eq!(
                    fs::read_to_string(d.join("pids.max")).unwrap().trim(),
                    want,
                    "{}",
                    d.display()
                );
            }
        }
    };
    pids_max("42");
    env.run_with_stdin(
        &["update", "--resources", "-", id("eng").as_str()],
        br#"{"pids": {"limit": 43}}"#,
    )
    .ok();
    pids_max("43");
    env.run_with_stdin(&["update", "--resources", "-", id("eng").as_str()], b"{not json")
        .fails_with("invalid resources JSON");

    // exec --preserve-fds: descriptor 3 of the caller reaches the process
    let process = env.path().join("fd3.json");
    fs::write(
        &process,
        serde_json::to_vec(&json!({
            "user": {"uid": 0, "gid": 0},
            "args": ["sh", "-c", "echo through-fd3 >&3"],
            "env": ["PATH=/bin"],
            "cwd": "/"
        }))
        .unwrap(),
    )
    .unwrap();
    let out = env.path().join("fd3.out");
    let fd3 = fs::File::create(&out).unwrap();
    let mut exec = env.cmd([
        "exec",
        "--preserve-fds",
        "1",
        "--process",
        process.to_str().unwrap(),
        id("eng").as_str(),
    ]);
    {
        use std::os::unix::process::CommandExt;
        let raw = fd3.as_raw_fd();
        // SAFETY: dup2 and fcntl are async-signal-safe; fd3 stays open in
        // the parent. dup2 onto itself keeps close-on-exec, so clear it.
        unsafe {
            exec.pre_exec(move || {
                if raw != 3 && libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let status = exec.stdin(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "exec --preserve-fds failed: {status}");
    assert_eq!(fs::read_to_string(&out).unwrap(), "through-fd3\n");

    env.run(["kill", id("eng").as_str(), "9"]).ok();
    env.wait_status(id("eng").as_str(), "stopped", 10 * SECOND);
    // what engines match on: runc's words, and one JSON line in the log
    let log = env.path().join("log.json");
    let log_arg = log.to_str().unwrap();
    env.run([
        "--log",
        log_arg,
        "--log-format",
        "json",
        "kill",
        id("eng").as_str(),
        "15",
    ])
    .fails_with("container not running");
    env.run(["--log", log_arg, "--log-format", "json", "state", "ghost"])
        .fails_with("does not exist");
    env.run([
        "--log",
        log_arg,
        "--log-format",
        "json",
        "no-such-verb",
        id("eng").as_str(),
    ]);
    let errors: Vec<Value> = fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["level"] == "error")
        .collect();
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0]["msg"].as_str().unwrap().contains("container not running"),
        "{errors:#?}"
    );
    assert!(
        errors[1]["msg"].as_str().unwrap().contains("does not exist"),
        "{errors:#?}"
    );
    assert!(
        errors[2]["msg"].as_str().unwrap().contains("no-such-verb"),
        "{errors:#?}"
    );
    for e in &errors {
        let time = e["time"].as_str().unwrap();
        assert!(
            time.len() >= 20 && time.ends_with('Z') && &time[10..11] == "T",
            "not RFC 3339: {time}"
        );
    }

    env.run(["delete", id("eng").as_str()]).ok();
    env.run(["delete", id("eng").as_str()]).fails_with("does not exist");
    // runc's verbs take exact ids: a gone "eng-PID" is not "eng-PID10" by prefix
    env.run([
        "create",
        "--bundle",
        b.to_str().unwrap(),
        format!("{}10", id("eng")).as_str(),
    ])
    .ok();
    env.run(["state", id("eng").as_str()])
        .fails_with(&format!("\"{}\" does not exist", id("eng")));
    env.run(["kill", id("eng").as_str(), "9"])
        .fails_with(&format!("\"{}\" does not exist", id("eng")));
    env.run(["delete", "--force", id("eng").as_str()]).ok();
    assert_eq!(
        env.state(format!("{}10", id("eng")).as_str()).unwrap()["status"],
        "created"
    );
    env.run(["delete", format!("{}10", id("eng")).as_str()]).ok();
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
    assert!(cgroup_dirs(&format!("/minirun/{}", id("eng"))).is_empty());

    let version = env.run(["--version"]).ok();
    assert!(
        version.stdout.starts_with("minirun version ") && version.stdout.contains("\nspec: 1."),
        "{version:?}"
    );
}

/// `--systemd-cgroup` (podman's default on systemd hosts) with a systemd
/// style `slice:prefix:name` cgroupsPath. On cgroup v1 and hybrid hosts
/// libcontainer keeps cgroupfs for it, as runc does; on a unified host it
/// asks systemd for a scope, so without a systemd the create must fail
/// clearly and leave nothing.
#[test]
fn systemd_cgroup_flag_and_slice_style_cgroups_path() {
    let env = Env::new();
    let b = env.bundle(id("sd").as_str(), &["cat", "/proc/self/cgroup"], |c| {
        c["linux"]["cgroupsPath"] = format!("system.slice:minirun-it:{}", id("sd")).into();
    });
    let features: Value = serde_json::from_str(&env.run(["features"]).ok().stdout).unwrap();
    assert_eq!(features["linux"]["cgroup"]["systemd"], true, "{features:#}");
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let r = env.run([
        "--systemd-cgroup",
        "run",
        "--bundle",
        b.to_str().unwrap(),
        id("sd").as_str(),
    ]);
    match (unified, Path::new("/run/systemd/system").exists()) {
        (true, false) => {
            assert_ne!(r.code, 0, "{r:#?}");
            assert!(
                r.stderr.contains(&format!("\"{}\"", id("sd"))),
                "the error does not name the container: {r:#?}"
            );
        }
        (true, true) => {
            assert_eq!(r.code, 0, "{r:#?}");
            assert!(
                r.stdout
                    .contains(&format!("system.slice/minirun-it-{}.scope", id("sd"))),
                "not in its systemd scope: {r:#?}"
            );
        }
        (false, _) => {
            assert_eq!(r.code, 0, "{r:#?}");
            assert!(
                r.stdout.contains(&format!(":/system.slice:minirun-it:{}", id("sd"))),
                "not in its cgroupfs cgroup: {r:#?}"
            );
        }
    }
    assert!(
        cgroup_dirs(&format!("system.slice:minirun-it:{}", id("sd"))).is_empty(),
        "cgroup left: {:?}",
        cgroup_dirs(&format!("system.slice:minirun-it:{}", id("sd")))
    );
    assert!(env.state_entries().is_empty(), "{:?}", env.state_entries());
}

/// A block device of this host for per-device limits: (major, minor, its
/// active I/O scheduler), the first with a request queue.
fn block_device() -> Option<(i64, i64, String)> {
    let mut names: Vec<_> = fs::read_dir("/sys/block").ok()?.flatten().map(|e| e.path()).collect();
    names.sort();
    names.into_iter().find_map(|p| {
        let sched = fs::read_to_string(p.join("queue/scheduler")).ok()?;
        let active = sched.split_whitespace().find(|s| s.starts_with('['))?;
        let (major, minor) = fs::read_to_string(p.join("dev"))
            .ok()?
            .trim()
            .split_once(':')
            .map(|(a, b)| (a.parse().unwrap(), b.parse().unwrap()))?;
        Some((major, minor, active.trim_matches(['[', ']']).to_string()))
    })
}

/// Issue 13: every field of linux.resources this cgroup v1 host supports is
/// in the container's cgroup after create (disableOOMKiller included), and
/// `update` changes them, by JSON and by runc's options, leaving the OOM
/// killer as it was unless told.
#[test]
fn resources_are_applied_at_create_and_by_update() {
    if !Path::new("/sys/fs/cgroup/memory/memory.oom_control").exists() {
        eprintln!("skipped: this host has no cgroup v1 memory controller, and the test reads v1 files");
        return;
    }
    let env = Env::new();
    let blkio = Path::new("/sys/fs/cgroup/blkio");
    // BFQ (or CFQ) makes the per-cgroup weight; the throttles need only a device
    let weight = fs::read_dir(blkio).unwrap().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        n.starts_with("blkio.bfq.") || n.starts_with("blkio.weight")
    });
    let device = block_device();
    let (major, minor, sched) = device.clone().unwrap_or((0, 0, String::new()));
    let b = env.bundle(id("res").as_str(), &["sleep", "60"], |c| {
        let r = &mut c["linux"]["resources"];
        r["memory"] = json!({"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20,
                             "swappiness": 10, "disableOOMKiller": true});
        r["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000, "burst": 10000,
                          "cpus": "0", "mems": "0"});
        r["pids"] = json!({"limit": 50});
        let mut io = json!({});
        if weight {
            io["weight"] = json!(300);
        }
        if device.is_some() {
            io["throttleReadBpsDevice"] = json!([{"major": major, "minor": minor, "rate": 1048576}]);
            io["throttleWriteIOPSDevice"] = json!([{"major": major, "minor": minor, "rate": 100}]);
        }
        if sched == "bfq" {
            io["weightDevice"] = json!([{"major": major, "minor": minor, "weight": 200}]);
        }
        r["blockIO"] = io;
    });
    if !weight {
        eprintln!("blkio weight not checked: this kernel has neither CFQ nor BFQ weights");
    }
    if device.is_none() {
        eprintln!("blkio throttles not checked: no block device with a request queue");
    }
    if sched != "bfq" {
        eprintln!("blkio weightDevice not checked: no block device has BFQ active (weights are BFQ's)");
    }
    env.run(["create", "--bundle", b.to_str().unwrap(), id("res").as_str()])
        .ok();
    let read = |controller: &str, file: &str| {
        let p = Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(format!("minirun/{}", id("res")))
            .join(file);
        fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    let oom_disabled = || read("memory", "memory.oom_control").contains("oom_kill_disable 1");
    let weight_file = if blkio.join("blkio.weight").exists() {
        "blkio.weight"
    } else {
        "blkio.bfq.weight"
    };
    let dev = format!("{major}:{minor}");

    assert_eq!(read("memory", "memory.limit_in_bytes"), (64u64 << 20).to_string());
    assert_eq!(read("memory", "memory.soft_limit_in_bytes"), (32u64 << 20).to_string());
    assert_eq!(
        read("memory", "memory.memsw.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(read("memory", "memory.swappiness"), "10");
    assert!(oom_disabled(), "{}", read("memory", "memory.oom_control"));
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    assert_eq!(read("cpu", "cpu.cfs_burst_us"), "10000");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(read("cpuset", "cpuset.mems"), "0");
    assert_eq!(read("pids", "pids.max"), "50");
    if weight {
        assert!(
            read("blkio", weight_file).ends_with("300"),
            "{}",
            read("blkio", weight_file)
        );
    }
    if device.is_some() {
        assert_eq!(
            read("blkio", "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        );
        assert_eq!(read("blkio", "blkio.throttle.write_iops_device"), format!("{dev} 100"));
    }
    if sched == "bfq" {
        assert!(read("blkio", "blkio.bfq.weight_device").contains(&format!("{dev} 200")));
    }
    env.run(["start", id("res").as_str()]).ok();

    // runc's options: memory given, so libcgroups rewrites memory.oom_control;
    // the OOM killer stays disabled
    let all_cpus = fs::read_to_string("/sys/fs/cgroup/cpuset/cpuset.effective_cpus").unwrap();
    let all_cpus = all_cpus.trim();
    let mut args = vec![
        "update",
        "--memory",
        "80m",
        "--cpu-share",
        "1024",
        "--cpu-quota",
        "20000",
        "--cpuset-cpus",
        all_cpus,
        "--pids-limit",
        "60",
    ];
    if weight {
        args.extend(["--blkio-weight", "500"]);
    }
    let res = id("res");
    args.push(&res);
    env.run(args).ok();
    assert_eq!(read("memory", "memory.limit_in_bytes"), (80u64 << 20).to_string());
    assert!(oom_disabled(), "{}", read("memory", "memory.oom_control"));
    assert_eq!(read("cpu", "cpu.shares"), "1024");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "20000");
    assert_eq!(read("cpuset", "cpuset.cpus"), all_cpus);
    assert_eq!(read("pids", "pids.max"), "60");
    if weight {
        assert!(
            read("blkio", weight_file).ends_with("500"),
            "{}",
            read("blkio", weight_file)
        );
    }
    // the unchanged ones stay
    assert_eq!(
        read("memory", "memory.memsw.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");

    // JSON: the OOM killer back on, a new throttle and burst alone
    let mut update = json!({"memory": {"disableOOMKiller": false}, "cpu": {"burst": 5000}});
    if device.is_some() {
        update["blockIO"] = json!({"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 2097152}]});
    }
    env.run_with_stdin(
        &["update", "-r", "-", id("res").as_str()],
        update.to_string().as_bytes(),
    )
    .ok();
    assert!(!oom_disabled(), "{}", read("memory", "memory.oom_control"));
    assert_eq!(read("cpu", "cpu.cfs_burst_us"), "5000");
    if device.is_some() {
        assert_eq!(
            read("blkio", "blkio.throttle.read_bps_device"),
            format!("{dev} 2097152")
        );
    }
    assert_eq!(read("memory", "memory.limit_in_bytes"), (80u64 << 20).to_string());

    // what this cgroup version cannot do is refused, and changes nothing
    env.run_with_stdin(
        &["update", "-r", "-", id("res").as_str()],
        br#"{"unified": {"memory.high": "1000000"}, "pids": {"limit": 7}}"#,
    )
    .fails_with("unified");
    assert_eq!(read("pids", "pids.max"), "60");
    env.run(["update", "--memory", "lots", id("res").as_str()])
        .fails_with("--memory");

    env.run(["delete", "--force", id("res").as_str()]).ok();
    assert!(cgroup_dirs(&format!("/minirun/{}", id("res"))).is_empty());
}

/// Sub-cgroups made by a test under a container's cgroup, removed when it
/// ends (before the container: libcontainer removes its cgroup non-recursively).
struct SubCgroups(Vec<std::path::PathBuf>);

impl SubCgroups {
    /// `sub` under `cgroup` in every hierarchy holding the container's cgroup.
    fn make(cgroup: &str, sub: &str) -> SubCgroups {
        let mut made = SubCgroups(Vec::new());
        let rel = cgroup.trim_start_matches('/');
        let mut roots = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
        roots.extend(fs::read_dir("/sys/fs/cgroup").unwrap().flatten().map(|e| e.path()));
        for root in roots {
            let dir = root.join(rel);
            if dir.join("cgroup.procs").exists() {
                fs::create_dir(dir.join(sub)).unwrap();
                made.0.push(dir.join(sub));
            }
        }
        assert!(!made.0.is_empty(), "no cgroup {cgroup}");
        made
    }
}

impl Drop for SubCgroups {
    fn drop(&mut self) {
        for d in &self.0 {
            // a cgroup directory: rmdir, never a recursive removal
            let _ = fs::remove_dir(d);
        }
    }
}

/// A field of /proc/self/status as the container's `grep` printed it.
fn status_field(out: &str, field: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {out:?}"))
        .trim()
        .to_string()
}

/// Issue 13: runc's exec options (containerd and podman pass them) on
/// `exec ID COMMAND...`, built on the container's own process: --cap, --env,
/// --cwd, --user, --additional-gids, --no-new-privs, --cgroup (also with
/// --process), --ignore-paused; --apparmor and --process-label refused where
/// they cannot work.
#[test]
fn exec_takes_runc_process_options() {
    let env = Env::new();
    let b = env.bundle("flags", &["sleep", "60"], |c| {
        c["process"]["noNewPrivileges"] = json!(false)
    });
    env.run(["create", "--bundle", b.to_str().unwrap(), id("fl").as_str()])
        .ok();
    env.run(["start", id("fl").as_str()]).ok();
    let fl = id("fl");
    let status = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend(extra);
        args.extend([fl.as_str(), "cat", "/proc/self/status"]);
        env.run(args).ok().stdout
    };
    const NET_ADMIN: u64 = 1 << 12;
    let cap_eff = |out: &str| u64::from_str_radix(&status_field(out, "CapEff"), 16).unwrap();
    let plain = status(&[]);
    assert_eq!(cap_eff(&plain) & NET_ADMIN, 0, "{plain}");
    assert_eq!(status_field(&plain, "NoNewPrivs"), "0");
    let out = status(&["--cap", "CAP_NET_ADMIN"]);
    assert_eq!(cap_eff(&out) & NET_ADMIN, NET_ADMIN, "{out}");
    let out = status(&["--no-new-privs"]);
    assert_eq!(status_field(&out, "NoNewPrivs"), "1");

    let r = env
        .run([
            "exec",
            "--env",
            "GREETING=hi",
            "-e",
            "OTHER=x",
            "--cwd",
            "/tmp",
            id("fl").as_str(),
            "sh",
            "-c",
            "echo $GREETING $OTHER; pwd",
        ])
        .ok();
    assert_eq!(r.stdout, "hi x\n/tmp\n");
    let r = env
        .run([
            "exec",
            "--user",
            "1000:1000",
            "--additional-gids",
            "10",
            "-g",
            "20",
            id("fl").as_str(),
            "id",
        ])
        .ok();
    let ids = r.stdout.trim();
    assert!(ids.starts_with("uid=1000 gid=1000"), "{ids}");
    let groups = ids.split("groups=").nth(1).unwrap_or_else(|| panic!("{ids}"));
    assert!(groups.contains("10") && groups.contains("20"), "{ids}");
    env.run(["exec", "--cap", "CAP_FLYING", id("fl").as_str(), "true"])
        .fails_with("CAP_FLYING");

    // --cgroup: an existing sub-cgroup of the container's, also with --process
    let _subs = SubCgroups::make(&format!("/minirun/{}", id("fl")), "sub");
    let r = env
        .run(["exec", "--cgroup", "sub", id("fl").as_str(), "cat", "/proc/self/cgroup"])
        .ok();
    assert!(
        r.stdout.contains(&format!("/minirun/{}/sub\n", id("fl"))),
        "{}",
        r.stdout
    );
    let process = env.path().join("cg.json");
    fs::write(
        &process,
        json!({"user": {"uid": 0, "gid": 0}, "args": ["cat", "/proc/self/cgroup"], "env": ["PATH=/bin"], "cwd": "/"})
            .to_string(),
    )
    .unwrap();
    let r = env
        .run([
            "exec",
            "--process",
            process.to_str().unwrap(),
            "--cgroup",
            "/sub",
            id("fl").as_str(),
        ])
        .ok();
    assert!(
        r.stdout.contains(&format!("/minirun/{}/sub\n", id("fl"))),
        "{}",
        r.stdout
    );
    env.run(["exec", "--cgroup", "nosuch", id("fl").as_str(), "true"])
        .fails_with("nosuch");
    env.run(["exec", "--cgroup", "../..", id("fl").as_str(), "true"])
        .fails_with("../..");

    if !Path::new("/sys/module/apparmor/parameters/enabled").exists() {
        env.run(["exec", "--apparmor", "docker-default", id("fl").as_str(), "true"])
            .fails_with("AppArmor is not enabled");
    }
    env.run([
        "exec",
        "--process-label",
        "system_u:system_r:container_t:s0",
        id("fl").as_str(),
        "true",
    ])
    .fails_with("SELinux");
    // empty values are unset, as in runc
    env.run([
        "exec",
        "--apparmor",
        "",
        "--process-label",
        "",
        id("fl").as_str(),
        "true",
    ])
    .ok();

    // --ignore-paused: accepted on a paused container, the process runs once resumed
    env.run(["pause", id("fl").as_str()]).ok();
    env.run(["exec", id("fl").as_str(), "true"]).fails_with("paused");
    let mut child = env.spawn(&["exec", "--ignore-paused", id("fl").as_str(), "echo", "after-resume"]);
    env.run(["resume", id("fl").as_str()]).ok();
    let deadline = std::time::Instant::now() + 10 * SECOND;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("exec --ignore-paused never ended after resume");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after-resume\n");
    // delete removes the nested cgroup too (libcgroups alone would fail on it)
    env.run(["delete", "--force", id("fl").as_str()]).ok();
    assert!(
        cgroup_dirs(&format!("/minirun/{}", id("fl"))).is_empty(),
        "{:?}",
        cgroup_dirs(&format!("/minirun/{}", id("fl")))
    );
    drop(_subs);
}

#[test]
fn a_bundles_masked_seccomp_rule_is_applied_as_runc_reads_it() {
    let env = Env::new();
    // runc's order: value is the mask, valueTwo the value compared. chmod
    // with the owner's execute bit clear is refused, with it set allowed; read
    // the other way round (mask 0), nothing would be.
    let masked = |index: u32| json!({"index": index, "value": 0o100, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"});
    let b = env.bundle(
        "masked",
        &[
            "sh",
            "-c",
            "touch /tmp/f; chmod 700 /tmp/f && echo 700 ok; chmod 600 /tmp/f || echo 600 refused",
        ],
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [
                    {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": [masked(1)]},
                    {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": [masked(2)]}
                ]
            });
        },
    );
    let r = env.run(["run", "--bundle", b.to_str().unwrap(), &id("masked")]).ok();
    assert_eq!(r.stdout, "700 ok\n600 refused\n", "{r:#?}");
    assert!(r.stderr.contains("Operation not permitted"), "{r:#?}");
}
