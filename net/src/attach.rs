//! One container's network, end to end: [`attach`] does everything for a mode and undoes
//! it all on failure; [`detach`] is its mirror image (idempotent); [`release`] is detach
//! for a container that is gone, minding namespaces shared with `--net container:`;
//! [`gc`] cleans what crashed runs left behind.
//!
//! Besides returning the [`Attachment`] (which the runtime saves in its own state), attach
//! keeps a record of it at [`record_path`] (`<runtime_root>/.net/attachments/<id>.json`),
//! written *before* any kernel object is created (with the veth name, address and port
//! mappings it is about to use) and rewritten when done; detach removes it. That record is
//! what lets [`gc`] find leftovers of a run that died half-way, and what tells who joined
//! whose namespace ([`crate::live`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{chain, Error, Result};
use crate::firewall::{Firewall, Transaction};
use crate::link::{self, VethConfig};
use crate::live::{in_use_among, joined_by_live, Liveness};
use crate::lock::{read_dir_or_empty, read_json, remove_file_if_exists, write_json};
use crate::mode::NetMode;
use crate::netns;
use crate::network::{self, NetworkConfig};
use crate::paths::{
    attachments_dir, joiner_marker, joiner_marker_key, netns_dir, netns_path, parse_joiner_marker, record_owner,
};
use crate::ports::{resolve_ports, HostPorts, PortMapping, PortSpec};
use crate::sysctl::BridgeNfCall;
use crate::{etc, ipam};

pub use crate::paths::{extra_record_path, record_path};

/// What a container got. Saved by the runtime as JSON; [`detach`] needs nothing else.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub container_id: String,
    pub mode: NetMode,
    /// Network namespace to put in the OCI spec (`linux.namespaces[network].path`).
    /// `None` for host mode (no network namespace entry at all).
    pub netns_path: Option<PathBuf>,
    /// Whether minirun created `netns_path` for this container (false for `container:`).
    pub netns_owned: bool,
    pub network: Option<String>,
    pub bridge: Option<String>,
    pub veth_host: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
    /// Dual-stack networks: the container's IPv6 address, its prefix length and the
    /// gateway (the bridge's IPv6 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix_len: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// `02:42:..` style, derived from the address.
    pub mac: Option<String>,
    pub ports: Vec<PortMapping>,
    pub hostname: Option<String>,
    /// Names other containers on a user-defined network resolve to `ip` (besides the id).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// A network connected besides the first (`run --network A --network B`, `network
    /// connect`): the interface's name in the container (`eth1`...). Such an attachment
    /// joins the namespace of the container's first one (`netns_owned` false) and has
    /// its own record ([`Attachment::record_file`]). `None`: the first network (`eth0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifname: Option<String>,
    /// Containers that join this one's namespace leave a [`crate::paths::joiner_marker`]
    /// (true for every record made since they do; older ones are judged by reading
    /// every record, as before).
    #[serde(default)]
    pub joiners_marked: bool,
    pub runtime_root: PathBuf,
    pub data_root: PathBuf,
}

impl Attachment {
    /// What `req` gets before anything is made: no namespace, link or address yet.
    pub fn new(req: &AttachRequest) -> Attachment {
        Attachment {
            container_id: req.container_id.clone(),
            mode: req.mode.clone(),
            netns_path: None,
            netns_owned: false,
            network: None,
            bridge: None,
            veth_host: None,
            ip: None,
            prefix_len: None,
            gateway: None,
            ipv6: None,
            ipv6_prefix_len: None,
            ipv6_gateway: None,
            mac: None,
            ports: Vec::new(),
            hostname: req.hostname.clone(),
            aliases: req.aliases.iter().map(|a| a.to_ascii_lowercase()).collect(),
            ifname: None,
            joiners_marked: true,
            runtime_root: req.runtime_root.clone(),
            data_root: req.data_root.clone(),
        }
    }

    /// Whether a container may have joined this one's namespace: its marker is there,
    /// or this record is older than the markers. False for a namespace it does not own.
    fn may_be_joined(&self) -> bool {
        let (Some(ns), true) = (&self.netns_path, self.netns_owned) else {
            return false;
        };
        if !self.joiners_marked {
            return true;
        }
        let Some(key) = joiner_marker_key(ns) else {
            return true;
        };
        read_dir_or_empty(&attachments_dir(&self.runtime_root)).map_or(true, |ents| {
            ents.iter()
                .any(|e| parse_joiner_marker(&e.file_name().to_string_lossy()).is_some_and(|(k, _)| k == key))
        })
    }

    /// Where this attachment's record is: [`record_path`] for the first network,
    /// [`extra_record_path`] for one connected besides it.
    pub fn record_file(&self) -> PathBuf {
        match (&self.ifname, &self.network) {
            (Some(_), Some(n)) => extra_record_path(&self.runtime_root, &self.container_id, n),
            _ => record_path(&self.runtime_root, &self.container_id),
        }
    }

    /// The interface's name inside the container.
    pub fn interface(&self) -> &str {
        self.ifname.as_deref().unwrap_or(crate::link::CONTAINER_IFNAME)
    }

    /// The firewall elements of this container's published ports: (mapping as the
    /// firewall lists it, target address), both families.
    pub fn published_elements(&self) -> Vec<(PortMapping, IpAddr)> {
        self.ports.iter().flat_map(|m| m.elements(self.ip, self.ipv6)).collect()
    }

    /// The namespace a `container:<this>` request should join (`None`: host networking).
    pub fn joinable_netns(&self) -> Option<&Path> {
        self.netns_path.as_deref()
    }

    /// `/etc/hosts` for this container (`name` is the container's name, if any).
    pub fn hosts_file(&self, hostname: &str, name: Option<&str>) -> String {
        // Docker's form: the own IPv6 address under the same names, after the IPv4 one.
        let own6: Vec<(String, IpAddr)> = match (self.ipv6, self.ip) {
            (Some(a), Some(_)) => {
                let mut names = hostname.to_string();
                if let Some(n) = name.filter(|n| !n.is_empty() && *n != hostname) {
                    names = format!("{names} {n}");
                }
                vec![(names, IpAddr::V6(a))]
            }
            _ => Vec::new(),
        };
        etc::hosts(self.ip, hostname, name, &own6)
    }

    /// Whether this container's names are served by the embedded DNS responder
    /// ([`crate::dns`]): it has a namespace of its own on a user-defined network. (Like
    /// docker, the default network has no name resolution between containers.)
    pub fn embedded_dns(&self) -> bool {
        self.netns_owned && matches!(&self.network, Some(n) if n != crate::mode::DEFAULT_NETWORK)
    }

    /// `/etc/resolv.conf` for this container: the host's as-is in host mode; on a
    /// user-defined network the embedded responder; otherwise the host's with loopback
    /// resolvers replaced (see [`crate::etc`]), or `servers` (`--dns`) when given.
    pub fn resolv_conf(&self, servers: &[std::net::IpAddr]) -> String {
        let host = || std::fs::read_to_string(etc::HOST_RESOLV_CONF).unwrap_or_default();
        match self.mode {
            NetMode::Host if servers.is_empty() => host(),
            _ if self.embedded_dns() => etc::resolv_conf_embedded(&host()),
            _ if !servers.is_empty() => etc::resolv_conf_with_servers(&host(), servers),
            _ => etc::resolv_conf_from_host(),
        }
    }
}

/// Input of [`attach`].
#[derive(Clone, Debug)]
pub struct AttachRequest {
    pub container_id: String,
    pub mode: NetMode,
    /// For [`NetMode::Container`]: the other container's netns path, resolved by the
    /// runtime (its saved `Attachment::netns_path`). Ignored for other modes.
    pub join_netns: Option<PathBuf>,
    /// `--root` (netns files and attachment records live under it).
    pub runtime_root: PathBuf,
    /// `--data-root` (network definitions and leases live under it).
    pub data_root: PathBuf,
    /// Parsed `-p` values ([`crate::parse_publish_all`]); bridge mode only.
    pub ports: Vec<PortSpec>,
    pub hostname: Option<String>,
    /// Names the container answers to on a user-defined network (its name, its short id).
    pub aliases: Vec<String>,
    /// `--ip`: this address of a user-defined network's subnet, not one IPAM picks.
    pub ip: Option<Ipv4Addr>,
    /// `--mac-address`: instead of the one derived from the address.
    pub mac: Option<[u8; 6]>,
}

/// runc's rule for container ids, the one rule of minirun (its runtime checks
/// ids with this too): 1-1024 characters of `[A-Za-z0-9_+.-]`, not starting
/// with `.` - so an id is usable as a file and cgroup name and never collides
/// with the hidden entries of the runtime root.
pub fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b))
}

/// The record attach keeps for a container, if any.
pub fn load_attachment(runtime_root: &Path, container_id: &str) -> Result<Option<Attachment>> {
    read_json(&record_path(runtime_root, container_id), "attachment record")
}

/// Every attachment record under `runtime_root`.
pub fn list_attachments(runtime_root: &Path) -> Result<Vec<Attachment>> {
    let mut out = Vec::new();
    for ent in read_dir_or_empty(&attachments_dir(runtime_root))? {
        if record_owner(&ent.file_name().to_string_lossy()).is_none() {
            continue;
        }
        if let Ok(Some(a)) = read_json::<Attachment>(&ent.path(), "attachment record") {
            out.push(a);
        }
    }
    Ok(out)
}

/// Links the container's side of `att` (veth to the bridge, address, routes) through
/// `connect`, given the host-side veth name; on a name clash with a concurrent run, a new
/// random name (recorded first, so an undo finds it) and again, at most three times.
fn connect_veth(att: &mut Attachment, record: &Path, connect: impl Fn(&str) -> Result<()>) -> Result<()> {
    for attempt in 0.. {
        let veth = att.veth_host.clone().unwrap();
        match connect(&veth) {
            Ok(()) => break,
            Err(e @ Error::Netlink { .. }) if attempt < 3 && e.errno() == Some(libc::EEXIST) => {
                att.veth_host = Some(link::veth_name(&att.container_id));
                write_json(record, att, "attachment record")?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The firewall elements of `net` (if missing), both families where it has IPv6: one
/// transaction.
fn network_tx(fw: &Firewall, net: &NetworkConfig) -> Result<Transaction> {
    let mut tx = fw.network_tx(&net.bridge, net.subnet, net.icc)?;
    if let Some(s6) = net.subnet6 {
        tx.extend(fw.network_tx6(&net.bridge, s6, net.icc)?);
    }
    Ok(tx)
}

fn ctr_err(id: &str, reason: impl Into<String>) -> Error {
    Error::Container {
        container_id: id.into(),
        reason: reason.into(),
    }
}

/// Gives the container its network for `req.mode` and returns what it got. On any failure
/// everything this call did is undone (no veth, lease, netns file, element or record is
/// left) and the first error is returned.
///
/// `live` tells which other containers still exist (see [`Liveness`]); `req.container_id`
/// counts as alive whatever it says. A lease in the way (the subnet is full, or the
/// address asked for is leased) whose container's network is no longer in use
/// ([`crate::in_use_among`]) is reclaimed.
pub fn attach(req: &AttachRequest, live: &dyn Liveness) -> Result<Attachment> {
    let id = req.container_id.as_str();
    if !valid_container_id(id) {
        return Err(Error::InvalidContainerId(id.into()));
    }
    if !req.ports.is_empty() && !matches!(req.mode, NetMode::Bridge(_)) {
        return Err(ctr_err(
            id,
            format!("published ports need bridge networking, not --network {}", req.mode),
        ));
    }
    if req.mode != NetMode::Host && record_path(&req.runtime_root, id).exists() {
        return Err(ctr_err(
            id,
            format!(
                "already has a network attachment ({}); detach it (or gc) first",
                record_path(&req.runtime_root, id).display()
            ),
        ));
    }
    let mut att = Attachment::new(req);
    match &req.mode {
        NetMode::Host => Ok(att),
        NetMode::Container(other) => {
            let p = req.join_netns.as_ref().ok_or_else(|| {
                ctr_err(
                    id,
                    format!("container:{other}: no network namespace path given to join"),
                )
            })?;
            if !netns::is_netns(p) {
                return Err(ctr_err(
                    id,
                    format!("container:{other}: {} is not a network namespace", p.display()),
                ));
            }
            att.netns_path = Some(p.clone());
            att.netns_owned = false;
            // the marker first: a crash between leaves a marker without a record,
            // which only costs the owner's teardown a read of the records
            if let Some(m) = joiner_marker(&req.runtime_root, p, id) {
                write_json(&m, &id, "joiner marker")?;
            }
            if let Err(e) = write_json(&record_path(&req.runtime_root, id), &att, "attachment record") {
                let _ = detach(&att);
                return Err(e);
            }
            Ok(att)
        }
        NetMode::None => {
            let p = netns_path(&req.runtime_root, id);
            att.netns_path = Some(p.clone());
            att.netns_owned = true;
            write_json(&record_path(&req.runtime_root, id), &att, "attachment record")?;
            if let Err(e) = netns::create_netns(&p) {
                let _ = detach(&att);
                return Err(e);
            }
            Ok(att)
        }
        NetMode::Bridge(name) => attach_bridge(req, name, live),
    }
}

fn attach_bridge(req: &AttachRequest, network_name: &str, live: &dyn Liveness) -> Result<Attachment> {
    let id = req.container_id.as_str();
    let t = std::time::Instant::now();
    let step = |what: &str| tracing::trace!(container = id, elapsed = ?t.elapsed(), "attach: {what}");
    let net: NetworkConfig = network::get_network(&req.data_root, network_name)?;
    let fw = Firewall::open()?;
    fw.ensure_skeleton()?;
    if net.subnet6.is_some() {
        fw.ensure_skeleton6()?;
    }
    check_icc(&net)?;
    step("firewall table checked");
    let mut mappings = if req.ports.is_empty() {
        Vec::new()
    } else {
        resolve_ports(&req.ports, &fw.list_published()?)?
    };

    // IPAM asks only about a lease in its way; the records are read then, if ever.
    let others = crate::live::InUse::new(&req.runtime_root, live);
    let in_use = |cid: &str| cid == id || others.check(cid);
    step("ports resolved");
    let (ip, ip6) = ipam::allocate_dual(&req.data_root, &net, id, req.ip, &in_use)?;
    step("address leased");
    let v6 = net.ipv6().zip(ip6).map(|((s6, gw6), a)| (a, s6.prefix_len(), gw6));
    let mac = req.mac.unwrap_or_else(|| link::mac_for_ip(ip));
    let mut att = Attachment::new(req);
    att.network = Some(net.name.clone());
    att.bridge = Some(net.bridge.clone());
    att.ip = Some(ip);
    att.prefix_len = Some(net.prefix_len());
    att.gateway = Some(net.gateway);
    if let Some((a, len, gw)) = v6 {
        att.ipv6 = Some(a);
        att.ipv6_prefix_len = Some(len);
        att.ipv6_gateway = Some(gw);
    }
    att.mac = Some(link::format_mac(&mac));
    att.netns_path = Some(netns_path(&req.runtime_root, id));
    att.netns_owned = true;
    att.veth_host = Some(link::veth_name(id));
    att.ports = mappings.clone();
    let record = record_path(&req.runtime_root, id);

    let res = (|| -> Result<()> {
        write_json(&record, &att, "attachment record")?;
        let ns = att.netns_path.clone().unwrap();
        step("record written");
        netns::create_netns(&ns)?;
        step("namespace made");
        connect_veth(&mut att, &record, |veth| {
            link::connect_container(&VethConfig {
                host_ifname: veth,
                ifname: crate::link::CONTAINER_IFNAME,
                default_route: true,
                bridge: &net.bridge,
                netns: &ns,
                ip,
                prefix_len: net.prefix_len(),
                gateway: net.gateway,
                mac,
                ip6: v6,
                mtu: net.mtu,
            })
            .map(|_| ())
        })?;
        step("veth linked");
        // One transaction: the network's elements (if missing) plus every published port.
        let network_tx = || network_tx(&fw, &net);
        if mappings.iter().any(|m| !m.has_v4_side()) && ip6.is_none() {
            return Err(ctr_err(
                id,
                format!(
                    "an IPv6 host address is published but network {:?} has no IPv6 (network create --ipv6)",
                    net.name
                ),
            ));
        }
        for attempt in 0.. {
            let mut tx: Transaction = network_tx()?;
            let new_bridge = Firewall::adds_bridge(&tx, &net.bridge);
            for (m, to) in mappings.iter().flat_map(|m| m.elements(Some(ip), ip6)) {
                tx.add_published_to(&m, to);
                if let (IpAddr::V6(_), Some((_, _, gw6))) = (to, v6) {
                    tx.add_loopback6(&m, gw6);
                }
            }
            match fw.commit(&tx) {
                Ok(()) => {
                    if new_bridge {
                        // See Firewall::add_network_icc: close the race of two new networks.
                        fw.commit(&network_tx()?)?;
                    }
                    break;
                }
                Err(e @ Error::Nftables { .. }) if e.errno() == Some(libc::EEXIST) => {
                    let flexible = req
                        .ports
                        .iter()
                        .any(|p| !matches!(p.host_ports, HostPorts::Range { start, end } if start == end));
                    if attempt >= 3 || !flexible {
                        return Err(Error::PortUnavailable {
                            spec: req.ports.iter().map(|p| p.spec.clone()).collect::<Vec<_>>().join(", "),
                            reason: "host port was published by another container meanwhile".into(),
                        });
                    }
                    // Another run took a picked port meanwhile: pick again.
                    mappings = resolve_ports(&req.ports, &fw.list_published()?)?;
                    att.ports = mappings.clone();
                    write_json(&record, &att, "attachment record")?;
                }
                Err(e) => return Err(e),
            }
        }
        step("firewall committed");
        write_json(&record, &att, "attachment record")
    })();
    match res {
        Ok(()) => Ok(att),
        Err(e) => {
            if let Err(undo) = detach_sync(&att) {
                tracing::warn!(container = id, "undoing a failed attach: {}", chain(&undo));
            }
            Err(e)
        }
    }
}

/// `--icc=false` needs bridged traffic to pass the ip (and ip6) forward hook.
fn check_icc(net: &NetworkConfig) -> Result<()> {
    if !net.icc {
        // create_network checked it; the host may have changed since.
        let state = crate::firewall::check_bridge_nf_call_iptables();
        let state6 = crate::sysctl::bridge_nf_call_ip6tables();
        let err = if state != BridgeNfCall::Enabled {
            Some(Error::IccUnavailable { state })
        } else if net.subnet6.is_some() && state6 != BridgeNfCall::Enabled {
            Some(Error::Icc6Unavailable { state: state6 })
        } else {
            None
        };
        if let Some(e) = err {
            return Err(Error::Network {
                network: net.name.clone(),
                reason: e.to_string(),
            });
        }
    }
    Ok(())
}

/// Input of [`connect`].
#[derive(Clone, Debug)]
pub struct ConnectRequest {
    pub container_id: String,
    /// The network to connect (a user-defined one, or the default `bridge`).
    pub network: String,
    /// The container's namespace (its first attachment's, which it owns).
    pub netns: PathBuf,
    /// Interface names already used in the container (`eth0`, ...): the new one is the
    /// first `ethN` not among them ([`next_ifname`]).
    pub used_ifnames: Vec<String>,
    pub runtime_root: PathBuf,
    pub data_root: PathBuf,
    pub hostname: Option<String>,
    /// Names peers on this network resolve to the container.
    pub aliases: Vec<String>,
    /// `--ip`: this address of the network's subnet, not one IPAM picks.
    pub ip: Option<Ipv4Addr>,
}

/// The first `ethN` not in `used`.
pub fn next_ifname(used: &[String]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !used.iter().any(|u| u == n))
        .expect("some ethN is free")
}

/// The records of the networks connected to `container_id` besides its first, sorted by
/// interface name.
pub fn extra_attachments(runtime_root: &Path, container_id: &str) -> Result<Vec<Attachment>> {
    // only this container's records are read, found by name (`<id>@<network>.json`)
    let mut v = Vec::new();
    for ent in read_dir_or_empty(&attachments_dir(runtime_root))? {
        if !matches!(record_owner(&ent.file_name().to_string_lossy()), Some((id, Some(_))) if id == container_id) {
            continue;
        }
        if let Ok(Some(a)) = read_json::<Attachment>(&ent.path(), "attachment record") {
            if a.container_id == container_id && a.ifname.is_some() {
                v.push(a);
            }
        }
    }
    v.sort_by(|a, b| a.ifname.cmp(&b.ifname));
    Ok(v)
}

/// Connects a container that has its own namespace to one more network: a veth into the
/// network's bridge (`ethN` inside, no default route: that stays with the first
/// network), an address (both families on a dual-stack network) from the network's
/// IPAM, the network's firewall elements in one transaction, and a record of its own.
/// Refuses a network the container is already on. On failure nothing of it is left.
pub fn connect(req: &ConnectRequest, live: &dyn Liveness) -> Result<Attachment> {
    let id = req.container_id.as_str();
    if !valid_container_id(id) {
        return Err(Error::InvalidContainerId(id.into()));
    }
    let net: NetworkConfig = network::get_network(&req.data_root, &req.network)?;
    let on_it = |a: &Attachment| a.network.as_deref() == Some(net.name.as_str());
    let records = list_attachments(&req.runtime_root)?;
    if records.iter().any(|a| a.container_id == id && on_it(a)) {
        return Err(Error::Network {
            network: net.name.clone(),
            reason: format!("container {id} is already connected to it (endpoint exists)"),
        });
    }
    if !netns::is_netns(&req.netns) {
        return Err(ctr_err(
            id,
            format!("{} is not a network namespace", req.netns.display()),
        ));
    }
    let fw = Firewall::open()?;
    fw.ensure_skeleton()?;
    if net.subnet6.is_some() {
        fw.ensure_skeleton6()?;
    }
    check_icc(&net)?;
    // Leases are per network: the container's own lease elsewhere does not count here.
    let in_use = |cid: &str| cid == id || in_use_among(cid, &records, live);
    let (ip, ip6) = ipam::allocate_dual(&req.data_root, &net, id, req.ip, &in_use)?;
    let v6 = net.ipv6().zip(ip6).map(|((s6, gw6), a)| (a, s6.prefix_len(), gw6));
    let mac = link::mac_for_ip(ip);
    let ifname = next_ifname(&req.used_ifnames);
    let mut att = Attachment {
        container_id: id.into(),
        mode: NetMode::Bridge(net.name.clone()),
        netns_path: Some(req.netns.clone()),
        netns_owned: false,
        network: Some(net.name.clone()),
        bridge: Some(net.bridge.clone()),
        veth_host: Some(link::veth_name(id)),
        ip: Some(ip),
        prefix_len: Some(net.prefix_len()),
        gateway: Some(net.gateway),
        ipv6: v6.map(|v| v.0),
        ipv6_prefix_len: v6.map(|v| v.1),
        ipv6_gateway: v6.map(|v| v.2),
        mac: Some(link::format_mac(&mac)),
        ports: Vec::new(),
        hostname: req.hostname.clone(),
        aliases: req.aliases.iter().map(|a| a.to_ascii_lowercase()).collect(),
        ifname: Some(ifname.clone()),
        joiners_marked: true,
        runtime_root: req.runtime_root.clone(),
        data_root: req.data_root.clone(),
    };
    let record = att.record_file();
    let res = (|| -> Result<()> {
        write_json(&record, &att, "attachment record")?;
        connect_veth(&mut att, &record, |veth| {
            link::connect_container(&VethConfig {
                host_ifname: veth,
                ifname: &ifname,
                default_route: false,
                bridge: &net.bridge,
                netns: &req.netns,
                ip,
                prefix_len: net.prefix_len(),
                gateway: net.gateway,
                mac,
                ip6: v6,
                mtu: net.mtu,
            })
            .map(|_| ())
        })?;
        // The network's elements (if missing): one transaction, then the race of two new
        // networks closed as attach does.
        let tx = network_tx(&fw, &net)?;
        let new_bridge = Firewall::adds_bridge(&tx, &net.bridge);
        fw.commit(&tx)?;
        if new_bridge {
            fw.commit(&network_tx(&fw, &net)?)?;
        }
        Ok(())
    })();
    match res {
        Ok(()) => Ok(att),
        Err(e) => {
            if let Err(undo) = detach_sync(&att) {
                tracing::warn!(container = id, "undoing a failed connect: {}", chain(&undo));
            }
            Err(e)
        }
    }
}

/// Undoes [`connect`] (or takes a container's first network away, keeping its
/// namespace): the veth is deleted before returning, the lease and any published port
/// of it released. For the first network the record stays, without the network (mode
/// `none`), so the namespace it owns is still released with the container.
pub fn disconnect(att: &Attachment) -> Result<Attachment> {
    if att.ifname.is_some() || !att.netns_owned {
        detach_sync(att)?;
        return Ok(att.clone());
    }
    let kept = Attachment {
        mode: NetMode::None,
        network: None,
        bridge: None,
        veth_host: None,
        ip: None,
        prefix_len: None,
        gateway: None,
        ipv6: None,
        ipv6_prefix_len: None,
        ipv6_gateway: None,
        mac: None,
        ports: Vec::new(),
        ..att.clone()
    };
    // Unpublish, delete the veth, release the lease; then the record without them.
    let mut first = None;
    if let (Some(ip), false) = (att.ip, att.ports.is_empty()) {
        if let Err(e) = Firewall::open().and_then(|fw| fw.unpublish_dual(&att.ports, Some(ip), att.ipv6)) {
            first.get_or_insert(e);
        }
    }
    if let Some(v) = &att.veth_host {
        if let Err(e) = link::delete_link(v) {
            first.get_or_insert(e);
        }
    }
    if let Some(n) = &att.network {
        if let Err(e) = ipam::release(&att.data_root, n, &att.container_id) {
            first.get_or_insert(e);
        }
    }
    write_json(&kept.record_file(), &kept, "attachment record")?;
    match first {
        Some(e) => Err(e),
        None => Ok(kept),
    }
}

/// Undoes [`attach`]: unpublishes the ports (only elements still pointing at this
/// container), removes the netns file it owns, releases the lease and the record. Pieces
/// already gone are fine; every step is tried, the first error is returned.
///
/// The veth pair is not deleted explicitly when its namespace was unmounted here: the
/// kernel destroys it with the namespace (asynchronously) once no process holds the
/// namespace, which saves the ~25 ms RCU wait of a synchronous link delete. If something
/// still holds the namespace the pair lingers until then; [`gc`] deletes such veths.
/// Use [`detach_sync`] to delete the veth before returning.
pub fn detach(att: &Attachment) -> Result<()> {
    detach_with(att, false)
}

/// [`detach`], but the host veth is deleted (and waited for) before returning.
pub fn detach_sync(att: &Attachment) -> Result<()> {
    detach_with(att, true)
}

fn detach_with(att: &Attachment, sync_veth: bool) -> Result<()> {
    let mut first: Option<Error> = None;
    let mut keep = |r: Result<()>| {
        if let Err(e) = r {
            tracing::warn!(container = att.container_id.as_str(), "detach: {}", chain(&e));
            if first.is_none() {
                first = Some(e);
            }
        }
    };
    if let (Some(ip), false) = (att.ip, att.ports.is_empty()) {
        keep(Firewall::open().and_then(|fw| match att.ipv6 {
            None => fw.unpublish(&att.ports, ip),
            Some(ip6) => fw.unpublish_dual(&att.ports, Some(ip), Some(ip6)),
        }));
    }
    if sync_veth {
        if let Some(v) = &att.veth_host {
            keep(link::delete_link(v).map(|_| ()));
        }
    }
    let mut veth_goes_with_netns = false;
    if let (Some(p), true) = (&att.netns_path, att.netns_owned) {
        match netns::remove_netns_counted(p) {
            Ok(unmounted) => veth_goes_with_netns = unmounted,
            Err(e) => keep(Err(e)),
        }
    }
    if !sync_veth && !veth_goes_with_netns {
        if let Some(v) = &att.veth_host {
            keep(link::delete_link(v).map(|_| ()));
        }
    }
    if let Some(n) = &att.network {
        keep(ipam::release(&att.data_root, n, &att.container_id).map(|_| ()));
    }
    if att.mode != NetMode::Host {
        keep(remove_file_if_exists(&att.record_file(), "attachment record").map(|_| ()));
    }
    if let (NetMode::Container(_), Some(p)) = (&att.mode, &att.netns_path) {
        if let Some(m) = joiner_marker(&att.runtime_root, p, &att.container_id) {
            keep(remove_file_if_exists(&m, "joiner marker").map(|_| ()));
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Tears down the network of a container that is gone (or going: call it from its
/// teardown), minding namespaces shared with `--net container:`:
///
/// * if live containers joined `att`'s namespace, everything stays (namespace file,
///   address, veth, published ports, record) for them, and `Ok` is returned; the teardown
///   of the last of them finishes it;
/// * otherwise `att` is [`detach`]ed; and when `att` joined another container's namespace,
///   that owner is detached too if it is no longer alive and no other live container
///   joined it (`att` was its last user);
/// * the networks connected to the container besides its first ([`connect`]) go with
///   its first.
///
/// Records are read from `att.runtime_root`. `live` must not call into minirun-net.
pub fn release(att: &Attachment, live: &dyn Liveness) -> Result<()> {
    // the records are read only if a container joined this namespace (every teardown
    // asks: reading them all made the 500th container's teardown pay for 499 records)
    if att.may_be_joined() && joined_by_live(att, &list_attachments(&att.runtime_root)?, live) {
        tracing::debug!(
            container = att.container_id.as_str(),
            "network stays for the containers that joined its namespace"
        );
        return Ok(());
    }
    detach(att)?;
    if att.ifname.is_none() && att.netns_owned {
        // The networks connected besides the first go with it.
        for extra in extra_attachments(&att.runtime_root, &att.container_id)? {
            detach(&extra)?;
        }
    }
    if let NetMode::Container(_) = &att.mode {
        // Read again: att's own record is gone now, so it no longer counts as a joiner
        // even while `live` still says it lives (its teardown runs).
        let records = list_attachments(&att.runtime_root)?;
        for owner in &records {
            if owner.netns_owned
                && owner.netns_path == att.netns_path
                && !live.is_alive(&owner.container_id)
                && !joined_by_live(owner, &records, live)
            {
                detach(owner)?;
            }
        }
    }
    Ok(())
}

/// What [`gc`] removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    /// Containers whose recorded attachment was detached.
    pub detached: Vec<String>,
    pub netns_removed: Vec<PathBuf>,
    /// (network, address, container id)
    pub leases_released: Vec<(String, Ipv4Addr, String)>,
    pub veths_deleted: Vec<String>,
    pub published_removed: Vec<(PortMapping, IpAddr)>,
    /// Non-fatal problems (gc goes on after each).
    pub errors: Vec<String>,
}

impl GcReport {
    pub fn is_empty(&self) -> bool {
        self.detached.is_empty()
            && self.netns_removed.is_empty()
            && self.leases_released.is_empty()
            && self.veths_deleted.is_empty()
            && self.published_removed.is_empty()
    }
}

/// Removes what containers whose network is no longer in use ([`crate::in_use`]) left
/// behind: their recorded attachments (detached), netns files under
/// [`crate::paths::netns_dir`], leases, published elements whose target is no live
/// record's (address, mapping), and `mr*` veths on minirun bridges that no live record
/// names. Works in the caller's (host) namespace. The records are read once, before any
/// lock is taken; under the lease lock only `live` is asked.
pub fn gc(runtime_root: &Path, data_root: &Path, live: &dyn Liveness) -> Result<GcReport> {
    let mut rep = GcReport::default();
    let records = list_attachments(runtime_root)?;
    let in_use = |cid: &str| in_use_among(cid, &records, live);
    let mut kept: Vec<&Attachment> = Vec::new();
    for a in &records {
        if in_use(&a.container_id) {
            kept.push(a);
            continue;
        }
        // The record may name other roots if it was moved; use the ones given here.
        let a = Attachment {
            runtime_root: runtime_root.into(),
            data_root: data_root.into(),
            ..a.clone()
        };
        match detach(&a) {
            Ok(()) => rep.detached.push(a.container_id.clone()),
            Err(e) => rep.errors.push(format!("container {}: {}", a.container_id, chain(&e))),
        }
    }
    // netns files of no container in use (and that no kept record uses).
    if let Ok(rd) = std::fs::read_dir(netns_dir(runtime_root)) {
        for ent in rd.flatten() {
            let id = ent.file_name().to_string_lossy().into_owned();
            let path = ent.path();
            if in_use(&id) || kept.iter().any(|a| a.netns_path.as_deref() == Some(path.as_path())) {
                continue;
            }
            match netns::remove_netns(&path) {
                Ok(()) => rep.netns_removed.push(path),
                Err(e) => rep.errors.push(chain(&e)),
            }
        }
    }
    // Joiner markers whose joiner has no record left and is gone (one attaching writes
    // its marker before its record, and counts as alive meanwhile).
    for ent in read_dir_or_empty(&attachments_dir(runtime_root))? {
        let n = ent.file_name().to_string_lossy().into_owned();
        let Some((_, joiner)) = parse_joiner_marker(&n) else {
            continue;
        };
        if !record_path(runtime_root, joiner).exists() && !live.is_alive(joiner) {
            if let Err(e) = remove_file_if_exists(&ent.path(), "joiner marker") {
                rep.errors.push(chain(&e));
            }
        }
    }
    // Leases.
    let networks = network::list_networks(data_root)?;
    for n in &networks {
        match ipam::reclaim(data_root, &n.name, &in_use) {
            Ok(v) => rep
                .leases_released
                .extend(v.into_iter().map(|(ip, id)| (n.name.clone(), ip, id))),
            Err(e) => rep.errors.push(chain(&e)),
        }
    }
    // Published elements.
    match Firewall::open() {
        Ok(fw) if fw.table_exists().unwrap_or(false) => match fw.list_published() {
            Ok(all) => {
                let mut tx = Transaction::new();
                let owned_by_kept: Vec<(PortMapping, IpAddr)> =
                    kept.iter().flat_map(|a| a.published_elements()).collect();
                for (m, ip) in all {
                    let owned = owned_by_kept.contains(&(m, ip));
                    if !owned {
                        tx.del_published(&m);
                        rep.published_removed.push((m, ip));
                    }
                }
                // `::1` sources of ports no kept container publishes (on [::] or [::1]).
                if fw.table_exists_in(crate::firewall::Family::V6).unwrap_or(false) {
                    for (proto, port, _) in fw.list_loopback6().unwrap_or_default() {
                        let kept_port = owned_by_kept.iter().any(|(m, _)| {
                            matches!(m.host_ip, Some(IpAddr::V6(a)) if a.is_unspecified() || a.is_loopback())
                                && m.proto == proto
                                && m.host_port == port
                        });
                        if !kept_port {
                            tx.del_loopback6(proto, port);
                        }
                    }
                }
                if let Err(e) = fw.commit(&tx) {
                    rep.errors.push(chain(&e));
                    rep.published_removed.clear();
                }
            }
            Err(e) => rep.errors.push(chain(&e)),
        },
        Ok(_) => {}
        Err(e) => rep.errors.push(chain(&e)),
    }
    // Veths on minirun bridges that no live record names.
    if !networks.is_empty() {
        match link::list_links() {
            Ok(links) => {
                let bridges: Vec<u32> = links
                    .iter()
                    .filter(|l| networks.iter().any(|n| n.bridge == l.name))
                    .map(|l| l.index)
                    .collect();
                for l in &links {
                    let ours = l.name.starts_with(link::VETH_PREFIX)
                        && l.kind.as_deref() == Some("veth")
                        && l.master.is_some_and(|m| bridges.contains(&m));
                    if ours && !kept.iter().any(|a| a.veth_host.as_deref() == Some(l.name.as_str())) {
                        match link::delete_link(&l.name) {
                            Ok(_) => rep.veths_deleted.push(l.name.clone()),
                            Err(e) => rep.errors.push(chain(&e)),
                        }
                    }
                }
            }
            Err(e) => rep.errors.push(chain(&e)),
        }
    }
    Ok(rep)
}

/// Removes a user network entirely: refuses while a container whose network is in use
/// ([`crate::in_use`], from the records under `runtime_root`) holds a lease in it; deletes
/// its firewall elements (one transaction), its bridge, its leases and its definition.
pub fn remove_network(runtime_root: &Path, data_root: &Path, name: &str, live: &dyn Liveness) -> Result<()> {
    if name == crate::mode::DEFAULT_NETWORK {
        return Err(Error::Network {
            network: name.into(),
            reason: "the default network cannot be removed".into(),
        });
    }
    let net = network::load_network(data_root, name)?.ok_or_else(|| Error::NetworkNotFound(name.into()))?;
    // Read before the lease lock: under it only `live` is asked.
    let records = list_attachments(runtime_root)?;
    {
        // Under the lease lock: no container can take an address between the check and
        // the removal of the definition (allocate re-checks the definition under it).
        let _l = ipam::lock(data_root, name)?;
        let users: Vec<String> = ipam::leases_locked(data_root, name)?
            .into_iter()
            .map(|(_, id)| id)
            .filter(|id| in_use_among(id, &records, live))
            .collect();
        if !users.is_empty() {
            return Err(Error::Network {
                network: name.into(),
                reason: format!("in use by container(s) {}", users.join(", ")),
            });
        }
        network::delete_network_definition(data_root, name)?;
    }
    let fw = Firewall::open()?;
    if fw.table_exists()? {
        fw.remove_network(&net.bridge, net.subnet)?;
    }
    if let Some(s6) = net.subnet6 {
        fw.remove_network6(&net.bridge, s6)?;
    }
    link::delete_bridge(&net.bridge)?;
    remove_file_if_exists(&ipam::leases_path(data_root, name), "lease file")?;
    Ok(())
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod connect_tests {
    use super::*;

    #[test]
    fn the_next_interface_is_the_first_free_eth() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(next_ifname(&v(&["eth0"])), "eth1");
        assert_eq!(next_ifname(&v(&["eth0", "eth1", "eth3"])), "eth2");
        assert_eq!(
            next_ifname(&v(&["eth1"])),
            "eth0",
            "after the first network was disconnected"
        );
        assert_eq!(next_ifname(&[]), "eth0");
    }

    #[test]
    fn extra_attachments_have_records_of_their_own() {
        let d = tempfile::tempdir().unwrap();
        let req = AttachRequest {
            container_id: "c1".into(),
            mode: NetMode::Bridge("front".into()),
            join_netns: None,
            runtime_root: d.path().into(),
            data_root: d.path().into(),
            ports: vec![],
            hostname: None,
            aliases: vec![],
            ip: None,
            mac: None,
        };
        let mut first = Attachment::new(&req);
        first.network = Some("front".into());
        first.netns_owned = true;
        first.netns_path = Some(d.path().join("ns"));
        let extra = Attachment {
            network: Some("back".into()),
            ifname: Some("eth1".into()),
            netns_owned: false,
            ..first.clone()
        };
        assert_eq!(first.record_file(), record_path(d.path(), "c1"));
        assert_eq!(extra.record_file(), d.path().join(".net/attachments/c1@back.json"));
        assert_eq!((first.interface(), extra.interface()), ("eth0", "eth1"));
        write_json(&first.record_file(), &first, "r").unwrap();
        write_json(&extra.record_file(), &extra, "r").unwrap();
        assert_eq!(load_attachment(d.path(), "c1").unwrap(), Some(first.clone()));
        assert_eq!(extra_attachments(d.path(), "c1").unwrap(), vec![extra.clone()]);
        // the owner's record decides whether a dead container's joiners keep it
        let records = list_attachments(d.path()).unwrap();
        assert!(!in_use_among("c1", &records, &|_: &str| false));
        // an old record (no ifname) still loads, as the first network
        let mut v = serde_json::to_value(&first).unwrap();
        v.as_object_mut().unwrap().remove("ifname");
        let old: Attachment = serde_json::from_value(v).unwrap();
        assert_eq!(old.ifname, None);
        // detach of the extra removes its record only
        detach(&extra).unwrap();
        assert!(!extra.record_file().exists() && first.record_file().exists());
    }
}
