//! Confinement of a container made from an image, as docker sets it:
//! capabilities (`--cap-add`/`--cap-drop`/`--privileged`), seccomp (the
//! default profile unless `--security-opt seccomp=unconfined|FILE`),
//! no_new_privileges, AppArmor, masked and read-only paths, and groups.
//!
//! [`Security::parse`] checks every flag before anything is made;
//! [`Security::apply`] writes them into the spec `build_spec` made.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::seccomp::{Profile, Target};
use super::DEFAULT_CAPS;
use crate::cli::SecurityArgs;

/// Which seccomp filter a container gets.
#[derive(Debug, Clone, Default)]
pub enum Seccomp {
    /// minirun's (docker's) default profile
    #[default]
    Default,
    /// none (`seccomp=unconfined`)
    Unconfined,
    /// a profile file (`seccomp=FILE`), read and checked at parse time
    Profile(Box<Profile>),
}

/// The security flags of one `run`, checked.
#[derive(Debug, Clone, Default)]
pub struct Security {
    pub privileged: bool,
    /// canonical names (CAP_...), or ALL
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub apparmor: Option<String>,
    pub seccomp: Seccomp,
    /// `systempaths=unconfined`: no masked or read-only paths
    pub unmask_paths: bool,
    /// names or gids, looked up in the image at spec time
    pub group_add: Vec<String>,
}

/// `NET_ADMIN`, `net_admin` or `CAP_NET_ADMIN` -> `CAP_NET_ADMIN`; `ALL` stays.
pub fn canonical_cap(name: &str) -> Result<String> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    match full.parse::<caps::Capability>() {
        Ok(_) => Ok(full),
        Err(_) => bail!("unknown capability \"{name}\""),
    }
}

/// Every capability the running kernel knows and minirun itself may give
/// (its bounding set: a sandbox may hold some back), in the kernel's order.
pub fn all_caps() -> Vec<String> {
    let known = caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all());
    let ours = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| known.clone());
    let mut v: Vec<caps::Capability> = known.intersection(&ours).copied().collect();
    v.sort_by_key(|c| c.index());
    v.into_iter().map(|c| c.to_string()).collect()
}

fn bool_opt(key: &str, value: Option<&str>) -> Result<bool> {
    match value {
        None => Ok(true),
        Some(v) => v
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid --security-opt {key}={v}: expected true or false")),
    }
}

impl Security {
    pub fn parse(a: &SecurityArgs) -> Result<Security> {
        let mut s = Security {
            privileged: a.privileged,
            ..Default::default()
        };
        for c in &a.cap_add {
            s.cap_add.push(canonical_cap(c).context("--cap-add")?);
        }
        for c in &a.cap_drop {
            s.cap_drop.push(canonical_cap(c).context("--cap-drop")?);
        }
        for opt in &a.security_opt {
            // docker's old form KEY:VALUE is accepted too
            let (key, value) = match opt.split_once('=').or_else(|| opt.split_once(':')) {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            };
            match (key, value) {
                ("seccomp", Some("unconfined")) => s.seccomp = Seccomp::Unconfined,
                ("seccomp", Some(file)) if !file.is_empty() => {
                    let path = PathBuf::from(file);
                    let profile = Profile::load(&path)?;
                    s.seccomp = Seccomp::Profile(Box::new(profile));
                }
                ("no-new-privileges", v) => s.no_new_privileges = bool_opt(key, v)?,
                ("apparmor", Some(profile)) if !profile.is_empty() => {
                    if !libcontainer::apparmor::is_enabled().unwrap_or(false) {
                        bail!("--security-opt apparmor={profile}: AppArmor is not enabled on this host");
                    }
                    s.apparmor = Some(profile.to_string());
                }
                ("systempaths", Some("unconfined")) => s.unmask_paths = true,
                ("label", Some("disable")) => {}
                ("label", Some(v)) => bail!("--security-opt label={v}: minirun does not apply SELinux labels"),
                _ => bail!(
                    "invalid --security-opt \"{opt}\": expected seccomp=unconfined|FILE, no-new-privileges, \
                     apparmor=PROFILE, systempaths=unconfined or label=disable"
                ),
            }
        }
        for g in &a.group_add {
            if g.is_empty() || g.contains(':') {
                bail!("invalid --group-add \"{g}\"");
            }
        }
        s.group_add = a.group_add.clone();
        Ok(s)
    }

    /// The container's capabilities (its bounding set), as docker computes
    /// them: all with --privileged; else ALL in --cap-add (minus --cap-drop),
    /// ALL in --cap-drop (only --cap-add), or the defaults minus --cap-drop
    /// plus --cap-add.
    pub fn capabilities(&self) -> Vec<String> {
        let all = all_caps();
        let has = |list: &[String], c: &str| list.iter().any(|x| x == c);
        let mut out: Vec<String> = if self.privileged {
            all
        } else if has(&self.cap_add, "ALL") {
            all.into_iter().filter(|c| !has(&self.cap_drop, c)).collect()
        } else if has(&self.cap_drop, "ALL") {
            self.cap_add.clone()
        } else {
            let mut v: Vec<String> = DEFAULT_CAPS
                .iter()
                .map(|c| c.to_string())
                .filter(|c| !has(&self.cap_drop, c))
                .collect();
            v.extend(self.cap_add.iter().cloned());
            v
        };
        let mut seen = BTreeSet::new();
        out.retain(|c| seen.insert(c.clone()));
        out
    }

    /// The resolved seccomp object (as JSON), or None for no filter; the
    /// default profile's comes from `cache` when it is there.
    pub fn seccomp(&self, caps: &[String], cache: Option<&Path>) -> Result<Option<Value>> {
        if self.privileged {
            return Ok(None);
        }
        let target = Target::host(caps);
        Ok(match &self.seccomp {
            Seccomp::Unconfined => None,
            Seccomp::Default => Some(Profile::default_resolved(&target, cache)),
            Seccomp::Profile(p) => {
                Some(serde_json::to_value(p.resolve(&target)).context("internal error: seccomp object")?)
            }
        })
    }

    /// Writes capabilities, seccomp, no_new_privileges, AppArmor, masked
    /// paths, privileged devices and groups into `spec` (JSON, as
    /// `build_spec` makes it) for a process running as `uid`.
    /// Resolved seccomp profiles are kept in `seccomp_cache`.
    pub fn apply(&self, spec: &mut Value, uid: u32, rootfs: &Path, seccomp_cache: Option<&Path>) -> Result<()> {
        let caps = self.capabilities();
        // as docker: a process of a non-root user loses its capabilities at exec
        let eff: &[String] = if uid == 0 { &caps } else { &[] };
        let process = &mut spec["process"];
        process["capabilities"] = json!({"bounding": caps, "effective": eff, "permitted": eff});
        if self.no_new_privileges {
            process["noNewPrivileges"] = json!(true);
        } else if let Some(p) = process.as_object_mut() {
            // absent, not false: libcontainer loads seccomp before it drops
            // the capabilities only then (without no_new_privs, loading a
            // filter needs CAP_SYS_ADMIN)
            p.remove("noNewPrivileges");
        }
        if let Some(profile) = &self.apparmor {
            process["apparmorProfile"] = json!(profile);
        }
        if !self.group_add.is_empty() {
            let gids = group_ids(&self.group_add, rootfs)?;
            let user = &mut process["user"];
            let mut all: Vec<u32> = serde_json::from_value(user["additionalGids"].take()).unwrap_or_default();
            for g in gids {
                if !all.contains(&g) {
                    all.push(g);
                }
            }
            user["additionalGids"] = json!(all);
        }
        if let Some(s) = self.seccomp(&caps, seccomp_cache)? {
            spec["linux"]["seccomp"] = s;
            // compiled once, loaded as BPF (oci/seccomp_bpf.rs)
            spec["annotations"] = json!({crate::oci::seccomp_bpf::ANNOTATION: "bpf"});
        }
        let linux = &mut spec["linux"];
        if self.privileged || self.unmask_paths {
            linux["maskedPaths"] = json!([]);
            linux["readonlyPaths"] = json!([]);
        }
        if self.privileged {
            linux["devices"] = json!(host_devices());
            linux["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
            // sysfs writable, as docker does for --privileged
            for m in spec["mounts"].as_array_mut().into_iter().flatten() {
                if m["destination"] == "/sys" {
                    if let Some(opts) = m["options"].as_array_mut() {
                        opts.retain(|o| o != "ro");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether the kernel has mount_setattr(2) (5.12+), which makes a `:ro`
/// volume read-only recursively; without it, a warning and plain `ro`.
pub fn recursive_read_only() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        // SAFETY: an invalid fd and no attributes: the kernel checks and changes nothing
        let rc = unsafe { libc::syscall(libc::SYS_mount_setattr, -1, c"".as_ptr(), 0, std::ptr::null::<u8>(), 0) };
        let has = !(rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS));
        if !has {
            tracing::warn!("this kernel has no mount_setattr: read-only volumes are not read-only recursively");
        }
        has
    })
}

/// gids of `--group-add` values: numbers as they are, names from the image's /etc/group.
fn group_ids(groups: &[String], rootfs: &Path) -> Result<Vec<u32>> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    groups
        .iter()
        .map(|g| match g.parse::<u32>() {
            Ok(gid) => Ok(gid),
            Err(_) => text
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .with_context(|| format!("--group-add {g}: no such group in the image's /etc/group")),
        })
        .collect()
}

/// The host's device nodes, for --privileged (as docker: all of /dev but
/// pts, shm, mqueue, fd and the console).
fn host_devices() -> Vec<Value> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let path = e.path();
            let Ok(md) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = md.file_type();
            if ft.is_dir() {
                let name = e.file_name();
                if !matches!(
                    name.to_str(),
                    Some("pts" | "shm" | "mqueue" | "fd" | ".lxc" | ".lxd-mounts" | ".udev")
                ) {
                    dirs.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                "c"
            } else if ft.is_block_device() {
                "b"
            } else {
                continue;
            };
            if path == Path::new("/dev/console") {
                continue;
            }
            let rdev = md.rdev();
            out.push(json!({
                "type": kind, "path": path,
                "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
                "fileMode": md.mode() & 0o777, "uid": md.uid(), "gid": md.gid()
            }));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: impl FnOnce(&mut SecurityArgs)) -> Result<Security> {
        let mut a = SecurityArgs::default();
        f(&mut a);
        Security::parse(&a)
    }

    #[test]
    fn capability_names_and_sets() {
        assert_eq!(canonical_cap("net_admin").unwrap(), "CAP_NET_ADMIN");
        assert_eq!(canonical_cap("CAP_SYS_ADMIN").unwrap(), "CAP_SYS_ADMIN");
        assert_eq!(canonical_cap("all").unwrap(), "ALL");
        let err = canonical_cap("CAP_FLY").unwrap_err().to_string();
        assert_eq!(err, "unknown capability \"CAP_FLY\"");

        let s = parse(|a| {
            a.cap_add = vec!["NET_ADMIN".into()];
            a.cap_drop = vec!["chown".into()];
        })
        .unwrap();
        let caps = s.capabilities();
        assert!(caps.contains(&"CAP_NET_ADMIN".into()) && !caps.contains(&"CAP_CHOWN".into()));
        assert_eq!(caps.len(), DEFAULT_CAPS.len());

        let s = parse(|a| {
            a.cap_drop = vec!["ALL".into()];
            a.cap_add = vec!["kill".into()];
        })
        .unwrap();
        assert_eq!(s.capabilities(), ["CAP_KILL"]);

        let s = parse(|a| {
            a.cap_add = vec!["ALL".into()];
            a.cap_drop = vec!["sys_admin".into()];
        })
        .unwrap();
        assert_eq!(s.capabilities().len(), all_caps().len() - 1);
        assert!(parse(|a| a.privileged = true).unwrap().capabilities().len() == all_caps().len());
        let err = parse(|a| a.cap_drop = vec!["nope".into()]).unwrap_err();
        assert_eq!(format!("{err:#}"), "--cap-drop: unknown capability \"nope\"");
    }

    #[test]
    fn security_opts() {
        let s = parse(|a| a.security_opt = vec!["seccomp=unconfined".into(), "no-new-privileges".into()]).unwrap();
        assert!(matches!(s.seccomp, Seccomp::Unconfined) && s.no_new_privileges);
        assert!(s.seccomp(&s.capabilities(), None).unwrap().is_none());
        let s = parse(|a| a.security_opt = vec!["no-new-privileges:false".into()]).unwrap();
        assert!(!s.no_new_privileges);
        assert!(
            parse(|_| {}).unwrap().seccomp(&[], None).unwrap().is_some(),
            "seccomp is on by default"
        );
        for bad in ["bogus", "seccomp", "no-new-privileges=maybe", "label=type:x"] {
            let err = parse(|a| a.security_opt = vec![bad.into()]).unwrap_err().to_string();
            assert!(err.contains(bad), "{bad}: {err}");
        }
        let err = parse(|a| a.security_opt = vec!["seccomp=/nonexistent/p.json".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/p.json"), "{err}");
    }

    #[test]
    fn privileged_spec() {
        let mut spec = json!({
            "process": {"user": {"uid": 0, "gid": 0}, "noNewPrivileges": false},
            "mounts": [{"destination": "/sys", "options": ["nosuid", "ro"]}],
            "linux": {"maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"], "resources": {}}
        });
        let s = parse(|a| a.privileged = true).unwrap();
        s.apply(&mut spec, 0, Path::new("/nonexistent"), None).unwrap();
        assert_eq!(spec["linux"]["maskedPaths"], json!([]));
        assert!(spec["linux"].get("seccomp").is_none());
        assert!(spec["process"].get("noNewPrivileges").is_none());
        assert_eq!(spec["mounts"][0]["options"], json!(["nosuid"]));
        assert!(spec["linux"]["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["path"] == "/dev/null"));
    }
}
