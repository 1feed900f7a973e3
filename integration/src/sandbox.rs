//! Sandbox network namespaces for network tests (see DESIGN.md "Tests that touch the network").
//!
//! A [`Sandbox`] is one test's private world:
//!
//! ```text
//!   real machine (never touched)
//!   ┌──────────────── mrt-<tag>-host ────────────────┐   ┌──── mrt-<tag>-out ────┐
//!   │ minirun runs here (nsenter --net=…)            │   │ "the internet"        │
//!   │ minirun0, mr* veths, table ip minirun          │   │                       │
//!   │ uplink0 198.18.0.1/24 ─────────────────────────┼───┼─ wan0 198.18.0.2/24   │
//!   │ default via 198.18.0.2                         │   │ (no route back)       │
//!   └────────────────────────────────────────────────┘   └───────────────────────┘
//! ```
//!
//! minirun runs with `nsenter --net=/run/netns/<host>` (not `ip netns exec`, whose private
//! mount namespace would hide one call's mounts from the next) and the temporary roots of
//! an [`Env`]. The test process itself never leaves the real namespace: sockets are made
//! on short-lived threads that `setns` into a sandbox namespace (a socket stays in the
//! namespace it was created in), so a test can listen "outside" and connect "from the
//! host" without any traffic leaving the sandbox.
//!
//! Dropping the sandbox (also on panic) removes every container through minirun inside the
//! sandbox, runs `gc`, kills whatever test-started process is still in the namespaces,
//! unmounts what is left under the temporary directory, deletes both namespaces and then
//! the runtime root, so that [`Env`]'s own clean-up finds nothing to do outside the
//! sandbox.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{minirun_bin, require_root, Env, Run};

/// The sandbox host's address on its uplink (what the outside sees as the source of
/// masqueraded traffic, and where published ports are reached from outside).
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The outside namespace's address.
pub const OUT_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// IPv6 of the uplink after [`Sandbox::add_ipv6`] (documentation prefix: never routed).
pub const HOST_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 1);
/// The outside namespace's IPv6 address (no route back to any container prefix: only
/// traffic masqueraded to [`HOST_ADDR6`] can be answered).
pub const OUT_ADDR6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x18, 0, 0, 0, 0, 2);
/// The host side of the sandbox veth. Deliberately not starting with `mr` (minirun's
/// veth prefix), so leftover checks cannot confuse the two.
pub const UPLINK: &str = "uplink0";
/// The outside side of the sandbox veth.
pub const WAN: &str = "wan0";

/// Short timeouts: everything here is local, a second is plenty.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const IO_TIMEOUT: Duration = Duration::from_secs(3);

/// Where a socket or command goes.
#[derive(Clone, Debug)]
pub enum Ns {
    /// The sandbox host namespace (where minirun runs).
    Host,
    /// The outside namespace.
    Outside,
    /// Any namespace file, e.g. a container's `<root>/.net/netns/<id>`.
    Path(PathBuf),
}

/// A minirun started in the background (see [`Sandbox::spawn`]).
pub struct Pending {
    pub child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Pending {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for it and returns what it did.
    pub fn wait(mut self) -> Run {
        let status = self.child.wait().expect("wait for minirun");
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: fs::read_to_string(&self.out).unwrap_or_default(),
            stderr: fs::read_to_string(&self.err).unwrap_or_default(),
        };
        let _ = fs::remove_file(&self.out);
        let _ = fs::remove_file(&self.err);
        run
    }
}

/// What the network part of minirun left in the sandbox (see [`Sandbox::leftovers`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// `mr*` links in the host namespace.
    pub veths: Vec<String>,
    /// `address -> container id` over every network's lease file.
    pub leases: Vec<String>,
    /// Files under `<root>/netns`.
    pub netns_files: Vec<String>,
    /// Attachment records under `<root>/net`.
    pub records: Vec<String>,
    /// Elements of the `pub_any` / `pub_addr` maps.
    pub published: Vec<String>,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        *self == Leftovers::default()
    }
}

/// Two network namespaces, a veth between them, and an [`Env`] whose minirun runs in the
/// host one. See the module documentation.
pub struct Sandbox {
    pub env: Env,
    pub tag: String,
    pub host_ns: String,
    pub out_ns: String,
    counter: AtomicUsize,
    children: Mutex<Vec<Child>>,
}

fn random_tag() -> String {
    let mut b = [0u8; 4];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[track_caller]
fn must(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn netns_file(name: &str) -> PathBuf {
    Path::new("/run/netns").join(name)
}

/// The busybox image as a docker archive, built once per test process (it is
/// reproducible) under the workspace's `target/tmp`.
pub fn busybox_tar() -> &'static Path {
    static TAR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .join("target/tmp");
        fs::create_dir_all(&dir).unwrap();
        let tar = dir.join("minirun-sandbox-busybox.tar");
        let tmp = dir.join(format!(".minirun-sandbox-busybox.{}.tar", std::process::id()));
        rootfs_fixtures::build_image(&tmp, "busybox:latest", rootfs_fixtures::ImageFormat::DockerArchive)
            .expect("cannot build the busybox image");
        fs::rename(&tmp, &tar).unwrap();
        tar
    })
}

/// Runs `f` on a fresh thread that first joins the network namespace `path`; returns its
/// result. Sockets made by `f` stay in that namespace wherever they are used afterwards.
pub fn in_netns<R: Send + 'static>(path: &Path, f: impl FnOnce() -> R + Send + 'static) -> R {
    let file = File::open(path).unwrap_or_else(|e| panic!("cannot open netns {}: {e}", path.display()));
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, with a valid open namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns into {}: {}", path.display(), io::Error::last_os_error());
        f()
    })
    .join()
    .unwrap_or_else(|p| std::panic::resume_unwind(p))
}

fn net_ns_inode(path: &Path) -> Option<(u64, u64)> {
    fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl Sandbox {
    /// A new sandbox with the busybox image loaded.
    pub fn new() -> Sandbox {
        let sb = Sandbox::bare();
        sb.load_busybox();
        sb
    }

    /// A new sandbox, no image loaded.
    pub fn bare() -> Sandbox {
        require_root();
        let tag = random_tag();
        let sb = Sandbox {
            env: Env::new(),
            host_ns: format!("mrt-{tag}-host"),
            out_ns: format!("mrt-{tag}-out"),
            tag,
            counter: AtomicUsize::new(0),
            children: Mutex::new(Vec::new()),
        };
        // From here a panic drops `sb`, whose Drop removes whatever was made.
        sb.build_namespaces();
        sb
    }

    fn build_namespaces(&self) {
        let (h, o) = (self.host_ns.as_str(), self.out_ns.as_str());
        must(Command::new("ip").args(["netns", "add", h]));
        must(Command::new("ip").args(["netns", "add", o]));
        // `ip -n` does the work from inside the namespace: the veth is born in the sandbox
        // host namespace and its peer is created directly in the outside one.
        must(Command::new("ip").args([
            "-n", h, "link", "add", UPLINK, "type", "veth", "peer", "name", WAN, "netns", o,
        ]));
        let host_cidr = format!("{HOST_ADDR}/24");
        let out_cidr = format!("{OUT_ADDR}/24");
        must(Command::new("ip").args(["-n", h, "addr", "add", &host_cidr, "dev", UPLINK]));
        must(Command::new("ip").args(["-n", o, "addr", "add", &out_cidr, "dev", WAN]));
        for (ns, dev) in [(h, "lo"), (h, UPLINK), (o, "lo"), (o, WAN)] {
            must(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        must(Command::new("ip").args(["-n", h, "route", "add", "default", "via", &OUT_ADDR.to_string()]));
        // Sanity: the sandbox really is not the machine's namespace.
        let me = net_ns_inode(Path::new("/proc/self/ns/net"));
        assert_ne!(
            me,
            net_ns_inode(&netns_file(h)),
            "sandbox host namespace is the real one"
        );
    }

    /// Gives the uplink IPv6 too: 2001:db8:18::1/64 on the host, ::2 outside, the host's
    /// IPv6 default route via the outside (no DAD: usable at once).
    pub fn add_ipv6(&self) {
        let (h, o) = (self.host_ns.as_str(), self.out_ns.as_str());
        let host_cidr = format!("{HOST_ADDR6}/64");
        let out_cidr = format!("{OUT_ADDR6}/64");
        must(Command::new("ip").args(["-n", h, "-6", "addr", "add", &host_cidr, "dev", UPLINK, "nodad"]));
        must(Command::new("ip").args(["-n", o, "-6", "addr", "add", &out_cidr, "dev", WAN, "nodad"]));
        must(Command::new("ip").args(["-n", h, "-6", "route", "add", "default", "via", &OUT_ADDR6.to_string()]));
    }

    /// Builds the busybox image and loads it (`busybox:latest`, exposes 80/tcp).
    pub fn load_busybox(&self) {
        self.run(["load", "-i", busybox_tar().to_str().unwrap()]).ok();
    }

    pub fn host_netns(&self) -> PathBuf {
        netns_file(&self.host_ns)
    }

    pub fn out_netns(&self) -> PathBuf {
        netns_file(&self.out_ns)
    }

    fn ns_path(&self, ns: &Ns) -> PathBuf {
        match ns {
            Ns::Host => self.host_netns(),
            Ns::Outside => self.out_netns(),
            Ns::Path(p) => p.clone(),
        }
    }

    /// `nsenter --net=<host ns> minirun --root R --data-root D ARGS...`, not yet run.
    pub fn cmd<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = Command::new("nsenter");
        // `run` never pulls here: no test reaches a real registry.
        c.env("MINIRUN_PULL", "never");
        c.arg(format!("--net={}", self.host_netns().display()))
            .arg(minirun_bin())
            .arg("--root")
            .arg(&self.env.root)
            .arg("--data-root")
            .arg(&self.env.data_root)
            .args(args);
        c
    }

    /// Any program in the sandbox host namespace (e.g. `nft`, `busybox nc`).
    pub fn host_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.host_netns().display())).arg(program);
        c
    }

    /// Any program in the outside namespace.
    pub fn outside_cmd(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.out_netns().display())).arg(program);
        c
    }

    fn out_files(&self) -> (PathBuf, PathBuf) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        (
            self.env.path().join(format!(".sb-out-{n}")),
            self.env.path().join(format!(".sb-err-{n}")),
        )
    }

    /// Starts minirun (in the host namespace) in the background, output to files
    /// (a container inherits minirun's stdio: a pipe would not reach EOF).
    pub fn spawn<I, S>(&self, args: I) -> Pending
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (out, err) = self.out_files();
        let child = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(File::create(&out).unwrap())
            .stderr(File::create(&err).unwrap())
            .spawn()
            .expect("cannot run minirun");
        Pending { child, out, err }
    }

    /// Runs minirun in the host namespace and returns what it did.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.spawn(args).wait()
    }

    /// A process the sandbox kills (if still running) when it goes.
    pub fn track(&self, child: Child) {
        self.children.lock().unwrap().push(child);
    }

    /// Runs `f` on a thread inside `ns` (see [`in_netns`]).
    pub fn in_ns<R: Send + 'static>(&self, ns: &Ns, f: impl FnOnce() -> R + Send + 'static) -> R {
        in_netns(&self.ns_path(ns), f)
    }

    // ---------------------------------------------------------------- containers

    /// `inspect NAME`, the one object.
    #[track_caller]
    pub fn inspect(&self, name: &str) -> Value {
        let r = self.run(["inspect", name]).ok();
        let v: Value = serde_json::from_str(&r.stdout).expect("inspect is not JSON");
        v[0].clone()
    }

    /// The container's address, from `inspect`.
    #[track_caller]
    pub fn ip_of(&self, name: &str) -> Ipv4Addr {
        let v = self.inspect(name);
        v["NetworkSettings"]["ip"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no address: {v:#}"))
            .parse()
            .unwrap()
    }

    /// The container's network namespace file, from `inspect`.
    #[track_caller]
    pub fn netns_of(&self, name: &str) -> PathBuf {
        let v = self.inspect(name);
        PathBuf::from(
            v["NetworkSettings"]["netns_path"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no netns: {v:#}")),
        )
    }

    /// `inspect`'s `State.Status` (None when the container does not exist).
    pub fn status(&self, name: &str) -> Option<String> {
        let r = self.run(["inspect", name]);
        if r.code != 0 {
            return None;
        }
        let v: Value = serde_json::from_str(&r.stdout).ok()?;
        v[0]["State"]["Status"].as_str().map(str::to_string)
    }

    /// Polls until the container's status is `want`.
    #[track_caller]
    pub fn wait_status(&self, name: &str, want: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            let s = self.status(name);
            if s.as_deref() == Some(want) {
                return;
            }
            assert!(start.elapsed() < timeout, "{name} never became {want} (is {s:?})");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// `minirun port NAME` lines.
    #[track_caller]
    pub fn ports(&self, name: &str) -> Vec<String> {
        self.run(["port", name])
            .ok()
            .stdout
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The host port `port NAME` reports for `ctr` (e.g. "80/tcp").
    #[track_caller]
    pub fn host_port(&self, name: &str, ctr: &str) -> u16 {
        let lines = self.ports(name);
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("{ctr} -> ")))
            .unwrap_or_else(|| panic!("port {name} does not list {ctr}: {lines:?}"));
        line.rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap_or_else(|_| panic!("bad port line {line:?}"))
    }

    /// Our `meta.json` of a container (pid, monitor_pid, phase...), by full id.
    pub fn meta(&self, id: &str) -> Value {
        let p = self.env.data_root.join("containers").join(id).join("meta.json");
        serde_json::from_slice(&fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
    }

    /// Ids of the containers minirun has a directory for.
    pub fn container_dirs(&self) -> Vec<String> {
        list_dir(&self.env.data_root.join("containers"))
    }

    /// Reserved container names.
    pub fn names(&self) -> Vec<String> {
        list_dir(&self.env.data_root.join("names"))
    }

    // ---------------------------------------------------------------- leftovers

    /// Names of the links in the sandbox host namespace.
    pub fn host_links(&self) -> Vec<String> {
        let out = must(Command::new("ip").args(["-n", &self.host_ns, "-o", "link", "show"]));
        parse_link_names(&out)
    }

    /// `nft -j list table ip minirun` inside the host namespace (None when absent).
    pub fn nft_table(&self) -> Option<Value> {
        self.nft_table_of("ip")
    }

    /// `nft -j list table FAMILY minirun` (`ip` or `ip6`) in the host namespace.
    pub fn nft_table_of(&self, family: &str) -> Option<Value> {
        let out = self
            .host_cmd("nft")
            .args(["-j", "list", "table", family, "minirun"])
            .output()
            .unwrap();
        if !out.status.success() {
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("nft -j output is not JSON"))
    }

    /// Every element of the published-port maps of both tables (`ip` and `ip6`), as
    /// compact JSON text (`ip6 ` before the map name for the IPv6 table).
    pub fn published_elements(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (family, prefix) in [("ip", ""), ("ip6", "ip6 ")] {
            let Some(t) = self.nft_table_of(family) else {
                continue;
            };
            for obj in t["nftables"].as_array().into_iter().flatten() {
                let m = &obj["map"];
                if matches!(m["name"].as_str(), Some("pub_any" | "pub_addr" | "lo_src")) {
                    for e in m["elem"].as_array().into_iter().flatten() {
                        out.push(format!("{prefix}{}: {}", m["name"].as_str().unwrap(), e));
                    }
                }
            }
        }
        out
    }

    /// Elements of set `name` (`subnets`, `bridges`, `isolate`) in `table FAMILY minirun`.
    pub fn set_elements(&self, family: &str, name: &str) -> Vec<String> {
        let Some(t) = self.nft_table_of(family) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for obj in t["nftables"].as_array().into_iter().flatten() {
            let s = &obj["set"];
            if s["name"].as_str() == Some(name) {
                for e in s["elem"].as_array().into_iter().flatten() {
                    out.push(e.to_string());
                }
            }
        }
        out
    }

    /// What minirun's networking left in the sandbox right now.
    pub fn leftovers(&self) -> Leftovers {
        let mut leases = Vec::new();
        for f in list_dir(&self.env.data_root.join("networks")) {
            if f.ends_with(".leases.json") {
                let p = self.env.data_root.join("networks").join(&f);
                let v: Value = serde_json::from_slice(&fs::read(&p).unwrap_or_default()).unwrap_or(Value::Null);
                for key in ["leases", "leases6"] {
                    for (ip, id) in v[key].as_object().into_iter().flatten() {
                        leases.push(format!("{f}: {ip} -> {id}"));
                    }
                }
            }
        }
        Leftovers {
            veths: self.host_links().into_iter().filter(|l| l.starts_with("mr")).collect(),
            leases,
            netns_files: list_dir(&minirun_net::paths::netns_dir(&self.env.root)),
            records: list_dir(&minirun_net::paths::attachments_dir(&self.env.root)),
            published: self.published_elements(),
        }
    }

    /// Polls until nothing of minirun's networking is left (veths go asynchronously, with
    /// their namespace), else panics listing what is.
    #[track_caller]
    pub fn assert_net_clean(&self, what: &str) {
        let start = Instant::now();
        loop {
            let l = self.leftovers();
            if l.is_empty() {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("{what}: left behind {l:#?}");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    // ---------------------------------------------------------------- traffic

    /// A TCP listener bound in `ns`.
    pub fn tcp_listen(&self, ns: &Ns, addr: SocketAddrV4) -> TcpListener {
        self.in_ns(ns, move || {
            TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
        })
    }

    /// A UDP socket bound in `ns`.
    pub fn udp_bind(&self, ns: &Ns, addr: SocketAddrV4) -> UdpSocket {
        self.in_ns(ns, move || {
            UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind udp {addr}: {e}"))
        })
    }

    /// Connects from `ns` to `to`, sends `payload`, half-closes, reads the answer to EOF.
    pub fn tcp_request(&self, ns: &Ns, to: SocketAddrV4, payload: &[u8]) -> io::Result<String> {
        self.tcp_request_to(ns, to.into(), payload)
    }

    /// [`Sandbox::tcp_request`] to an address of either family.
    pub fn tcp_request_to(&self, ns: &Ns, to: SocketAddr, payload: &[u8]) -> io::Result<String> {
        let stream = self.in_ns(ns, move || TcpStream::connect_timeout(&to, CONNECT_TIMEOUT))?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut stream = stream;
        stream.write_all(payload)?;
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut buf = Vec::new();
        stream.read_to_end(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    /// `GET /` over HTTP/1.0 from `ns`; the whole response.
    pub fn http_get(&self, ns: &Ns, to: SocketAddrV4) -> io::Result<String> {
        self.tcp_request(ns, to, b"GET / HTTP/1.0\r\n\r\n")
    }

    /// Polls [`Sandbox::http_get`] until the body is the image's index page (a server in a
    /// just-started container may not listen yet); the last error otherwise.
    pub fn http_get_ok(&self, ns: &Ns, to: SocketAddrV4) -> Result<String, String> {
        self.http_get_ok_to(ns, to.into())
    }

    /// [`Sandbox::http_get_ok`] to an address of either family.
    pub fn http_get_ok_to(&self, ns: &Ns, to: SocketAddr) -> Result<String, String> {
        let start = Instant::now();
        loop {
            let r = self.tcp_request_to(ns, to, b"GET / HTTP/1.0\r\n\r\n");
            match &r {
                Ok(body) if body.contains(rootfs_fixtures::INDEX_HTML) => return Ok(body.clone()),
                _ if start.elapsed() > Duration::from_secs(10) => return Err(format!("{r:?}")),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Sends one datagram from `ns` to `to` and waits for one answer.
    pub fn udp_request(&self, ns: &Ns, to: SocketAddrV4, payload: &[u8]) -> io::Result<String> {
        let sock = self.in_ns(ns, || UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)))?;
        sock.set_read_timeout(Some(Duration::from_millis(1500)))?;
        sock.send_to(payload, to)?;
        let mut buf = [0u8; 1500];
        let (n, _) = sock.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// A UDP echo server on its own thread: answers `prefix + datagram` to each of up to
/// `count` datagrams, records each sender's address; stops after `timeout`.
pub fn udp_echo(
    sock: UdpSocket,
    prefix: &'static str,
    count: usize,
    timeout: Duration,
) -> std::thread::JoinHandle<Vec<SocketAddr>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        let mut buf = [0u8; 1500];
        while seen.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            sock.set_read_timeout(Some(left)).unwrap();
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                break;
            };
            let mut answer = prefix.as_bytes().to_vec();
            answer.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&answer, from);
            seen.push(from);
        }
        seen
    })
}

/// Accepts one connection on `l` within `timeout`; returns the peer and what it sent
/// (read to EOF or until `want_bytes` arrived), answering `reply`.
pub fn accept_one(
    l: TcpListener,
    reply: &'static [u8],
    timeout: Duration,
) -> std::thread::JoinHandle<io::Result<(SocketAddr, String)>> {
    std::thread::spawn(move || {
        l.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        let (mut s, peer) = loop {
            match l.accept() {
                Ok(x) => break x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(e),
            }
        };
        s.set_nonblocking(false)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf)?;
        s.write_all(reply)?;
        Ok((peer, String::from_utf8_lossy(&buf[..n]).into_owned()))
    })
}

/// The link names in `ip -o link` output ("3: name@peer: <...>").
pub fn parse_link_names(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().trim().to_string())
        .collect()
}

fn list_dir(p: &Path) -> Vec<String> {
    match fs::read_dir(p) {
        Ok(rd) => {
            let mut v: Vec<String> = rd
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect();
            v.sort();
            v
        }
        Err(_) => Vec::new(),
    }
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut v: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    v.dedup();
    v
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs `c` with no stdio; kills it if it has not ended after `timeout`. Whether it
/// ended in time with success.
fn run_bounded(mut c: Command, timeout: Duration) -> bool {
    let Ok(mut child) = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.success(),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
        }
    }
}

impl Sandbox {
    /// Processes whose command line mentions this sandbox's temporary directory (minirun
    /// invocations, monitors, and container inits that have not exec'd yet), other than
    /// this test process: `(pid, state, command line)`.
    pub fn processes(&self) -> Vec<(i32, String, String)> {
        let needle = self.env.path().to_string_lossy().into_owned();
        let me = std::process::id() as i32;
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(cmd) = fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                let state = fs::read_to_string(e.path().join("status"))
                    .unwrap_or_default()
                    .lines()
                    .find(|l| l.starts_with("State:"))
                    .map(|l| l.trim_start_matches("State:").trim().to_string())
                    .unwrap_or_default();
                out.push((pid, state, cmd.trim_end().to_string()));
            }
        }
        out
    }

    /// SIGKILLs every process this test started that may still hold sandbox resources:
    /// those in the sandbox namespaces or in a container namespace under its root, those
    /// whose command line names its temporary directory, those in a cgroup named after one
    /// of its containers.
    fn kill_our_processes(&self, container_ids: &[String]) {
        let mut namespaces: Vec<PathBuf> = vec![self.host_netns(), self.out_netns()];
        namespaces.extend(
            list_dir(&minirun_net::paths::netns_dir(&self.env.root))
                .into_iter()
                .map(|n| minirun_net::paths::netns_path(&self.env.root, &n)),
        );
        let inodes: Vec<(u64, u64)> = namespaces.iter().filter_map(|p| net_ns_inode(p)).collect();
        let by_cmdline: Vec<i32> = self.processes().into_iter().map(|(p, _, _)| p).collect();
        let me = std::process::id() as i32;
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me {
                continue;
            }
            let in_ns = net_ns_inode(&e.path().join("ns/net")).is_some_and(|i| inodes.contains(&i));
            let cgroup = fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let in_cgroup = container_ids.iter().any(|id| cgroup.contains(id.as_str()));
            if in_ns || in_cgroup || by_cmdline.contains(&pid) {
                // SAFETY: kill(2) of a process this test started (see above).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        const BOUND: Duration = Duration::from_secs(8);
        // 1. Processes the test started and handed over.
        for mut c in self
            .children
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
        let ids = self.container_dirs();
        let bundles: Vec<String> = list_dir(&self.env.root)
            .into_iter()
            .filter(|n| n != minirun_net::paths::STATE_DIR)
            .collect();
        if self.host_netns().exists() {
            // 2. Every container, through minirun inside the sandbox; bounded, and once
            //    more after killing what could hold a lock if the first round hung.
            for round in 0..2 {
                let mut ok = true;
                if !ids.is_empty() {
                    let mut args = vec!["rm".to_string(), "-f".to_string()];
                    args.extend(ids.iter().cloned());
                    ok &= run_bounded(self.cmd(&args), BOUND);
                }
                for id in &bundles {
                    ok &= run_bounded(self.cmd(["delete", "--force", id]), BOUND);
                }
                ok &= run_bounded(self.cmd(["gc"]), BOUND);
                let left = self.container_dirs().len() + self.leftovers().netns_files.len();
                if (ok && left == 0) || round == 1 {
                    break;
                }
                self.kill_our_processes(&ids);
            }
        }
        // 3. Whatever still runs in the sandbox was started by this test.
        let mut all_ids = ids;
        all_ids.extend(bundles);
        self.kill_our_processes(&all_ids);
        // 4. Mounts minirun may have left under the temporary directory (netns files,
        //    rootfs overlays), so that removing it cannot reach into them.
        for m in mounts_under(self.env.path()) {
            crate::detach_mount(&m);
        }
        // 5. The namespaces (the veth pair and minirun's bridge and table go with them).
        for ns in [&self.host_ns, &self.out_ns] {
            if netns_file(ns).exists() {
                let mut c = Command::new("ip");
                c.args(["netns", "del", ns]);
                run_bounded(c, BOUND);
            }
        }
        // 6. Leave Env's own clean-up nothing to do: it would run minirun outside the
        //    sandbox.
        let _ = fs::remove_dir_all(&self.env.root);
    }
}
