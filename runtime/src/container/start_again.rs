//! `start` of an exited container made from an image, as docker does it:
//! the same id, name, root filesystem (its upper layer kept since it
//! stopped), spec, network mode and published ports; the process runs again
//! under a new monitor.

use std::fs;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::Spec;
use minirun_net::NetMode;

use super::launch::{self, NetRequest};
use super::monitor;
use super::record::{Phase, Record};
use super::store::Ctx;
use super::Status;
use crate::util::lock::FileLock;
use crate::util::proc::ProcessIdentity;

/// The lock of container `id` once nobody holds it while it does not run
/// (a monitor may still be tearing it down): None when it runs (its
/// monitor holds the lock for its life, so waiting would never end).
pub fn lock_stopped(ctx: &Ctx, id: &str) -> Result<Option<FileLock>> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if ctx.status(&ctx.load(id)?) == Status::Running {
            return Ok(None);
        }
        if let Some(lock) = ctx.try_lock(id)? {
            return Ok(Some(lock));
        }
        if Instant::now() > deadline {
            bail!("container {id} is busy (being set up or torn down); try again");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `02:42:ac:11:00:02` as bytes.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = text
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

/// Starts exited container `wanted` again; returns once it runs.
pub fn start_exited(ctx: &Ctx, wanted: &str) -> Result<()> {
    let r = ctx.resolve(wanted)?;
    let id = r.id.clone();
    let Some(lock) = lock_stopped(ctx, &id)? else {
        return Ok(()); // someone else started it
    };
    // under the lock: nobody started or removed it meanwhile
    let mut record = ctx.load(&id)?;
    match ctx.status(&record) {
        Status::Exited(_) => {}
        Status::Running => return Ok(()),
        s => bail!("cannot start container \"{wanted}\": it is {}", s.name()),
    }
    if ctx.engine.exists(&id) {
        let _ = ctx.engine.delete(&id, true);
    }
    let dir = ctx.dir(&id);
    let mut spec = Spec::load(dir.join("config.json"))
        .with_context(|| format!("cannot start container \"{wanted}\": its spec is gone"))?;
    let store = ctx.store()?;
    let image = store
        .resolve(&record.image_id)
        .with_context(|| format!("cannot start container \"{wanted}\": its image is gone"))?;

    record.phase = Phase::Creating;
    record.creator = ProcessIdentity::current();
    record.exit_code = None;
    record.pid = None;
    record.monitor_pid = None;
    ctx.save(&record)?;
    let undo = |ctx: &Ctx, record: &mut Record| {
        if let Some(att) = record.network.take() {
            let _ = ctx.net.release(&att, ctx);
        }
        let _ = minirun_images::unmount_rootfs(&ctx.dir(&record.id));
        record.mark_exited(Some(super::record::UNKNOWN_EXIT));
        let _ = ctx.save(record);
    };

    ctx.prepare_mount_dirs();
    let result = (|| -> Result<()> {
        let rootfs = store.prepare_rootfs(&image, &dir, Default::default())?;
        if let Some(root) = spec.root_mut() {
            root.set_path(rootfs.clone());
        }
        // the network it had: its mode, aliases and published ports
        let before = record
            .network
            .clone()
            .or_else(|| record.config.as_ref()?.network.clone());
        let mut mode: NetMode = record.net.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        if record.first_network_disconnected {
            // `network disconnect` took it away: a namespace of its own, no network
            mode = NetMode::None;
        }
        let publish: Vec<String> = before
            .as_ref()
            .map(|a| {
                a.ports
                    .iter()
                    .map(|p| {
                        let ip = p.host_ip.map(|i| format!("{i}:")).unwrap_or_default();
                        format!("{ip}{}:{}/{}", p.host_port, p.container_port, p.proto)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let aliases = before.as_ref().map(|a| a.aliases.clone()).unwrap_or_default();
        let req = NetRequest {
            join_netns: launch::join_netns(ctx, &mode)?,
            mode: mode.clone(),
            ports: minirun_net::parse_publish_all(&publish)?,
            hostname: Some(record.hostname.clone()),
            aliases,
            // the address and MAC it was given (`--ip`, `--mac-address`)
            ip: record.run_flags.ip,
            mac: record.run_flags.mac_address.as_deref().and_then(parse_mac),
            connect: Vec::new(),
        };
        let att = launch::attach_network(ctx, &id, req)?;
        record.network = Some(att.clone());
        ctx.save(&record)?;
        super::run::write_etc_files(&dir, &att, &record.hostname, &record.name, &record.dns)?;
        // the networks it was connected to besides the first, with their aliases
        let defaults = [record.name.clone(), minirun_net::etc::default_hostname(&id)];
        for before in record.extra_networks.clone() {
            let Some(n) = before.network.clone() else { continue };
            let opts = super::connect::ConnectOpts {
                ip: None,
                aliases: before
                    .aliases
                    .iter()
                    .filter(|a| !defaults.contains(a))
                    .cloned()
                    .collect(),
            };
            super::connect::connect(ctx, &record, &n, &opts)?;
        }
        record = ctx.load(&id)?;
        if let NetMode::Container(other) = &mode {
            if let Ok(o) = ctx.resolve(other) {
                if let Ok(text) = fs::read_to_string(ctx.dir(&o.id).join("resolv.conf")) {
                    fs::write(dir.join("resolv.conf"), text)?;
                }
            }
        }
        if mode != NetMode::Host {
            spec = launch::set_netns(spec.clone(), att.netns_path.as_deref());
        }
        spec.save(dir.join("config.json"))
            .context("cannot write the container's spec")?;
        Ok(())
    })();
    if let Err(e) = result {
        undo(ctx, &mut record);
        return Err(e);
    }
    let started = monitor::spawn(ctx, &mut record, &spec, false)?;
    lock.leak();
    started.with_context(|| format!("cannot start container \"{wanted}\""))
}
