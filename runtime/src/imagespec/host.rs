//! What a container gets of the host, as docker checks it: devices
//! (`--device`, `--device-cgroup-rule`), kernel parameters (`--sysctl`,
//! namespaced ones only) and the namespaces it shares (`--ipc`, `--pid`,
//! `--uts`).
//!
//! [`Host::parse`] checks every flag before anything is made (a device is
//! looked up then); `container:X` modes are resolved to `/proc/PID/ns/*` by
//! the caller ([`Joins`]); [`Host::apply`] writes it all into the spec.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

use crate::cli::HostArgs;

/// docker's `--ipc`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IpcMode {
    /// its own namespace and /dev/shm (docker's default)
    #[default]
    Private,
    /// its own, which other containers may join
    Shareable,
    /// the host's namespace and /dev/shm
    Host,
    /// its own namespace, no /dev/shm
    None,
    /// another container's namespace and /dev/shm
    Container(String),
}

/// docker's `--pid` and `--uts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NsMode {
    #[default]
    Private,
    Host,
    Container(String),
}

/// The flags of one `run`, checked; devices looked up on the host.
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// `linux.devices` entries (container paths)
    pub devices: Vec<Value>,
    /// `linux.resources.devices` entries allowing them and the user's rules
    pub cgroup_rules: Vec<Value>,
    pub sysctl: BTreeMap<String, String>,
    pub ipc: IpcMode,
    pub pid: NsMode,
    pub uts: NsMode,
}

/// Namespaces of other containers to join, resolved by the caller.
#[derive(Debug, Clone, Default)]
pub struct Joins {
    /// /proc/PID/ns/ipc and PID of the container whose IPC namespace is joined
    pub ipc: Option<(PathBuf, i32)>,
    /// the host directory bound as /dev/shm: the tmpfs a `--ipc shareable`
    /// container mounts on the host (its own, or the one joined)
    pub shm: Option<PathBuf>,
    pub pid: Option<PathBuf>,
}

/// docker's IPC-namespaced sysctls (with `fs.mqueue.*`).
const IPC_SYSCTLS: [&str; 8] = [
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

impl Host {
    /// `net_host`: the container uses the host's network namespace.
    pub fn parse(a: &HostArgs, net_host: bool) -> Result<Host> {
        let mut h = Host {
            ipc: parse_ipc(a.ipc.as_deref())?,
            pid: parse_ns("--pid", a.pid.as_deref(), true)?,
            uts: parse_ns("--uts", a.uts.as_deref(), false)?,
            ..Default::default()
        };
        for d in &a.device {
            let (host, ctr, access) = parse_device(d)?;
            for (path, dev) in gather_devices(&host, &ctr)
                .map_err(|e| anyhow!("error gathering device information while adding custom device \"{host}\": {e}"))?
            {
                h.cgroup_rules.push(json!({
                    "allow": true, "type": dev["type"], "major": dev["major"], "minor": dev["minor"], "access": access
                }));
                let mut dev = dev;
                dev["path"] = json!(path);
                h.devices.push(dev);
            }
        }
        for r in &a.device_cgroup_rule {
            h.cgroup_rules.push(parse_cgroup_rule(r)?);
        }
        for s in &a.sysctl {
            let (k, v) = s
                .split_once('=')
                .ok_or_else(|| anyhow!("invalid argument \"{s}\" for \"--sysctl\" flag: expected KEY=VALUE"))?;
            check_sysctl(k, net_host, &h)?;
            // one the kernel has (the host's namespaces have every knob a new one has)
            let path = Path::new("/proc/sys").join(k.replace('.', "/"));
            if k.split('.').any(|p| p.is_empty() || p == ".." || p.contains('/')) || !path.exists() {
                bail!(
                    "sysctl \"{k}\": no such kernel parameter ({} does not exist)",
                    path.display()
                );
            }
            h.sysctl.insert(k.to_string(), v.to_string());
        }
        Ok(h)
    }

    /// Writes devices, rules, sysctls and namespaces into `spec` (JSON, as
    /// `build_spec` makes it); `shm_size` in bytes for a /dev/shm of its own.
    pub fn apply(&self, spec: &mut Value, joins: &Joins, shm_size: Option<u64>) -> Result<()> {
        let linux = &mut spec["linux"];
        if !self.devices.is_empty() {
            let devices = linux["devices"].as_array_mut().map(std::mem::take).unwrap_or_default();
            // --privileged already lists every host device: a --device path replaces its entry
            let mut devices: Vec<Value> = devices
                .into_iter()
                .filter(|d| !self.devices.iter().any(|x| x["path"] == d["path"]))
                .collect();
            devices.extend(self.devices.iter().cloned());
            linux["devices"] = json!(devices);
        }
        if let Some(rules) = linux["resources"]["devices"].as_array_mut() {
            rules.extend(self.cgroup_rules.iter().cloned());
        }
        if !self.sysctl.is_empty() {
            linux["sysctl"] = json!(self.sysctl);
        }
        let set_ns = |linux: &mut Value, kind: &str, mode: Option<Option<&Path>>| {
            let Some(list) = linux["namespaces"].as_array_mut() else {
                return;
            };
            list.retain(|n| n["type"] != kind);
            match mode {
                // host: no entry at all
                None => {}
                Some(None) => list.push(json!({"type": kind})),
                Some(Some(path)) => list.push(json!({"type": kind, "path": path})),
            }
        };
        match (&self.ipc, &joins.ipc) {
            (IpcMode::Host, _) => set_ns(linux, "ipc", None),
            (IpcMode::Container(_), Some((path, _))) => set_ns(linux, "ipc", Some(Some(path))),
            (IpcMode::Container(x), None) => bail!("internal error: --ipc container:{x} not resolved"),
            _ => {}
        }
        match (&self.pid, &joins.pid) {
            (NsMode::Host, _) => set_ns(linux, "pid", None),
            (NsMode::Container(_), Some(path)) => set_ns(linux, "pid", Some(Some(path))),
            (NsMode::Container(x), None) => bail!("internal error: --pid container:{x} not resolved"),
            _ => {}
        }
        if self.uts == NsMode::Host {
            set_ns(linux, "uts", None);
            // no namespace of its own: setting a hostname would set the host's
            if let Some(o) = spec.as_object_mut() {
                o.remove("hostname");
            }
        }
        // /dev/shm: its own (sized; on the host when others may join it), the
        // host's, the joined container's, or none
        let size = shm_size.unwrap_or(64 << 20);
        let tmpfs = json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={size}")]});
        let bind = |src: &Path| {
            json!({"destination": "/dev/shm", "type": "bind", "source": src,
            "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]})
        };
        let shm = match &self.ipc {
            IpcMode::Private => Some(tmpfs),
            IpcMode::Shareable => Some(joins.shm.as_deref().map_or(tmpfs, bind)),
            IpcMode::Container(_) => joins.shm.as_deref().map(bind),
            IpcMode::Host => Some(bind(Path::new("/dev/shm"))),
            IpcMode::None => None,
        };
        if let Some(mounts) = spec["mounts"].as_array_mut() {
            // the default one (a mount of the user's over /dev/shm replaced it and stays)
            let at = mounts
                .iter()
                .position(|m| m["destination"] == "/dev/shm" && m["source"] == "shm");
            match (at, shm) {
                (Some(i), Some(m)) => mounts[i] = m,
                (Some(i), None) => {
                    mounts.remove(i);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn parse_ipc(v: Option<&str>) -> Result<IpcMode> {
    Ok(match v.unwrap_or("private") {
        "" | "private" => IpcMode::Private,
        "shareable" => IpcMode::Shareable,
        "host" => IpcMode::Host,
        "none" => IpcMode::None,
        v => match v.strip_prefix("container:") {
            Some(x) if !x.is_empty() => IpcMode::Container(x.to_string()),
            _ => bail!("invalid --ipc \"{v}\": expected private, shareable, host, none or container:<name|id>"),
        },
    })
}

fn parse_ns(flag: &str, v: Option<&str>, container: bool) -> Result<NsMode> {
    Ok(match v.unwrap_or("") {
        "" => NsMode::Private,
        "host" => NsMode::Host,
        v => match v.strip_prefix("container:") {
            Some(x) if container && !x.is_empty() => NsMode::Container(x.to_string()),
            _ if container => bail!("invalid {flag} \"{v}\": expected host or container:<name|id>"),
            _ => bail!("invalid {flag} \"{v}\": expected host"),
        },
    })
}

/// docker's `--device`: HOST[:CONTAINER][:PERMISSIONS]; a second field made
/// only of r, w, m is the permissions.
fn parse_device(spec: &str) -> Result<(String, String, String)> {
    let valid_mode = |m: &str| {
        !m.is_empty() && m.len() <= 3 && m.chars().all(|c| "rwm".contains(c)) && {
            let mut v: Vec<char> = m.chars().collect();
            v.sort();
            v.dedup();
            v.len() == m.len()
        }
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, ctr, mode) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, m] if valid_mode(m) => (*h, *h, *m),
        [h, c] => (*h, *c, "rwm"),
        [h, c, m] => (*h, *c, *m),
        _ => bail!("invalid device specification: {spec}"),
    };
    if !valid_mode(mode) {
        bail!("invalid device mode: {mode} (in --device {spec})");
    }
    for p in [host, ctr] {
        if !p.starts_with('/') {
            bail!("bad format for path: {p} (in --device {spec}): it must be absolute");
        }
    }
    Ok((host.to_string(), ctr.to_string(), mode.to_string()))
}

/// The device nodes of `host` (itself, or every node below a directory, as
/// docker), each with its path in the container.
fn gather_devices(host: &str, ctr: &str) -> Result<Vec<(PathBuf, Value)>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let node = |path: &Path| -> std::io::Result<Option<Value>> {
        let md = std::fs::metadata(path)?;
        let ft = md.file_type();
        let kind = if ft.is_char_device() {
            "c"
        } else if ft.is_block_device() {
            "b"
        } else {
            return Ok(None);
        };
        let rdev = md.rdev();
        Ok(Some(json!({
            "type": kind,
            "major": nix::sys::stat::major(rdev), "minor": nix::sys::stat::minor(rdev),
            "fileMode": md.mode() & 0o777, "uid": md.uid(), "gid": md.gid()
        })))
    };
    let md = std::fs::metadata(host).map_err(|e| anyhow!("{}", e.to_string().to_lowercase()))?;
    if !md.is_dir() {
        return match node(Path::new(host))? {
            Some(d) => Ok(vec![(PathBuf::from(ctr), d)]),
            None => bail!("not a device node"),
        };
    }
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::from(host)];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir)?.flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            } else if let Ok(Some(d)) = node(&p) {
                let rel = p.strip_prefix(host).unwrap_or(&p);
                out.push((Path::new(ctr).join(rel), d));
            }
        }
    }
    Ok(out)
}

/// docker's `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS`, TYPE a|b|c,
/// numbers or `*`, ACCESS of r, w, m.
fn parse_cgroup_rule(rule: &str) -> Result<Value> {
    let bad = || anyhow!("invalid device cgroup format '{rule}'");
    let f: Vec<&str> = rule.split(' ').collect();
    let [kind, nums, access] = f.as_slice() else {
        return Err(bad());
    };
    if !matches!(*kind, "a" | "b" | "c") {
        return Err(bad());
    }
    let (maj, min) = nums.split_once(':').ok_or_else(bad)?;
    let num = |s: &str| -> Result<Option<i64>> {
        match s {
            "*" => Ok(None),
            s if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().map(Some).map_err(|_| bad()),
            _ => Err(bad()),
        }
    };
    let (maj, min) = (num(maj)?, num(min)?);
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| "rwm".contains(c)) {
        return Err(bad());
    }
    let mut r = json!({"allow": true, "type": kind, "access": access});
    if let Some(m) = maj {
        r["major"] = json!(m);
    }
    if let Some(m) = min {
        r["minor"] = json!(m);
    }
    Ok(r)
}

/// docker's rule: only sysctls of a namespace the container has of its own.
fn check_sysctl(key: &str, net_host: bool, h: &Host) -> Result<()> {
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        if matches!(h.ipc, IpcMode::Host) {
            bail!("sysctl \"{key}\" is not allowed in the host's IPC namespace (--ipc host)");
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if net_host {
            bail!("sysctl \"{key}\" is not allowed in the host network namespace (--net host)");
        }
        return Ok(());
    }
    bail!(
        "sysctl \"{key}\" is not allowed: it is not namespaced (allowed: net.*, fs.mqueue.*, \
         kernel.msgmax, kernel.msgmnb, kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, \
         kernel.shmmni, kernel.shm_rmid_forced)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(f: impl FnOnce(&mut HostArgs), net_host: bool) -> Result<Host> {
        let mut a = HostArgs::default();
        f(&mut a);
        Host::parse(&a, net_host)
    }

    #[test]
    fn devices() {
        assert_eq!(
            parse_device("/dev/a").unwrap(),
            ("/dev/a".into(), "/dev/a".into(), "rwm".into())
        );
        assert_eq!(
            parse_device("/dev/a:r").unwrap(),
            ("/dev/a".into(), "/dev/a".into(), "r".into())
        );
        assert_eq!(parse_device("/dev/a:/dev/b").unwrap().1, "/dev/b");
        assert_eq!(parse_device("/dev/a:/dev/b:mw").unwrap().2, "mw");
        for bad in [
            "/dev/a:/dev/b:x",
            "dev/a",
            "/dev/a:b:r",
            "/a:/b:r:x",
            "/dev/a:/dev/b:rr",
        ] {
            let err = parse_device(bad).unwrap_err().to_string();
            assert!(err.contains(bad) || err.contains("b:r"), "{bad}: {err}");
        }
        let h = parse(|a| a.device = vec!["/dev/null:/dev/mynull:r".into()], false).unwrap();
        assert_eq!(h.devices[0]["path"], "/dev/mynull");
        assert_eq!(h.devices[0]["major"], 1);
        assert_eq!(h.cgroup_rules[0]["access"], "r");
        let err = parse(|a| a.device = vec!["/dev/nonexistent-dev".into()], false).unwrap_err();
        assert!(err.to_string().contains("\"/dev/nonexistent-dev\""), "{err}");
        let err = parse(|a| a.device = vec!["/etc/hostname".into()], false).unwrap_err();
        assert!(err.to_string().contains("not a device node"), "{err}");
    }

    #[test]
    fn cgroup_rules() {
        assert_eq!(
            parse_cgroup_rule("c 1:3 rwm").unwrap(),
            json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
        );
        assert_eq!(
            parse_cgroup_rule("b *:* m").unwrap(),
            json!({"allow": true, "type": "b", "access": "m"})
        );
        for bad in ["c 1:3", "x 1:3 r", "c 1-3 r", "c 1:3 q", "c a:3 r", "c  1:3 r"] {
            let err = parse_cgroup_rule(bad).unwrap_err().to_string();
            assert_eq!(err, format!("invalid device cgroup format '{bad}'"));
        }
    }

    #[test]
    fn sysctls_namespaced_only() {
        let h = parse(
            |a| a.sysctl = vec!["net.ipv4.ip_forward=1".into(), "kernel.shmmax=1000".into()],
            false,
        )
        .unwrap();
        assert_eq!(h.sysctl["net.ipv4.ip_forward"], "1");
        for (bad, host) in [
            ("kernel.domainname=x", false),
            ("vm.swappiness=1", false),
            ("net.core.x=1", true),
        ] {
            let err = parse(|a| a.sysctl = vec![bad.into()], host).unwrap_err().to_string();
            let key = bad.split('=').next().unwrap();
            assert!(err.contains(&format!("\"{key}\"")), "{bad}: {err}");
        }
        let err = parse(
            |a| {
                a.ipc = Some("host".into());
                a.sysctl = vec!["fs.mqueue.msg_max=20".into()];
            },
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("fs.mqueue.msg_max"), "{err}");
        assert!(parse(|a| a.sysctl = vec!["novalue".into()], false).is_err());
    }

    #[test]
    fn namespace_modes() {
        assert_eq!(
            parse_ipc(Some("container:db")).unwrap(),
            IpcMode::Container("db".into())
        );
        assert!(parse_ipc(Some("bogus")).unwrap_err().to_string().contains("\"bogus\""));
        assert_eq!(parse_ns("--pid", Some("host"), true).unwrap(), NsMode::Host);
        assert!(parse_ns("--uts", Some("container:x"), false).is_err());
        assert!(parse_ns("--pid", Some("container:"), true).is_err());

        let mut spec = json!({
            "hostname": "h",
            "mounts": [{"destination": "/dev/shm", "type": "tmpfs", "source": "shm"}],
            "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}], "resources": {"devices": []}}
        });
        let h = Host {
            ipc: IpcMode::None,
            pid: NsMode::Container("x".into()),
            uts: NsMode::Host,
            ..Default::default()
        };
        let joins = Joins {
            pid: Some("/proc/9/ns/pid".into()),
            ..Default::default()
        };
        h.apply(&mut spec, &joins, None).unwrap();
        assert!(spec.get("hostname").is_none());
        assert_eq!(spec["mounts"], json!([]));
        assert_eq!(
            spec["linux"]["namespaces"],
            json!([{"type": "ipc"}, {"type": "pid", "path": "/proc/9/ns/pid"}])
        );
    }
}
