//! `minirun network create|ls|inspect|rm`: user-defined bridge networks.
//!
//! A network is a definition under the data root (name, bridge, subnet,
//! gateway, icc); its bridge and firewall elements appear with its first
//! container and stay until `network rm`. The default network `bridge` is
//! one of them and cannot be removed.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use minirun_net::network::{self, NetworkConfig, NetworkOptions};
use minirun_net::{Attachment, Ipv4Net};
use serde_json::json;

use crate::cli::{NetworkCmd, NetworkCreateArgs};
use crate::containers::Ctx;

/// Names docker keeps for its own modes; a network may not take them.
const RESERVED: [&str; 5] = ["bridge", "host", "none", "default", "container"];

pub fn run(ctx: &Ctx, cmd: NetworkCmd) -> Result<u8> {
    match cmd {
        NetworkCmd::Create(a) => {
            let n = create(ctx, &a)?;
            println!("{}", n.name);
        }
        NetworkCmd::Ls => ls(ctx)?,
        NetworkCmd::Inspect(a) => {
            let all = attachments(ctx);
            let mut out = Vec::new();
            for name in &a.names {
                let n = network::get_network(&ctx.data_root, name)?;
                out.push(inspect(ctx, &n, &all));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        NetworkCmd::Rm(a) => {
            for name in &a.names {
                rm(ctx, name)?;
                println!("{name}");
            }
        }
    }
    Ok(0)
}

fn create(ctx: &Ctx, a: &NetworkCreateArgs) -> Result<NetworkConfig> {
    if a.driver != "bridge" {
        bail!("network driver \"{}\" is not supported: only bridge", a.driver);
    }
    if RESERVED.contains(&a.name.as_str()) {
        bail!("network name \"{}\" is reserved", a.name);
    }
    let subnet: Option<Ipv4Net> = a.subnet.as_deref().map(str::parse).transpose().map_err(|e| anyhow!("{e}"))?;
    let gateway: Option<Ipv4Addr> = match &a.gateway {
        Some(g) => Some(g.parse().map_err(|_| anyhow!("invalid gateway \"{g}\": expected an IPv4 address"))?),
        None => None,
    };
    if gateway.is_some() && subnet.is_none() {
        bail!("--gateway {} needs --subnet", a.gateway.as_deref().unwrap_or_default());
    }
    // The default network is defined first, so it keeps the first free subnet
    // whatever order networks are made in (unless the user names a subnet, which
    // the default network then avoids).
    if subnet.is_none() {
        network::ensure_default_network(&ctx.data_root)?;
    }
    let opts = NetworkOptions { subnet, gateway, bridge: None, icc: a.icc };
    Ok(network::create_network(&ctx.data_root, &a.name, &opts)?)
}

/// Every attachment record, read once per command.
fn attachments(ctx: &Ctx) -> Vec<Attachment> {
    minirun_net::attach::list_attachments(&ctx.root).unwrap_or_default()
}

/// Live containers on `name` among `all` records: (id, container name, address).
fn members(ctx: &Ctx, name: &str, all: &[Attachment]) -> Vec<(String, String, Option<Ipv4Addr>)> {
    let mut out = Vec::new();
    for att in minirun_net::members_among(name, all, &|cid: &str| ctx.is_alive(cid)) {
        let cname = ctx.load_meta(&att.container_id).map(|m| m.name).unwrap_or_default();
        out.push((att.container_id.clone(), cname, att.ip));
    }
    out.sort();
    out
}

fn all_networks(ctx: &Ctx) -> Result<Vec<NetworkConfig>> {
    network::ensure_default_network(&ctx.data_root)?;
    Ok(network::list_networks(&ctx.data_root)?)
}

fn ls(ctx: &Ctx) -> Result<()> {
    println!("{:<20} {:<18} {:<15} {:<10} {:<5} CONTAINERS", "NAME", "SUBNET", "GATEWAY", "BRIDGE", "ICC");
    let all = attachments(ctx);
    for n in all_networks(ctx)? {
        let count = members(ctx, &n.name, &all).len();
        println!("{:<20} {:<18} {:<15} {:<10} {:<5} {count}", n.name, n.subnet.to_string(), n.gateway.to_string(), n.bridge, n.icc);
    }
    Ok(())
}

fn inspect(ctx: &Ctx, n: &NetworkConfig, all: &[Attachment]) -> serde_json::Value {
    let containers: BTreeMap<String, serde_json::Value> = members(ctx, &n.name, all)
        .into_iter()
        .map(|(id, name, ip)| {
            let addr = ip.map(|ip| format!("{ip}/{}", n.prefix_len()));
            (id, json!({ "Name": name, "IPv4Address": addr }))
        })
        .collect();
    json!({
        "Name": n.name,
        "Driver": "bridge",
        "Bridge": n.bridge,
        "Subnet": n.subnet.to_string(),
        "Gateway": n.gateway.to_string(),
        "ICC": n.icc,
        "Default": n.name == minirun_net::mode::DEFAULT_NETWORK,
        "Containers": containers,
    })
}

fn rm(ctx: &Ctx, name: &str) -> Result<()> {
    if name == minirun_net::mode::DEFAULT_NETWORK {
        bail!("network \"{name}\" is the default network and cannot be removed");
    }
    if network::load_network(&ctx.data_root, name)?.is_none() {
        bail!("network \"{name}\" not found");
    }
    if let Some(att) = minirun_net::members(&ctx.root, name, &|cid: &str| ctx.is_alive(cid))?.first() {
        let cname = ctx.load_meta(&att.container_id).map(|m| m.name).unwrap_or_default();
        let who = if cname.is_empty() { att.container_id.clone() } else { cname };
        bail!("network \"{name}\" is in use by container \"{who}\"; stop or remove it first");
    }
    Ok(minirun_net::remove_network(&ctx.root, &ctx.data_root, name, &|cid: &str| ctx.is_alive(cid))?)
}
