//! More than one network per container: `run --network A --network B`, `network
//! connect` and `network disconnect`. The first network owns the container's
//! namespace (`Record::network`, `eth0`); every other one is an interface of its
//! own in that namespace (`eth1`...), made by minirun-net's `connect` and kept in
//! `Record::extra_networks`. `/etc/hosts` gets a line per address.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{anyhow, bail, Context, Result};
use minirun_net::mode::DEFAULT_NETWORK;
use minirun_net::{Attachment, ConnectRequest, NetMode};

use super::{Ctx, Record};

/// What `network connect` asks for.
#[derive(Debug, Clone, Default)]
pub struct ConnectOpts {
    pub ip: Option<Ipv4Addr>,
    pub aliases: Vec<String>,
}

/// Connects the container of `record` (its namespace made) to `network`; the record
/// is re-read and saved with the new attachment, `/etc/hosts` gets its address.
pub fn connect(ctx: &Ctx, record: &Record, network: &str, opts: &ConnectOpts) -> Result<Attachment> {
    let who = &record.name;
    let mode: NetMode = record.net.parse().map_err(|e| anyhow!("{e}"))?;
    if !matches!(mode, NetMode::Bridge(_)) {
        bail!("container \"{who}\" uses --network {mode}: it cannot be connected to network \"{network}\"");
    }
    let first = record
        .network
        .clone()
        .or_else(|| ctx.net.recorded(&record.id))
        .filter(|a| a.netns_owned)
        .ok_or_else(|| anyhow!("container \"{who}\" has no network namespace (is it running?)"))?;
    let netns = first
        .netns_path
        .clone()
        .ok_or_else(|| anyhow!("container \"{who}\" has no network namespace"))?;
    let extras = ctx.net.extras(&record.id);
    if first.network.as_deref() == Some(network) || extras.iter().any(|a| a.network.as_deref() == Some(network)) {
        bail!("endpoint with name {who} already exists in network {network}");
    }
    let mut used: Vec<String> = extras.iter().map(|a| a.interface().to_string()).collect();
    if first.network.is_some() {
        used.push(first.interface().to_string());
    }
    let mut aliases = vec![record.name.clone(), minirun_net::etc::default_hostname(&record.id)];
    aliases.extend(opts.aliases.iter().cloned());
    let att = ctx.net.connect(
        &ConnectRequest {
            container_id: record.id.clone(),
            network: network.to_string(),
            netns,
            used_ifnames: used,
            runtime_root: ctx.root.clone(),
            data_root: ctx.data_root.clone(),
            hostname: Some(record.hostname.clone()),
            aliases,
            ip: opts.ip,
        },
        ctx,
    )?;
    // the record, re-read right before it is written (its monitor may save it too)
    let saved = (|| -> Result<()> {
        let mut now = ctx.load(&record.id)?;
        now.extra_networks.retain(|a| a.network.as_deref() != Some(network));
        now.extra_networks.push(att.clone());
        ctx.save(&now)?;
        edit_hosts(ctx, &record.id, |t| hosts_with(t, &att, &record.hostname, &record.name))
    })();
    if let Err(e) = saved {
        let _ = ctx.net.disconnect(&att);
        return Err(e);
    }
    crate::events::network(&ctx.data_root, "connect", network, &record.id);
    Ok(att)
}

/// Takes `network` away from the container of `record`: its interface, address and
/// firewall elements go; the container keeps running (without any network once the
/// last one went).
pub fn disconnect(ctx: &Ctx, record: &Record, network: &str) -> Result<()> {
    let who = &record.name;
    let first = record.network.clone().or_else(|| ctx.net.recorded(&record.id));
    let on_first = first.as_ref().filter(|a| a.network.as_deref() == Some(network));
    let extra = ctx
        .net
        .extras(&record.id)
        .into_iter()
        .find(|a| a.network.as_deref() == Some(network));
    let att = match (on_first, extra) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => a,
        (None, None) => bail!("container \"{who}\" is not connected to network \"{network}\""),
    };
    let kept = ctx.net.disconnect(&att)?;
    let mut now = ctx.load(&record.id)?;
    if att.ifname.is_none() {
        now.network = Some(kept);
        now.first_network_disconnected = true;
    } else {
        now.extra_networks.retain(|a| a.network.as_deref() != Some(network));
    }
    ctx.save(&now)?;
    edit_hosts(ctx, &record.id, |t| hosts_without(t, &att))?;
    crate::events::network(&ctx.data_root, "disconnect", network, &record.id);
    Ok(())
}

/// `run --network A --network B ...`: A is the first network (its mode is checked
/// as a single `--network` is); every other must be a distinct user-defined network.
pub fn check_networks(nets: &[String]) -> Result<()> {
    if nets.len() < 2 {
        return Ok(());
    }
    for (i, n) in nets.iter().enumerate() {
        let mode: NetMode = n.parse().map_err(|e| anyhow!("{e}"))?;
        if !matches!(&mode, NetMode::Bridge(b) if b != DEFAULT_NETWORK) {
            bail!("conflicting options: cannot attach both user-defined and non-user-defined network-modes (--network {n})");
        }
        if nets[..i].contains(n) {
            bail!("network \"{n}\" is specified multiple times");
        }
    }
    Ok(())
}

fn edit_hosts(ctx: &Ctx, id: &str, f: impl FnOnce(&str) -> String) -> Result<()> {
    let path = ctx.dir(id).join("hosts");
    let Ok(text) = fs::read_to_string(&path) else {
        return Ok(());
    };
    // written in place: the container sees the file through a bind mount
    fs::write(&path, f(&text)).with_context(|| format!("cannot write {}", path.display()))
}

/// `/etc/hosts` with the addresses of `att` under the container's names (docker
/// adds a line per connected network).
pub fn hosts_with(text: &str, att: &Attachment, hostname: &str, name: &str) -> String {
    let mut out = hosts_without(text, att);
    let names = if name.is_empty() || name == hostname {
        hostname.to_string()
    } else {
        format!("{hostname} {name}")
    };
    let addrs = [att.ip.map(IpAddr::V4), att.ipv6.map(IpAddr::V6)];
    for a in addrs.into_iter().flatten() {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{a}\t{names}\n"));
    }
    out
}

/// `/etc/hosts` without the lines of `att`'s addresses.
pub fn hosts_without(text: &str, att: &Attachment) -> String {
    let addrs: Vec<String> = [att.ip.map(IpAddr::V4), att.ipv6.map(IpAddr::V6)]
        .into_iter()
        .flatten()
        .map(|a| a.to_string())
        .collect();
    text.lines()
        .filter(|l| {
            !l.split_whitespace()
                .next()
                .is_some_and(|a| addrs.iter().any(|x| x == a))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn att(ip: &str, ip6: Option<&str>) -> Attachment {
        let req = minirun_net::AttachRequest {
            container_id: "c1".into(),
            mode: NetMode::Bridge("back".into()),
            join_netns: None,
            runtime_root: PathBuf::from("/r"),
            data_root: PathBuf::from("/d"),
            ports: vec![],
            hostname: None,
            aliases: vec![],
            ip: None,
            mac: None,
        };
        Attachment {
            ip: Some(ip.parse().unwrap()),
            ipv6: ip6.map(|a| a.parse().unwrap()),
            ..Attachment::new(&req)
        }
    }

    #[test]
    fn hosts_gain_and_lose_the_lines_of_one_network() {
        let base = "127.0.0.1\tlocalhost\n10.1.0.2\tabc web\n";
        let a = att("10.2.0.2", Some("fd00::2"));
        let with = hosts_with(base, &a, "abc", "web");
        assert_eq!(with, format!("{base}10.2.0.2\tabc web\nfd00::2\tabc web\n"));
        assert_eq!(
            hosts_with(&with, &a, "abc", "web"),
            with,
            "connecting twice adds nothing"
        );
        assert_eq!(hosts_without(&with, &a), base);
        assert_eq!(hosts_with("x", &att("10.2.0.3", None), "h", "h"), "x\n10.2.0.3\th\n");
    }

    #[test]
    fn several_networks_must_be_distinct_user_defined_ones() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(check_networks(&v(&["bridge"])).is_ok());
        assert!(check_networks(&v(&["front", "back"])).is_ok());
        let e = check_networks(&v(&["bridge", "back"])).unwrap_err().to_string();
        assert!(e.contains("conflicting options") && e.contains("bridge"), "{e}");
        for bad in [["front", "host"], ["none", "front"], ["front", "container:x"]] {
            assert!(check_networks(&v(&bad)).is_err(), "{bad:?}");
        }
        let e = check_networks(&v(&["front", "front"])).unwrap_err().to_string();
        assert!(e.contains("\"front\" is specified multiple times"), "{e}");
    }
}
