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
            let addr6 = m
                .attachment
                .ipv6
                .map(|ip| format!("{ip}/{}", m.attachment.ipv6_prefix_len.unwrap_or(64)));
            (
                m.attachment.container_id,
                json!({ "Name": m.name, "IPv4Address": addr, "IPv6Address": addr6 }),
            )
        })
        .collect();
    json!({
        "Name": n.name,
        "Driver": "bridge",
        "Bridge": n.bridge,
        "Subnet": n.subnet.to_string(),
        "Gateway": n.gateway.to_string(),
        "EnableIPv6": n.subnet6.is_some(),
        "SubnetV6": n.subnet6.map(|s| s.to_string()),
        "GatewayV6": n.gateway6.map(|g| g.to_string()),
        // docker's shape: one entry per family
        "IPAM": { "Config": ipam_config(n) },
        "ICC": n.icc,
        "MTU": n.mtu,
        "Default": n.name == minirun_net::mode::DEFAULT_NETWORK,
        "Containers": containers,
    })
}

fn ipam_config(n: &NetworkConfig) -> Vec<serde_json::Value> {
    let mut v = vec![json!({ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() })];
    if let Some((s6, g6)) = n.ipv6() {
        v.push(json!({ "Subnet": s6.to_string(), "Gateway": g6.to_string() }));
    }
    v
}
