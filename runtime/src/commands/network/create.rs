//! `network create [--subnet CIDR] [--gateway IP] [--icc=false] [-o mtu=N] NAME`

use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use minirun_net::network::{self, NetworkConfig, NetworkOptions};
use minirun_net::Ipv4Net;

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
    if RESERVED.contains(&a.name.as_str()) {
        bail!("network name \"{}\" is reserved", a.name);
    }
    let subnet: Option<Ipv4Net> = a.subnet.as_deref().map(str::parse).transpose()?;
    let gateway: Option<Ipv4Addr> = match &a.gateway {
        Some(g) => Some(
            g.parse()
                .map_err(|_| anyhow!("invalid gateway \"{g}\": expected an IPv4 address"))?,
        ),
        None => None,
    };
    if gateway.is_some() && subnet.is_none() {
        bail!("--gateway {} needs --subnet", a.gateway.as_deref().unwrap_or_default());
    }
    // The default network is defined first, so it keeps the first free subnet
    // whatever order networks are made in (unless the user names a subnet,
    // which the default network then avoids).
    if subnet.is_none() {
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
    };
    Ok(network::create_network(&ctx.data_root, &a.name, &opts)?)
}
