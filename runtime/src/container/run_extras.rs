//! The parts of issue 15's run flags that touch a container's files as it
//! is made: `--cidfile`, `--add-host` in /etc/hosts, `--dns-search` and
//! `--dns-option` in /etc/resolv.conf.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use minirun_net::Attachment;

use super::run_flags::RunFlagsRecord;

/// `--cidfile`: the id, in a file that must not exist yet (as docker).
pub fn write_cidfile(path: &Path, id: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow!(
                "Container ID file found, make sure the other container isn't running or delete {}",
                path.display()
            ),
            _ => anyhow!("failed to create the container ID file: {e}"),
        })?;
    f.write_all(id.as_bytes())
        .with_context(|| format!("cannot write the container ID file {}", path.display()))
}

/// Rewrites the container's hosts and resolv.conf (written by `run` in
/// `dir`) with `--add-host`, `--dns-search` and `--dns-option`.
pub fn edit_etc_files(dir: &Path, att: &Attachment, hostname: &str, name: &str, f: &RunFlagsRecord) -> Result<()> {
    if !f.extra_hosts.is_empty() {
        let mut extra = Vec::new();
        for h in &f.extra_hosts {
            let (host, ip) = h.split_once(':').unwrap_or((h, ""));
            let ip: IpAddr = if ip == "host-gateway" {
                IpAddr::V4(att.gateway.ok_or_else(|| {
                    anyhow!("--add-host {h}: host-gateway needs a bridge network (this container has no gateway)")
                })?)
            } else {
                ip.parse()
                    .with_context(|| format!("invalid IP address in add-host: \"{ip}\""))?
            };
            extra.push((host.to_string(), ip));
        }
        let text = minirun_net::etc::hosts(att.ip, hostname, Some(name), &extra);
        fs::write(dir.join("hosts"), text).context("cannot write the container's hosts file")?;
    }
    if !f.dns_search.is_empty() || !f.dns_options.is_empty() {
        let path = dir.join("resolv.conf");
        let old = fs::read_to_string(&path).unwrap_or_default();
        let mut out = String::new();
        if !f.dns_search.is_empty() {
            out.push_str(&format!("search {}\n", f.dns_search.join(" ")));
        }
        for line in old.lines() {
            let key = line.split_whitespace().next().unwrap_or("");
            // given ones replace the host's
            if (key == "search" || key == "domain") && !f.dns_search.is_empty() {
                continue;
            }
            if key == "options" && !f.dns_options.is_empty() {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        if !f.dns_options.is_empty() {
            out.push_str(&format!("options {}\n", f.dns_options.join(" ")));
        }
        fs::write(&path, out).context("cannot write the container's resolv.conf")?;
    }
    Ok(())
}
