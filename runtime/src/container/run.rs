//! `run`: a container made from an image (attached, or detached under a
//! monitor) and a bundle run in the foreground with minirun's network; both
//! through the one launch pipeline ([`super::launch`]).

use std::fs::{self, File};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::Spec;
use minirun_images::{Image, Store};
use minirun_net::{Attachment, NetMode};

use super::launch::{self, Launch, NetRequest};
use super::record::{now, MountInfo, Phase, Record, UNKNOWN_EXIT};
use super::run_flags::RunFlagsRecord;
use super::store::{random_id, Ctx};
use super::{attach, monitor, teardown};
use crate::imagespec::{self, RunConfig, SpecInputs};
use crate::oci::{CreateRequest, Stdio};
use crate::util::proc::ProcessIdentity;

/// A validated `run IMAGE`: nothing is made before it exists.
pub struct ImageRun {
    /// The store the image was found in; its root filesystem comes from it.
    pub store: Store,
    pub image: Image,
    /// The reference the user gave.
    pub image_ref: String,
    pub run: RunConfig,
    /// The process's argv (entrypoint + command).
    pub args: Vec<String>,
    pub name: Option<String>,
    pub net: NetRequest,
    pub dns: Vec<IpAddr>,
    pub auto_remove: bool,
    pub detach: bool,
    pub interactive: bool,
    /// Parsed `--detach-keys` (with `-it`).
    pub detach_keys: Vec<u8>,
    /// What issue 15's flags leave in the record.
    pub flags: RunFlagsRecord,
}

/// Everything a run acquires, released in reverse unless disarmed.
struct Setup<'a> {
    ctx: &'a Ctx,
    id: String,
    name: Option<String>,
    dir_made: bool,
    rootfs: bool,
    net: Option<Attachment>,
    /// `--cidfile`, written by this run
    cidfile: Option<PathBuf>,
    armed: bool,
}

impl Drop for Setup<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(att) = self.net.take() {
            if let Err(e) = self.ctx.net.release(&att, self.ctx) {
                tracing::warn!("undo network of {}: {e:#}", self.id);
            }
        }
        let dir = self.ctx.dir(&self.id);
        release_ipc_shm(&dir);
        if self.rootfs {
            let _ = minirun_images::release_rootfs(&dir);
        }
        if self.dir_made {
            let _ = fs::remove_dir_all(&dir);
            self.ctx.forget_lock(&self.id);
        }
        if let Some(name) = &self.name {
            let _ = fs::remove_file(self.ctx.names_dir().join(name));
        }
        if let Some(c) = &self.cidfile {
            let _ = fs::remove_file(c);
        }
    }
}

/// Where a `--ipc shareable` container's /dev/shm is mounted on the host
/// (below its directory), for itself and the containers that join it: a
/// mount of another mount namespace cannot be bound, so it lives in the
/// host's, as docker does.
pub const IPC_SHM: &str = "ipc-shm";

/// Mounts a shareable container's /dev/shm at `dir`/ipc-shm (private, in the
/// host's mount namespace; released by [`release_ipc_shm`]).
fn mount_ipc_shm(dir: &Path, size: Option<u64>) -> Result<PathBuf> {
    use nix::mount::{mount, MsFlags};
    let at = dir.join(IPC_SHM);
    fs::create_dir_all(&at).with_context(|| format!("cannot create {}", at.display()))?;
    let data = format!("mode=1777,size={}", size.unwrap_or(64 << 20));
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("shm"), &at, Some("tmpfs"), flags, Some(data.as_str()))
        .with_context(|| format!("cannot mount the shareable /dev/shm at {}", at.display()))?;
    let _ = mount(None::<&str>, &at, None::<&str>, MsFlags::MS_PRIVATE, None::<&str>);
    Ok(at)
}

/// Unmounts what [`mount_ipc_shm`] mounted, if anything; before a directory
/// is removed (joiners may still use the tmpfs: it lives on in their mounts).
pub fn release_ipc_shm(dir: &Path) {
    let at = dir.join(IPC_SHM);
    if at.exists() {
        let _ = nix::mount::umount2(&at, nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_dir(&at);
    }
}

/// A name for `volume create` without one: 64 hex digits, as docker.
pub fn random_volume_name() -> Result<String> {
    random_id()
}

/// Runs a container from an image; attached it returns the container's exit
/// code, detached 0 once the process runs (its id printed).
pub fn image(ctx: &Ctx, mut req: ImageRun) -> Result<u8> {
    // named volumes: made on first use (and kept, as docker, if the run fails)
    for v in req.run.volumes.iter_mut() {
        if let Some(name) = &v.named {
            v.host = super::volumes::ensure(ctx, name)?.0.mountpoint;
        }
    }
    for v in req.run.volumes.iter().filter(|v| v.create_source && !v.host.exists()) {
        fs::create_dir_all(&v.host).with_context(|| format!("cannot create the volume source {}", v.host.display()))?;
    }
    let looked = std::time::Instant::now();
    // profiling aid: `MINIRUN_LOG=minirun=trace` shows where a run's set-up goes
    let step = |what: &str| tracing::trace!(elapsed = ?looked.elapsed(), "run: {what}");
    teardown::gc_quick(ctx);
    tracing::debug!(elapsed = ?looked.elapsed(), "looked for abandoned containers");
    ctx.prepare_mount_dirs();

    // Reserve an id and a name; everything from here is undone on failure
    // (and found by gc if this process is killed: a directory nobody locks,
    // a name whose directory is gone).
    let id = random_id()?;
    let mut setup = Setup {
        ctx,
        id: id.clone(),
        name: None,
        dir_made: false,
        rootfs: false,
        net: None,
        cidfile: None,
        armed: true,
    };
    let dir = ctx.dir(&id);
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    setup.dir_made = true;
    let lock = ctx.lock(&id)?;
    let name = ctx.reserve_name(req.name.as_deref(), &id)?;
    setup.name = Some(name.clone());
    let hostname = imagespec::hostname_of(&req.run, &id);
    let mut record = Record {
        id: id.clone(),
        name: name.clone(),
        image: req.image_ref.clone(),
        image_id: req.image.id.clone(),
        created: now(),
        args: req.args.clone(),
        hostname: hostname.clone(),
        auto_remove: req.auto_remove,
        detached: req.detach,
        tty: req.run.tty,
        interactive: req.interactive,
        net: req.net.mode.to_string(),
        volumes: req
            .run
            .volumes
            .iter()
            .map(|v| MountInfo {
                source: v.host.clone(),
                destination: v.container.clone(),
                read_only: v.read_only,
            })
            .collect(),
        phase: Phase::Creating,
        pid: None,
        monitor_pid: None,
        creator: ProcessIdentity::current(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        dns: req.dns.clone(),
        network: None,
        extra_networks: Vec::new(),
        first_network_disconnected: false,
        run_flags: req.flags.clone(),
        config: None,
    };
    step("id, name and first record");
    ctx.save(&record)?;
    crate::events::container(&ctx.data_root, "create", &record, &[]);
    step("record saved");
    if let Some(c) = &req.flags.cidfile {
        super::run_extras::write_cidfile(c, &id)?;
        setup.cidfile = Some(c.clone());
    }

    // Root filesystem, network, /etc files, spec. The root filesystem is
    // always writable here: libcontainer mounts /proc, /dev, the /etc files
    // and volumes (creating their mount points) first, then remounts /
    // read-only for --read-only (the spec's root.readonly), as runc does.
    // The root filesystem (the data root's disk) and the network (netlink,
    // the kernel's namespace and veth set-up) need nothing of each other:
    // they are made at once, the root filesystem on a thread of its own.
    let mode = req.net.mode.clone();
    req.net.hostname = Some(hostname.clone());
    let mut aliases = vec![name.clone(), minirun_net::etc::default_hostname(&id)];
    aliases.append(&mut req.net.aliases);
    req.net.aliases = aliases;
    let more = std::mem::take(&mut req.net.connect);
    let rootfs_opts = minirun_images::RootfsOptions {
        // discarded when it ends: no sync of the upper layer at unmount
        volatile: req.auto_remove,
        ..Default::default()
    };
    let (store, image, net) = (&req.store, &req.image, req.net);
    let (rootfs, att) = std::thread::scope(|s| {
        let mounting = s.spawn(|| store.prepare_rootfs(image, &dir, rootfs_opts));
        let att = launch::attach_network(ctx, &id, net);
        (mounting.join(), att)
    });
    // each undone by the guard if the other failed
    setup.net = att.as_ref().ok().cloned();
    let rootfs = rootfs.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    setup.rootfs = rootfs.is_ok();
    let rootfs = rootfs?;
    let att = att?;
    step("root filesystem mounted, network attached");
    // an empty named volume gets what the image has at its destination
    for v in req.run.volumes.iter().filter(|v| v.named.is_some() && v.copy) {
        let inside = imagespec::paths::resolve_in_rootfs(&rootfs, &v.container)?;
        super::volumes::copy_up(&rootfs.join(inside.strip_prefix("/").unwrap_or(&inside)), &v.host)?;
    }
    if req.run.host.ipc == imagespec::host::IpcMode::Shareable {
        req.run.joins.shm = Some(mount_ipc_shm(&dir, req.run.shm_size)?);
    }
    record.network = Some(att.clone());
    // Saved with the spec below, unless other networks are connected first
    // (connect reads and writes the record). Cut short before that, the
    // teardown finds the network by minirun-net's own record.
    if !more.is_empty() {
        ctx.save(&record)?;
    }
    step("network attached");
    let etc_files = write_etc_files(&dir, &att, &hostname, &name, &req.dns)?;
    super::run_extras::edit_etc_files(&dir, &att, &hostname, &name, &req.flags)?;
    // `--network` given again: undone with the first by the guard (net releases them)
    for n in &more {
        super::connect::connect(ctx, &record, n, &Default::default())?;
    }
    if !more.is_empty() {
        record = ctx.load(&id)?;
    }
    if let NetMode::Container(other) = &mode {
        // It shares the other's namespace, so its resolver too (on a
        // user-defined network: the other's embedded DNS at 127.0.0.11), as
        // docker does.
        if let Ok(r) = ctx.resolve(other) {
            if let Ok(text) = fs::read_to_string(ctx.dir(&r.id).join("resolv.conf")) {
                fs::write(dir.join("resolv.conf"), text)?;
            }
        }
    }
    let spec = imagespec::build_spec(&SpecInputs {
        image: &req.image.config,
        run: &req.run,
        id: &id,
        rootfs: &rootfs,
        netns: att.netns_path.as_deref(),
        etc_files: &etc_files,
        seccomp_cache: Some(&ctx.data_root.join("seccomp")),
    })?;
    step("/etc files written, spec built");
    // host mode: no network namespace entry at all
    let spec = if mode == NetMode::Host {
        launch::set_netns(spec, None)
    } else {
        spec
    };
    // as docker: a working directory the image lacks is created
    if let Some(p) = spec.process() {
        minirun_images::ensure_dir_in_rootfs(&rootfs, p.cwd())
            .with_context(|| format!("working directory {}", p.cwd().display()))?;
    }
    spec.save(dir.join("config.json"))
        .context("cannot write the container's spec")?;
    step("spec saved");
    record.config = Some(super::record::RunSummary::of(&req.image.config, &req.run, &spec, &att));
    ctx.save(&record)?;
    step("record saved with the spec");

    // Start it: under a monitor (detached, or with a terminal, which the
    // monitor holds so the user may detach and attach again), or here.
    if req.detach || req.run.tty {
        let started = monitor::spawn(ctx, &mut record, &spec, !req.detach)?;
        setup.armed = false;
        // The monitor inherited this lock (the same open file) and holds it
        // for the container's life: let go of it without unlocking it.
        lock.leak();
        started?;
        if req.detach {
            println!("{id}");
            return Ok(0);
        }
        let pid = ctx.load(&id)?.pid.map(nix::unistd::Pid::from_raw);
        let opts = attach::ClientOpts {
            stdin: req.interactive,
            detach_keys: req.detach_keys,
        };
        return match attach::attach(ctx, &id, pid, opts)? {
            attach::Ended::Exited(code) => Ok(code),
            attach::Ended::Detached => Ok(0),
        };
    }
    let attach = &req.flags.attach;
    let wants = |s: &str| attach.is_empty() || attach.iter().any(|a| a == s);
    // a stream not attached goes to a pipe drained here (libcontainer
    // reopens a /dev/null it is given read-only inside the container)
    let mut drains = Vec::new();
    let mut sink = || -> Result<Option<std::os::fd::OwnedFd>> {
        let (rd, wr) = nix::unistd::pipe().context("pipe")?;
        drains.push(rd);
        Ok(Some(wr))
    };
    let stdin = if req.interactive || attach.iter().any(|a| a == "stdin") {
        None
    } else {
        Some(File::open("/dev/null")?.into())
    };
    let stdout = if wants("stdout") { None } else { sink()? };
    let stderr = if wants("stderr") { None } else { sink()? };
    let started = launch::create_and_start(
        ctx,
        &image_launch(&record, &dir, &spec),
        Stdio { stdin, stdout, stderr },
    );
    setup.armed = false;
    for rd in drains {
        std::thread::spawn(move || std::io::copy(&mut File::from(rd), &mut std::io::sink()));
    }
    let sig_proxy = req.flags.sig_proxy != Some(false);
    step("started");
    let code = started.and_then(|s| {
        record.mark_running(s.pid.as_raw());
        ctx.save(&record)?;
        crate::events::container(&ctx.data_root, "start", &record, &[]);
        step("recorded as running");
        if sig_proxy {
            launch::wait_attached(s, req.interactive)
        } else {
            crate::wait::wait_exit(s.pid)
        }
    });
    step("exited");
    let recorded = code.as_ref().map(|c| i32::from(*c)).unwrap_or(UNKNOWN_EXIT);
    let removing = req.auto_remove || code.is_err();
    if removing {
        teardown::teardown_for_removal(ctx, &id, Some(recorded))?;
    } else {
        teardown::teardown(ctx, &id, Some(recorded))?;
    }
    drop(lock);
    if removing || ctx.removal_requested(&id) {
        teardown::remove(ctx, &id)?;
        step("removed");
    }
    code
}

/// The launch of a container made from an image, from its record.
pub fn image_launch<'a>(record: &'a Record, dir: &'a Path, spec: &'a Spec) -> Launch<'a> {
    Launch {
        create: CreateRequest::new(&record.id, dir, spec),
        own_tty: record.tty,
        network: record.network.as_ref(),
        dns: &record.dns,
        window: None,
    }
}

/// /etc/hosts, /etc/hostname and /etc/resolv.conf for the container,
/// written in its directory and bind-mounted over the image's.
pub(crate) fn write_etc_files(
    dir: &Path,
    att: &Attachment,
    hostname: &str,
    name: &str,
    dns: &[IpAddr],
) -> Result<Vec<(PathBuf, &'static str)>> {
    let files = [
        ("hosts", att.hosts_file(hostname, Some(name)), "/etc/hosts"),
        ("hostname", minirun_net::etc::hostname_file(hostname), "/etc/hostname"),
        ("resolv.conf", att.resolv_conf(dns), "/etc/resolv.conf"),
    ];
    let mut out = Vec::new();
    for (file, text, target) in files {
        let path = dir.join(file);
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
        out.push((path, target));
    }
    Ok(out)
}

/// `run --bundle DIR [--net MODE -p ...] ID` in the foreground: create,
/// start, wait with signals forwarded, then delete (unless `keep`); the
/// network, if asked for, is undone at the end.
pub fn bundle(ctx: &Ctx, create: CreateRequest, net: Option<NetRequest>, dns: &[IpAddr], keep: bool) -> Result<u8> {
    let id = create.id;
    if ctx.engine.exists(id) {
        bail!("container \"{id}\" already exists");
    }
    // while it sets up and runs, gc sees it alive
    let _hold = match &net {
        Some(_) => Some(ctx.hold(id)?),
        None => None,
    };
    let attachment = match net {
        Some(req) => {
            ctx.prepare_mount_dirs();
            Some(launch::attach_network(ctx, id, req)?)
        }
        None => None,
    };
    let release = || {
        if let Some(att) = &attachment {
            if let Err(e) = ctx.net.release(att, ctx) {
                tracing::warn!("detach network of {id}: {e:#}");
            }
        }
    };
    let spec = match &attachment {
        Some(att) => launch::set_netns(create.spec.clone(), att.netns_path.as_deref()),
        None => create.spec.clone(),
    };
    let l = Launch {
        create: CreateRequest { spec: &spec, ..create },
        own_tty: false,
        network: attachment.as_ref(),
        dns,
        window: None,
    };
    let code = launch::create_and_start(ctx, &l, Stdio::default()).and_then(|s| launch::wait_attached(s, true));
    if code.is_err() || !keep {
        let _ = ctx.engine.delete(id, true);
    }
    release();
    code
}
