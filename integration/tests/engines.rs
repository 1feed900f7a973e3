//! Engines driving the real binary as their OCI runtime: containerd 1.6
//! (through its `io.containerd.runc.v2` shim, with `ctr --runc-binary`) and
//! podman 4.3 (through conmon, with `podman --runtime`), both from Debian's
//! packages. Each test builds its own world under a temporary directory,
//! tears it down whether it passed or not, and checks that the engine left
//! no state, cgroup or mount behind.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minirun_integration::{minirun_bin, require_root, sandbox::busybox_tar};

/// No single engine call may take longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What one engine command did.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
}

/// The engine's program, or a failure saying how to get it: CI installs
/// the engines, so a missing one is an error, not a reason to skip.
fn tool(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("`{name}` is not installed: `apt-get install -y {package}` (.ci/run installs it)"))
}

/// Runs `cmd` to its end (at most [`CALL_TIMEOUT`]) with `input` on its
/// stdin. Output goes through files: a container may inherit the engine's
/// descriptors, so a pipe would not reach EOF when the engine exits.
#[track_caller]
fn run(mut cmd: Command, input: Option<&[u8]>, scratch: &Path) -> Out {
    let out_path = scratch.join(".out");
    let err_path = scratch.join(".err");
    cmd.stdout(fs::File::create(&out_path).unwrap());
    cmd.stderr(fs::File::create(&err_path).unwrap());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let Some(input) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
    }
    let code = wait_for(&mut child, CALL_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish in {CALL_TIMEOUT:?}");
    });
    Out {
        code,
        stdout: fs::read_to_string(&out_path).unwrap(),
        stderr: fs::read_to_string(&err_path).unwrap(),
    }
}

/// The exit code (128+N for signal N), or None if `timeout` passed first.
fn wait_for(child: &mut Child, timeout: Duration) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)));
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` on a new pseudo-terminal (its controlling terminal, as an
/// interactive shell's would be), types `input` there, and returns its exit
/// code and everything that appeared on the terminal.
#[track_caller]
fn run_on_pty(mut cmd: Command, input: &[u8]) -> (i32, String) {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors into the given ints.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here only.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: setting FD_CLOEXEC on a valid descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    cmd.stdin(slave.try_clone().unwrap())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave.try_clone().unwrap());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let what = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    drop(cmd); // the copies of the slave it held
    drop(slave);
    let mut typist = fs::File::from(master.try_clone().unwrap());
    let reader = std::thread::spawn(move || {
        let mut file = fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // EIO once every holder of the slave has closed it
        while let Ok(n) = file.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    });
    if !input.is_empty() {
        typist.write_all(input).unwrap();
    }
    let code = wait_for(&mut child, CALL_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} did not finish in {CALL_TIMEOUT:?}");
    });
    drop(typist);
    (code, reader.join().unwrap())
}

/// Makes `file` descriptor 3 of the command (for `--preserve-fds 1`).
fn give_fd3(cmd: &mut Command, file: &fs::File) {
    let raw = file.as_raw_fd();
    // SAFETY: dup2 and fcntl are async-signal-safe; `file` outlives the
    // spawn. dup2 onto itself keeps close-on-exec, so clear it.
    unsafe {
        cmd.pre_exec(move || {
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

/// Mount points at or below `dir`, from /proc/self/mountinfo.
fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Detaches every mount at or below `dir`, deepest first.
fn unmount_all_under(dir: &Path) {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in mounts {
        minirun_integration::detach_mount(Path::new(&m));
    }
}

/// Cgroup directories (any hierarchy, v1 or v2) whose name contains `needle`.
fn cgroups_named(needle: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, needle: &str, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().contains(needle) {
                found.push(p.clone());
            }
            if depth > 0 {
                walk(&p, needle, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), needle, 4, &mut found);
    found
}

/// The parent pid and command name of a process.
fn parent_of(pid: i32) -> (i32, String) {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(')').unwrap();
    let ppid: i32 = rest.split_whitespace().nth(1).unwrap().parse().unwrap();
    let comm = fs::read_to_string(format!("/proc/{ppid}/comm")).unwrap_or_default();
    (ppid, comm.trim().to_string())
}

/// The memory limit of the cgroup `pid` is in (v1 memory.limit_in_bytes or
/// v2 memory.max).
fn memory_limit_of(pid: i32) -> String {
    let cgroups = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        if controllers.split(',').any(|c| c == "memory") {
            let file = Path::new("/sys/fs/cgroup/memory")
                .join(path.trim_start_matches('/'))
                .join("memory.limit_in_bytes");
            return fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .trim()
                .into();
        }
    }
    let line = cgroups
        .lines()
        .find(|l| l.starts_with("0::"))
        .expect("no memory cgroup");
    let file = Path::new("/sys/fs/cgroup")
        .join(line[3..].trim_start_matches('/'))
        .join("memory.max");
    fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .trim()
        .into()
}

fn poll_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

mod containerd {
    use super::*;

    const IMAGE: &str = "docker.io/library/busybox:latest";
    /// Where containerd 1.6's shims put their sockets, whatever the config says.
    const SHIM_SOCKETS: &str = "/run/containerd/s";

    /// A containerd of our own: every directory and socket under `dir`,
    /// stopped by its pid when dropped.
    struct Containerd {
        dir: tempfile::TempDir,
        child: Option<Child>,
        /// A containerd namespace of this test's own: it names the runtime
        /// root (`--root RUNC_ROOT/NS`) and the cgroup parent (`/NS/ID`).
        ns: String,
        shim_sockets_before: Vec<String>,
        default_fifos_before: Vec<String>,
        /// /run/containerd and the directories in it ctr and the shim make,
        /// if they did not exist before this test (removed when empty).
        new_shared_dirs: Vec<PathBuf>,
    }

    /// Where ctr puts FIFOs without --fifo-dir.
    const DEFAULT_FIFOS: &str = "/run/containerd/fifo";

    fn entries(dir: &str) -> Vec<String> {
        match fs::read_dir(dir) {
            Ok(rd) => rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn shim_sockets() -> Vec<String> {
        entries(SHIM_SOCKETS)
    }

    fn default_fifos() -> Vec<String> {
        entries(DEFAULT_FIFOS)
    }

    impl Containerd {
        fn start() -> Self {
            require_root();
            let containerd = tool("containerd", "containerd");
            tool("ctr", "containerd");
            tool("containerd-shim-runc-v2", "containerd");
            let dir = tempfile::Builder::new().prefix("minirun-ctd-").tempdir().unwrap();
            let d = dir.path();
            let config = format!(
                "version = 2\n\
                 root = \"{root}\"\n\
                 state = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n\
                 [ttrpc]\n  address = \"{sock}.ttrpc\"\n\
                 [debug]\n  address = \"\"\n",
                root = d.join("root").display(),
                state = d.join("state").display(),
                sock = d.join("containerd.sock").display(),
            );
            fs::write(d.join("config.toml"), config).unwrap();
            // the shim makes its console sockets in XDG_RUNTIME_DIR
            fs::create_dir(d.join("xdg")).unwrap();
            let log = fs::File::create(d.join("containerd.log")).unwrap();
            let mut cmd = Command::new(containerd);
            cmd.arg("--config").arg(d.join("config.toml"));
            // what engines leave in the runtime's environment must not matter
            cmd.env("NOTIFY_SOCKET", d.join("no-such-notify.sock"))
                .env("_LIBCONTAINER_INITPIPE", "99")
                .env("_LIBCONTAINER_STATEDIR", d.join("nowhere"))
                .env("XDG_RUNTIME_DIR", d.join("xdg"));
            let child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            let ns = format!("minirun-it-{}", std::process::id());
            let mut me = Self {
                dir,
                child: Some(child),
                ns,
                shim_sockets_before: shim_sockets(),
                default_fifos_before: default_fifos(),
                new_shared_dirs: [SHIM_SOCKETS, DEFAULT_FIFOS, "/run/containerd"]
                    .iter()
                    .map(PathBuf::from)
                    .filter(|d| !d.exists())
                    .collect(),
            };
            let start = Instant::now();
            loop {
                let v = me.ctr(&["version"]);
                if v.code == 0 {
                    break;
                }
                if let Some(status) = me.child.as_mut().unwrap().try_wait().unwrap() {
                    panic!("containerd exited ({status}): {}", me.log());
                }
                assert!(
                    start.elapsed() < Duration::from_secs(15),
                    "containerd never answered: {v:?}\n{}",
                    me.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            me
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn log(&self) -> String {
            fs::read_to_string(self.path().join("containerd.log")).unwrap_or_default()
        }

        /// `ctr run --runc-root`; the shim passes `--root` this/NAMESPACE.
        fn runc_root(&self) -> PathBuf {
            self.path().join("runc")
        }

        /// The `--root` minirun gets from the shim.
        fn minirun_root(&self) -> PathBuf {
            self.runc_root().join(&self.ns)
        }

        fn ctr_cmd(&self, args: &[&str]) -> Command {
            let mut c = Command::new("ctr");
            c.arg("--address")
                .arg(self.path().join("containerd.sock"))
                .arg("--namespace")
                .arg(&self.ns)
                .args(args);
            c
        }

        fn ctr(&self, args: &[&str]) -> Out {
            run(self.ctr_cmd(args), None, self.path())
        }

        /// `ctr task exec` with its FIFOs under our directory (by default
        /// they go to /run/containerd/fifo and stay there after --detach).
        fn exec(&self, args: &[&str]) -> Out {
            let fifo = self.path().join("fifo");
            let mut all = vec!["task", "exec", "--fifo-dir", fifo.to_str().unwrap()];
            all.extend_from_slice(args);
            self.ctr(&all)
        }

        /// `ctr run` with minirun as the runtime; `flags` go before the image.
        fn run_args(&self, flags: &[&str], id: &str, command: &[&str]) -> Vec<String> {
            let mut a: Vec<String> = vec!["run".into()];
            a.extend(flags.iter().map(|s| s.to_string()));
            a.push("--runc-binary".into());
            a.push(minirun_bin().to_string_lossy().into_owned());
            a.push("--runc-root".into());
            a.push(self.runc_root().to_string_lossy().into_owned());
            a.push("--fifo-dir".into());
            a.push(self.path().join("fifo").to_string_lossy().into_owned());
            a.push(IMAGE.into());
            a.push(id.into());
            a.extend(command.iter().map(|s| s.to_string()));
            a
        }

        fn ctr_run(&self, flags: &[&str], id: &str, command: &[&str]) -> Out {
            let args = self.run_args(flags, id, command);
            self.ctr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        }

        /// Status of a task as `ctr task ls` shows it.
        fn task_status(&self, id: &str) -> Option<String> {
            let ls = self.ctr(&["task", "ls"]).ok();
            ls.stdout.lines().skip(1).find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.first() == Some(&id)).then(|| f[2].to_string())
            })
        }

        fn task_pid(&self, id: &str) -> i32 {
            let ls = self.ctr(&["task", "ls"]).ok();
            ls.stdout
                .lines()
                .skip(1)
                .find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.first() == Some(&id)).then(|| f[1].parse().unwrap())
                })
                .unwrap_or_else(|| panic!("no task {id}: {}", ls.stdout))
        }

        /// Removes every task and container, stops containerd by its pid
        /// and returns what was left behind: minirun state, shim sockets
        /// and mounts under our directory.
        fn shutdown(&mut self) -> Vec<String> {
            let Some(mut child) = self.child.take() else {
                return Vec::new();
            };
            for id in self.ctr(&["task", "ls", "-q"]).stdout.lines() {
                let _ = self.ctr(&["task", "kill", "-a", "-s", "SIGKILL", id]);
                let _ = self.ctr(&["task", "delete", "--force", id]);
            }
            for id in self.ctr(&["container", "ls", "-q"]).stdout.lines() {
                let _ = self.ctr(&["container", "rm", id]);
            }
            // SAFETY: signalling the containerd we started, by its pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            if wait_for(&mut child, Duration::from_secs(10)).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let mut left = Vec::new();
            if let Ok(rd) = fs::read_dir(self.minirun_root()) {
                for e in rd.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if name != ".locks" {
                        left.push(format!("runtime state {}", e.path().display()));
                    }
                }
            }
            if let Ok(rd) = fs::read_dir(self.minirun_root().join(".locks")) {
                for e in rd.flatten() {
                    left.push(format!("lock file {}", e.path().display()));
                }
            }
            for s in shim_sockets() {
                if !self.shim_sockets_before.contains(&s) {
                    left.push(format!("shim socket {SHIM_SOCKETS}/{s}"));
                }
            }
            for f in default_fifos() {
                if !self.default_fifos_before.contains(&f) {
                    left.push(format!("fifo dir {DEFAULT_FIFOS}/{f}"));
                }
            }
            for m in mounts_under(self.path()) {
                left.push(format!("mount {m}"));
            }
            unmount_all_under(self.path());
            // every container's cgroup is /NS/ID: what is left under /NS was
            // left by the engine; /NS itself is the namespace's parent
            for parent in cgroups_named(&self.ns) {
                if let Ok(rd) = fs::read_dir(&parent) {
                    for child in rd.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
                        left.push(format!("cgroup {}", child.path().display()));
                    }
                }
                let _ = fs::remove_dir(&parent);
            }
            for d in &self.new_shared_dirs {
                let _ = fs::remove_dir(d);
            }
            left
        }
    }

    impl Drop for Containerd {
        fn drop(&mut self) {
            self.shutdown();
        }
    }

    #[test]
    fn containerd_runs_containers_through_minirun() {
        let started = Instant::now();
        let mut ctd = Containerd::start();
        let imported = ctd.ctr(&["image", "import", busybox_tar().to_str().unwrap()]).ok();
        assert!(imported.stdout.contains(IMAGE), "{imported:?}");

        // output and exit code of a foreground container
        // (runc's recursive spelling of the rootfs propagation, as CRI writes it)
        let r = ctd
            .ctr_run(&["--rm", "--rootfs-propagation", "rslave"], "t1", &["echo", "hi"])
            .ok();
        assert_eq!(r.stdout, "hi\n", "{r:?}");
        let r = ctd.ctr_run(&["--rm"], "t2", &["sh", "-c", "echo to-stderr >&2; exit 3"]);
        assert_eq!((r.code, r.stderr.as_str()), (3, "to-stderr\n"), "{r:?}");
        // a terminal (create --console-socket): what is typed reaches the
        // process, its output comes back (ctr never closes a pipe stdin,
        // so stdin is tried here)
        let args = ctd.run_args(&["--rm", "-t"], "t4", &["sh", "-c", "tty; read line; echo got:$line"]);
        let mut cmd = ctd.ctr_cmd(&args.iter().map(String::as_str).collect::<Vec<_>>());
        cmd.env("TERM", "xterm");
        let (code, out) = run_on_pty(cmd, b"typed\n");
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("/dev/pts/") && out.contains("got:typed"), "{out:?}");

        // a detached task: exec, ps, pause/resume, update, kill, delete
        let loop_forever = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.1; done"];
        ctd.ctr_run(&["-d"], "t5", &loop_forever).ok();
        let pid = ctd.task_pid("t5");
        let (_, parent) = parent_of(pid);
        assert!(
            parent.starts_with("containerd-shim"),
            "the init's parent is {parent}, not the shim"
        );
        let state = run(
            {
                let mut c = Command::new(minirun_bin());
                c.arg("--root").arg(ctd.minirun_root()).args(["state", "t5"]);
                c
            },
            None,
            ctd.path(),
        )
        .ok();
        let state: serde_json::Value = serde_json::from_str(&state.stdout).unwrap();
        assert_eq!(
            (state["status"].as_str(), state["pid"].as_i64()),
            (Some("running"), Some(pid as i64))
        );

        let r = ctd.exec(&["--exec-id", "e1", "t5", "sh", "-c", "echo from-exec; exit 4"]);
        assert_eq!((r.code, r.stdout.as_str()), (4, "from-exec\n"), "{r:?}");
        let r = ctd.ctr(&["task", "ps", "t5"]).ok();
        assert!(
            r.stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&pid.to_string())),
            "{r:?}"
        );

        ctd.ctr(&["task", "pause", "t5"]).ok();
        assert_eq!(ctd.task_status("t5").as_deref(), Some("PAUSED"));
        ctd.ctr(&["task", "resume", "t5"]).ok();
        assert_eq!(ctd.task_status("t5").as_deref(), Some("RUNNING"));
        let r = ctd.exec(&["--exec-id", "e2", "t5", "true"]);
        assert_eq!(r.code, 0, "exec after resume: {r:?}");

        // update as the shim calls it: JSON resources on stdin
        let log = ctd.path().join("update-log.json");
        let mut update = Command::new(minirun_bin());
        update
            .arg("--root")
            .arg(ctd.minirun_root())
            .arg("--log")
            .arg(&log)
            .args(["--log-format", "json", "update", "--resources", "-", "t5"]);
        run(update, Some(br#"{"memory": {"limit": 67108864}}"#), ctd.path()).ok();
        assert_eq!(memory_limit_of(pid), "67108864");

        // kill --all reaches exec'd processes too (SIGTERM, as "15")
        ctd.exec(&["--detach", "--exec-id", "bg", "t5", "sleep", "600"]).ok();
        let ps = ctd.ctr(&["task", "ps", "t5"]).ok();
        let pids: Vec<i32> = ps
            .stdout
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        assert!(pids.len() >= 2 && pids.contains(&pid), "{ps:?}");
        ctd.ctr(&["task", "kill", "--all", "t5"]).ok();
        poll_until("t5 to stop", Duration::from_secs(10), || {
            ctd.task_status("t5").as_deref() == Some("STOPPED")
        });
        poll_until("every process of t5 to end", Duration::from_secs(10), || {
            pids.iter()
                .all(|p| fs::read_to_string(format!("/proc/{p}/stat")).map_or(true, |s| s.contains(") Z")))
        });
        // signalling a finished task: the shim recognises runc's words
        let r = ctd.ctr(&["task", "kill", "--signal", "SIGKILL", "t5"]);
        assert!(r.code != 0 && r.stderr.contains("process already finished"), "{r:?}");
        ctd.ctr(&["task", "delete", "t5"]).ok();
        ctd.ctr(&["container", "rm", "t5"]).ok();

        // a missing executable: minirun's error, in runc's words, through ctr
        let r = ctd.ctr_run(&["--rm"], "t6", &["/nonexistent"]);
        assert_ne!(r.code, 0, "{r:?}");
        assert!(
            r.stderr.contains("exec: \"/nonexistent\"") && r.stderr.contains("no such file or directory"),
            "{r:?}"
        );
        let _ = ctd.ctr(&["container", "rm", "t6"]);

        let left = ctd.shutdown();
        assert!(left.is_empty(), "containerd left: {left:#?}");
        eprintln!("containerd test took {:?}", started.elapsed());
    }
}

mod podman {
    use super::*;

    /// The default state root, which every podman call uses (podman passes
    /// no --root, and gives the runtime almost none of its environment).
    const MINIRUN_DEFAULT_ROOT: &str = "/run/minirun";

    /// podman with its own storage and containers.conf under `dir`.
    struct Podman {
        dir: tempfile::TempDir,
        ids: Vec<String>,
        done: bool,
        /// Shared paths podman or minirun make on first use that did not
        /// exist before this test (removed again, directories when empty).
        new_shared_paths: Vec<PathBuf>,
    }

    /// podman's image-load cache, kept in the system location whatever the
    /// storage configuration says.
    const BLOB_INFO_CACHE: &str = "/var/lib/containers/cache/blob-info-cache-v1.boltdb";

    /// Paths outside the test's own that podman (cgroup parents, the conmon
    /// cgroup, its blob-info cache) and minirun (its default root) create
    /// and keep; children before parents.
    fn shared_paths() -> Vec<PathBuf> {
        let mut dirs = vec![
            PathBuf::from(BLOB_INFO_CACHE),
            PathBuf::from("/var/lib/containers/cache"),
            PathBuf::from("/var/lib/containers"),
        ];
        if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
            for h in rd.flatten() {
                dirs.push(h.path().join("libpod_parent/conmon"));
                dirs.push(h.path().join("libpod_parent"));
            }
        }
        dirs.push(Path::new(MINIRUN_DEFAULT_ROOT).join(".locks"));
        dirs.push(PathBuf::from(MINIRUN_DEFAULT_ROOT));
        dirs
    }

    impl Podman {
        fn new() -> Self {
            require_root();
            tool("podman", "podman");
            tool("conmon", "conmon");
            let dir = tempfile::Builder::new().prefix("minirun-podman-").tempdir().unwrap();
            let d = dir.path();
            // No static_dir: podman 4.3 does not hand it to the cleanup
            // process conmon starts, which then waits 20 s for nothing.
            let conf = format!(
                "[containers]\n\
                 netns = \"none\"\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=1000:1000\"]\n\
                 [engine]\n\
                 conmon_env_vars = [\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\", \"CONTAINERS_CONF={conf}\", \"CONTAINERS_STORAGE_CONF={storage}\"]\n\
                 cgroup_manager = \"cgroupfs\"\n\
                 events_logger = \"file\"\n\
                 events_logfile_path = \"{events}\"\n\
                 tmp_dir = \"{tmp}\"\n\
                 volume_path = \"{volumes}\"\n",
                conf = d.join("containers.conf").display(),
                storage = d.join("storage.conf").display(),
                events = d.join("events.log").display(),
                tmp = d.join("tmp").display(),
                volumes = d.join("volumes").display(),
            );
            fs::write(d.join("containers.conf"), conf).unwrap();
            let storage = format!(
                "[storage]\n\
                 driver = \"overlay\"\n\
                 graphroot = \"{graph}\"\n\
                 runroot = \"{runroot}\"\n",
                graph = d.join("graph").display(),
                runroot = d.join("runroot").display(),
            );
            fs::write(d.join("storage.conf"), storage).unwrap();
            let new_shared_paths = shared_paths().into_iter().filter(|d| !d.exists()).collect();
            Self {
                dir,
                ids: Vec::new(),
                done: false,
                new_shared_paths,
            }
        }

        fn path(&self) -> &Path {
            self.dir.path()
        }

        fn cmd(&self, args: &[&str]) -> Command {
            let mut c = Command::new("podman");
            c.env("CONTAINERS_CONF", self.path().join("containers.conf"))
                .env("CONTAINERS_STORAGE_CONF", self.path().join("storage.conf"))
                .arg("--runtime")
                .arg(minirun_bin())
                .args(args);
            c
        }

        fn podman(&self, args: &[&str]) -> Out {
            run(self.cmd(args), None, self.path())
        }

        fn podman_with_stdin(&self, args: &[&str], input: &[u8]) -> Out {
            run(self.cmd(args), Some(input), self.path())
        }

        /// A file for `--cidfile`, so the test knows the ids of --rm containers.
        fn cidfile(&self, name: &str) -> String {
            self.path().join(format!("{name}.cid")).to_string_lossy().into_owned()
        }

        fn remember(&mut self, cidfile: &str) {
            let id = fs::read_to_string(cidfile).unwrap_or_else(|e| panic!("{cidfile}: {e}"));
            self.ids.push(id.trim().to_string());
        }

        fn inspect(&self, name: &str, format: &str) -> String {
            self.podman(&["inspect", "--format", format, name])
                .ok()
                .stdout
                .trim()
                .to_string()
        }

        /// Removes every container and image, unmounts the storage and
        /// returns what was left: minirun state, cgroups and mounts.
        fn shutdown(&mut self) -> Vec<String> {
            if std::mem::replace(&mut self.done, true) {
                return Vec::new();
            }
            let _ = self.podman(&["rm", "--all", "--force", "--time", "0"]);
            let mut left = Vec::new();
            for id in &self.ids {
                let state = Path::new(MINIRUN_DEFAULT_ROOT).join(id);
                if state.exists() {
                    left.push(format!("runtime state {}", state.display()));
                }
                let lock = Path::new(MINIRUN_DEFAULT_ROOT).join(".locks").join(id);
                if lock.exists() {
                    left.push(format!("lock file {}", lock.display()));
                }
                for cg in cgroups_named(id) {
                    left.push(format!("cgroup {}", cg.display()));
                }
            }
            // the storage driver's own private mount of its home stays
            // until the storage goes; container mounts must not
            let home = self.path().join("graph/overlay");
            for m in mounts_under(self.path()) {
                if Path::new(&m) != home {
                    left.push(format!("mount {m}"));
                }
            }
            let _ = self.podman(&["rmi", "--all", "--force"]);
            unmount_all_under(self.path());
            // children first; a directory still in use stays
            for p in &self.new_shared_paths {
                if p.is_dir() {
                    let _ = fs::remove_dir(p);
                } else {
                    let _ = fs::remove_file(p);
                }
            }
            left
        }
    }

    impl Drop for Podman {
        fn drop(&mut self) {
            self.shutdown();
        }
    }

    #[test]
    fn podman_runs_containers_through_minirun() {
        let started = Instant::now();
        let mut pm = Podman::new();
        let version = pm.podman(&["info", "--format", "{{.Host.OCIRuntime.Version}}"]).ok();
        assert!(version.stdout.starts_with("minirun version "), "{version:?}");
        let loaded = pm.podman(&["load", "-i", busybox_tar().to_str().unwrap()]).ok();
        assert!(loaded.stdout.contains("busybox"), "{loaded:?}");

        // output and exit codes of foreground containers
        let cid = pm.cidfile("hi");
        let r = pm
            .podman(&["run", "--rm", "--cidfile", &cid, "busybox", "echo", "hi"])
            .ok();
        pm.remember(&cid);
        assert_eq!(r.stdout, "hi\n", "{r:?}");
        let cid = pm.cidfile("three");
        let r = pm.podman(&[
            "run",
            "--rm",
            "--cidfile",
            &cid,
            "busybox",
            "sh",
            "-c",
            "echo to-stderr >&2; exit 3",
        ]);
        pm.remember(&cid);
        assert_eq!((r.code, r.stderr.as_str()), (3, "to-stderr\n"), "{r:?}");
        let cid = pm.cidfile("cat");
        let r = pm
            .podman_with_stdin(
                &["run", "--rm", "-i", "--cidfile", &cid, "busybox", "cat"],
                b"through conmon\n",
            )
            .ok();
        pm.remember(&cid);
        assert_eq!(r.stdout, "through conmon\n");

        // --read-only: podman's spec mounts tmpfs on /tmp, /run and
        // /var/tmp with runc's `tmpcopyup` option
        let cid = pm.cidfile("ro");
        let r = pm
            .podman(&[
                "run",
                "--rm",
                "--read-only",
                "--cidfile",
                &cid,
                "busybox",
                "sh",
                "-c",
                "touch /tmp/ok && echo writable-tmp; touch /etc/no || echo read-only-root",
            ])
            .ok();
        pm.remember(&cid);
        assert_eq!(r.stdout, "writable-tmp\nread-only-root\n", "{r:?}");

        // run -t through a pseudo-terminal (create --console-socket)
        let cid = pm.cidfile("tty");
        let (code, out) = run_on_pty(
            pm.cmd(&[
                "run",
                "--rm",
                "-t",
                "--cidfile",
                &cid,
                "busybox",
                "sh",
                "-c",
                "tty; echo on-the-tty",
            ]),
            b"",
        );
        pm.remember(&cid);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("/dev/pts/") && out.contains("on-the-tty"), "{out:?}");

        // a detached container: exec, pause/unpause, update, stop, rm -f
        let r = pm
            .podman(&[
                "run",
                "-d",
                "--name",
                "web",
                "busybox",
                "sh",
                "-c",
                "trap 'exit 0' TERM; while :; do sleep 0.1; done",
            ])
            .ok();
        let id = r.stdout.trim().to_string();
        pm.ids.push(id.clone());
        let pid: i32 = pm.inspect("web", "{{.State.Pid}}").parse().unwrap();
        let (_, parent) = parent_of(pid);
        assert_eq!(parent, "conmon", "the init's parent is {parent}, not conmon");
        let mut state_cmd = Command::new(minirun_bin());
        state_cmd.args(["state", &id]);
        let state: serde_json::Value = serde_json::from_str(&run(state_cmd, None, pm.path()).ok().stdout).unwrap();
        assert_eq!(
            (state["status"].as_str(), state["pid"].as_i64()),
            (Some("running"), Some(pid as i64))
        );

        let r = pm.podman(&["exec", "web", "sh", "-c", "echo from-exec; exit 4"]);
        assert_eq!((r.code, r.stdout.as_str()), (4, "from-exec\n"), "{r:?}");
        let r = pm
            .podman_with_stdin(&["exec", "-i", "web", "cat"], b"exec stdin\n")
            .ok();
        assert_eq!(r.stdout, "exec stdin\n");
        let (code, out) = run_on_pty(
            pm.cmd(&["exec", "-it", "web", "sh", "-c", "tty; read line; echo got:$line"]),
            b"typed\n",
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("/dev/pts/") && out.contains("got:typed"), "{out:?}");
        let fd3_out = pm.path().join("fd3.out");
        let fd3 = fs::File::create(&fd3_out).unwrap();
        let mut exec = pm.cmd(&["exec", "--preserve-fds", "1", "web", "sh", "-c", "echo through-fd3 >&3"]);
        give_fd3(&mut exec, &fd3);
        run(exec, None, pm.path()).ok();
        assert_eq!(fs::read_to_string(&fd3_out).unwrap(), "through-fd3\n");
        let r = pm.podman(&["exec", "web", "/nonexistent"]);
        assert_eq!(r.code, 127, "{r:?}");

        pm.podman(&["pause", "web"]).ok();
        assert_eq!(pm.inspect("web", "{{.State.Status}}"), "paused");
        pm.podman(&["unpause", "web"]).ok();
        assert_eq!(pm.inspect("web", "{{.State.Status}}"), "running");

        pm.podman(&["update", "--memory", "64m", "web"]).ok();
        assert_eq!(memory_limit_of(pid), "67108864");

        pm.podman(&["kill", "--signal", "USR1", "web"]).ok();
        assert_eq!(pm.inspect("web", "{{.State.Status}}"), "running");
        pm.podman(&["stop", "--time", "10", "web"]).ok();
        assert_eq!(pm.inspect("web", "{{.State.Status}} {{.State.ExitCode}}"), "exited 0");
        pm.podman(&["rm", "-f", "web"]).ok();

        // a missing executable: podman's exit code 127 from runc's words
        let cid = pm.cidfile("missing");
        let r = pm.podman(&["run", "--rm", "--cidfile", &cid, "busybox", "/nonexistent"]);
        if Path::new(&cid).exists() {
            pm.remember(&cid);
        }
        assert_eq!(r.code, 127, "{r:?}");
        assert!(r.stderr.contains("no such file or directory"), "{r:?}");

        let ps = pm.podman(&["ps", "-aq"]).ok();
        assert_eq!(ps.stdout, "", "containers left: {ps:?}");
        let left = pm.shutdown();
        assert!(left.is_empty(), "podman left: {left:#?}");
        eprintln!("podman test took {:?}", started.elapsed());
    }
}
