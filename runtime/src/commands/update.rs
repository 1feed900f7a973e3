//! `update [--resources FILE|-] [--memory SIZE] [--cpu-share N] ... ID` (runc):
//! new cgroup limits, from OCI LinuxResources JSON or, without it, runc's
//! options.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::Env;
use crate::cli::{UpdateArgs, UpdateFlags};

pub fn run(env: &Env, a: &UpdateArgs) -> Result<u8> {
    let resources = match &a.resources {
        Some(from) => {
            if from_flags(&a.flags)? != LinuxResources::default() {
                tracing::warn!("update: --resources is given, so the other resource options are ignored (as runc)");
            }
            read_resources(from)?
        }
        None => from_flags(&a.flags)?,
    };
    // an image container by name or id prefix too (docker update)
    let (id, from_image) = env.resolve_shared(&a.id)?;
    env.state.update(&id, &resources)?;
    if from_image {
        // a restart (--restart) starts the process again from this spec
        keep_in_spec(&env.ctx().dir(&id).join("config.json"), &resources)?;
    }
    Ok(0)
}

/// Merges what an update set into the container's spec (`config.json` in
/// its directory), field by field, so the limits outlive a restart.
fn keep_in_spec(path: &Path, resources: &LinuxResources) -> Result<()> {
    let Ok(text) = std::fs::read(path) else {
        return Ok(());
    };
    let mut spec: serde_json::Value = serde_json::from_slice(&text).context("the container's config.json")?;
    let new = serde_json::to_value(resources)?;
    let Some(target) = spec["linux"]["resources"].as_object_mut() else {
        return Ok(());
    };
    for (k, v) in new.as_object().into_iter().flatten() {
        if k == "devices" || v.is_null() {
            continue;
        }
        match (target.get_mut(k).and_then(|t| t.as_object_mut()), v.as_object()) {
            (Some(t), Some(fields)) => {
                for (f, x) in fields {
                    t.insert(f.clone(), x.clone());
                }
            }
            _ => {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    crate::util::json::write_atomic(path, &spec)
}

/// OCI LinuxResources JSON from a file or stdin.
fn read_resources(from: &Path) -> Result<LinuxResources> {
    let text = if from == Path::new("-") {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read resources from stdin")?;
        buf
    } else {
        std::fs::read(from).with_context(|| format!("cannot read resources from {}", from.display()))?
    };
    serde_json::from_slice(&text).with_context(|| format!("invalid resources JSON in {}", from.display()))
}

/// The resources runc's update options name; the others stay absent.
fn from_flags(f: &UpdateFlags) -> Result<LinuxResources> {
    if f.l3_cache_schema.is_some() || f.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema and --mem-bw-schema need Intel RDT, which minirun does not support");
    }
    let mut r = LinuxResources::default();
    if let Some(w) = f.blkio_weight {
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    // docker's --cpus: a quota per 100 ms period
    let (period, quota) = match &f.cpus {
        Some(c) => {
            if f.cpu_period.is_some() || f.cpu_quota.is_some() {
                bail!("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set (--cpus {c})");
            }
            let nano = crate::imagespec::resources::parse_cpus(c)?;
            if nano < 0 {
                bail!("invalid --cpus {c}: must not be negative");
            }
            let period = crate::imagespec::resources::CPU_PERIOD;
            match nano {
                0 => (Some(period), Some(-1)),
                n => (Some(period), Some((n as u64 * period / 1_000_000_000) as i64)),
            }
        }
        None => (f.cpu_period, f.cpu_quota),
    };
    let mut cpu = LinuxCpu::default();
    cpu.set_period(period)
        .set_quota(quota)
        .set_burst(f.cpu_burst)
        .set_realtime_period(f.cpu_rt_period)
        .set_realtime_runtime(f.cpu_rt_runtime)
        .set_shares(f.cpu_share)
        .set_cpus(f.cpuset_cpus.clone())
        .set_mems(f.cpuset_mems.clone());
    if cpu != LinuxCpu::default() {
        r.set_cpu(Some(cpu));
    }
    let size = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| parse_size(s).with_context(|| format!("invalid --{flag} \"{s}\"")))
            .transpose()
    };
    let mut memory = LinuxMemory::default();
    memory
        .set_limit(size("memory", &f.memory)?)
        .set_reservation(size("memory-reservation", &f.memory_reservation)?)
        .set_swap(size("memory-swap", &f.memory_swap)?);
    if memory != LinuxMemory::default() {
        r.set_memory(Some(memory));
    }
    if let Some(limit) = f.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        r.set_pids(Some(pids));
    }
    Ok(r)
}

/// A size in bytes: a number with an optional k, m, g or t (powers of 1024,
/// an optional trailing b, any case), or -1 for no limit.
fn parse_size(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        Some('t') => (&lower[..lower.len() - 1], 40),
        _ => (lower, 0),
    };
    let n: i64 = digits
        .trim()
        .parse()
        .ok()
        .filter(|n| *n >= 0)
        .context("expected bytes, or a number with k, m, g or t")?;
    n.checked_mul(1 << shift).context("too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("80m").unwrap(), 80 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("512kb").unwrap(), 512 << 10);
        assert_eq!(parse_size("-1").unwrap(), -1);
        for bad in ["", "m", "-2", "ten", "1x", "99999999999t"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_the_given_options_become_resources() {
        assert_eq!(from_flags(&UpdateFlags::default()).unwrap(), LinuxResources::default());
        let r = from_flags(&UpdateFlags {
            memory: Some("64m".into()),
            cpu_share: Some(512),
            pids_limit: Some(10),
            ..Default::default()
        })
        .unwrap();
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"memory": {"limit": 67108864}, "cpu": {"shares": 512}, "pids": {"limit": 10}})
        );
        let rdt = UpdateFlags {
            l3_cache_schema: Some("L3:0=f".into()),
            ..Default::default()
        };
        assert!(from_flags(&rdt).is_err());
    }
}
