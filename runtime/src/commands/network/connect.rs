//! `network connect [--ip IP] [--alias A] NETWORK CONTAINER` and `network
//! disconnect [-f] NETWORK CONTAINER` on a running container.

use anyhow::{anyhow, bail, Result};
use minirun_net::network;

use crate::cli::{NetworkConnectArgs, NetworkDisconnectArgs};
use crate::container::connect::{self, ConnectOpts};
use crate::container::{Ctx, Record, Status};

fn running(ctx: &Ctx, net: &str, wanted: &str) -> Result<Record> {
    if network::load_network(&ctx.data_root, net)?.is_none() && net != minirun_net::mode::DEFAULT_NETWORK {
        bail!("network \"{net}\" not found");
    }
    let r = ctx
        .resolve(wanted)
        .map_err(|_| anyhow!("No such container: {wanted}"))?;
    if ctx.status(&r) != Status::Running {
        bail!("container \"{wanted}\" is not running");
    }
    Ok(r)
}

pub fn connect(ctx: &Ctx, a: &NetworkConnectArgs) -> Result<u8> {
    let r = running(ctx, &a.network, &a.container)?;
    if a.network == minirun_net::mode::DEFAULT_NETWORK && !a.alias.is_empty() {
        bail!("network-scoped aliases are only supported for user-defined networks (--alias with network \"bridge\")");
    }
    if a.network == minirun_net::mode::DEFAULT_NETWORK && a.ip.is_some() {
        bail!("user specified IP address is supported on user defined networks only (--ip with network \"bridge\")");
    }
    connect::connect(
        ctx,
        &r,
        &a.network,
        &ConnectOpts {
            ip: a.ip,
            aliases: a.alias.clone(),
        },
    )?;
    Ok(0)
}

pub fn disconnect(ctx: &Ctx, a: &NetworkDisconnectArgs) -> Result<u8> {
    // -f: docker's for endpoints of a daemon that lost them; ours are always found
    let _ = a.force;
    let r = running(ctx, &a.network, &a.container)?;
    connect::disconnect(ctx, &r, &a.network)?;
    Ok(0)
}
