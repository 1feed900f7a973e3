//! Harness for end-to-end tests of the real `minirun` binary, run as root.
//!
//! Every test gets its own [`Env`]: temporary `--root` and `--data-root`
//! directories, removed (with every container still in them) when the test
//! ends, whether it passed or not.

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod registry;
pub mod sandbox;

/// The minirun binary of this workspace, built (debug) on first use.
pub fn minirun_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "minirun", "--bin", "minirun"])
            .current_dir(&workspace)
            .status()
            .expect("cannot run cargo build for the minirun binary");
        assert!(status.success(), "building minirun failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace.join("target"));
        let bin = target.join("debug/minirun");
        assert!(bin.exists(), "{} missing after build", bin.display());
        bin
    })
}

/// End-to-end tests need root: they create namespaces, cgroups and mounts.
pub fn require_root() {
    assert!(
        nix_geteuid() == 0,
        "the integration tests run the real runtime and must run as root"
    );
}

fn nix_geteuid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// What one minirun invocation did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Panics with the whole output unless the command succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "minirun failed: {self:#?}");
        self
    }

    /// Asserts a failure reported on one line of stderr that mentions `needle`.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Self {
        assert_ne!(self.code, 0, "expected a failure: {self:#?}");
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "expected a one-line error: {self:#?}");
        assert!(
            lines[0].contains(needle),
            "error does not mention {needle:?}: {self:#?}"
        );
        self
    }
}

/// A private runtime root and data root for one test.
pub struct Env {
    dir: tempfile::TempDir,
    pub root: PathBuf,
    pub data_root: PathBuf,
    counter: AtomicUsize,
}

impl Env {
    pub fn new() -> Self {
        require_root();
        let dir = tempfile::Builder::new().prefix("minirun-it-").tempdir().unwrap();
        let root = dir.path().join("run");
        let data_root = dir.path().join("data");
        Self {
            dir,
            root,
            data_root,
            counter: AtomicUsize::new(0),
        }
    }

    /// A scratch directory that goes away with the environment.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The mount points minirun keeps for all containers once it has run
    /// one (the data root and the netns directory bound onto themselves, so
    /// that a launch can leave the other containers' mounts out): not
    /// leftovers of any container.
    pub fn runtime_mounts(&self) -> [PathBuf; 2] {
        [self.data_root.clone(), self.root.join(".net/netns")]
    }

    /// Mount points at or under the scratch directory, but
    /// [`Self::runtime_mounts`].
    pub fn container_mounts(&self) -> Vec<String> {
        let dir = self.path().to_string_lossy().into_owned();
        assert!(dir.len() > 5, "refusing to match mounts against {dir:?}");
        let keep = self.runtime_mounts();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
            .filter(|m| !keep.iter().any(|k| Path::new(m) == k))
            .map(str::to_string)
            .collect()
    }

    /// `minirun --root R --data-root D ARGS...`, not yet run.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new(minirun_bin());
        // `run` never pulls unless a test asks: no test reaches a real registry.
        c.env("MINIRUN_PULL", "never");
        c.arg("--root").arg(&self.root).arg("--data-root").arg(&self.data_root);
        c.args(args);
        c
    }

    /// Runs minirun with no stdin and returns what it did.
    ///
    /// Output goes through files, not pipes: a created container inherits
    /// minirun's stdout and stderr, so a pipe would not reach EOF until the
    /// container ends.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.run_inner(self.cmd(args), None)
    }

    /// Runs minirun feeding `input` on its stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        self.run_inner(self.cmd(args), Some(input))
    }

    /// Runs a command made by [`Env::cmd`] (and changed: environment, ...),
    /// feeding `input` on its stdin when given.
    pub fn run_cmd(&self, cmd: Command, input: Option<&[u8]>) -> Run {
        self.run_inner(cmd, input)
    }

    fn run_inner(&self, mut cmd: Command, input: Option<&[u8]>) -> Run {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let out_path = self.path().join(format!(".out-{n}"));
        let err_path = self.path().join(format!(".err-{n}"));
        cmd.stdout(fs::File::create(&out_path).unwrap());
        cmd.stderr(fs::File::create(&err_path).unwrap());
        cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("cannot run minirun");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input).unwrap();
        }
        let status = child.wait().unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&out_path).unwrap(),
            stderr: fs::read_to_string(&err_path).unwrap(),
        };
        let _ = fs::remove_file(out_path);
        let _ = fs::remove_file(err_path);
        run
    }

    /// Starts minirun in the background with piped output.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot run minirun")
    }

    /// A busybox OCI bundle (from rootfs-fixtures) whose process runs `args`;
    /// `edit` may change its config.json before it is written back.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
        let dir = self.path().join("bundles").join(name);
        fs::create_dir_all(&dir).unwrap();
        rootfs_fixtures::build_bundle(&dir, args).expect("cannot build the busybox bundle");
        let path = dir.join("config.json");
        let mut config: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        edit(&mut config);
        fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        dir
    }

    /// `minirun state ID` parsed, or None when minirun says it does not exist.
    pub fn state(&self, id: &str) -> Option<Value> {
        let r = self.run(["state", id]);
        (r.code == 0).then(|| serde_json::from_str(&r.stdout).expect("state is not JSON"))
    }

    /// Polls `state` until the status is `want` or `timeout` passes.
    pub fn wait_status(&self, id: &str, want: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            // a container started in the background may not exist yet
            let state = self.state(id);
            if let Some(state) = state.as_ref().filter(|s| s["status"] == want) {
                return state.clone();
            }
            assert!(start.elapsed() < timeout, "{id} never became {want}: {state:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Entries of the state root other than minirun's own lock directory.
    pub fn state_entries(&self) -> Vec<String> {
        match fs::read_dir(&self.root) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                // the runc verbs' id locks and the containers' lock files
                // (whose files assert_nothing_left looks at)
                .filter(|n| n != ".locks" && n != ".container-locks")
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Env {
    /// A refused or removed container left nothing: no container directory, no
    /// name, no libcontainer state, no address leased on any network, no mount
    /// under this env's directory.
    #[track_caller]
    pub fn assert_nothing_left(&self) {
        let list = |p: PathBuf| -> Vec<String> {
            std::fs::read_dir(p)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(list(self.data_root.join("containers")), Vec::<String>::new());
        assert_eq!(list(self.data_root.join("names")), Vec::<String>::new());
        assert_eq!(
            list(self.root.join(".container-locks")),
            Vec::<String>::new(),
            "container lock files left"
        );
        let state: Vec<String> = self
            .state_entries()
            .into_iter()
            .filter(|e| !e.starts_with('.'))
            .collect();
        assert_eq!(state, Vec::<String>::new());
        for e in std::fs::read_dir(self.data_root.join("networks"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().ends_with(".leases.json") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                assert!(
                    !text
                        .split('"')
                        .any(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit())),
                    "a lease is left: {text}"
                );
            }
        }
        let mounts = self.container_mounts();
        assert!(mounts.is_empty(), "a mount is left: {mounts:?}");
    }

    /// A new environment with `busybox:latest` loaded (from the fixture
    /// archive built once per test process).
    pub fn with_busybox() -> Self {
        let env = Self::new();
        let r = env.run(["load", "-i", sandbox::busybox_tar().to_str().unwrap()]).ok();
        assert_eq!(r.stdout, "Loaded image: busybox:latest\n");
        env
    }
}

/// Runs a helper program (skopeo, umoci, openssl...) and returns its stdout,
/// failing the test with its stderr if it fails.
#[track_caller]
pub fn tool(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `f` until it holds, failing the test after `timeout`.
#[track_caller]
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Default for Env {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Whatever the test left, force-delete it so no process, cgroup or
        // mount outlives the test; then the tempdir goes.
        if let Ok(rd) = fs::read_dir(&self.root) {
            for entry in rd.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.starts_with('.') {
                    for verb in ["delete", "rm"] {
                        let _ = self
                            .cmd([verb, "--force", &name])
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                }
            }
        }
        // then minirun's own mount points (both below the scratch directory)
        for m in self.runtime_mounts() {
            if m.starts_with(self.path()) && self.path().components().count() > 2 {
                detach_mount(&m);
            }
        }
    }
}

/// Unmounts `path` lazily (`umount2(MNT_DETACH)`), ignoring failure: the
/// callers guard which paths they pass.
pub fn detach_mount(path: &Path) {
    if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) {
        // SAFETY: umount2 with a valid C string.
        unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Paths where a container's cgroup lives that exist: in every v1
/// hierarchy (cpu, freezer, devices, ... and the hybrid `unified` one),
/// or in the v2 tree.
pub fn cgroup_dirs(cgroup_path: &str) -> Vec<PathBuf> {
    let rel = cgroup_path.trim_start_matches('/');
    assert!(!rel.is_empty(), "cgroup_dirs of the root cgroup");
    let root = Path::new("/sys/fs/cgroup");
    let bases: Vec<PathBuf> = if root.join("cgroup.controllers").exists() {
        vec![root.to_path_buf()]
    } else {
        std::fs::read_dir(root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect()
    };
    bases.into_iter().map(|b| b.join(rel)).filter(|p| p.is_dir()).collect()
}
