//! `network ls`

use anyhow::Result;

use super::{all_networks, members, records};
use crate::container::Ctx;

pub fn run(ctx: &Ctx) -> Result<u8> {
    println!(
        "{:<20} {:<18} {:<15} {:<10} {:<5} CONTAINERS",
        "NAME", "SUBNET", "GATEWAY", "BRIDGE", "ICC"
    );
    let records = records(ctx)?;
    for n in all_networks(ctx)? {
        let count = members(ctx, &n.name, &records).len();
        println!(
            "{:<20} {:<18} {:<15} {:<10} {:<5} {count}",
            n.name,
            n.subnet.to_string(),
            n.gateway.to_string(),
            n.bridge,
            n.icc
        );
    }
    Ok(0)
}
