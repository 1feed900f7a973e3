//! Image config + `run` flags → OCI runtime spec, with docker's defaults.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use libcontainer::oci_spec::runtime::Spec;
use oci_spec::image::ImageConfiguration;
use serde_json::{json, Value};

pub mod host;
pub mod mounts;
pub mod paths;
pub mod resources;
pub mod seccomp;
pub mod security;

pub use mounts::{Tmpfs, Volume};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// docker's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// docker's masked and read-only paths.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
pub const READONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// What the `run` flags say about the process and its mounts.
#[derive(Debug, Default, Clone)]
pub struct RunConfig {
    /// COMMAND [ARG...] after the image, if given
    pub command: Vec<String>,
    pub entrypoint: Option<String>,
    /// KEY=VALUE pairs from --env-file then -e, in order
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub volumes: Vec<Volume>,
    /// `--tmpfs` and `--mount type=tmpfs`
    pub tmpfs: Vec<Tmpfs>,
    /// `--shm-size` in bytes (docker's 64m if not given)
    pub shm_size: Option<u64>,
    /// devices, sysctls, shared namespaces
    pub host: host::Host,
    /// other containers' namespaces to join (`--ipc`/`--pid container:X`), resolved
    pub joins: host::Joins,
    pub tty: bool,
    pub read_only: bool,
    /// capabilities, seccomp, no_new_privileges, AppArmor, groups
    pub security: security::Security,
    /// `linux.resources` from docker's resource flags (issue 15)
    pub resources: serde_json::Map<String, Value>,
    /// `--ulimit`s as OCI rlimits
    pub ulimits: Vec<Value>,
    /// `--init`: the directory of minirun's init ([`crate::init::prepare`])
    pub init_dir: Option<PathBuf>,
}

/// Parses an --env-file: KEY=VALUE lines, `#` comments and blank lines
/// skipped, a bare KEY taken from minirun's own environment (as docker does).
pub fn parse_env_file(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read env file {}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let var = expand_env(line).with_context(|| format!("{}:{}: invalid line", path.display(), n + 1))?;
        out.extend(var);
    }
    Ok(out)
}

/// `KEY=VALUE` as is; a bare `KEY` takes minirun's own value, or is dropped.
pub fn expand_env(item: &str) -> Result<Option<String>> {
    let key = item.split('=').next().unwrap_or_default();
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("invalid environment variable \"{item}\"");
    }
    if item.contains('=') {
        return Ok(Some(item.to_string()));
    }
    Ok(std::env::var(key).ok().map(|v| format!("{key}={v}")))
}

/// Merges environment lists, later ones overriding earlier keys, keeping
/// the first position of each key.
pub fn merge_env(lists: &[&[String]]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut values: BTreeMap<String, String> = BTreeMap::new();
    for list in lists {
        for item in list.iter() {
            let (k, v) = item.split_once('=').unwrap_or((item, ""));
            if !values.contains_key(k) {
                order.push(k.to_string());
            }
            values.insert(k.to_string(), v.to_string());
        }
    }
    order.into_iter().map(|k| format!("{k}={}", values[&k])).collect()
}

/// The process's argv by docker's rules: --entrypoint replaces the image's
/// Entrypoint and drops its Cmd; a COMMAND replaces Cmd.
pub fn process_args(image: &ImageConfiguration, run: &RunConfig) -> Result<Vec<String>> {
    let cfg = image.config().as_ref();
    let (entry, cmd): (Vec<String>, Vec<String>) = match &run.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), run.command.clone()),
        Some(e) => (vec![e.clone()], run.command.clone()),
        None => {
            let entry = cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
            let cmd = if run.command.is_empty() {
                cfg.and_then(|c| c.cmd().clone()).unwrap_or_default()
            } else {
                run.command.clone()
            };
            (entry, cmd)
        }
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        bail!("no command specified: the image has no Entrypoint or Cmd, give one after the image");
    }
    Ok(args)
}

/// uid, gid and supplementary gids for a docker `-u` / image `User` value:
/// `uid`, `uid:gid`, `name`, `name:group`, names looked up in the rootfs.
pub fn resolve_user(user: &str, rootfs: &Path) -> Result<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).unwrap_or_default();
    let group = fs::read_to_string(rootfs.join("etc/group")).unwrap_or_default();
    let entry = |text: &str, name: &str| -> Option<Vec<String>> {
        text.lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && (f[0] == name || f[2] == name))
    };
    let (uid, primary_gid, user_name) = match u.parse::<u32>() {
        Ok(uid) => {
            let e = entry(&passwd, u);
            let gid = e.as_ref().and_then(|f| f.get(3)?.parse().ok()).unwrap_or(0);
            (uid, gid, e.map(|f| f[0].clone()))
        }
        Err(_) => {
            let f = entry(&passwd, u)
                .ok_or_else(|| anyhow!("unable to find user \"{u}\": no matching entry in the image's /etc/passwd"))?;
            let uid = f[2]
                .parse()
                .map_err(|_| anyhow!("bad uid for user \"{u}\" in /etc/passwd"))?;
            let gid = f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0);
            (uid, gid, Some(f[0].clone()))
        }
    };
    let gid = match g {
        None => primary_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entry(&group, g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| anyhow!("unable to find group \"{g}\": no matching entry in the image's /etc/group"))?,
        },
    };
    // supplementary groups listing the user by name
    let extra = user_name
        .map(|name| {
            group
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .filter(|f| f.len() >= 4 && f[3].split(',').any(|m| m == name))
                .filter_map(|f| f[2].parse().ok())
                .filter(|g| *g != gid)
                .collect()
        })
        .unwrap_or_default();
    Ok((uid, gid, extra))
}

/// Everything `build_spec` needs besides the flags.
pub struct SpecInputs<'a> {
    pub image: &'a ImageConfiguration,
    pub run: &'a RunConfig,
    pub id: &'a str,
    pub rootfs: &'a Path,
    /// network namespace to join (None: a new one, made by libcontainer)
    pub netns: Option<&'a Path>,
    /// files bind-mounted over /etc/hosts, /etc/hostname, /etc/resolv.conf
    pub etc_files: &'a [(PathBuf, &'static str)],
    /// where resolved seccomp profiles are kept (`<data-root>/seccomp`)
    pub seccomp_cache: Option<&'a Path>,
}

/// The hostname a container gets: --hostname, else the first 12 hex of its id.
pub fn hostname_of(run: &RunConfig, id: &str) -> String {
    run.hostname
        .clone()
        .unwrap_or_else(|| id[..12.min(id.len())].to_string())
}

pub fn build_spec(inp: &SpecInputs) -> Result<Spec> {
    let run = inp.run;
    let cfg = inp.image.config().as_ref();
    let hostname = hostname_of(run, inp.id);
    let args = process_args(inp.image, run)?;
    let user = run
        .user
        .clone()
        .or_else(|| cfg.and_then(|c| c.user().clone()))
        .unwrap_or_default();
    let (uid, gid, extra_gids) = resolve_user(&user, inp.rootfs)?;
    let cwd = run
        .workdir
        .clone()
        .or_else(|| cfg.and_then(|c| c.working_dir().clone()))
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        bail!("invalid working directory \"{cwd}\": it must be absolute");
    }

    let mut base_env = vec![format!("PATH={DEFAULT_PATH}"), format!("HOSTNAME={hostname}")];
    if run.tty {
        base_env.push("TERM=xterm".into());
    }
    let image_env = cfg.and_then(|c| c.env().clone()).unwrap_or_default();
    let env = merge_env(&[&base_env, &image_env, &run.env]);

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    // destinations through the image's symlinks, resolved inside it (libcontainer refuses symlinks)
    let dest = |p: &Path| paths::resolve_in_rootfs(inp.rootfs, p);
    for (file, d) in inp.etc_files {
        let d = dest(Path::new(d))?;
        mounts.push(json!({"destination": d, "type": "bind", "source": file, "options": ["rbind", "rprivate"]}));
    }
    let user = mounts::user_mounts(&run.volumes, &run.tmpfs, &dest)?;
    // a default mount the user mounts something else on is left out, as docker does
    mounts.retain(|m| !user.iter().any(|u| u["destination"] == m["destination"]));
    mounts.extend(user);

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    namespaces.push(match inp.netns {
        Some(p) => json!({"type": "network", "path": p}),
        None => json!({"type": "network"}),
    });

    // as docker 25+: a soft limit of 1024 (select() stays safe), the hard limit minirun has
    let nofile_hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map(|(_, hard)| hard)
        .unwrap_or(1024);
    let mut spec: Value = json!({
        "ociVersion": "1.0.2",
        "root": {"path": inp.rootfs, "readonly": run.read_only},
        "hostname": hostname,
        "process": {
            "terminal": run.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": extra_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile_hard, "soft": 1024u64.min(nofile_hard)}]
        },
        "mounts": mounts,
        "linux": {
            "cgroupsPath": crate::spec::default_cgroup_path(inp.id),
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]}
        }
    });
    if let Some(p) = mounts::root_propagation(&run.volumes) {
        spec["linux"]["rootfsPropagation"] = json!(p);
    }
    resources::apply(&mut spec, &run.resources, &run.ulimits);
    if let Some(dir) = &run.init_dir {
        crate::init::apply(&mut spec, dir)?;
    }
    run.security.apply(&mut spec, uid, inp.rootfs, inp.seccomp_cache)?;
    run.host.apply(&mut spec, &run.joins, run.shm_size)?;
    let spec: Spec = serde_json::from_value(spec).context("internal error: generated spec is invalid")?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(config: Value) -> ImageConfiguration {
        serde_json::from_value(json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": config
        }))
        .unwrap()
    }

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\nnobody:x:65534:65534::/:/bin/false\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nstaff:x:50:www,other\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn entrypoint_and_cmd_follow_docker() {
        let img = image(json!({"Entrypoint": ["/bin/ep"], "Cmd": ["a", "b"]}));
        let mut run = RunConfig::default();
        assert_eq!(process_args(&img, &run).unwrap(), ["/bin/ep", "a", "b"]);
        run.command = vec!["x".into()];
        assert_eq!(process_args(&img, &run).unwrap(), ["/bin/ep", "x"]);
        run.entrypoint = Some("sh".into());
        assert_eq!(process_args(&img, &run).unwrap(), ["sh", "x"]);
        run.command.clear();
        assert_eq!(
            process_args(&img, &run).unwrap(),
            ["sh"],
            "--entrypoint drops the image Cmd"
        );
        let empty = image(json!({}));
        let err = process_args(&empty, &RunConfig::default()).unwrap_err();
        assert!(err.to_string().contains("no command"), "{err}");
    }

    #[test]
    fn users_by_number_and_name() {
        let r = rootfs();
        assert_eq!(resolve_user("", r.path()).unwrap(), (0, 0, vec![]));
        assert_eq!(resolve_user("www", r.path()).unwrap(), (33, 33, vec![50]));
        assert_eq!(resolve_user("33:50", r.path()).unwrap(), (33, 50, vec![]));
        assert_eq!(
            resolve_user("nobody:nogroup", r.path()).unwrap(),
            (65534, 65534, vec![])
        );
        assert_eq!(resolve_user("1234", r.path()).unwrap(), (1234, 0, vec![]));
        let err = resolve_user("ghost", r.path()).unwrap_err().to_string();
        assert!(err.contains("\"ghost\""), "{err}");
        let err = resolve_user("www:nogrp", r.path()).unwrap_err().to_string();
        assert!(err.contains("\"nogrp\""), "{err}");
    }

    #[test]
    fn volumes_parse_and_refuse_bad_specs() {
        let v: Volume = "/data:/srv:ro".parse().unwrap();
        assert_eq!(
            v,
            Volume {
                host: "/data".into(),
                container: "/srv".into(),
                read_only: true,
                propagation: "rprivate",
                create_source: true,
                recursive: true,
                named: None,
                copy: true,
            }
        );
        assert!(!"/a:/b".parse::<Volume>().unwrap().read_only);
        for bad in ["/a", "r/el:/b", "/a:b", "/a:/b:xx", "/a:/b:ro:z", "/a:/"] {
            let err = bad.parse::<Volume>().unwrap_err().to_string();
            assert!(err.contains(&format!("\"{bad}\"")), "{bad}: {err}");
        }
    }

    #[test]
    fn env_merges_defaults_image_and_flags() {
        let img = image(json!({"Env": ["PATH=/img/bin", "A=1"], "Cmd": ["sh"]}));
        let r = rootfs();
        let run = RunConfig {
            env: vec!["A=2".into(), "B=3".into()],
            tty: true,
            ..Default::default()
        };
        let spec = build_spec(&SpecInputs {
            image: &img,
            run: &run,
            id: &"ab".repeat(32),
            rootfs: r.path(),
            netns: None,
            etc_files: &[],
            seccomp_cache: None,
        })
        .unwrap();
        let env = spec.process().as_ref().unwrap().env().clone().unwrap();
        assert_eq!(
            env,
            ["PATH=/img/bin", "HOSTNAME=abababababab", "TERM=xterm", "A=2", "B=3"]
        );
    }

    #[test]
    fn env_file_and_bare_keys() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("env");
        fs::write(&f, "# comment\n\nX=1\nY=a=b\nMINIRUN_TEST_UNSET_VAR\n").unwrap();
        assert_eq!(parse_env_file(&f).unwrap(), ["X=1", "Y=a=b"]);
        assert!(expand_env("=x").is_err());
        let err = parse_env_file(&d.path().join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }

    #[test]
    fn spec_has_docker_defaults() {
        let img = image(json!({"Cmd": ["httpd"], "WorkingDir": "/srv", "User": "www"}));
        let r = rootfs();
        let id = "0123456789abcdef".repeat(4);
        let run = RunConfig {
            volumes: vec!["/tmp:/data:ro".parse().unwrap()],
            read_only: true,
            hostname: Some("web".into()),
            ..Default::default()
        };
        let netns = PathBuf::from("/run/minirun/netns/x");
        let spec = build_spec(&SpecInputs {
            image: &img,
            run: &run,
            id: &id,
            rootfs: r.path(),
            netns: Some(&netns),
            etc_files: &[],
            seccomp_cache: None,
        })
        .unwrap();
        let v = serde_json::to_value(&spec).unwrap();
        assert_eq!(v["hostname"], "web");
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["cwd"], "/srv");
        assert_eq!(v["process"]["user"]["uid"], 33);
        assert_eq!(v["process"]["capabilities"]["bounding"].as_array().unwrap().len(), 14);
        assert!(
            v["process"]["capabilities"]["effective"].as_array().unwrap().is_empty(),
            "non-root gets no effective caps"
        );
        assert_eq!(v["linux"]["cgroupsPath"], format!("/minirun/{id}"));
        assert_eq!(v["linux"]["maskedPaths"].as_array().unwrap().len(), MASKED_PATHS.len());
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(ns
            .iter()
            .any(|n| n["type"] == "network" && n["path"] == "/run/minirun/netns/x"));
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["destination"].as_str().unwrap())
            .collect();
        for d in ["/proc", "/dev", "/dev/pts", "/dev/shm", "/sys", "/data"] {
            assert!(dests.contains(&d), "{d} missing from {dests:?}");
        }
        let data = v["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/data")
            .unwrap();
        assert!(data["options"].as_array().unwrap().contains(&json!("ro")));
    }
}
