//! `run`'s docker flags of issue 15, checked before anything is made: the
//! parts that become the spec (resources, ulimits, init) and the record
//! (restart policy, stop signal and timeout, health check, labels, network
//! details, attach streams).

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;

use anyhow::{bail, Context, Result};

use crate::cli::RunArgs;
use crate::container::health;
use crate::container::restart::RestartPolicy;
use crate::container::run_flags::RunFlagsRecord;
use crate::imagespec::resources;
use crate::oci::parse_signal;

/// What the spec gets.
pub struct SpecFlags {
    pub resources: serde_json::Map<String, serde_json::Value>,
    pub ulimits: Vec<serde_json::Value>,
}

/// Checks the flags; the spec's part and the record's.
pub fn parse(a: &RunArgs, image_labels: BTreeMap<String, String>) -> Result<(SpecFlags, RunFlagsRecord)> {
    let f = &a.docker;
    let res = resources::resources(&f.resources)?;
    let ulimits = f
        .ulimit
        .iter()
        .map(|u| resources::parse_ulimit(u))
        .collect::<Result<Vec<_>>>()?;
    let restart_policy = match &f.restart {
        Some(p) => RestartPolicy::parse(p)?,
        None => RestartPolicy {
            name: "no".into(),
            max_retries: 0,
        },
    };
    if restart_policy.restarts() && a.rm {
        bail!("Conflicting options: --restart and --rm");
    }
    if let Some(s) = &f.stop_signal {
        parse_signal(s).with_context(|| format!("invalid --stop-signal \"{s}\""))?;
    }
    // checked here; the image's own check is merged in once it is known
    let healthcheck = health::config(f, None)?;
    if restart_policy.restarts() && !a.detach && !a.tty {
        bail!(
            "--restart {}: minirun restarts only containers it supervises: add -d (or -t)",
            restart_policy.name
        );
    }
    let mut labels = image_labels;
    for file in &f.label_file {
        let text =
            fs::read_to_string(file).with_context(|| format!("open {}: no such file or directory", file.display()))?;
        for line in text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            labels.insert(k.to_string(), v.to_string());
        }
    }
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label '{l}': empty name");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    for h in &f.add_host {
        let (name, ip) = h
            .split_once(':')
            .with_context(|| format!("bad format for add-host: \"{h}\""))?;
        if name.is_empty() || (ip != "host-gateway" && ip.parse::<IpAddr>().is_err()) {
            bail!("invalid IP address in add-host: \"{ip}\"");
        }
    }
    if let Some(mac) = &f.mac_address {
        let ok = mac.split(':').count() == 6
            && mac
                .split(':')
                .all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
        if !ok {
            bail!("{mac} is not a valid mac address");
        }
    }
    let mut exposed = Vec::new();
    for e in &f.expose {
        let (ports, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            bail!("invalid proto: {proto}");
        }
        let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
        let (lo, hi): (u16, u16) = match (lo.parse(), hi.parse()) {
            (Ok(l), Ok(h)) if l <= h && l > 0 => (l, h),
            _ => bail!("invalid range format for --expose: {e}"),
        };
        for p in lo..=hi {
            exposed.push(format!("{p}/{proto}"));
        }
    }
    let mut attach = Vec::new();
    for s in &f.attach {
        let s = s.to_ascii_lowercase();
        if !matches!(s.as_str(), "stdin" | "stdout" | "stderr") {
            bail!("invalid argument \"{s}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR");
        }
        attach.push(s);
    }
    if a.detach && !attach.is_empty() {
        bail!("Conflicting options: -a and -d");
    }
    if a.detach && f.sig_proxy == Some(true) {
        bail!("Conflicting options: --sig-proxy and -d");
    }
    if let Some(c) = &f.cidfile {
        if c.exists() {
            bail!(
                "Container ID file found, make sure the other container isn't running or delete {}",
                c.display()
            );
        }
    }
    let record = RunFlagsRecord {
        labels,
        restart_policy,
        stop_signal: f.stop_signal.clone(),
        stop_timeout: f.stop_timeout,
        init: f.init,
        healthcheck,
        resources: res.clone(),
        ulimits: f.ulimit.clone(),
        exposed_ports: exposed,
        extra_hosts: f.add_host.clone(),
        mac_address: f.mac_address.clone(),
        ip: f.ip,
        dns_search: f.dns_search.clone(),
        dns_options: f.dns_option.clone(),
        attach,
        sig_proxy: f.sig_proxy,
        cidfile: f.cidfile.clone(),
        ..Default::default()
    };
    Ok((
        SpecFlags {
            resources: res,
            ulimits,
        },
        record,
    ))
}

/// docker's `config.Healthcheck` of an image (OCI's image config has no
/// such field, so it is read from the config blob as stored: the image id
/// is the sha256 of that blob, under `<data-root>/images/blobs/sha256/`).
pub fn image_healthcheck(ctx: &crate::container::Ctx, image_id: &str) -> Option<health::HealthConfig> {
    let hex = image_id.trim_start_matches("sha256:");
    let bytes = fs::read(ctx.data_root.join("images/blobs/sha256").join(hex)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    serde_json::from_value(v["config"]["Healthcheck"].clone()).ok()
}

/// `--mac-address` as bytes; only where minirun makes the interface.
pub fn mac(f: &crate::cli::RunFlags, mode: &minirun_net::NetMode) -> Result<Option<[u8; 6]>> {
    let Some(m) = &f.mac_address else {
        return Ok(None);
    };
    let mut out = [0u8; 6];
    if m.split(':').count() != 6 {
        bail!("{m} is not a valid mac address");
    }
    for (i, part) in m.split(':').enumerate() {
        let b = u8::from_str_radix(part, 16).ok().filter(|_| part.len() == 2);
        out[i] = b.with_context(|| format!("{m} is not a valid mac address"))?;
    }
    if !matches!(mode, minirun_net::NetMode::Bridge(_)) {
        bail!("conflicting options: mac-address and the network mode (--net {mode})");
    }
    if out[0] & 1 == 1 {
        bail!("{m} is not a valid mac address: a multicast address");
    }
    Ok(Some(out))
}
