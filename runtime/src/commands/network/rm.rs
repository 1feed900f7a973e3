//! `network rm NAME...`: refused while a container uses the network.

use anyhow::{bail, Result};
use minirun_net::network;

use super::{members, records};
use crate::container::Ctx;

pub fn run(ctx: &Ctx, names: &[String]) -> Result<u8> {
    for name in names {
        rm(ctx, name)?;
        println!("{name}");
    }
    Ok(0)
}

fn rm(ctx: &Ctx, name: &str) -> Result<()> {
    if name == minirun_net::mode::DEFAULT_NETWORK {
        bail!("network \"{name}\" is the default network and cannot be removed");
    }
    if network::load_network(&ctx.data_root, name)?.is_none() {
        bail!("network \"{name}\" not found");
    }
    if let Some(m) = members(ctx, name, &records(ctx)?).into_iter().next() {
        let who = if m.name.is_empty() {
            m.attachment.container_id
        } else {
            m.name
        };
        bail!("network \"{name}\" is in use by container \"{who}\"; stop or remove it first");
    }
    Ok(minirun_net::remove_network(&ctx.root, &ctx.data_root, name, ctx)?)
}
