//! Containers made from images, the docker way: run (attached or detached,
//! with a monitor that outlives the CLI), ps, logs, exec, stop, rm, inspect,
//! and the teardown and garbage collection every exit goes through.
//!
//! On disk, per container:
//! - `<data-root>/containers/<id>/`: `meta.json` (ours), `config.json` +
//!   `rootfs/` (the bundle libcontainer runs), the overlay's upper and work
//!   dirs, `container.log`, the `/etc` files, and `lock` (held by whoever
//!   is setting the container up or supervising it).
//! - `<data-root>/names/<name>`: the name's reservation (made with O_EXCL).
//! - `<root>/<id>/`: libcontainer's state, while the container exists there.
//! - `<root>/net/<id>.json`, `<root>/netns/<id>`: the network attachment.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::Spec;
use minirun_images::Store;
use minirun_net::{Attachment, NetMode};
use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;
use crate::imagespec::{self, RunConfig, SpecInputs, Volume};
use crate::lifecycle::{CreateRequest, StateRoot, Stdio};
use crate::wait;

/// Paths and handles every docker-style verb needs.
pub struct Ctx {
    pub state: StateRoot,
    pub root: PathBuf,
    pub data_root: PathBuf,
}

/// What minirun remembers about a container made from an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub args: Vec<String>,
    pub hostname: String,
    pub auto_remove: bool,
    pub detached: bool,
    pub tty: bool,
    pub net: String,
    pub volumes: Vec<MountInfo>,
    /// "creating" until the process runs, then "running", then "exited"
    pub phase: String,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    /// The process setting the container up (the CLI, then its monitor):
    /// while `phase` is "creating", the container is abandoned once it is gone.
    #[serde(default)]
    pub creator: Option<ProcessIdentity>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// `--dns` servers (on a user-defined network: the embedded resolver's upstreams)
    #[serde(default)]
    pub dns: Vec<IpAddr>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountInfo {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

/// A process by pid and start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    pub pid: i32,
    pub start_time: u64,
}

impl ProcessIdentity {
    pub fn current() -> Option<Self> {
        Self::of(std::process::id() as i32)
    }

    pub fn of(pid: i32) -> Option<Self> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // fields after "(comm)": state is field 3, starttime field 22
        let rest = &stat[stat.rfind(')')? + 1..];
        let start_time = rest.split_whitespace().nth(19)?.parse().ok()?;
        Some(Self { pid, start_time })
    }

    /// Whether this very process still runs (a zombie does not count).
    pub fn is_running(&self) -> bool {
        let Ok(stat) = fs::read_to_string(format!("/proc/{}/stat", self.pid)) else { return false };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { return false };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("Z");
        let start: Option<u64> = fields.nth(18).and_then(|f| f.parse().ok());
        state != "Z" && state != "X" && start == Some(self.start_time)
    }
}

impl Ctx {
    pub fn new(state: StateRoot, root: PathBuf, data_root: PathBuf) -> Self {
        Self { state, root, data_root }
    }

    fn containers_dir(&self) -> PathBuf {
        self.data_root.join("containers")
    }
    fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }
    fn names_dir(&self) -> PathBuf {
        self.data_root.join("names")
    }

    pub fn store(&self) -> Result<Store> {
        Store::open(&self.data_root)
            .with_context(|| format!("cannot open the image store under {}", self.data_root.display()))
    }

    pub fn load_meta(&self, id: &str) -> Result<Meta> {
        let path = self.dir(id).join("meta.json");
        let text = fs::read(&path).with_context(|| format!("container \"{id}\" does not exist"))?;
        serde_json::from_slice(&text).with_context(|| format!("corrupt {}", path.display()))
    }

    fn save_meta(&self, meta: &Meta) -> Result<()> {
        let dir = self.dir(&meta.id);
        let tmp = dir.join(".meta.json.tmp");
        fs::write(&tmp, serde_json::to_vec_pretty(meta)?)?;
        fs::rename(&tmp, dir.join("meta.json"))?;
        Ok(())
    }

    /// Every container made from an image, oldest first.
    pub fn all(&self) -> Result<Vec<Meta>> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.containers_dir()) else { return Ok(out) };
        for entry in rd.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if let Ok(m) = self.load_meta(&id) {
                out.push(m);
            }
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// A container by full id, name, or unique id prefix.
    pub fn resolve(&self, wanted: &str) -> Result<Meta> {
        if wanted.is_empty() {
            bail!("container \"\" does not exist");
        }
        if let Ok(id) = fs::read_to_string(self.names_dir().join(wanted)) {
            if let Ok(m) = self.load_meta(id.trim()) {
                return Ok(m);
            }
        }
        if crate::lifecycle::valid_id(wanted).is_ok() {
            if let Ok(m) = self.load_meta(wanted) {
                return Ok(m);
            }
        }
        let all = self.all()?;
        let found: Vec<&Meta> = all.iter().filter(|m| m.id.starts_with(wanted)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("container \"{wanted}\" does not exist"),
            _ => bail!("container id prefix \"{wanted}\" is ambiguous ({} matches)", found.len()),
        }
    }

    /// Takes the container's lock (blocking) - held during setup, teardown
    /// and by the monitor for the container's life.
    fn lock(&self, id: &str, wait: bool) -> Result<Option<Flock<File>>> {
        let path = self.dir(id).join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let arg = if wait { FlockArg::LockExclusive } else { FlockArg::LockExclusiveNonblock };
        match Flock::lock(file, arg) {
            Ok(l) => Ok(Some(l)),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
            Err((_, e)) => Err(anyhow!("cannot lock {}: {e}", path.display())),
        }
    }

    /// Whether anything still sets up, runs or supervises this container.
    ///
    /// While it is being created, that is its creator process (the lock
    /// cannot tell: libcontainer's init, a clone of the creator, inherits it
    /// and keeps it until the container starts). Afterwards: its process
    /// runs, or someone holds its lock (a monitor, a teardown).
    pub fn is_alive(&self, id: &str) -> bool {
        if let Ok(meta) = self.load_meta(id) {
            if meta.phase == "creating" {
                return meta.creator.is_some_and(|c| c.is_running());
            }
        }
        if self.state.exists(id) {
            if let Ok(c) = self.state.load(id) {
                if matches!(c.status(), ContainerStatus::Running | ContainerStatus::Paused) {
                    return true;
                }
            }
        }
        if !self.dir(id).exists() {
            return false;
        }
        matches!(self.lock(id, false), Ok(None))
    }

    /// Takes the container's lock, waiting at most `timeout`.
    fn lock_within(&self, id: &str, timeout: Duration) -> Result<Flock<File>> {
        let start = Instant::now();
        loop {
            if let Some(lock) = self.lock(id, false)? {
                return Ok(lock);
            }
            if start.elapsed() >= timeout {
                bail!("container {id} is busy: another minirun holds its lock");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The docker-ish status of a container right now.
    pub fn status(&self, meta: &Meta) -> Status {
        if meta.phase == "creating" {
            return if self.is_alive(&meta.id) { Status::Created } else { Status::Dead };
        }
        if self.state.exists(&meta.id) {
            if let Ok(c) = self.state.load(&meta.id) {
                return match c.status() {
                    ContainerStatus::Running | ContainerStatus::Paused => Status::Running,
                    ContainerStatus::Created | ContainerStatus::Creating => Status::Created,
                    ContainerStatus::Stopped => Status::Exited(meta.exit_code.unwrap_or(UNKNOWN_EXIT)),
                };
            }
        }
        Status::Exited(meta.exit_code.unwrap_or(UNKNOWN_EXIT))
    }
}

/// Exit code recorded when the container ended with nobody waiting for it
/// (its monitor was killed): docker reports 255 for the same situation.
pub const UNKNOWN_EXIT: i32 = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Exited(i32),
    Dead,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited(_) => "exited",
            Status::Dead => "dead",
        }
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn random_id() -> Result<String> {
    let mut buf = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry",
    "nimble", "proud", "quiet", "sharp", "tender", "witty",
];
const NOUNS: [&str; 16] = [
    "bell", "curie", "darwin", "euler", "gauss", "hopper", "kepler", "lamport", "lovelace",
    "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
];

fn generated_name(id: &str, attempt: usize) -> String {
    let b = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as usize + attempt;
    let base = format!("{}_{}", ADJECTIVES[b % 16], NOUNS[(b / 16 + attempt) % 16]);
    if attempt < 8 { base } else { format!("{base}_{}", &id[..6]) }
}

fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok { Ok(()) } else { bail!("invalid container name \"{name}\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*") }
}

/// Everything a run acquires, released in reverse unless disarmed.
struct Setup<'a> {
    ctx: &'a Ctx,
    id: String,
    name: Option<String>,
    dir_made: bool,
    rootfs: bool,
    net: Option<Attachment>,
    armed: bool,
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(att) = self.net.take() {
            if let Err(e) = minirun_net::detach(&att) {
                tracing::warn!("undo network of {}: {:#}", self.id, anyhow::Error::from(e));
            }
        }
        let dir = self.ctx.dir(&self.id);
        if self.rootfs {
            let _ = minirun_images::release_rootfs(&dir);
        }
        if self.dir_made {
            let _ = fs::remove_dir_all(&dir);
        }
        if let Some(name) = &self.name {
            let _ = fs::remove_file(self.ctx.names_dir().join(name));
        }
    }
}

/// `minirun run [OPTIONS] IMAGE [COMMAND...]`
pub fn run(ctx: &Ctx, a: &RunArgs) -> Result<u8> {
    // 1. Validate everything before anything is created.
    let (image_ref, command) = a.args.split_first().expect("clap requires one argument");
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(imagespec::parse_env_file(f)?);
    }
    for e in &a.env {
        env.extend(imagespec::expand_env(e)?);
    }
    let volumes: Vec<Volume> = a.volume.iter().map(|v| v.parse()).collect::<Result<_>>()?;
    if let Some(name) = &a.name {
        valid_name(name)?;
        if ctx.names_dir().join(name).exists() {
            bail!("the container name \"{name}\" is already in use");
        }
    }
    if let Some(h) = &a.hostname {
        if h.is_empty() || h.len() > 63 || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            bail!("invalid hostname \"{h}\"");
        }
    }
    let runc = &a.runc;
    if a.keep || runc.console_socket.is_some() || runc.pid_file.is_some() || runc.preserve_fds != 0 || runc.no_pivot {
        bail!("--keep, --console-socket, --pid-file, --preserve-fds and --no-pivot apply to run --bundle only");
    }
    let mode: NetMode = a.net.as_deref().unwrap_or("bridge").parse()?;
    check_network_exists(ctx, &mode)?;
    for alias in &a.network_alias {
        if !matches!(&mode, NetMode::Bridge(n) if n != minirun_net::mode::DEFAULT_NETWORK) {
            bail!("--network-alias {alias}: aliases exist only on user-defined networks, not --net {mode}");
        }
        if alias.is_empty() || alias.len() > 63 || !alias.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            bail!("invalid network alias \"{alias}\": expected 1-63 letters, digits, '-' or '_'");
        }
    }
    let mut ports = minirun_net::parse_publish_all(&a.publish)?;
    let store = ctx.store()?;
    let image = store.resolve(image_ref).map_err(|e| anyhow!("{e}"))?;
    if a.publish_all {
        let exposed = image.config.config().as_ref().and_then(|c| c.exposed_ports().clone()).unwrap_or_default();
        let specs: Vec<String> = exposed.iter().map(|p| p.to_string()).collect();
        let mut all = a.publish.clone();
        all.extend(specs);
        ports = minirun_net::parse_publish_all(&all)?;
    }
    let join_netns = match &mode {
        NetMode::Container(other) => Some(joinable_netns(ctx, other)?),
        _ => None,
    };
    let run = RunConfig {
        command: command.to_vec(),
        entrypoint: a.entrypoint.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname: a.hostname.clone(),
        volumes: volumes.clone(),
        tty: a.tty,
        read_only: a.read_only,
    };
    let args = imagespec::process_args(&image.config, &run)?;
    for v in &volumes {
        fs::create_dir_all(&v.host)
            .with_context(|| format!("cannot create the volume source {}", v.host.display()))?;
    }
    gc_quick(ctx);

    // 2. Reserve an id and a name; everything from here is undone on failure
    //    (and found by gc if this process is killed: a directory nobody
    //    locks, a name whose directory is gone).
    let id = random_id()?;
    let mut setup = Setup { ctx, id: id.clone(), name: None, dir_made: false, rootfs: false, net: None, armed: true };
    let dir = ctx.dir(&id);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    setup.dir_made = true;
    let _lock = ctx.lock(&id, true)?.expect("blocking lock");
    let name = reserve_name(ctx, a.name.as_deref(), &id)?;
    setup.name = Some(name.clone());
    let hostname = imagespec::hostname_of(&run, &id);
    let mut meta = Meta {
        id: id.clone(),
        name: name.clone(),
        image: image_ref.clone(),
        image_id: image.id.clone(),
        created: now(),
        args,
        hostname: hostname.clone(),
        auto_remove: a.rm,
        detached: a.detach,
        tty: a.tty,
        net: mode.to_string(),
        volumes: volumes.iter().map(|v| MountInfo { source: v.host.clone(), destination: v.container.clone(), read_only: v.read_only }).collect(),
        phase: "creating".into(),
        pid: None,
        monitor_pid: None,
        creator: ProcessIdentity::current(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        dns: a.dns.clone(),
    };
    ctx.save_meta(&meta)?;

    // 3. Root filesystem, network, /etc files, spec.
    // Always writable here: libcontainer mounts /proc, /dev, the /etc files
    // and volumes (creating their mount points) first, then remounts / read-only
    // for --read-only (the spec's root.readonly), as runc does.
    let rootfs = store.prepare_rootfs(&image, &dir, false).map_err(|e| anyhow!("{e}"))?;
    setup.rootfs = true;
    let attach_started = Instant::now();
    let att = minirun_net::attach(
        &minirun_net::AttachRequest {
            container_id: id.clone(),
            mode: mode.clone(),
            join_netns,
            runtime_root: ctx.root.clone(),
            data_root: ctx.data_root.clone(),
            ports,
            hostname: Some(hostname.clone()),
            aliases: [name.clone(), minirun_net::etc::default_hostname(&id)].into_iter().chain(a.network_alias.iter().cloned()).collect(),
        },
        &|cid: &str| ctx.is_alive(cid),
    )?;
    tracing::debug!(elapsed = ?attach_started.elapsed(), "network attached");
    let netns = att.netns_path.clone();
    setup.net = Some(att.clone());
    let etc_files = write_etc_files(&dir, &att, &hostname, &name, &a.dns)?;
    if let NetMode::Container(other) = &mode {
        // It shares the other's namespace, so its resolver too (on a user-defined
        // network: the other's embedded DNS at 127.0.0.11), as docker does.
        if let Ok(m) = ctx.resolve(other) {
            if let Ok(text) = fs::read_to_string(ctx.dir(&m.id).join("resolv.conf")) {
                fs::write(dir.join("resolv.conf"), text)?;
            }
        }
    }
    let spec = imagespec::build_spec(&SpecInputs {
        image: &image.config,
        run: &run,
        id: &id,
        rootfs: &rootfs,
        netns: netns.as_deref(),
        etc_files: &etc_files,
    })?;
    let spec = with_host_network(spec, &mode);
    // as docker: a working directory the image lacks is created
    if let Some(p) = spec.process() {
        minirun_images::ensure_dir_in_rootfs(&rootfs, p.cwd())
            .map_err(|e| anyhow!("working directory {}: {e}", p.cwd().display()))?;
    }
    spec.save(dir.join("config.json")).context("cannot write the container's spec")?;

    // 4. Start it: in the background under a monitor, or here.
    if a.detach {
        let started = spawn_monitor(ctx, &mut meta, &spec)?;
        setup.armed = false;
        // The monitor inherited this lock (same open file) and holds it for
        // the container's life: exit without unlocking it.
        std::mem::forget(_lock);
        started?;
        println!("{id}");
        return Ok(0);
    }
    let stdin = if a.interactive { None } else { Some(File::open("/dev/null")?.into()) };
    let started = create_and_start(ctx, &id, &spec, a.tty, Stdio { stdin, ..Default::default() }, &a.dns);
    setup.armed = false;
    let code = match started {
        Ok(Started { pid, master }) => {
            meta.phase = "running".into();
            meta.pid = Some(pid.as_raw());
            meta.started_at = Some(now());
            ctx.save_meta(&meta)?;
            let forwarder = wait::SignalForwarder::start(pid)?;
            let code = match master {
                Some(master) => attach_terminal(master, a.interactive, pid),
                None => wait::wait_exit(pid),
            };
            forwarder.stop();
            code
        }
        Err(e) => Err(e),
    };
    let recorded = code.as_ref().map(|c| *c as i32).unwrap_or(UNKNOWN_EXIT);
    teardown(ctx, &id, Some(recorded))?;
    drop(_lock);
    if a.rm || code.is_err() {
        remove(ctx, &id)?;
    }
    code
}

/// A container whose process runs, with its pty master if it has a terminal.
struct Started {
    pid: Pid,
    master: Option<File>,
}

/// Creates and starts the container made in `ctx.dir(id)`; with `tty`, a
/// console socket receives the pty master. On failure libcontainer's state
/// is gone again (the caller undoes the rest).
fn create_and_start(ctx: &Ctx, id: &str, spec: &Spec, tty: bool, stdio: Stdio, dns: &[IpAddr]) -> Result<Started> {
    let dir = ctx.dir(id);
    let sock_dir = if tty { Some(console_dir()?) } else { None };
    let console = match &sock_dir {
        Some(d) => Some(crate::tty::ConsoleSocket::listen(&d.path().join("console.sock"))?),
        None => None,
    };
    let container = ctx.state.create_with_stdio(
        &CreateRequest {
            id,
            bundle: &dir,
            spec,
            pid_file: None,
            console_socket: console.as_ref().map(|c| c.path()),
            preserve_fds: 0,
            no_pivot: false,
            // libcontainer only takes a console socket for a detached create
            detach: console.is_some(),
        },
        stdio,
    )?;
    let pid = container.pid().context("created container has no pid")?;
    let master = match console.map(|c| c.master()).transpose() {
        Ok(m) => m,
        Err(e) => {
            let _ = ctx.state.delete(id, true);
            return Err(e);
        }
    };
    // The resolver listens before the process runs (libcontainer's fork is
    // behind us, so its threads may start).
    let dns_server = match bind_dns(ctx, id, dns) {
        Ok(s) => s,
        Err(e) => {
            let _ = ctx.state.delete(id, true);
            return Err(e);
        }
    };
    if let Err(e) = ctx.state.start(id) {
        let _ = ctx.state.delete(id, true);
        return Err(e);
    }
    if let Some(s) = dns_server {
        s.spawn();
    }
    Ok(Started { pid, master })
}

/// The embedded DNS responder of a container on a user-defined network,
/// bound in its namespace (None for other modes). Its threads live in the
/// process that waits for the container: this one, or the monitor.
pub fn bind_dns(ctx: &Ctx, id: &str, dns: &[IpAddr]) -> Result<Option<minirun_net::dns::DnsServer>> {
    use minirun_net::dns::{host_upstreams, Directory, DnsServer};
    let Some(att) = minirun_net::attach::load_attachment(&ctx.root, id).ok().flatten().filter(|a| a.embedded_dns()) else {
        return Ok(None);
    };
    let (Some(netns), Some(network)) = (&att.netns_path, &att.network) else { return Ok(None) };
    let upstreams = if dns.is_empty() { host_upstreams() } else { dns.iter().map(|ip| SocketAddr::new(*ip, 53)).collect() };
    let server = DnsServer::bind(netns, Directory::new(&ctx.root, network), upstreams)?;
    Ok(Some(server))
}

/// `--net NAME` of a network nobody created is refused before anything is made.
pub fn check_network_exists(ctx: &Ctx, mode: &NetMode) -> Result<()> {
    if let NetMode::Bridge(n) = mode {
        if n != minirun_net::mode::DEFAULT_NETWORK
            && minirun_net::network::load_network(&ctx.data_root, n)?.is_none()
        {
            bail!("network \"{n}\" not found (create it with: minirun network create {n})");
        }
    }
    Ok(())
}

/// A short private directory for a console socket: a socket path holds at
/// most 107 bytes, fewer than a container's directory under a long data root
/// or runtime root may need.
fn console_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("minirun-tty-").tempdir().context("cannot create a directory for the console socket")
}

/// `run -t` in the foreground: our terminal in raw mode, relayed both ways.
fn attach_terminal(mut master: File, interactive: bool, pid: Pid) -> Result<u8> {
    let stdin = std::io::stdin();
    let _raw = crate::tty::RawMode::enter(stdin.as_fd());
    crate::tty::copy_window_size(stdin.as_fd(), master.as_fd());
    if interactive {
        crate::tty::pump_input(&master)?;
    }
    let output = std::thread::spawn(move || crate::tty::pump_output(&mut master, &mut std::io::stdout()));
    let code = wait::wait_exit(pid);
    let _ = output.join();
    code
}

/// host mode: no network namespace entry at all.
fn with_host_network(spec: Spec, mode: &NetMode) -> Spec {
    if matches!(mode, NetMode::Host) { set_netns(spec, None) } else { spec }
}

/// Points the spec's network namespace at `path`, or removes it (None: the host's).
pub fn set_netns(mut spec: Spec, path: Option<&Path>) -> Spec {
    use libcontainer::oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType};
    if let Some(mut linux) = spec.linux().clone() {
        let mut ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .collect();
        if let Some(path) = path {
            ns.push(LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Network).path(path).build().expect("valid namespace"));
        }
        linux.set_namespaces(Some(ns));
        spec.set_linux(Some(linux));
    }
    spec
}

/// Marks a bundle container as alive for gc while `run --bundle --net`
/// sets it up and waits for it: a directory with its lock held.
pub struct Hold {
    dir: PathBuf,
    _lock: Flock<File>,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Ctx {
    pub fn hold(&self, id: &str) -> Result<Hold> {
        let dir = self.dir(id);
        if dir.exists() {
            bail!("container \"{id}\" already exists");
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = self.lock(id, true)?.expect("blocking lock");
        Ok(Hold { dir, _lock: lock })
    }
}

/// `run --bundle DIR --net MODE [-p ...] ID`: the same networking as images
/// get, for a bundle; the caller detaches when the container is gone.
pub fn attach_bundle(ctx: &Ctx, id: &str, net: &str, publish: &[String]) -> Result<Attachment> {
    let mode: NetMode = net.parse()?;
    check_network_exists(ctx, &mode)?;
    let ports = minirun_net::parse_publish_all(publish)?;
    let join_netns = match &mode {
        NetMode::Container(other) => Some(joinable_netns(ctx, other)?),
        _ => None,
    };
    minirun_net::attach(
        &minirun_net::AttachRequest {
            container_id: id.to_string(),
            mode,
            join_netns,
            runtime_root: ctx.root.clone(),
            data_root: ctx.data_root.clone(),
            ports,
            hostname: None,
            aliases: Vec::new(),
        },
        &|cid: &str| ctx.is_alive(cid),
    )
    .map_err(anyhow::Error::from)
}

/// The network namespace of a running container, for `--net container:X`.
fn joinable_netns(ctx: &Ctx, other: &str) -> Result<PathBuf> {
    let m = ctx.resolve(other).map_err(|_| anyhow!("--net container:{other}: no such container \"{other}\""))?;
    if ctx.status(&m) != Status::Running {
        bail!("--net container:{other}: container \"{other}\" is not running");
    }
    let att = minirun_net::attach::load_attachment(&ctx.root, &m.id)
        .ok()
        .flatten()
        .ok_or_else(|| anyhow!("--net container:{other}: container \"{other}\" has no network namespace"))?;
    att.joinable_netns()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("--net container:{other}: container \"{other}\" uses the host network"))
}

/// Reserves a name: a hard link to a file holding the id, made in the
/// container's directory first, so a name never exists without its id (a
/// create_new + write could be killed in between, leaving an empty name).
fn reserve_name(ctx: &Ctx, wanted: Option<&str>, id: &str) -> Result<String> {
    fs::create_dir_all(ctx.names_dir())?;
    let id_file = ctx.dir(id).join("id");
    fs::write(&id_file, id)?;
    let mut attempt = 0;
    loop {
        let name = match wanted {
            Some(n) => n.to_string(),
            None => generated_name(id, attempt),
        };
        match fs::hard_link(&id_file, ctx.names_dir().join(&name)) {
            Ok(()) => return Ok(name),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && wanted.is_some() => {
                bail!("the container name \"{name}\" is already in use")
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => attempt += 1,
            Err(e) => return Err(e).context("cannot reserve a container name"),
        }
    }
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for the container,
/// written in its directory and bind-mounted over the image's.
fn write_etc_files(dir: &Path, att: &Attachment, hostname: &str, name: &str, dns: &[IpAddr]) -> Result<Vec<(PathBuf, &'static str)>> {
    let mut files = Vec::new();
    let hosts = dir.join("hosts");
    fs::write(&hosts, att.hosts_file(hostname, Some(name)))?;
    files.push((hosts, "/etc/hosts"));
    let hn = dir.join("hostname");
    fs::write(&hn, minirun_net::etc::hostname_file(hostname))?;
    files.push((hn, "/etc/hostname"));
    let resolv = dir.join("resolv.conf");
    fs::write(&resolv, att.resolv_conf(dns))?;
    files.push((resolv, "/etc/resolv.conf"));
    Ok(files)
}

/// Forks the monitor, which creates and starts the container with its
/// output going to the log, tells us it runs (or why not), then waits for
/// it, records the exit and tears it down.
fn spawn_monitor(ctx: &Ctx, meta: &mut Meta, spec: &Spec) -> Result<Result<()>> {
    let (rd, wr) = nix::unistd::pipe().context("pipe")?;
    let log_path = ctx.dir(&meta.id).join("container.log");
    let log = OpenOptions::new().create(true).append(true).open(&log_path)?;
    // SAFETY: minirun is single-threaded here (no runtime, no helper thread
    // is alive after attach), so the child may run arbitrary code.
    match unsafe { nix::unistd::fork() }.context("cannot fork the monitor")? {
        ForkResult::Parent { .. } => {
            drop(wr);
            let mut msg = String::new();
            File::from(rd).read_to_string(&mut msg)?;
            Ok(match msg.strip_prefix("ok") {
                Some(_) => Ok(()),
                None if msg.is_empty() => Err(anyhow!("the monitor of container {} died while starting it", meta.id)),
                None => Err(anyhow!("{}", msg.trim_start_matches("err ").trim_end())),
            })
        }
        ForkResult::Child => {
            drop(rd);
            let code = monitor(ctx, meta, spec, log, wr);
            std::process::exit(code);
        }
    }
}

/// The monitor's life; returns its own exit code.
fn monitor(ctx: &Ctx, meta: &mut Meta, spec: &Spec, log: File, report: OwnedFd) -> i32 {
    let _ = nix::unistd::setsid();
    // Leave the CLI's stdio (it may be a pipe someone reads to EOF).
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
    let mut report = File::from(report);
    let id = meta.id.clone();
    // from now on the monitor is the one setting the container up
    meta.creator = ProcessIdentity::current();
    let _ = ctx.save_meta(meta);
    // Our own stdio is /dev/null by now; without a terminal the output goes to the log.
    let stdio = match (meta.tty, log.try_clone(), log.try_clone()) {
        (false, Ok(out), Ok(err)) => Stdio { stdin: None, stdout: Some(out.into()), stderr: Some(err.into()) },
        _ => Stdio::default(),
    };
    let started = create_and_start(ctx, &id, spec, meta.tty, stdio, &meta.dns.clone());
    let (pid, master) = match started {
        Ok(Started { pid, master }) => (pid, master),
        Err(e) => {
            // undo everything, then tell the CLI why
            let _ = teardown(ctx, &id, None);
            let _ = remove(ctx, &id);
            let _ = write!(report, "err {e:#}");
            return 1;
        }
    };
    meta.phase = "running".into();
    meta.pid = Some(pid.as_raw());
    meta.monitor_pid = Some(std::process::id() as i32);
    meta.started_at = Some(now());
    let _ = ctx.save_meta(meta);
    let _ = write!(report, "ok");
    drop(report);
    let output = master.map(|mut m| {
        let mut log = log;
        std::thread::spawn(move || crate::tty::pump_output(&mut m, &mut log))
    });
    let code = wait::wait_exit(pid).map(i32::from).unwrap_or(UNKNOWN_EXIT);
    if let Some(t) = output {
        let _ = t.join();
    }
    let _ = teardown(ctx, &id, Some(code));
    if meta.auto_remove {
        let _ = remove(ctx, &id);
    }
    0
}

/// After the process ended: record the exit, delete libcontainer's state
/// and cgroup, detach the network, unmount the rootfs. Idempotent.
pub fn teardown(ctx: &Ctx, id: &str, exit_code: Option<i32>) -> Result<()> {
    let started = Instant::now();
    let mut errors = Vec::new();
    if ctx.state.exists(id) {
        if let Err(e) = ctx.state.delete(id, true) {
            errors.push(format!("{e:#}"));
        }
    }
    if let Ok(Some(att)) = minirun_net::attach::load_attachment(&ctx.root, id) {
        if let Err(e) = minirun_net::release(&att, &|cid: &str| ctx.is_alive(cid)) {
            errors.push(format!("network: {:#}", anyhow::Error::from(e)));
        }
    }
    let dir = ctx.dir(id);
    if let Err(e) = minirun_images::release_rootfs(&dir) {
        errors.push(format!("rootfs: {e}"));
    }
    if let Ok(mut meta) = ctx.load_meta(id) {
        if meta.phase != "exited" {
            meta.phase = "exited".into();
            meta.exit_code = meta.exit_code.or(exit_code).or(Some(UNKNOWN_EXIT));
            meta.finished_at = Some(now());
            ctx.save_meta(&meta)?;
        }
    }
    tracing::debug!(elapsed = ?started.elapsed(), "container {id} torn down");
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("teardown of container {id}: {}", errors.join("; "))
    }
}

/// Deletes what is left of a torn-down container: its directory and name.
fn remove(ctx: &Ctx, id: &str) -> Result<()> {
    let name = ctx.load_meta(id).map(|m| m.name).ok();
    let dir = ctx.dir(id);
    if dir.exists() {
        // meta.json first: a removal cut short is then an unfinished
        // directory, which gc removes
        let _ = fs::remove_file(dir.join("meta.json"));
        fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    if let Some(name) = name {
        let _ = fs::remove_file(ctx.names_dir().join(name));
    }
    Ok(())
}

/// What a crashed run or killed monitor left: containers nobody holds whose
/// process is gone get torn down (and removed if half-created or --rm).
pub fn gc(ctx: &Ctx) -> Result<Vec<String>> {
    let mut cleaned = gc_unfinished(ctx)?;
    for meta in ctx.all()? {
        if ctx.is_alive(&meta.id) || (meta.phase == "exited" && !meta.auto_remove) {
            continue;
        }
        // an --rm container killed between its exit and its removal lands here too
        reap(ctx, &meta)?;
        cleaned.push(meta.id.clone());
    }
    // network pieces whose container is gone altogether
    minirun_net::gc(&ctx.root, &ctx.data_root, &|cid: &str| ctx.is_alive(cid))?;
    Ok(cleaned)
}

/// A run killed before it wrote meta.json leaves a directory nobody locks,
/// or a name whose directory is gone.
fn gc_unfinished(ctx: &Ctx) -> Result<Vec<String>> {
    let mut cleaned = Vec::new();
    if let Ok(rd) = fs::read_dir(ctx.containers_dir()) {
        for entry in rd.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if entry.path().join("meta.json").exists() {
                continue;
            }
            if let Ok(Some(_lock)) = ctx.lock(&id, false) {
                fs::remove_dir_all(entry.path())?;
                cleaned.push(id);
            }
        }
    }
    if let Ok(rd) = fs::read_dir(ctx.names_dir()) {
        for entry in rd.flatten() {
            let id = fs::read_to_string(entry.path()).unwrap_or_default();
            if !id.is_empty() && !ctx.dir(id.trim()).exists() {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    Ok(cleaned)
}

/// Cleans up a container nobody sets up or supervises any more. A create
/// cut short leaves libcontainer's init waiting for `start` - holding the
/// locks it inherited from its dead creator - so it is killed first.
fn reap(ctx: &Ctx, meta: &Meta) -> Result<()> {
    if ctx.state.exists(&meta.id) {
        if let Err(e) = ctx.state.destroy_abandoned(&meta.id) {
            tracing::warn!("{e:#}");
        }
    }
    let _lock = ctx.lock_within(&meta.id, Duration::from_secs(10))?;
    teardown(ctx, &meta.id, None)?;
    if meta.phase == "creating" || meta.auto_remove {
        remove(ctx, &meta.id)?;
    }
    Ok(())
}

/// The cheap version `run` does: reads the small state files and runs the
/// real gc only when something looks abandoned.
fn gc_quick(ctx: &Ctx) {
    let abandoned_container = ctx
        .all()
        .unwrap_or_default()
        .iter()
        .any(|m| m.phase != "exited" && !ctx.is_alive(&m.id));
    let abandoned_network =
        || minirun_net::needs_gc(&ctx.root, &|cid: &str| ctx.is_alive(cid) || ctx.state.exists(cid));
    if abandoned_container || abandoned_network() {
        if let Err(e) = gc(ctx) {
            tracing::warn!("gc: {e:#}");
        }
    }
}

/// `minirun stop [-t SECONDS] NAME...`
pub fn stop(ctx: &Ctx, wanted: &str, timeout: u64) -> Result<()> {
    let meta = ctx.resolve(wanted)?;
    if ctx.status(&meta) == Status::Running {
        let _ = ctx.state.kill(&meta.id, "SIGTERM", true);
        if !wait_stopped(ctx, &meta.id, Duration::from_secs(timeout)) {
            let _ = ctx.state.kill(&meta.id, "SIGKILL", true);
            wait_stopped(ctx, &meta.id, Duration::from_secs(10));
        }
    }
    finish_after_stop(ctx, &meta)
}

fn wait_stopped(ctx: &Ctx, id: &str, timeout: Duration) -> bool {
    let start = Instant::now();
    loop {
        let running = ctx.state.exists(id)
            && ctx.state.load(id).map(|c| c.status() == ContainerStatus::Running).unwrap_or(false);
        if !running {
            return true;
        }
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// After the process is gone: wait for the monitor to record the exit and
/// tear down; if nobody supervises the container any more, do it here.
fn finish_after_stop(ctx: &Ctx, meta: &Meta) -> Result<()> {
    if !ctx.dir(&meta.id).exists() {
        return Ok(()); // --rm: the monitor removed it
    }
    let _lock = ctx.lock_within(&meta.id, Duration::from_secs(30))?;
    if ctx.dir(&meta.id).join("meta.json").exists() {
        teardown(ctx, &meta.id, None)?;
        if meta.auto_remove {
            remove(ctx, &meta.id)?;
        }
    }
    Ok(())
}

/// `minirun rm [-f] NAME`
pub fn rm(ctx: &Ctx, wanted: &str, force: bool) -> Result<String> {
    let meta = ctx.resolve(wanted)?;
    match ctx.status(&meta) {
        Status::Running | Status::Created if !force => {
            bail!("container \"{wanted}\" is running: stop it first or use rm --force")
        }
        Status::Running | Status::Created => {
            let _ = ctx.state.kill(&meta.id, "SIGKILL", true);
            wait_stopped(ctx, &meta.id, Duration::from_secs(10));
        }
        Status::Dead => return reap(ctx, &meta).map(|_| meta.id),
        Status::Exited(_) => {}
    }
    finish_after_stop(ctx, &meta)?;
    if ctx.dir(&meta.id).exists() {
        let _lock = ctx.lock_within(&meta.id, Duration::from_secs(30))?;
        teardown(ctx, &meta.id, None)?;
        remove(ctx, &meta.id)?;
    }
    Ok(meta.id)
}

/// `minirun logs [-f] NAME`
pub fn logs(ctx: &Ctx, wanted: &str, follow: bool) -> Result<()> {
    let meta = ctx.resolve(wanted)?;
    let path = ctx.dir(&meta.id).join("container.log");
    if !path.exists() {
        if meta.detached {
            return Ok(());
        }
        bail!("container \"{wanted}\" ran attached: its output went to the terminal, no log was kept");
    }
    let mut file = File::open(&path)?;
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        if !follow || !matches!(ctx.status(&ctx.load_meta(&meta.id).unwrap_or(meta.clone())), Status::Running | Status::Created) {
            // one last read for what was written just before the end
            let pos = file.stream_position()?;
            file.seek(SeekFrom::Start(pos))?;
            std::io::copy(&mut file, &mut out)?;
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `minirun exec [-i] [-t] [-d] [-e] [-w] [-u] NAME COMMAND...`, and runc's
/// `exec --process FILE [--detach] [--pid-file F] [--console-socket S] ID`.
pub fn exec(ctx: &Ctx, a: &crate::cli::ExecArgs) -> Result<u8> {
    let id = match ctx.resolve(&a.container) {
        // an exited container made from an image has no libcontainer state left
        Ok(m) if !ctx.state.exists(&m.id) => bail!("cannot exec in container \"{}\": container not running", a.container),
        Ok(m) => m.id,
        Err(_) => ctx.state.resolve(&a.container)?,
    };
    let container = ctx.state.load(&id)?;
    if container.status() != ContainerStatus::Running {
        bail!("cannot exec in container \"{}\": container not running", a.container);
    }
    if a.process.is_none() && a.command.is_empty() {
        bail!("exec needs a command (or --process FILE)");
    }
    crate::seal::ensure_sealed().context("cannot seal minirun before entering the container")?;
    // docker-style exec: the container's own process settings with the
    // command, terminal, env, cwd and user changed, as a process.json
    let generated = match &a.process {
        Some(_) => None,
        None => Some(exec_process_file(ctx, &container, &id, a)?),
    };
    let process = a.process.clone().or_else(|| generated.as_ref().map(|f| f.path().to_path_buf()));
    // -t without a console socket of the caller's: our own, relayed here
    let sock_dir = if a.tty && a.console_socket.is_none() { Some(console_dir()?) } else { None };
    let own_console = match &sock_dir {
        Some(d) => Some(crate::tty::ConsoleSocket::listen(&d.path().join("console.sock"))?),
        None => None,
    };
    let console_path = a.console_socket.clone().or_else(|| own_console.as_ref().map(|c| c.path().to_path_buf()));
    let mut builder = libcontainer::container::builder::ContainerBuilder::new(id.clone(), libcontainer::syscall::syscall::SyscallType::default())
        .with_root_path(ctx.state.path())?
        .with_pid_file(a.pid_file.as_ref())?
        .with_console_socket(console_path.as_ref())
        .with_preserved_fds(a.preserve_fds)
        .validate_id()?;
    if !a.interactive && a.process.is_none() && console_path.is_none() {
        builder = builder.with_stdin(File::open("/dev/null")?);
    }
    let tenant = builder
        .as_tenant()
        .with_process(process.as_ref())
        // libcontainer takes a console socket only for a detached process
        .with_detach(a.detach || console_path.is_some());
    let pid = tenant
        .build()
        .map_err(|e| anyhow!(crate::lifecycle::libcontainer_message(&e)))
        .with_context(|| format!("cannot exec in container \"{}\"", a.container))?;
    if a.detach {
        return Ok(0);
    }
    let forwarder = wait::SignalForwarder::start(pid)?;
    let code = match own_console {
        Some(console) => attach_terminal(console.master()?, a.interactive, pid),
        None => wait::wait_exit(pid),
    };
    forwarder.stop();
    code
}

/// A process.json for `exec`: the container's process with this exec's
/// command, terminal, environment, working directory and user.
fn exec_process_file(ctx: &Ctx, container: &libcontainer::container::Container, id: &str, a: &crate::cli::ExecArgs) -> Result<tempfile::NamedTempFile> {
    let spec = Spec::load(container.bundle().join("config.json")).context("cannot read the container's spec")?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(a.command.clone()));
    process.set_terminal(Some(a.tty));
    let mut env = process.env().clone().unwrap_or_default();
    if a.tty {
        env.push("TERM=xterm".into());
    }
    for e in &a.env {
        env.extend(imagespec::expand_env(e)?);
    }
    process.set_env(Some(imagespec::merge_env(&[&env])));
    if let Some(w) = &a.workdir {
        process.set_cwd(w.into());
    }
    if let Some(u) = &a.user {
        let (uid, gid, extra) = imagespec::resolve_user(u, &ctx.dir(id).join("rootfs"))?;
        let mut user = process.user().clone();
        user.set_uid(uid);
        user.set_gid(gid);
        user.set_additional_gids(Some(extra));
        process.set_user(user);
    }
    let file = tempfile::Builder::new().prefix("exec-").suffix(".json").tempfile_in(&container.root)?;
    serde_json::to_writer(&file, &process)?;
    Ok(file)
}

/// One row of `ps`, and the body of `inspect`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: InspectState,
    pub config: InspectConfig,
    pub mounts: Vec<InspectMount>,
    /// minirun's attachment record: mode, ip, prefix_len, gateway, mac, ports, netns_path...
    pub network_settings: Option<Attachment>,
    pub host_config: InspectHost,
}

/// A bind mount as docker's inspect shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMount {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub source: PathBuf,
    pub destination: PathBuf,
    pub mode: &'static str,
    #[serde(rename = "RW")]
    pub rw: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub status: &'static str,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub cmd: Vec<String>,
    pub tty: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHost {
    pub auto_remove: bool,
    pub network_mode: String,
}

pub fn inspect(ctx: &Ctx, meta: &Meta) -> Inspect {
    let status = ctx.status(meta);
    let running = status == Status::Running;
    let network = minirun_net::attach::load_attachment(&ctx.root, &meta.id).ok().flatten();
    Inspect {
        id: meta.id.clone(),
        name: meta.name.clone(),
        image: meta.image.clone(),
        image_id: format!("sha256:{}", meta.image_id),
        created: meta.created.clone(),
        path: meta.args.first().cloned().unwrap_or_default(),
        args: meta.args.iter().skip(1).cloned().collect(),
        state: InspectState {
            status: status.name(),
            running,
            pid: if running { meta.pid.unwrap_or(0) } else { 0 },
            exit_code: match status {
                Status::Exited(c) => Some(c),
                _ => None,
            },
            started_at: meta.started_at.clone(),
            finished_at: meta.finished_at.clone(),
        },
        config: InspectConfig { hostname: meta.hostname.clone(), cmd: meta.args.clone(), tty: meta.tty },
        mounts: meta
            .volumes
            .iter()
            .map(|v| InspectMount {
                kind: "bind",
                source: v.source.clone(),
                destination: v.destination.clone(),
                mode: if v.read_only { "ro" } else { "rw" },
                rw: !v.read_only,
            })
            .collect(),
        network_settings: network,
        host_config: InspectHost { auto_remove: meta.auto_remove, network_mode: meta.net.clone() },
    }
}

/// `minirun ps [-a] [-q]`
pub fn ps(ctx: &Ctx, all: bool, quiet: bool) -> Result<()> {
    let mut rows = Vec::new();
    for meta in ctx.all()? {
        let status = ctx.status(&meta);
        if !all && status != Status::Running {
            continue;
        }
        rows.push((meta, status));
    }
    if quiet {
        for (m, _) in &rows {
            println!("{}", &m.id[..12]);
        }
        return Ok(());
    }
    println!("{:<12}  {:<16}  {:<24}  {:<20}  {:<24}  {:<28}  NAMES", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS");
    for (m, status) in rows {
        let cmd = format!("\"{}\"", m.args.join(" "));
        let cmd = if cmd.len() > 24 { format!("{}…\"", &cmd[..21]) } else { cmd };
        let status = match status {
            Status::Running => format!("Up since {}", short_time(m.started_at.as_deref())),
            Status::Created => "Created".into(),
            Status::Exited(c) => format!("Exited ({c}) {}", short_time(m.finished_at.as_deref())),
            Status::Dead => "Dead".into(),
        };
        let ports = minirun_net::attach::load_attachment(&ctx.root, &m.id)
            .ok()
            .flatten()
            .map(|a| a.ports.iter().map(format_port).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        println!(
            "{:<12}  {:<16}  {:<24}  {:<20}  {:<24}  {:<28}  {}",
            &m.id[..12],
            m.image,
            cmd,
            short_time(Some(&m.created)),
            status,
            ports,
            m.name
        );
    }
    Ok(())
}

pub fn format_port(p: &minirun_net::PortMapping) -> String {
    let ip = p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into());
    format!("{ip}:{}->{}/{}", p.host_port, p.container_port, p.proto)
}

fn short_time(t: Option<&str>) -> String {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_generated_names_are_valid() {
        valid_name("web-1.a_b").unwrap();
        for bad in ["", "-x", "a/b", "a b", ".x"] {
            assert!(valid_name(bad).unwrap_err().to_string().contains(&format!("\"{bad}\"")));
        }
        let id = "ab".repeat(32);
        for attempt in 0..12 {
            valid_name(&generated_name(&id, attempt)).unwrap();
        }
        assert_ne!(generated_name(&id, 0), generated_name(&id, 1));
    }

    #[test]
    fn ids_are_64_hex() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, random_id().unwrap());
    }
}
