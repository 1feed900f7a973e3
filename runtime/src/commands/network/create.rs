//! `network create [--ipv6] [--subnet CIDR]... [--gateway IP]... [--icc=false] [-o mtu=N] NAME`

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{anyhow, bail, Result};
use minirun_net::network::{self, NetworkConfig, NetworkOptions};
use minirun_net::{Ipv4Net, Ipv6Net};

use crate::cli::NetworkCreateArgs;
use crate::container::Ctx;

/// Names docker keeps for its own modes; a network may not take them.
const RESERVED: [&str; 5] = ["bridge", "host", "none", "default", "container"];

pub fn run(ctx: &Ctx, a: &NetworkCreateArgs) -> Result<u8> {
    let n = create(ctx, a)?;
    println!("{}", n.name);
    Ok(0)
}

fn create(ctx: &Ctx, a: &NetworkCreateArgs) -> Result<NetworkConfig> {
    if a.driver != "bridge" {
        bail!("network driver \"{}\" is not supported: only bridge", a.driver);
    }
    // `bridge` may be created once, before its first use, to give the default network
    // options (docker's daemon.json `ipv6`/`fixed-cidr-v6`/`bip`).
    let default = a.name == minirun_net::mode::DEFAULT_NETWORK;
    if RESERVED.contains(&a.name.as_str()) && !default {
        bail!("network name \"{}\" is reserved", a.name);
    }
    let (mut subnet, mut subnet6) = (None::<Ipv4Net>, None::<Ipv6Net>);
    for s in &a.subnet {
        if s.contains(':') {
            if subnet6.replace(s.parse()?).is_some() {
                bail!("--subnet: one IPv6 subnet per network");
            }
        } else if subnet.replace(s.parse()?).is_some() {
            bail!("--subnet: one IPv4 subnet per network");
        }
    }
    let (mut gateway, mut gateway6) = (None::<Ipv4Addr>, None::<Ipv6Addr>);
    for g in &a.gateway {
        match g.parse::<IpAddr>() {
            Ok(IpAddr::V4(x)) if gateway.is_none() => gateway = Some(x),
            Ok(IpAddr::V6(x)) if gateway6.is_none() => gateway6 = Some(x),
            Ok(_) => bail!("--gateway: one gateway per family"),
            Err(_) => bail!("invalid gateway \"{g}\": expected an IP address"),
        }
    }
    if let (Some(g), None) = (gateway, subnet) {
        bail!("--gateway {g} needs --subnet");
    }
    if let (Some(g), None) = (gateway6, subnet6) {
        bail!("--gateway {g} needs an IPv6 --subnet");
    }
    // The default network is defined first, so it keeps the first free subnet
    // whatever order networks are made in (unless the user names a subnet,
    // which the default network then avoids).
    if subnet.is_none() && !default {
        network::ensure_default_network(&ctx.data_root)?;
    }
    let mut mtu = None;
    for o in &a.opt {
        match o.split_once('=') {
            Some(("mtu" | "com.docker.network.driver.mtu", v)) => {
                let m: u32 = v
                    .parse()
                    .map_err(|_| anyhow!("invalid mtu \"{v}\": expected a number"))?;
                if !network::MTU_RANGE.contains(&m) {
                    bail!(
                        "invalid mtu {m}: expected {}-{}",
                        network::MTU_RANGE.start(),
                        network::MTU_RANGE.end()
                    );
                }
                mtu = Some(m);
            }
            _ => bail!("network option \"{o}\" is not supported (only mtu=N)"),
        }
    }
    let opts = NetworkOptions {
        subnet,
        gateway,
        bridge: None,
        icc: a.icc,
        mtu,
        ipv6: a.ipv6 || subnet6.is_some(),
        subnet6,
        gateway6,
    };
    if default {
        return Ok(network::create_default_network(&ctx.data_root, &opts)?);
    }
    Ok(network::create_network(&ctx.data_root, &a.name, &opts)?)
}
