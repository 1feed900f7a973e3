//! docker's resource flags (`-m`, `--memory-swap`, `--cpus`, `--ulimit`...)
//! parsed and checked as docker does, then written into the spec's
//! `linux.resources` and `process.rlimits`. libcontainer applies them (and
//! `oci::resources` what libcgroups skips on cgroup v1).

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};

use crate::cli::ResourceArgs;

/// docker's smallest memory limit (6 MiB).
const MIN_MEMORY: i64 = 6 << 20;
/// The CFS period `--cpus` uses, in microseconds.
pub const CPU_PERIOD: u64 = 100_000;

/// A size as docker's `RAMInBytes`: a number (decimals allowed) with an
/// optional b, k, m, g, t, p (powers of 1024, an optional trailing b or ib).
pub fn parse_ram(s: &str) -> Result<i64> {
    let lower = s.trim().to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(num_end);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => bail!("invalid size: '{s}'"),
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .with_context(|| format!("invalid size: '{s}'"))?;
    let bytes = n * (1u64 << shift) as f64;
    if bytes > i64::MAX as f64 {
        bail!("invalid size: '{s}': too large");
    }
    Ok(bytes as i64)
}

/// `--cpus`: a decimal number of CPUs, as nano CPUs.
pub fn parse_cpus(s: &str) -> Result<i64> {
    let n: f64 = s.trim().parse().ok().filter(|n: &f64| n.is_finite()).with_context(|| {
        format!("invalid argument \"{s}\" for \"--cpus\" flag: failed to parse {s} as a rational number")
    })?;
    Ok((n * 1e9).round() as i64)
}

fn host_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// A cpuset list (`0-3,7`) with every CPU below `count`.
fn check_cpuset(flag: &str, list: &str, count: Option<usize>) -> Result<()> {
    let bad = || anyhow::anyhow!("invalid value \"{list}\" for {flag}: expected a list like 0-3,7");
    if list.is_empty() {
        bail!(bad());
    }
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: usize = a.trim().parse().map_err(|_| bad())?;
        let b: usize = b.trim().parse().map_err(|_| bad())?;
        if a > b {
            bail!(bad());
        }
        if let Some(count) = count {
            if b >= count {
                bail!("invalid value \"{list}\" for {flag}: Requested CPUs are not available - requested {list}, available: 0-{}", count - 1);
            }
        }
    }
    Ok(())
}

/// The `linux.resources` the flags ask for (besides devices), as OCI JSON;
/// an empty object when none is given.
pub fn resources(a: &ResourceArgs) -> Result<Map<String, Value>> {
    let mut out = Map::new();
    let mut memory = Map::new();
    let limit = a
        .memory
        .as_deref()
        .map(|m| parse_ram(m).with_context(|| format!("invalid argument \"{m}\" for \"-m, --memory\" flag")))
        .transpose()?;
    if let Some(l) = limit {
        if l != 0 && l < MIN_MEMORY {
            bail!(
                "Minimum memory limit allowed is 6MB (--memory {})",
                a.memory.as_deref().unwrap_or_default()
            );
        }
    }
    let limit = limit.filter(|l| *l > 0);
    let reservation = a
        .memory_reservation
        .as_deref()
        .map(|m| parse_ram(m).with_context(|| format!("invalid argument \"{m}\" for \"--memory-reservation\" flag")))
        .transpose()?;
    let swap = match a.memory_swap.as_deref() {
        Some("-1") => Some(-1),
        Some(m) => Some(parse_ram(m).with_context(|| format!("invalid argument \"{m}\" for \"--memory-swap\" flag"))?),
        None => None,
    };
    if let Some(swap) = swap.filter(|s| *s > 0) {
        let Some(l) = limit else {
            bail!(
                "You should always set the Memory limit when using Memoryswap limit, see usage (--memory-swap {swap})"
            );
        };
        if swap < l {
            bail!("Minimum memoryswap limit should be larger than memory limit, see usage (--memory {l}, --memory-swap {swap})");
        }
    }
    if let (Some(l), Some(r)) = (limit, reservation) {
        if r > 0 && l < r {
            bail!("Minimum memory limit can not be less than memory reservation limit, see usage (--memory {l}, --memory-reservation {r})");
        }
    }
    if let Some(l) = limit {
        memory.insert("limit".into(), json!(l));
        // as docker: no --memory-swap means as much swap as memory
        let swap = match swap {
            Some(0) | None if swap_accounting() => Some(2 * l),
            other => other.filter(|s| *s != 0),
        };
        if let Some(s) = swap {
            memory.insert("swap".into(), json!(s));
        }
    }
    if let Some(r) = reservation.filter(|r| *r > 0) {
        memory.insert("reservation".into(), json!(r));
    }
    if a.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        out.insert("memory".into(), Value::Object(memory));
    }

    let mut cpu = Map::new();
    if let Some(c) = &a.cpus {
        let nano = parse_cpus(c)?;
        let n = host_cpus();
        if nano != 0 && (nano < 10_000_000 || nano > n as i64 * 1_000_000_000) {
            bail!("Range of CPUs is from 0.01 to {n}.00, as there are only {n} CPUs available (--cpus {c})");
        }
        if a.cpu_period.is_some() || a.cpu_quota.is_some() {
            bail!("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set (--cpus {c})");
        }
        if nano > 0 {
            cpu.insert("period".into(), json!(CPU_PERIOD));
            cpu.insert("quota".into(), json!(nano as u64 * CPU_PERIOD / 1_000_000_000));
        }
    }
    if let Some(p) = a.cpu_period {
        if p != 0 && !(1000..=1_000_000).contains(&p) {
            bail!("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000) (--cpu-period {p})");
        }
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = a.cpu_quota {
        if q > 0 && q < 1000 {
            bail!("CPU cfs quota can not be less than 1ms (i.e. 1000) (--cpu-quota {q})");
        }
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(s) = a.cpu_shares.filter(|s| *s > 0) {
        if s < 2 {
            bail!("invalid --cpu-shares {s}: the minimum is 2");
        }
        cpu.insert("shares".into(), json!(s));
    }
    if let Some(l) = &a.cpuset_cpus {
        check_cpuset("--cpuset-cpus", l, Some(host_cpus()))?;
        cpu.insert("cpus".into(), json!(l));
    }
    if let Some(l) = &a.cpuset_mems {
        check_cpuset("--cpuset-mems", l, None)?;
        cpu.insert("mems".into(), json!(l));
    }
    if !cpu.is_empty() {
        out.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = a.pids_limit {
        // docker: 0 or -1 is unlimited
        out.insert("pids".into(), json!({"limit": if p <= 0 { -1 } else { p }}));
    }
    if let Some(w) = a.blkio_weight.filter(|w| *w != 0) {
        if !(10..=1000).contains(&w) {
            bail!("Range of blkio weight is from 10 to 1000 (--blkio-weight {w})");
        }
        out.insert("blockIO".into(), json!({"weight": w}));
    }
    Ok(out)
}

/// Whether the kernel accounts swap (docker only then gives --memory's
/// default swap).
fn swap_accounting() -> bool {
    std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || std::path::Path::new("/sys/fs/cgroup/memory.swap.max").exists()
        || std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").is_ok_and(|c| c.contains("memory"))
}

/// The rlimit names `--ulimit` takes (docker's).
const ULIMITS: [(&str, &str); 16] = [
    ("as", "RLIMIT_AS"),
    ("core", "RLIMIT_CORE"),
    ("cpu", "RLIMIT_CPU"),
    ("data", "RLIMIT_DATA"),
    ("fsize", "RLIMIT_FSIZE"),
    ("locks", "RLIMIT_LOCKS"),
    ("memlock", "RLIMIT_MEMLOCK"),
    ("msgqueue", "RLIMIT_MSGQUEUE"),
    ("nice", "RLIMIT_NICE"),
    ("nofile", "RLIMIT_NOFILE"),
    ("nproc", "RLIMIT_NPROC"),
    ("rss", "RLIMIT_RSS"),
    ("rtprio", "RLIMIT_RTPRIO"),
    ("rttime", "RLIMIT_RTTIME"),
    ("sigpending", "RLIMIT_SIGPENDING"),
    ("stack", "RLIMIT_STACK"),
];

/// `--ulimit NAME=SOFT[:HARD]` as an OCI rlimit (`{"type", "soft", "hard"}`).
pub fn parse_ulimit(s: &str) -> Result<Value> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit argument: {s}"))?;
    let (_, typ) = ULIMITS
        .iter()
        .find(|(n, _)| *n == name)
        .with_context(|| format!("invalid ulimit type: {name}"))?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let num = |v: &str| -> Result<u64> {
        match v.parse::<i64>() {
            Ok(-1) => Ok(u64::MAX),
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => bail!("invalid ulimit argument: {s}: invalid value \"{v}\""),
        }
    };
    let (soft, hard) = (num(soft)?, num(hard)?);
    if soft > hard {
        bail!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard} (--ulimit {s})");
    }
    Ok(json!({"type": typ, "soft": soft, "hard": hard}))
}

/// Writes the flags into a spec built as JSON: resources merged into
/// `linux.resources`, ulimits replacing the rlimits of the same type.
pub fn apply(spec: &mut Value, resources: &Map<String, Value>, ulimits: &[Value]) {
    if let Some(r) = spec["linux"]["resources"].as_object_mut() {
        for (k, v) in resources {
            r.insert(k.clone(), v.clone());
        }
    }
    if let Some(rl) = spec["process"]["rlimits"].as_array_mut() {
        for u in ulimits {
            rl.retain(|x| x["type"] != u["type"]);
            rl.push(u.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker() {
        assert_eq!(parse_ram("512m").unwrap(), 512 << 20);
        assert_eq!(parse_ram("1g").unwrap(), 1 << 30);
        assert_eq!(parse_ram("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_ram("100").unwrap(), 100);
        assert_eq!(parse_ram("64MB").unwrap(), 64 << 20);
        for bad in ["", "m", "ten", "1x", "-5m"] {
            let e = parse_ram(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
        }
    }

    #[test]
    fn cpus_become_quota_and_period() {
        let r = resources(&ResourceArgs {
            cpus: Some("0.5".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(r["cpu"], json!({"period": 100000, "quota": 50000}));
        let e = resources(&ResourceArgs {
            cpus: Some("999".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("Range of CPUs") && e.contains("999"), "{e}");
        let e = resources(&ResourceArgs {
            cpus: Some("x".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("\"x\""), "{e}");
    }

    #[test]
    fn memory_rules() {
        let m = |mem: Option<&str>, swap: Option<&str>, res: Option<&str>| {
            resources(&ResourceArgs {
                memory: mem.map(Into::into),
                memory_swap: swap.map(Into::into),
                memory_reservation: res.map(Into::into),
                ..Default::default()
            })
        };
        let r = m(Some("64m"), Some("128m"), Some("32m")).unwrap();
        assert_eq!(
            r["memory"],
            json!({"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20})
        );
        assert_eq!(m(Some("64m"), Some("-1"), None).unwrap()["memory"]["swap"], -1);
        assert!(m(Some("4m"), None, None)
            .unwrap_err()
            .to_string()
            .contains("Minimum memory limit allowed is 6MB"));
        assert!(m(None, Some("64m"), None)
            .unwrap_err()
            .to_string()
            .contains("always set the Memory limit"));
        assert!(m(Some("64m"), Some("32m"), None)
            .unwrap_err()
            .to_string()
            .contains("larger than memory limit"));
        assert!(m(Some("64m"), None, Some("128m"))
            .unwrap_err()
            .to_string()
            .contains("reservation"));
    }

    #[test]
    fn ulimits() {
        assert_eq!(
            parse_ulimit("nofile=100:200").unwrap(),
            json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200})
        );
        assert_eq!(parse_ulimit("nproc=50").unwrap()["hard"], 50);
        assert!(parse_ulimit("bogus=1")
            .unwrap_err()
            .to_string()
            .contains("invalid ulimit type: bogus"));
        assert!(parse_ulimit("nofile=3:2").is_err());
        assert!(parse_ulimit("nofile").unwrap_err().to_string().contains("nofile"));
    }
}
