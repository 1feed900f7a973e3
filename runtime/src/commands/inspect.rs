//! `inspect [-f FORMAT] NAME...`: containers (then images, then networks, as
//! docker looks them up) in docker's JSON shape, or each through a Go
//! template.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::Spec;
use minirun_net::{Attachment, NetMode};
use serde::Serialize;

use super::format::Format;
use super::Env;
use crate::cli::InspectArgs;
use crate::container::{Ctx, Record, Status};

pub fn run(env: &Env, a: &InspectArgs) -> Result<u8> {
    let ctx = env.ctx();
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut failed = 0;
    for c in &a.containers {
        let found = match a.kind.as_deref() {
            None | Some("container") => ctx.resolve(c).map(|r| serde_json::to_value(inspect(&ctx, &r))),
            Some(_) => Err(anyhow::anyhow!("not a container")),
        };
        let found = match found {
            Ok(v) => Some(v?),
            Err(_) if matches!(a.kind.as_deref(), None | Some("image")) => match super::image::inspect_one(&ctx, c) {
                Ok(v) => Some(serde_json::to_value(v)?),
                Err(_) if a.kind.is_none() => super::network::inspect_one(&ctx, c).ok(),
                Err(_) => None,
            },
            Err(_) if a.kind.as_deref() == Some("network") => super::network::inspect_one(&ctx, c).ok(),
            Err(_) => None,
        };
        match found {
            Some(v) => out.push(v),
            None => {
                eprintln!("Error: No such object: {c}");
                failed += 1;
            }
        }
    }
    print_inspected(format.as_ref(), &out)?;
    Ok(u8::from(failed > 0))
}

/// Docker's way of printing what `inspect` found: a JSON array, or each
/// object through the template, one line each.
pub fn print_inspected<T: Serialize>(format: Option<&Format>, items: &[T]) -> Result<()> {
    match format {
        None => println!("{}", serde_json::to_string_pretty(items)?),
        Some(f) => {
            for i in items {
                println!("{}", f.render(i)?);
            }
        }
    }
    Ok(())
}

/// One container, as docker 20.10's `inspect` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Inspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: InspectState,
    /// The image id (`sha256:...`); its name is `Config.Image`.
    pub image: String,
    pub resolv_conf_path: PathBuf,
    pub hostname_path: PathBuf,
    pub hosts_path: PathBuf,
    pub log_path: PathBuf,
    /// `/NAME`, as docker.
    pub name: String,
    pub restart_count: u32,
    pub driver: &'static str,
    pub platform: &'static str,
    pub host_config: InspectHost,
    pub graph_driver: GraphDriver,
    pub mounts: Vec<InspectMount>,
    pub config: InspectConfig,
    pub network_settings: NetworkSettings,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectState {
    pub status: &'static str,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::container::health::HealthState>,
}

/// A mount as docker's inspect shows it.
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
    pub propagation: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, Empty>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Empty>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::container::health::HealthConfig>,
}

/// Go's `struct{}`: `{}` in JSON.
#[derive(Debug, Serialize, Clone, Copy, Default)]
pub struct Empty {}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InspectHost {
    pub binds: Option<Vec<String>>,
    pub container_i_d_file: String,
    pub network_mode: String,
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub restart_policy: crate::container::restart::RestartPolicy,
    pub auto_remove: bool,
    pub dns: Vec<String>,
    pub dns_options: Vec<String>,
    pub dns_search: Vec<String>,
    pub extra_hosts: Option<Vec<String>>,
    pub init: Option<bool>,
    pub publish_all_ports: bool,
    pub readonly_rootfs: bool,
    #[serde(flatten)]
    pub resources: Resources,
}

/// HostConfig's resources, as the container's spec holds them.
#[derive(Debug, Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct Resources {
    pub cpu_shares: u64,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cgroup_parent: String,
    pub blkio_weight: u16,
    pub cpu_period: u64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub memory_reservation: i64,
    pub memory_swap: i64,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GraphDriver {
    pub data: BTreeMap<&'static str, String>,
    pub name: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub ports: BTreeMap<String, Option<Vec<PortBinding>>>,
    pub sandbox_key: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    pub mac_address: String,
    pub networks: BTreeMap<String, EndpointSettings>,
    /// minirun's own attachment record (ip, gateway, mac, veth_host,
    /// netns_path...), as earlier versions printed it and scripts read it.
    #[serde(flatten)]
    pub minirun: Option<Attachment>,
}

#[derive(Debug, Serialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointSettings {
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<Empty>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    pub mac_address: String,
}

/// A network's id as docker shows it: 64 hex digits, here the sha256 of its
/// name (minirun's networks are known by name).
pub fn network_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(format!("minirun-network:{name}")))
}

/// The status word of `r` as docker prints it (paused included).
pub fn docker_status(ctx: &Ctx, r: &Record) -> (Status, &'static str) {
    let status = ctx.status(r);
    let word = match status {
        Status::Running if ctx.engine.status(&r.id) == Some(ContainerStatus::Paused) => "paused",
        Status::Exited(_) if r.run_flags.restarting => "restarting",
        s => s.name(),
    };
    (status, word)
}

pub fn inspect(ctx: &Ctx, r: &Record) -> Inspect {
    let (status, word) = docker_status(ctx, r);
    let running = status == Status::Running;
    let dir = ctx.dir(&r.id);
    let spec = Spec::load(dir.join("config.json")).ok();
    let image = ctx.store().ok().and_then(|s| s.resolve(&r.image_id).ok());
    let image_cfg = image.as_ref().and_then(|i| i.config.config().clone());
    let summary = r.config.clone().unwrap_or_else(|| crate::container::RunSummary {
        entrypoint: Vec::new(),
        cmd: r.args.clone(),
        env: spec
            .as_ref()
            .and_then(|s| s.process().as_ref()?.env().clone())
            .unwrap_or_default(),
        user: image_cfg.as_ref().and_then(|c| c.user().clone()).unwrap_or_default(),
        working_dir: spec
            .as_ref()
            .and_then(|s| s.process().as_ref().map(|p| p.cwd().display().to_string()))
            .unwrap_or_default(),
        network: None,
    });
    let att = r.network.as_ref();
    let ports = att.map(|a| a.ports.clone()).unwrap_or_default();
    let mut port_bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    for p in &ports {
        port_bindings
            .entry(format!("{}/{}", p.container_port, p.proto))
            .or_default()
            .push(PortBinding {
                host_ip: p.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                host_port: p.host_port.to_string(),
            });
    }
    let mut exposed: BTreeMap<String, Empty> = image_cfg
        .as_ref()
        .and_then(|c| c.exposed_ports().clone())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (if p.contains('/') { p } else { format!("{p}/tcp") }, Empty {}))
        .collect();
    for k in port_bindings.keys().chain(&r.run_flags.exposed_ports) {
        exposed.insert(k.clone(), Empty {});
    }
    let mut live_ports: BTreeMap<String, Option<Vec<PortBinding>>> =
        exposed.keys().map(|k| (k.clone(), None)).collect();
    if running {
        for (k, v) in &port_bindings {
            let shown = v
                .iter()
                .map(|b| PortBinding {
                    host_ip: if b.host_ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        b.host_ip.clone()
                    },
                    host_port: b.host_port.clone(),
                })
                .collect();
            live_ports.insert(k.clone(), Some(shown));
        }
    }
    let network_name = att
        .and_then(|a| a.network.clone())
        .or_else(|| match att.map(|a| &a.mode) {
            Some(NetMode::Host) => Some("host".into()),
            Some(NetMode::None) => Some("none".into()),
            _ => None,
        })
        // `network disconnect` took the first network away: no entry for it
        .filter(|_| !r.first_network_disconnected);
    let endpoint = |a: &Attachment| EndpointSettings {
        ipam_config: None,
        links: None,
        aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
        network_id: a.network.as_deref().map(network_id).unwrap_or_default(),
        endpoint_id: a.veth_host.clone().unwrap_or_default(),
        gateway: a.gateway.map(|g| g.to_string()).unwrap_or_default(),
        ip_address: a.ip.map(|g| g.to_string()).unwrap_or_default(),
        ip_prefix_len: a.prefix_len.unwrap_or(0),
        ipv6_gateway: a.ipv6_gateway.map(|g| g.to_string()).unwrap_or_default(),
        global_ipv6_address: a.ipv6.map(|g| g.to_string()).unwrap_or_default(),
        global_ipv6_prefix_len: a.ipv6_prefix_len.unwrap_or(0),
        mac_address: a.mac.clone().unwrap_or_default(),
    };
    let mut networks = BTreeMap::new();
    if let (Some(a), Some(n)) = (att, network_name.as_ref()) {
        networks.insert(n.clone(), endpoint(a));
    }
    // the networks connected besides the first (`--network` again, `network connect`)
    for a in &r.extra_networks {
        if let Some(n) = &a.network {
            networks.insert(n.clone(), endpoint(a));
        }
    }
    // docker fills the top-level address fields for the default bridge only
    let default_bridge = network_name.as_deref() == Some(minirun_net::mode::DEFAULT_NETWORK);
    let top = att.filter(|_| default_bridge).map(endpoint);
    let resources = spec.as_ref().map(resources_of).unwrap_or_default();
    let time = |t: &Option<String>| t.clone().unwrap_or_else(|| "0001-01-01T00:00:00Z".into());
    Inspect {
        id: r.id.clone(),
        created: r.created.clone(),
        path: r.args.first().cloned().unwrap_or_default(),
        args: r.args.iter().skip(1).cloned().collect(),
        state: InspectState {
            status: word,
            running,
            paused: word == "paused",
            restarting: r.run_flags.restarting,
            oom_killed: false,
            dead: status == Status::Dead,
            pid: if running { r.pid.unwrap_or(0) } else { 0 },
            exit_code: match status {
                Status::Exited(c) => c,
                _ => 0,
            },
            error: String::new(),
            started_at: time(&r.started_at),
            finished_at: time(&r.finished_at),
            health: r.run_flags.health.clone(),
        },
        image: format!("sha256:{}", r.image_id),
        resolv_conf_path: dir.join("resolv.conf"),
        hostname_path: dir.join("hostname"),
        hosts_path: dir.join("hosts"),
        log_path: dir.join("container.log"),
        name: format!("/{}", r.name),
        restart_count: r.run_flags.restart_count,
        driver: "overlay2",
        platform: "linux",
        host_config: InspectHost {
            binds: (!r.volumes.is_empty()).then(|| {
                r.volumes
                    .iter()
                    .map(|v| {
                        format!(
                            "{}:{}{}",
                            v.source.display(),
                            v.destination.display(),
                            if v.read_only { ":ro" } else { "" }
                        )
                    })
                    .collect()
            }),
            container_i_d_file: r
                .run_flags
                .cidfile
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            network_mode: r.net.clone(),
            port_bindings,
            restart_policy: r.run_flags.restart_policy.clone(),
            auto_remove: r.auto_remove,
            dns: r.dns.iter().map(ToString::to_string).collect(),
            dns_options: r.run_flags.dns_options.clone(),
            dns_search: r.run_flags.dns_search.clone(),
            extra_hosts: (!r.run_flags.extra_hosts.is_empty()).then(|| r.run_flags.extra_hosts.clone()),
            init: r.run_flags.init.then_some(true),
            publish_all_ports: false,
            readonly_rootfs: spec
                .as_ref()
                .and_then(|s| s.root().as_ref()?.readonly())
                .unwrap_or(false),
            resources,
        },
        graph_driver: GraphDriver {
            data: [
                ("MergedDir", dir.join("rootfs")),
                ("UpperDir", dir.join("upper")),
                ("WorkDir", dir.join("work")),
            ]
            .into_iter()
            .map(|(k, p)| (k, p.display().to_string()))
            .chain(image.as_ref().map(|i| {
                let lower: Vec<String> = i.layers.iter().rev().map(|l| l.display().to_string()).collect();
                ("LowerDir", lower.join(":"))
            }))
            .collect(),
            name: "overlay2",
        },
        mounts: r
            .volumes
            .iter()
            .map(|v| InspectMount {
                kind: "bind",
                source: v.source.clone(),
                destination: v.destination.clone(),
                mode: if v.read_only { "ro" } else { "" },
                rw: !v.read_only,
                propagation: "rprivate",
            })
            .collect(),
        config: InspectConfig {
            hostname: r.hostname.clone(),
            domainname: String::new(),
            user: summary.user,
            attach_stdin: !r.detached && r.interactive,
            attach_stdout: !r.detached,
            attach_stderr: !r.detached,
            exposed_ports: exposed,
            tty: r.tty,
            open_stdin: r.interactive,
            stdin_once: !r.detached && r.interactive,
            env: summary.env,
            cmd: summary.cmd,
            image: r.image.clone(),
            volumes: None,
            working_dir: summary.working_dir,
            entrypoint: (!summary.entrypoint.is_empty()).then_some(summary.entrypoint),
            on_build: None,
            labels: if r.run_flags.labels.is_empty() {
                image_cfg
                    .as_ref()
                    .and_then(|c| c.labels().clone())
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            } else {
                r.run_flags.labels.clone()
            },
            stop_signal: r.run_flags.stop_signal.clone(),
            stop_timeout: r.run_flags.stop_timeout,
            healthcheck: r.run_flags.healthcheck.clone(),
        },
        network_settings: NetworkSettings {
            bridge: String::new(),
            sandbox_id: if running { r.id.clone() } else { String::new() },
            ports: live_ports,
            sandbox_key: if running {
                att.and_then(|a| a.netns_path.as_ref())
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            },
            endpoint_id: top.as_ref().map(|e| e.endpoint_id.clone()).unwrap_or_default(),
            gateway: top.as_ref().map(|e| e.gateway.clone()).unwrap_or_default(),
            ip_address: top.as_ref().map(|e| e.ip_address.clone()).unwrap_or_default(),
            ip_prefix_len: top.as_ref().map(|e| e.ip_prefix_len).unwrap_or(0),
            ipv6_gateway: top.as_ref().map(|e| e.ipv6_gateway.clone()).unwrap_or_default(),
            global_ipv6_address: top.as_ref().map(|e| e.global_ipv6_address.clone()).unwrap_or_default(),
            global_ipv6_prefix_len: top.as_ref().map(|e| e.global_ipv6_prefix_len).unwrap_or(0),
            mac_address: top.as_ref().map(|e| e.mac_address.clone()).unwrap_or_default(),
            networks,
            minirun: r.network.clone(),
        },
    }
}

/// HostConfig's resource fields from the container's spec.
fn resources_of(spec: &Spec) -> Resources {
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().clone()) else {
        return Resources::default();
    };
    let mut out = Resources::default();
    if let Some(m) = res.memory() {
        out.memory = m.limit().unwrap_or(0);
        out.memory_swap = m.swap().unwrap_or(0);
        out.memory_reservation = m.reservation().unwrap_or(0);
    }
    if let Some(c) = res.cpu() {
        out.cpu_shares = c.shares().unwrap_or(0);
        out.cpu_period = c.period().unwrap_or(0);
        out.cpu_quota = c.quota().unwrap_or(0);
        out.cpuset_cpus = c.cpus().clone().unwrap_or_default();
        out.cpuset_mems = c.mems().clone().unwrap_or_default();
        if out.cpu_quota > 0 && out.cpu_period > 0 {
            out.nano_cpus = out.cpu_quota * 1_000_000_000 / out.cpu_period as i64;
        }
    }
    out.pids_limit = res.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0);
    out.blkio_weight = res.block_io().as_ref().and_then(|b| b.weight()).unwrap_or(0);
    out
}

/// The container `wanted` names, or docker's error.
pub fn container(ctx: &Ctx, wanted: &str) -> Result<Record> {
    match ctx.resolve(wanted) {
        Ok(r) => Ok(r),
        Err(e) if e.to_string().contains("ambiguous") => Err(e),
        Err(_) => bail!("No such container: {wanted}"),
    }
}
