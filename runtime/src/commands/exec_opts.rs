//! runc exec's process options (`--cap`, `--additional-gids`, `--no-new-privs`,
//! `--apparmor`, `--process-label`) applied to the process.json that `exec`
//! builds from the container's own process, and `--cgroup`, `--ignore-paused`.
//!
//! As runc: `--cap` adds to the bounding, effective and permitted sets (and to
//! the ambient set when the capability is inheritable); `-g` adds to the
//! supplementary groups; `--no-new-privs` only turns no_new_privs on. With
//! `--process FILE` these options are ignored, the file says it all; only
//! `--cgroup`, `--ignore-paused` and the non-process options still apply.
//!
//! `--apparmor` and `--process-label` are refused, not ignored, when they
//! cannot take effect: AppArmor not enabled on the host, and SELinux labels,
//! which libcontainer does not apply at all. Empty values mean unset, as in runc.

use std::path::{Component, Path};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, Process};

use crate::cli::ExecRuncOpts;

/// Applies the options to `process` (the container's own, about to be exec'd).
pub fn apply(o: &ExecRuncOpts, process: &mut Process) -> Result<()> {
    if let Some(profile) = o.apparmor.as_deref().filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            bail!("--apparmor {profile}: AppArmor is not enabled on this host");
        }
        process.set_apparmor_profile(Some(profile.to_string()));
    }
    if let Some(label) = o.process_label.as_deref().filter(|l| !l.is_empty()) {
        bail!("--process-label {label}: minirun does not apply SELinux labels");
    }
    if !o.cap.is_empty() {
        let mut caps = process.capabilities().clone().unwrap_or_else(no_capabilities);
        for name in &o.cap {
            let cap = parse_cap(name)?;
            let with = |set: &Option<Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            let (bounding, effective, permitted) =
                (with(caps.bounding()), with(caps.effective()), with(caps.permitted()));
            caps.set_bounding(bounding)
                .set_effective(effective)
                .set_permitted(permitted);
            // the kernel raises an ambient capability only if it is inheritable too
            // (runc adds it whenever there is an inheritable set, and only warns when
            // raising fails; libcontainer would fail the exec)
            if caps.inheritable().as_ref().is_some_and(|i| i.contains(&cap)) {
                let ambient = with(caps.ambient());
                caps.set_ambient(ambient);
            }
        }
        process.set_capabilities(Some(caps));
    }
    if !o.additional_gids.is_empty() {
        let mut user = process.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for g in &o.additional_gids {
            if !gids.contains(g) {
                gids.push(*g);
            }
        }
        user.set_additional_gids(Some(gids));
        process.set_user(user);
    }
    if o.no_new_privs {
        process.set_no_new_privileges(Some(true));
    }
    Ok(())
}

/// A process without capabilities (oci-spec's default has runc's three).
fn no_capabilities() -> LinuxCapabilities {
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(None)
        .set_effective(None)
        .set_inheritable(None)
        .set_permitted(None)
        .set_ambient(None);
    caps
}

/// `CAP_NET_ADMIN`, `NET_ADMIN` or `net_admin`.
fn parse_cap(name: &str) -> Result<Capability> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full)).with_context(|| format!("unknown capability \"{name}\""))
}

fn apparmor_enabled() -> bool {
    libcontainer::apparmor::is_enabled().unwrap_or(false)
}

/// The one sub-cgroup `--cgroup` names, relative to the container's cgroup;
/// None for the container's own. runc's per-controller form
/// (`cpu,memory:PATH`, cgroup v1) is refused: libcontainer moves a process
/// into one path for every controller.
pub fn sub_cgroup(given: &[String]) -> Result<Option<String>> {
    let [path] = given else {
        if given.is_empty() {
            return Ok(None);
        }
        bail!(
            "--cgroup given {} times: minirun takes one sub-cgroup for every controller",
            given.len()
        );
    };
    if path.contains(':') {
        bail!("--cgroup {path}: per-controller sub-cgroups are not supported, give --cgroup PATH");
    }
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        return Ok(None);
    }
    if Path::new(rel).components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("--cgroup {path}: not a path inside the container's cgroup");
    }
    Ok(Some(rel.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_join_the_sets_the_process_has() {
        let mut p = Process::default();
        p.set_capabilities(None);
        let o = ExecRuncOpts {
            cap: vec!["CAP_NET_ADMIN".into(), "sys_ptrace".into()],
            additional_gids: vec![10, 20],
            no_new_privs: true,
            ..Default::default()
        };
        apply(&o, &mut p).unwrap();
        let caps = p.capabilities().clone().unwrap();
        for set in [caps.bounding(), caps.effective(), caps.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(set.contains(&Capability::NetAdmin) && set.contains(&Capability::SysPtrace));
        }
        // no inheritable set is made up, so no ambient capability
        assert!(caps.inheritable().is_none() && caps.ambient().is_none());
        // an inheritable capability is made ambient too, others are not
        let mut q = Process::default();
        let kill = ExecRuncOpts {
            cap: vec!["CAP_NET_ADMIN".into(), "KILL".into()],
            ..Default::default()
        };
        let mut caps = q.capabilities().clone().unwrap();
        caps.set_ambient(None);
        q.set_capabilities(Some(caps));
        apply(&kill, &mut q).unwrap();
        let ambient = q.capabilities().as_ref().unwrap().ambient().clone().unwrap();
        assert!(!ambient.contains(&Capability::NetAdmin) && ambient.contains(&Capability::Kill));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[10, 20][..]));
        assert_eq!(p.no_new_privileges(), Some(true));
        let bad = ExecRuncOpts {
            cap: vec!["CAP_FLY".into()],
            ..Default::default()
        };
        assert!(apply(&bad, &mut p).unwrap_err().to_string().contains("CAP_FLY"));
        let label = ExecRuncOpts {
            process_label: Some("system_u:system_r:container_t:s0".into()),
            ..Default::default()
        };
        assert!(apply(&label, &mut p).unwrap_err().to_string().contains("SELinux"));
    }

    #[test]
    fn one_sub_cgroup_inside_the_container_cgroup() {
        assert_eq!(sub_cgroup(&[]).unwrap(), None);
        assert_eq!(sub_cgroup(&["/".into()]).unwrap(), None);
        assert_eq!(sub_cgroup(&["/sub/x".into()]).unwrap().as_deref(), Some("sub/x"));
        for bad in ["../escape", "cpu,memory:sub", "a/../../b"] {
            assert!(sub_cgroup(&[bad.into()]).is_err(), "{bad}");
        }
        assert!(sub_cgroup(&["a".into(), "b".into()]).is_err());
    }
}
