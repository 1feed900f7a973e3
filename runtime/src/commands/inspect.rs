//! `inspect NAME...`: what minirun knows about containers, as docker's JSON.

use std::path::PathBuf;

use anyhow::Result;
use minirun_net::Attachment;
use serde::Serialize;

use super::Env;
use crate::cli::NamesArg;
use crate::container::{Ctx, Record, Status};

pub fn run(env: &Env, a: &NamesArg) -> Result<u8> {
    let ctx = env.ctx();
    let mut out = Vec::new();
    for c in &a.containers {
        out.push(inspect(&ctx, &ctx.resolve(c)?));
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(0)
}

/// The body of `inspect` for one container.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: InspectState,
    pub config: InspectConfig,
    pub mounts: Vec<InspectMount>,
    /// minirun's attachment record (mode, ip, prefix_len, gateway, mac, ports,
    /// netns_path...) plus docker's names for the addresses.
    pub network_settings: Option<NetworkSettings>,
    pub host_config: InspectHost,
}

/// `NetworkSettings`: the attachment record as is, and docker's keys for the addresses
/// (`IPAddress`, `Gateway`, `GlobalIPv6Address`, `GlobalIPv6PrefixLen`, `IPv6Gateway`;
/// empty strings / 0 when absent, as docker shows them).
#[derive(Debug, Serialize)]
pub struct NetworkSettings {
    #[serde(flatten)]
    pub attachment: Attachment,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
}

impl From<Attachment> for NetworkSettings {
    fn from(a: Attachment) -> Self {
        let s = |x: Option<String>| x.unwrap_or_default();
        NetworkSettings {
            ip_address: s(a.ip.map(|i| i.to_string())),
            gateway: s(a.gateway.map(|i| i.to_string())),
            global_ipv6_address: s(a.ipv6.map(|i| i.to_string())),
            global_ipv6_prefix_len: a.ipv6_prefix_len.unwrap_or(0),
            ipv6_gateway: s(a.ipv6_gateway.map(|i| i.to_string())),
            attachment: a,
        }
    }
}

/// A bind mount as docker's inspect shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectMount {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub source: PathBuf,
    pub destination: PathBuf,
    pub mode: &'static str,
    #[serde(rename = "RW")]
    pub rw: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub status: &'static str,
    pub running: bool,
    pub pid: i32,
    pub exit_code: Option<i32>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub cmd: Vec<String>,
    pub tty: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHost {
    pub auto_remove: bool,
    pub network_mode: String,
}

pub fn inspect(ctx: &Ctx, r: &Record) -> Inspect {
    let status = ctx.status(r);
    let running = status == Status::Running;
    Inspect {
        id: r.id.clone(),
        name: r.name.clone(),
        image: r.image.clone(),
        image_id: format!("sha256:{}", r.image_id),
        created: r.created.clone(),
        path: r.args.first().cloned().unwrap_or_default(),
        args: r.args.iter().skip(1).cloned().collect(),
        state: InspectState {
            status: status.name(),
            running,
            pid: if running { r.pid.unwrap_or(0) } else { 0 },
            exit_code: match status {
                Status::Exited(c) => Some(c),
                _ => None,
            },
            started_at: r.started_at.clone(),
            finished_at: r.finished_at.clone(),
        },
        config: InspectConfig {
            hostname: r.hostname.clone(),
            cmd: r.args.clone(),
            tty: r.tty,
        },
        mounts: r
            .volumes
            .iter()
            .map(|v| InspectMount {
                kind: "bind",
                source: v.source.clone(),
                destination: v.destination.clone(),
                mode: if v.read_only { "ro" } else { "rw" },
                rw: !v.read_only,
            })
            .collect(),
        network_settings: r.network.clone().map(NetworkSettings::from),
        host_config: InspectHost {
            auto_remove: r.auto_remove,
            network_mode: r.net.clone(),
        },
    }
}
