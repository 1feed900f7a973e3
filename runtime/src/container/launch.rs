//! The one launch pipeline every container goes through, made from an image
//! or a bundle, with or without minirun's network, attached or detached:
//! libcontainer's create -> console -> DNS responder -> start, then waiting
//! with signals forwarded.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, Spec};
use minirun_net::{AttachRequest, Attachment, NetMode, PortSpec};
use nix::unistd::Pid;

use super::record::Status;
use super::store::Ctx;
use crate::oci::{CreateRequest, Stdio};
use crate::{tty, wait};

/// One container to create and start.
pub struct Launch<'a> {
    /// libcontainer's create: the bundle `state` reports, the spec, runc's options.
    pub create: CreateRequest<'a>,
    /// A terminal relayed by minirun itself (`run -t`): a console socket of
    /// our own receives the pty master.
    pub own_tty: bool,
    /// The network it holds: on a user-defined network its DNS responder is
    /// bound before the process starts.
    pub network: Option<&'a Attachment>,
    /// `--dns`: the responder's upstreams.
    pub dns: &'a [IpAddr],
    /// The size the relayed terminal gets before the process starts.
    pub window: Option<tty::WindowSize>,
}

/// A container whose process runs, with its pty master if minirun relays
/// its terminal.
pub struct Started {
    pub pid: Pid,
    pub master: Option<File>,
}

/// Creates and starts the container; on failure libcontainer's state is
/// gone again (the caller undoes the rest).
pub fn create_and_start(ctx: &Ctx, l: &Launch, stdio: Stdio) -> Result<Started> {
    let sock_dir = if l.own_tty { Some(console_dir()?) } else { None };
    let console = match &sock_dir {
        Some(d) => Some(tty::ConsoleSocket::listen(&d.path().join("console.sock"))?),
        None => None,
    };
    let mut req = l.create;
    let trim = ctx.mount_dirs();
    req.trim = &trim;
    if let Some(c) = &console {
        req.console_socket = Some(c.path());
        // libcontainer only takes a console socket for a detached create
        req.detach = true;
    }
    let id = l.create.id;
    let pid = ctx.engine.create(&req, stdio).map_err(|e| {
        // rm -f killed it while libcontainer created it: say so, not how
        // libcontainer noticed
        if ctx.removal_requested(id) {
            anyhow!("container was removed while it was being started")
        } else {
            e
        }
    })?;
    let undo = |e: anyhow::Error| {
        let _ = ctx.engine.delete(id, true);
        e
    };
    // `rm -f` came while libcontainer created it: give up before it runs
    // (rm kills what starts anyway, this spares the start)
    if ctx.removal_requested(id) {
        return Err(undo(anyhow!("container was removed while it was being started")));
    }
    let master = console.map(|c| c.master()).transpose().map_err(undo)?;
    if let (Some(m), Some(ws)) = (&master, l.window) {
        ws.apply(m.as_fd());
    }
    // The resolver listens before the process runs (libcontainer's fork is
    // behind us, so its threads may start).
    let dns_server = match l.network {
        Some(att) => ctx.net.bind_dns(att, l.dns).map_err(undo)?,
        None => None,
    };
    ctx.engine.start(id).map_err(undo)?;
    if let Some(s) = dns_server {
        s.spawn();
    }
    Ok(Started { pid, master })
}

/// Waits for a started container in the foreground, our signals forwarded
/// to it and its terminal relayed; its exit code (128+N for signal N).
pub fn wait_attached(started: Started, interactive: bool) -> Result<u8> {
    let forwarder = wait::SignalForwarder::start(started.pid)?;
    let code = match started.master {
        Some(master) => attach_terminal(master, interactive, started.pid),
        None => wait::wait_exit(started.pid),
    };
    forwarder.stop();
    code
}

/// A short private directory for a console socket: a socket path holds at
/// most 107 bytes, fewer than a container's directory under a long data root
/// or runtime root may need.
pub fn console_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("minirun-tty-")
        .tempdir()
        .context("cannot create a directory for the console socket")
}

/// A terminal in the foreground (`exec -t`): ours in raw mode, relayed both
/// ways, its size copied again at each SIGWINCH.
pub fn attach_terminal(mut master: File, interactive: bool, pid: Pid) -> Result<u8> {
    let stdin = std::io::stdin();
    let _raw = tty::RawMode::enter(stdin.as_fd());
    tty::copy_window_size(stdin.as_fd(), master.as_fd());
    let resized = master.try_clone()?;
    let _resize = tty::ResizeWatch::start(move || tty::copy_window_size(std::io::stdin().as_fd(), resized.as_fd()))?;
    if interactive {
        tty::pump_input(&master)?;
    }
    let output = std::thread::spawn(move || tty::pump_output(&mut master, &mut std::io::stdout()));
    let code = wait::wait_exit(pid);
    let _ = output.join();
    code
}

/// Points the spec's network namespace at `path`, or removes it (None: the host's).
pub fn set_netns(mut spec: Spec, path: Option<&Path>) -> Spec {
    if let Some(mut linux) = spec.linux().clone() {
        let mut ns: Vec<_> = linux
            .namespaces()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.typ() != LinuxNamespaceType::Network)
            .collect();
        if let Some(path) = path {
            ns.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::Network)
                    .path(path)
                    .build()
                    .expect("valid namespace"),
            );
        }
        linux.set_namespaces(Some(ns));
        spec.set_linux(Some(linux));
    }
    spec
}

/// What a container asks of the network.
pub struct NetRequest {
    pub mode: NetMode,
    pub ports: Vec<PortSpec>,
    pub hostname: Option<String>,
    /// Names peers on a user-defined network resolve to it.
    pub aliases: Vec<String>,
    /// The namespace `--net container:X` joins, from [`joinable_netns`].
    pub join_netns: Option<PathBuf>,
    /// `--ip` and `--mac-address` (issue 15)
    pub ip: Option<std::net::Ipv4Addr>,
    pub mac: Option<[u8; 6]>,
    /// `--network` given again: user-defined networks connected after the first
    /// (`container::connect`); images only.
    pub connect: Vec<String>,
}

/// Attaches container `id` to the network it asks for.
pub fn attach_network(ctx: &Ctx, id: &str, req: NetRequest) -> Result<Attachment> {
    let started = std::time::Instant::now();
    let att = ctx.net.attach(
        &AttachRequest {
            container_id: id.to_string(),
            mode: req.mode,
            join_netns: req.join_netns,
            runtime_root: ctx.root.clone(),
            data_root: ctx.data_root.clone(),
            ports: req.ports,
            hostname: req.hostname,
            aliases: req.aliases,
            ip: req.ip,
            mac: req.mac,
        },
        ctx,
    )?;
    tracing::debug!(elapsed = ?started.elapsed(), "network attached");
    if let Some(n) = &att.network {
        crate::events::network(&ctx.data_root, "connect", n, id);
    }
    Ok(att)
}

/// `--net NAME` of a network nobody created is refused before anything is made.
pub fn check_network_exists(ctx: &Ctx, mode: &NetMode) -> Result<()> {
    if let NetMode::Bridge(n) = mode {
        if n != minirun_net::mode::DEFAULT_NETWORK && minirun_net::network::load_network(&ctx.data_root, n)?.is_none() {
            bail!("network \"{n}\" not found (create it with: minirun network create {n})");
        }
    }
    Ok(())
}

/// For `--net container:X`: X's network namespace (X must run); None for
/// every other mode.
pub fn join_netns(ctx: &Ctx, mode: &NetMode) -> Result<Option<PathBuf>> {
    match mode {
        NetMode::Container(other) => joinable_netns(ctx, other).map(Some),
        _ => Ok(None),
    }
}

/// The network namespace of a running container, for `--net container:X`.
fn joinable_netns(ctx: &Ctx, other: &str) -> Result<PathBuf> {
    let r = ctx
        .resolve(other)
        .map_err(|_| anyhow!("--net container:{other}: no such container \"{other}\""))?;
    if ctx.status(&r) != Status::Running {
        bail!("--net container:{other}: container \"{other}\" is not running");
    }
    let att = r
        .network
        .clone()
        .or_else(|| ctx.net.recorded(&r.id))
        .ok_or_else(|| anyhow!("--net container:{other}: container \"{other}\" has no network namespace"))?;
    att.joinable_netns()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow!("--net container:{other}: container \"{other}\" uses the host network"))
}

/// The namespaces of other containers that `--ipc container:X` and `--pid
/// container:X` join: `/proc/PID/ns/*` of X's running process. X must run
/// (a gone one is an error naming it) and, for IPC, have been started with
/// `--ipc shareable` (its /dev/shm is on the host), as docker requires.
pub fn join_namespaces(ctx: &Ctx, host: &crate::imagespec::host::Host) -> Result<crate::imagespec::host::Joins> {
    use crate::imagespec::host::{IpcMode, Joins, NsMode};
    let running_pid = |flag: &str, other: &str| -> Result<(super::record::Record, i32)> {
        let r = ctx
            .resolve(other)
            .map_err(|_| anyhow!("{flag} container:{other}: no such container \"{other}\""))?;
        let pid = r.pid.filter(|_| ctx.status(&r) == Status::Running);
        let pid = pid.ok_or_else(|| anyhow!("{flag} container:{other}: container \"{other}\" is not running"))?;
        Ok((r, pid))
    };
    let mut joins = Joins::default();
    if let IpcMode::Container(other) = &host.ipc {
        let (r, pid) = running_pid("--ipc", other)?;
        let shm = ctx.dir(&r.id).join(super::run::IPC_SHM);
        if !shm.exists() {
            bail!(
                "--ipc container:{other}: container \"{other}\" has a non-shareable IPC namespace \
                 (start it with --ipc shareable)"
            );
        }
        joins.shm = Some(shm);
        joins.ipc = Some((PathBuf::from(format!("/proc/{pid}/ns/ipc")), pid));
    }
    if let NsMode::Container(other) = &host.pid {
        let (_, pid) = running_pid("--pid", other)?;
        joins.pid = Some(PathBuf::from(format!("/proc/{pid}/ns/pid")));
    }
    Ok(joins)
}
