//! `network inspect NAME...`: networks and their live containers, as JSON.

use std::collections::BTreeMap;

use anyhow::Result;
use minirun_net::network::{self, NetworkConfig};
use minirun_net::Attachment;
use serde_json::json;

use super::{members, records};
use crate::container::Ctx;

pub fn run(ctx: &Ctx, names: &[String]) -> Result<u8> {
    let records = records(ctx)?;
    let mut out = Vec::new();
    for name in names {
        let n = network::get_network(&ctx.data_root, name)?;
        out.push(inspect(ctx, &n, &records));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

fn inspect(ctx: &Ctx, n: &NetworkConfig, records: &[Attachment]) -> serde_json::Value {
    let containers: BTreeMap<String, serde_json::Value> = members(ctx, &n.name, records)
        .into_iter()
        .map(|m| {
            let addr = m.attachment.ip.map(|ip| format!("{ip}/{}", n.prefix_len()));
            (
                m.attachment.container_id,
                json!({ "Name": m.name, "IPv4Address": addr }),
            )
        })
        .collect();
    json!({
        "Name": n.name,
        "Driver": "bridge",
        "Bridge": n.bridge,
        "Subnet": n.subnet.to_string(),
        "Gateway": n.gateway.to_string(),
        "ICC": n.icc,
        "MTU": n.mtu,
        "Default": n.name == minirun_net::mode::DEFAULT_NETWORK,
        "Containers": containers,
    })
}
