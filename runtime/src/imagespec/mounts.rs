//! A container's own mounts, as docker parses them: `-v HOST:CTR[:OPTS]`,
//! `--mount type=bind|tmpfs,...` (docker's CSV), `--tmpfs PATH[:OPTS]` and
//! `--shm-size`. Checked before anything is made; written into the spec by
//! [`user_mounts`].

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};

/// A bind mount: `-v HOST:CTR[:OPTS]` or `--mount type=bind,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub host: PathBuf,
    pub container: PathBuf,
    pub read_only: bool,
    /// rprivate unless given (docker's default)
    pub propagation: &'static str,
    /// `-v` creates a missing source, as docker; `--mount` refuses it
    pub create_source: bool,
    /// `--mount ...,bind-nonrecursive`: the mounts below the source are left out
    pub recursive: bool,
    /// a named volume (`-v NAME:/path`, `--mount type=volume`): `host` is
    /// its directory once `container::volumes` made or found it
    pub named: Option<String>,
    /// a named volume left empty is filled from the image (not with `nocopy`)
    pub copy: bool,
}

impl Volume {
    /// A read-write bind mount of `host` at `container` (the source made if missing).
    pub fn bind(host: impl Into<PathBuf>, container: impl Into<PathBuf>) -> Volume {
        Volume {
            host: host.into(),
            container: container.into(),
            read_only: false,
            propagation: "rprivate",
            create_source: true,
            recursive: true,
            named: None,
            copy: true,
        }
    }

    fn named(name: &str, container: &str) -> Volume {
        Volume {
            named: Some(name.to_string()),
            create_source: false,
            ..Volume::bind("", container)
        }
    }
}

/// docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_volume_name(name: &str) -> Result<()> {
    let mut b = name.bytes();
    let first_ok = b.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() < 2 || !b.all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c)) {
        bail!(
            "\"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed"
        );
    }
    Ok(())
}

/// A tmpfs: `--tmpfs PATH[:OPTS]` or `--mount type=tmpfs,...`, its options
/// merged with docker's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tmpfs {
    pub container: PathBuf,
    pub options: Vec<String>,
}

/// What one `--mount` makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserMount {
    Bind(Volume),
    Tmpfs(Tmpfs),
}

const PROPAGATIONS: [&str; 6] = ["private", "rprivate", "shared", "rshared", "slave", "rslave"];

fn propagation(name: &str) -> Option<&'static str> {
    PROPAGATIONS.iter().copied().find(|p| *p == name)
}

fn check_destination(what: &str, spec: &str, ctr: &str) -> Result<()> {
    if !ctr.starts_with('/') || Path::new(ctr) == Path::new("/") {
        bail!("invalid {what} \"{spec}\": the container path must be absolute and not /");
    }
    Ok(())
}

impl std::str::FromStr for Volume {
    type Err = anyhow::Error;
    /// docker's `-v`: HOST:CTR[:OPTS], OPTS comma-separated: ro|rw, z|Z,
    /// one propagation mode, nocopy.
    fn from_str(spec: &str) -> Result<Self> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, ctr, mode) = match parts.as_slice() {
            [h, c] => (*h, *c, None),
            [h, c, m] => (*h, *c, Some(*m)),
            _ => bail!("invalid volume \"{spec}\": expected HOST:CONTAINER[:OPTIONS]"),
        };
        check_destination("volume", spec, ctr)?;
        let mut v = if host.starts_with('/') {
            Volume::bind(host, ctr)
        } else {
            valid_volume_name(host).map_err(|e| anyhow!("invalid volume \"{spec}\": {e}"))?;
            Volume::named(host, ctr)
        };
        let (mut rw_seen, mut label_seen, mut prop_seen, mut copy_seen) = (false, false, false, false);
        for opt in mode.map(|m| m.split(',').collect::<Vec<_>>()).unwrap_or_default() {
            let seen = match opt {
                "ro" | "rw" => {
                    v.read_only = opt == "ro";
                    &mut rw_seen
                }
                "z" | "Z" => {
                    tracing::debug!(
                        "volume {spec}: :{opt} accepted; minirun applies no SELinux labels, nothing relabeled"
                    );
                    &mut label_seen
                }
                "nocopy" => {
                    v.copy = false;
                    &mut copy_seen
                }
                p => match propagation(p) {
                    Some(p) => {
                        v.propagation = p;
                        &mut prop_seen
                    }
                    None => bail!(
                        "invalid volume \"{spec}\": invalid mode \"{opt}\" (ro, rw, z, Z, nocopy, \
                         shared, slave, private, rshared, rslave, rprivate)"
                    ),
                },
            };
            if std::mem::replace(seen, true) {
                bail!(
                    "invalid volume \"{spec}\": invalid mode \"{}\": conflicting options",
                    mode.unwrap_or_default()
                );
            }
        }
        Ok(v)
    }
}

/// docker's `units.RAMInBytes`: `64m`, `1g`, `1.5GB`, `512k`, `1024` (binary units).
pub fn ram_in_bytes(s: &str) -> Result<u64> {
    let bad = || anyhow!("invalid size: '{s}'");
    let lower = s.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let unit = unit.trim_start();
    let unit = unit.strip_suffix('b').unwrap_or(unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return Err(bad()),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if num.is_empty() || !n.is_finite() {
        return Err(bad());
    }
    Ok((n * mult as f64) as u64)
}

/// `--shm-size`: bytes, more than 0.
pub fn parse_shm_size(s: &str) -> Result<u64> {
    let n = ram_in_bytes(s).map_err(|e| anyhow!("invalid argument \"{s}\" for \"--shm-size\" flag: {e}"))?;
    if n == 0 {
        bail!("invalid argument \"{s}\" for \"--shm-size\" flag: it must be more than 0");
    }
    Ok(n)
}

/// Which flags a mount option sets: options of one class override each
/// other (the last wins), as docker's `MergeTmpfsOptions`.
fn flag_class(opt: &str) -> Option<&'static str> {
    Some(match opt {
        "ro" | "rw" => "rdonly",
        "exec" | "noexec" => "noexec",
        "suid" | "nosuid" => "nosuid",
        "dev" | "nodev" => "nodev",
        "sync" | "async" => "sync",
        "dirsync" => "dirsync",
        "mand" | "nomand" => "mand",
        "atime" | "noatime" => "noatime",
        "diratime" | "nodiratime" => "nodiratime",
        "relatime" | "norelatime" => "relatime",
        "strictatime" | "nostrictatime" => "strictatime",
        "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
            "propagation"
        }
        _ => return None,
    })
}

/// docker's `MergeTmpfsOptions`: defaults first, the user's after; the last
/// of each flag class and of each `key=value` wins; unknown options refused.
fn merge_tmpfs_options(options: &[String]) -> Result<Vec<String>> {
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for opt in options.iter().rev() {
        if opt == "defaults" {
            continue;
        }
        let key = match flag_class(opt) {
            Some(class) => class.to_string(),
            None => match opt.split_once('=') {
                Some((k, _)) if ["size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"].contains(&k) => {
                    k.to_string()
                }
                _ => bail!("invalid tmpfs option \"{opt}\""),
            },
        };
        if !seen.contains(&key) {
            seen.push(key);
            out.insert(0, opt.clone());
        }
    }
    Ok(out)
}

fn tmpfs(container: &str, user: &[String]) -> Result<Tmpfs> {
    let mut options: Vec<String> = ["noexec", "nosuid", "nodev", "rprivate"].map(String::from).to_vec();
    options.extend(user.iter().cloned());
    Ok(Tmpfs {
        container: container.into(),
        options: merge_tmpfs_options(&options)?,
    })
}

/// `--tmpfs PATH[:OPTS]`: rw,noexec,nosuid,nodev unless OPTS say otherwise.
pub fn parse_tmpfs(spec: &str) -> Result<Tmpfs> {
    let (path, opts) = match spec.split_once(':') {
        Some((p, o)) => (p, o),
        None => (spec, ""),
    };
    check_destination("--tmpfs", spec, path)?;
    let user: Vec<String> = opts.split(',').filter(|o| !o.is_empty()).map(String::from).collect();
    tmpfs(path, &user).map_err(|e| anyhow!("invalid --tmpfs \"{spec}\": {e}"))
}

/// The fields of a CSV record, as Go's encoding/csv reads one line (quotes
/// around a field, `""` inside them for a quote).
fn csv_fields(s: &str) -> Result<Vec<String>> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                }
            }
            '"' if at_start => quoted = true,
            ',' if !quoted => {
                fields.push(std::mem::take(&mut cur));
                at_start = true;
                continue;
            }
            c => cur.push(c),
        }
        at_start = false;
    }
    if quoted {
        bail!("extraneous or missing \" in quoted-field");
    }
    fields.push(cur);
    Ok(fields)
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => bail!("invalid value for {key}: {v}"),
    }
}

/// `--mount`, docker's CSV: type=bind|tmpfs|volume (volume by default),
/// source|src, target|destination|dst, readonly|ro[=BOOL],
/// bind-propagation=, bind-nonrecursive, tmpfs-size=, tmpfs-mode=.
pub fn parse_mount(spec: &str) -> Result<UserMount> {
    let err = |m: String| anyhow!("invalid argument \"{spec}\" for \"--mount\" flag: {m}");
    let mut kind = "volume".to_string();
    let (mut source, mut target): (Option<String>, Option<String>) = (None, None);
    let mut read_only = false;
    let mut prop: Option<&'static str> = None;
    let mut recursive = true;
    let (mut size, mut mode): (Option<u64>, Option<u32>) = (None, None);
    let (mut bind_opt, mut tmpfs_opt, mut volume_opt) = (None, None, None);
    let mut copy = true;
    for field in csv_fields(spec).map_err(|e| err(e.to_string()))? {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v.to_string())),
            None => (field.to_ascii_lowercase(), None),
        };
        let value = match (key.as_str(), value) {
            (_, Some(v)) => v,
            ("readonly" | "ro" | "volume-nocopy" | "bind-nonrecursive", None) => "true".into(),
            (_, None) => return Err(err(format!("invalid field '{field}' must be a key=value pair"))),
        };
        match key.as_str() {
            "type" => kind = value.to_ascii_lowercase(),
            "source" | "src" => source = Some(value),
            "target" | "dst" | "destination" => target = Some(value),
            "readonly" | "ro" => read_only = parse_bool(&key, &value).map_err(|e| err(e.to_string()))?,
            "consistency" => {}
            "bind-propagation" => {
                bind_opt = Some(key.clone());
                prop = Some(
                    propagation(&value.to_ascii_lowercase())
                        .ok_or_else(|| err(format!("invalid bind-propagation: \"{value}\"")))?,
                );
            }
            "bind-nonrecursive" => {
                bind_opt = Some(key.clone());
                recursive = !parse_bool(&key, &value).map_err(|e| err(e.to_string()))?;
            }
            "tmpfs-size" => {
                tmpfs_opt = Some(key.clone());
                size = Some(ram_in_bytes(&value).map_err(|e| err(e.to_string()))?);
            }
            "tmpfs-mode" => {
                tmpfs_opt = Some(key.clone());
                mode = Some(
                    u32::from_str_radix(&value, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| err(format!("invalid value for {key}: {value}")))?,
                );
            }
            "volume-nocopy" => {
                volume_opt = Some(key.clone());
                copy = !parse_bool(&key, &value).map_err(|e| err(e.to_string()))?;
            }
            "volume-driver" => {
                volume_opt = Some(key.clone());
                if value != "local" {
                    return Err(err(format!("volume-driver \"{value}\": only the local driver exists")));
                }
            }
            "volume-label" | "volume-opt" | "volume-subpath" => {
                return Err(err(format!("{key} is not supported yet")));
            }
            _ => return Err(err(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let target = target.ok_or_else(|| err("target is required".into()))?;
    check_destination("--mount", spec, &target)?;
    let mix = |opt: &Option<String>, family: &str| -> Result<()> {
        match opt {
            Some(_) => Err(err(format!("cannot mix '{family}-*' options with mount type '{kind}'"))),
            None => Ok(()),
        }
    };
    match kind.as_str() {
        "bind" => {
            mix(&tmpfs_opt, "tmpfs")?;
            mix(&volume_opt, "volume")?;
            let source = source
                .filter(|s| !s.is_empty())
                .ok_or_else(|| err("invalid mount config for type \"bind\": field Source must not be empty".into()))?;
            if !source.starts_with('/') {
                return Err(err(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if !Path::new(&source).exists() {
                return Err(err(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                )));
            }
            let mut v = Volume::bind(&source, &target);
            v.read_only = read_only;
            v.propagation = prop.unwrap_or("rprivate");
            v.create_source = false;
            v.recursive = recursive;
            Ok(UserMount::Bind(v))
        }
        "tmpfs" => {
            mix(&bind_opt, "bind")?;
            mix(&volume_opt, "volume")?;
            if source.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err(err(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified".into(),
                ));
            }
            let mut user = Vec::new();
            if read_only {
                user.push("ro".to_string());
            }
            if let Some(s) = size {
                user.push(format!("size={s}"));
            }
            if let Some(m) = mode {
                user.push(format!("mode={m:o}"));
            }
            Ok(UserMount::Tmpfs(tmpfs(&target, &user).map_err(|e| err(e.to_string()))?))
        }
        "volume" => {
            mix(&bind_opt, "bind")?;
            mix(&tmpfs_opt, "tmpfs")?;
            let name = source.filter(|s| !s.is_empty()).ok_or_else(|| {
                err("anonymous volumes are not supported yet: give the volume a name with source=NAME".into())
            })?;
            valid_volume_name(&name).map_err(|e| err(e.to_string()))?;
            let mut v = Volume::named(&name, &target);
            v.read_only = read_only;
            v.copy = copy;
            Ok(UserMount::Bind(v))
        }
        other => Err(err(format!(
            "invalid mount type \"{other}\": expected bind, tmpfs or volume"
        ))),
    }
}

/// The spec's mounts for the user's binds and tmpfs, sorted by destination
/// depth (a mount inside another comes after it, as docker sorts them); a
/// destination given twice is refused.
pub fn user_mounts(volumes: &[Volume], tmpfs: &[Tmpfs], dest: &dyn Fn(&Path) -> Result<PathBuf>) -> Result<Vec<Value>> {
    let mut out: Vec<(PathBuf, Value)> = Vec::new();
    for v in volumes {
        let mut options = vec![
            if v.recursive { "rbind" } else { "bind" },
            v.propagation,
            if v.read_only { "ro" } else { "rw" },
        ];
        // read-only all the way down (mounts below the source too), as docker 25+
        if v.read_only && v.recursive && super::security::recursive_read_only() {
            options.push("rro");
        }
        let d = dest(&v.container)?;
        out.push((
            v.container.clone(),
            json!({"destination": d, "type": "bind", "source": v.host, "options": options}),
        ));
    }
    for t in tmpfs {
        let d = dest(&t.container)?;
        out.push((
            t.container.clone(),
            json!({"destination": d, "type": "tmpfs", "source": "tmpfs", "options": t.options}),
        ));
    }
    let norm = |p: &Path| p.components().collect::<PathBuf>();
    for (i, (a, _)) in out.iter().enumerate() {
        if out[..i].iter().any(|(b, _)| norm(a) == norm(b)) {
            bail!("Duplicate mount point: {}", a.display());
        }
    }
    out.sort_by_key(|(p, _)| p.components().count());
    Ok(out.into_iter().map(|(_, m)| m).collect())
}

/// The root's propagation (`linux.rootfsPropagation`), which is also each
/// bind's: libcontainer 0.7 ignores a mount's own propagation option (its
/// fd-based binds clone the source as the root's propagation left it). So
/// the strongest mode asked for applies to every mount: `shared` if a volume
/// is shared (docker makes the root rshared then too), libcontainer's
/// default (recursively slave) if one is a slave, else `private`: docker's
/// rprivate binds, which do not receive mounts the host makes later.
pub fn root_propagation(volumes: &[Volume]) -> Option<&'static str> {
    if volumes.iter().any(|v| v.propagation.ends_with("shared")) {
        Some("shared")
    } else if volumes.iter().any(|v| v.propagation.ends_with("slave")) {
        None
    } else {
        Some("private")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_options() {
        let v: Volume = "/a:/b:ro,rshared,Z,nocopy".parse().unwrap();
        assert!(v.read_only && v.propagation == "rshared" && v.create_source);
        let v: Volume = "data:/b:nocopy".parse().unwrap();
        assert!(v.named.as_deref() == Some("data") && !v.copy && !v.create_source);
        let v: Volume = "/a:/b:rw".parse().unwrap();
        assert!(!v.read_only && v.propagation == "rprivate");
        for bad in [
            "/a:/b:ro,rw",
            "/a:/b:z,Z",
            "/a:/b:slave,shared",
            "/a:/b:bogus",
            "/a:/b:",
        ] {
            let err = bad.parse::<Volume>().unwrap_err().to_string();
            assert!(err.contains(&format!("\"{bad}\"")), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1GB").unwrap(), 1 << 30);
        assert_eq!(ram_in_bytes("1.5k").unwrap(), 1536);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("2 MiB").unwrap(), 2 << 20);
        for bad in ["", "m", "1x", "-1"] {
            assert!(ram_in_bytes(bad).is_err(), "{bad}");
        }
        assert!(parse_shm_size("0").unwrap_err().to_string().contains("\"0\""));
    }

    #[test]
    fn tmpfs_options_merge_as_docker() {
        let t = parse_tmpfs("/run").unwrap();
        assert_eq!(t.options, ["noexec", "nosuid", "nodev", "rprivate"]);
        let t = parse_tmpfs("/run:exec,size=1m,mode=700,size=2m").unwrap();
        assert_eq!(
            t.options,
            ["nosuid", "nodev", "rprivate", "exec", "mode=700", "size=2m"]
        );
        let err = parse_tmpfs("/run:bogus").unwrap_err().to_string();
        assert!(err.contains("\"bogus\"") && err.contains("/run:bogus"), "{err}");
        assert!(parse_tmpfs("run").is_err() && parse_tmpfs("/").is_err());
    }

    #[test]
    fn mount_flag_parses_as_docker() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().display();
        let m = parse_mount(&format!("type=bind,src={src},dst=/x,readonly,bind-propagation=rslave")).unwrap();
        let UserMount::Bind(v) = m else { panic!() };
        assert!(v.read_only && v.propagation == "rslave" && !v.create_source);
        let m = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770,ro=false").unwrap();
        assert_eq!(
            m,
            UserMount::Tmpfs(Tmpfs {
                container: "/t".into(),
                options: ["noexec", "nosuid", "nodev", "rprivate", "size=1048576", "mode=1770"]
                    .map(String::from)
                    .to_vec()
            })
        );
        let m = parse_mount("type=volume,src=data,dst=/v,volume-nocopy,ro").unwrap();
        let UserMount::Bind(v) = m else { panic!() };
        assert!(v.named.as_deref() == Some("data") && !v.copy && v.read_only);
        let m = parse_mount(&format!("\"type=bind\",\"source={src}\",target=/q")).unwrap();
        assert!(matches!(m, UserMount::Bind(_)));
        for (bad, says) in [
            ("type=bind,source=/x,target=/y,sauce=1", "unexpected key 'sauce'"),
            ("type=tmpfs", "target is required"),
            ("type=bind,target=/y", "Source must not be empty"),
            (
                "type=bind,source=/nonexistent/z,target=/y",
                "does not exist: /nonexistent/z",
            ),
            ("type=tmpfs,target=/y,bind-propagation=shared", "cannot mix 'bind-*'"),
            ("type=tmpfs,target=/y,tmpfs-mode=9", "tmpfs-mode: 9"),
            ("type=volume,target=/y", "anonymous volumes are not supported yet"),
            ("target=/y", "anonymous volumes"),
            ("type=volume,source=-x,target=/y", "\"-x\""),
            (
                "type=volume,source=vv,target=/y,volume-opt=a=b",
                "volume-opt is not supported yet",
            ),
            ("type=weird,target=/y", "\"weird\""),
            ("type=tmpfs,target=/y,novalue", "invalid field 'novalue'"),
        ] {
            let err = parse_mount(bad).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn user_mounts_sorted_and_unique() {
        let vols = vec!["/a:/x/y".parse::<Volume>().unwrap()];
        let tmp = vec![parse_tmpfs("/x").unwrap()];
        let dest = |p: &Path| Ok(p.to_path_buf());
        let m = user_mounts(&vols, &tmp, &dest).unwrap();
        assert_eq!(m[0]["destination"], "/x");
        assert_eq!(m[1]["destination"], "/x/y");
        let dup = vec![parse_tmpfs("/x/y/").unwrap()];
        let err = user_mounts(&vols, &dup, &dest).unwrap_err().to_string();
        assert!(err.contains("Duplicate mount point: /x/y"), "{err}");
    }
}
