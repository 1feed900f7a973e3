//! `network inspect [-f FORMAT] NAME...`: networks and their live
//! containers, in docker's shape (with minirun's own fields after docker's).

use std::collections::BTreeMap;

use anyhow::Result;
use minirun_net::network::{self, NetworkConfig};
use minirun_net::Attachment;
use serde::Serialize;

use super::{members, records};
use crate::commands::format::Format;
use crate::commands::inspect::{network_id, print_inspected};
use crate::container::Ctx;

pub fn run(ctx: &Ctx, names: &[String], format: Option<&str>) -> Result<u8> {
    let format = format.map(Format::parse).transpose()?;
    let records = records(ctx)?;
    let mut out = Vec::new();
    for name in names {
        let n = network::get_network(&ctx.data_root, name)?;
        out.push(inspect(ctx, &n, &records));
    }
    print_inspected(format.as_ref(), &out)?;
    Ok(0)
}

/// Network `name` in docker's shape.
pub fn inspect_one(ctx: &Ctx, name: &str) -> Result<serde_json::Value> {
    let n = network::get_network(&ctx.data_root, name)?;
    Ok(serde_json::to_value(inspect(ctx, &n, &records(ctx)?))?)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkInspect {
    name: String,
    id: String,
    created: String,
    scope: &'static str,
    driver: &'static str,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: Ipam,
    internal: bool,
    attachable: bool,
    ingress: bool,
    config_from: BTreeMap<&'static str, String>,
    config_only: bool,
    containers: BTreeMap<String, Endpoint>,
    options: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    // minirun's own, as before
    bridge: String,
    subnet: String,
    gateway: String,
    #[serde(rename = "SubnetV6")]
    subnet_v6: Option<String>,
    #[serde(rename = "GatewayV6")]
    gateway_v6: Option<String>,
    #[serde(rename = "ICC")]
    icc: bool,
    #[serde(rename = "MTU")]
    mtu: Option<u32>,
    default: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Ipam {
    driver: &'static str,
    options: Option<BTreeMap<String, String>>,
    config: Vec<BTreeMap<&'static str, String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Endpoint {
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: Option<String>,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

fn inspect(ctx: &Ctx, n: &NetworkConfig, records: &[Attachment]) -> NetworkInspect {
    let containers = members(ctx, &n.name, records)
        .into_iter()
        .map(|m| {
            let a = m.attachment;
            let endpoint = Endpoint {
                name: m.name,
                endpoint_id: a.veth_host.clone().unwrap_or_default(),
                mac_address: a.mac.clone().unwrap_or_default(),
                ipv4_address: a.ip.map(|ip| format!("{ip}/{}", n.prefix_len())),
                ipv6_address: a
                    .ipv6
                    .map(|ip| format!("{ip}/{}", a.ipv6_prefix_len.unwrap_or(64)))
                    .unwrap_or_default(),
            };
            (a.container_id, endpoint)
        })
        .collect();
    let created = std::fs::metadata(ctx.data_root.join("networks"))
        .ok()
        .and_then(|m| m.modified().ok())
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default();
    let mut options: BTreeMap<String, String> = [
        ("com.docker.network.bridge.name", n.bridge.clone()),
        ("com.docker.network.bridge.enable_icc", n.icc.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Some(mtu) = n.mtu {
        options.insert("com.docker.network.driver.mtu".into(), mtu.to_string());
    }
    NetworkInspect {
        name: n.name.clone(),
        id: network_id(&n.name),
        created,
        scope: "local",
        driver: "bridge",
        enable_ipv6: n.subnet6.is_some(),
        ipam: Ipam {
            driver: "default",
            options: None,
            // one entry per family, as docker
            config: std::iter::once((n.subnet.to_string(), n.gateway.to_string()))
                .chain(n.ipv6().map(|(s6, g6)| (s6.to_string(), g6.to_string())))
                .map(|(s, g)| [("Subnet", s), ("Gateway", g)].into_iter().collect())
                .collect(),
        },
        internal: false,
        attachable: false,
        ingress: false,
        config_from: [("Network", String::new())].into_iter().collect(),
        config_only: false,
        containers,
        options,
        labels: BTreeMap::new(),
        bridge: n.bridge.clone(),
        subnet: n.subnet.to_string(),
        gateway: n.gateway.to_string(),
        subnet_v6: n.subnet6.map(|s| s.to_string()),
        gateway_v6: n.gateway6.map(|g| g.to_string()),
        icc: n.icc,
        mtu: n.mtu,
        default: n.name == minirun_net::mode::DEFAULT_NETWORK,
    }
}
