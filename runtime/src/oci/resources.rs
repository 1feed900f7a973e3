//! The parts of `linux.resources` that libcgroups 0.7 leaves out on cgroup v1,
//! written by minirun itself at create and at update.
//!
//! libcontainer applies a container's resources once, from its intermediate
//! process, and always with `disable_oom_killer: false`: libcgroups' v1 memory
//! controller then writes `memory.oom_control` = 0 whenever `memory` is given,
//! whatever `disableOOMKiller` says. Its v1 controllers also never write
//! `memory.use_hierarchy`, `blkio.weight_device` (nor any leaf weight), nor
//! `cpu.cfs_burst_us` when the burst is the only cpu field; and they ignore
//! `rdma` and `unified`. [`check`] refuses, before anything is created, what
//! cannot be applied on this host; [`apply_missing`] writes the rest after
//! libcgroups has written its part. On cgroup v2 libcgroups applies every
//! field the kernel has (there is no OOM-killer switch there), so both do nothing.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcgroups::common::{get_cgroup_setup, CgroupSetup};
use libcgroups::v1::{util::get_subsystem_mount_point, ControllerType};
use libcontainer::oci_spec::runtime::LinuxResources;

/// Whether libcgroups drives this host's cgroups with its v1 controllers.
fn is_v1() -> bool {
    matches!(get_cgroup_setup(), Ok(CgroupSetup::Legacy | CgroupSetup::Hybrid))
}

/// Refuses what minirun cannot apply on this host, before a container is made.
pub fn check(r: &LinuxResources) -> Result<()> {
    if !is_v1() {
        return Ok(());
    }
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("linux.resources.unified needs cgroup v2, and this host's cgroups are v1");
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!("linux.resources.rdma is not supported on cgroup v1");
    }
    if let Some(b) = r.block_io() {
        let leaf = b.leaf_weight().is_some_and(|w| w != 0)
            || b.weight_device()
                .iter()
                .flatten()
                .any(|d| d.leaf_weight().is_some_and(|w| w != 0));
        if leaf && !mount_point(ControllerType::Blkio)?.join("blkio.leaf_weight").exists() {
            bail!("linux.resources.blockIO leafWeight needs the CFQ I/O scheduler, which this kernel lacks");
        }
    }
    Ok(())
}

/// Writes the fields libcgroups leaves out into the cgroup at `cgroup_path`.
pub fn apply_missing(cgroup_path: &Path, r: &LinuxResources) -> Result<()> {
    if !is_v1() {
        return Ok(());
    }
    if let Some(m) = r.memory() {
        if let Some(disable) = m.disable_oom_killer() {
            let dir = dir(ControllerType::Memory, cgroup_path)?;
            write(&dir, "memory.oom_control", if disable { "1" } else { "0" })?;
        }
        if let Some(h) = m.use_hierarchy() {
            let dir = dir(ControllerType::Memory, cgroup_path)?;
            match write(&dir, "memory.use_hierarchy", if h { "1" } else { "0" }) {
                Err(e) if !h => {
                    tracing::warn!(
                        "memory.useHierarchy false ignored: this kernel always accounts hierarchically ({e:#})"
                    )
                }
                other => other?,
            }
        }
    }
    if let Some(c) = r.cpu() {
        // libcgroups writes the burst itself along with any of these
        let with_others = c.shares().is_some()
            || c.period().is_some()
            || c.quota().is_some()
            || c.realtime_period().is_some()
            || c.realtime_runtime().is_some()
            || c.idle().is_some();
        if let (Some(burst), false) = (c.burst(), with_others) {
            write(
                &dir(ControllerType::Cpu, cgroup_path)?,
                "cpu.cfs_burst_us",
                &burst.to_string(),
            )?;
        }
    }
    if let Some(b) = r.block_io() {
        let dir = dir(ControllerType::Blkio, cgroup_path)?;
        if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
            write(&dir, "blkio.leaf_weight", &w.to_string())?;
        }
        // without CFQ the weights are BFQ's
        let weight_file = if dir.join("blkio.weight_device").exists() {
            "blkio.weight_device"
        } else {
            "blkio.bfq.weight_device"
        };
        for d in b.weight_device().iter().flatten() {
            if let Some(w) = d.weight() {
                write(&dir, weight_file, &format!("{}:{} {w}", d.major(), d.minor()))?;
            }
            if let Some(w) = d.leaf_weight() {
                write(
                    &dir,
                    "blkio.leaf_weight_device",
                    &format!("{}:{} {w}", d.major(), d.minor()),
                )?;
            }
        }
    }
    Ok(())
}

/// Whether the OOM killer is disabled now in the cgroup at `cgroup_path`
/// (`update` keeps it so unless told otherwise). False off cgroup v1.
pub fn oom_killer_disabled(cgroup_path: &Path) -> bool {
    if !is_v1() {
        return false;
    }
    let Ok(dir) = dir(ControllerType::Memory, cgroup_path) else {
        return false;
    };
    std::fs::read_to_string(dir.join("memory.oom_control"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().eq(["oom_kill_disable", "1"]))
}

fn mount_point(controller: ControllerType) -> Result<PathBuf> {
    get_subsystem_mount_point(&controller).with_context(|| format!("the {controller} cgroup controller is not mounted"))
}

/// The directory of the cgroup at `cgroup_path` in one v1 hierarchy; a path
/// that would leave the hierarchy is refused.
fn dir(controller: ControllerType, cgroup_path: &Path) -> Result<PathBuf> {
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("invalid cgroup path {}", cgroup_path.display());
    }
    let dir = mount_point(controller)?.join(rel);
    if !dir.is_dir() {
        bail!("cgroup {} does not exist", dir.display());
    }
    Ok(dir)
}

/// Writes one cgroup file, which must exist (cgroupfs makes no files).
fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .with_context(|| format!("cannot write {value:?} to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_leaving_the_hierarchy_are_refused() {
        for bad in ["/minirun/../../etc", "../x"] {
            let e = dir(ControllerType::Memory, Path::new(bad));
            assert!(e.is_err(), "{bad}");
        }
    }
}
