//! `network prune`: every user-defined network no container uses (running
//! or stopped: a stopped one starts again on its network).

use anyhow::Result;

use super::{all_networks, members, records};
use crate::container::Ctx;

/// Removes the unused networks; returns their names.
pub fn prune(ctx: &Ctx) -> Result<Vec<String>> {
    let records = records(ctx)?;
    let containers = ctx.all()?;
    let mut removed = Vec::new();
    for n in all_networks(ctx)? {
        if n.name == minirun_net::mode::DEFAULT_NETWORK
            || !members(ctx, &n.name, &records).is_empty()
            || containers.iter().any(|r| r.net == n.name)
        {
            continue;
        }
        minirun_net::remove_network(&ctx.root, &ctx.data_root, &n.name, ctx)?;
        removed.push(n.name);
    }
    Ok(removed)
}
