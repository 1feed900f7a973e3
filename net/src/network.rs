//! Network definitions: `<data_root>/networks/<name>.json` = {name, bridge, subnet, gateway,
//! icc}. The default network `bridge` (bridge `minirun0`) is created on first use; its
//! subnet is the first of 10.89.0.0/24, 10.89.1.0/24, ... that overlaps no route of the
//! caller's (host) network namespace and no other minirun network. (172.17.0.0/16 is
//! docker's, 10.88.0.0/16 podman's: both avoided.) Creation is serialized by a file lock.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::{read_dir_or_empty, read_json, write_json, FileLock};
use crate::mode::DEFAULT_NETWORK;
use crate::subnet::Ipv4Net;

/// Bridge of the default network.
pub const DEFAULT_BRIDGE: &str = "minirun0";

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub name: String,
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    /// Inter-container communication on this bridge (`--icc=false` sets it false).
    #[serde(default = "yes")]
    pub icc: bool,
    /// MTU of the bridge and of every container's veth (`--opt mtu=N`); absent: the
    /// uplink's at each attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

impl NetworkConfig {
    pub fn prefix_len(&self) -> u8 {
        self.subnet.prefix_len()
    }
}

/// Options of `network create`.
#[derive(Clone, Debug, Default)]
pub struct NetworkOptions {
    pub subnet: Option<Ipv4Net>,
    pub gateway: Option<Ipv4Addr>,
    pub bridge: Option<String>,
    /// `Some(false)` = `--icc=false`.
    pub icc: Option<bool>,
    /// `--opt mtu=N`.
    pub mtu: Option<u32>,
}

/// The MTUs a network may be given: IPv4's minimum up to the largest a veth takes.
pub const MTU_RANGE: std::ops::RangeInclusive<u32> = 68..=65535;

pub fn networks_dir(data_root: &Path) -> PathBuf {
    data_root.join("networks")
}

pub fn config_path(data_root: &Path, name: &str) -> PathBuf {
    networks_dir(data_root).join(format!("{name}.json"))
}

fn lock_path(data_root: &Path) -> PathBuf {
    networks_dir(data_root).join(".networks.lock")
}

pub fn valid_network_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn check_name(name: &str) -> Result<()> {
    if valid_network_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidNetworkName(name.into()))
    }
}

/// The definition of network `name`, if it exists.
pub fn load_network(data_root: &Path, name: &str) -> Result<Option<NetworkConfig>> {
    check_name(name)?;
    read_json(&config_path(data_root, name), "network definition")
}

/// All network definitions, sorted by name.
pub fn list_networks(data_root: &Path) -> Result<Vec<NetworkConfig>> {
    let mut out = Vec::new();
    for ent in read_dir_or_empty(&networks_dir(data_root))? {
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        if stem.ends_with(".leases") || !valid_network_name(stem) {
            continue;
        }
        if let Some(n) = read_json::<NetworkConfig>(&ent.path(), "network definition")? {
            out.push(n);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Candidate subnets, in order.
pub fn subnet_pool() -> impl Iterator<Item = Ipv4Net> {
    (0..=255u8).map(|i| Ipv4Net::new(Ipv4Addr::new(10, 89, i, 0), 24).unwrap())
}

/// First pool subnet overlapping none of `taken`.
pub fn pick_subnet(taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    subnet_pool().find(|c| !taken.iter().any(|t| t.overlaps(c)))
}

fn host_route_prefixes() -> Result<Vec<Ipv4Net>> {
    Ok(crate::link::list_routes()?
        .into_iter()
        .filter(|r| r.prefix_len > 0)
        .filter_map(|r| Ipv4Net::new(r.dst, r.prefix_len))
        .collect())
}

/// Non-default routes of the caller's main table: what a requested subnet must not overlap
/// (the local table's loopback and per-address routes are no network).
fn host_main_routes() -> Result<Vec<Ipv4Net>> {
    Ok(crate::link::list_routes()?
        .into_iter()
        .filter(|r| r.prefix_len > 0 && r.table == libc::RT_TABLE_MAIN as u32)
        .filter_map(|r| Ipv4Net::new(r.dst, r.prefix_len))
        .collect())
}

/// The network `name`: the default network is created on first use, others must exist.
pub fn get_network(data_root: &Path, name: &str) -> Result<NetworkConfig> {
    if name == DEFAULT_NETWORK {
        return ensure_default_network(data_root);
    }
    load_network(data_root, name)?.ok_or_else(|| Error::NetworkNotFound(name.into()))
}

/// Loads or creates the default network `bridge` on `minirun0`.
pub fn ensure_default_network(data_root: &Path) -> Result<NetworkConfig> {
    if let Some(n) = load_network(data_root, DEFAULT_NETWORK)? {
        return Ok(n);
    }
    let _l = FileLock::exclusive(&lock_path(data_root))?;
    if let Some(n) = load_network(data_root, DEFAULT_NETWORK)? {
        return Ok(n);
    }
    create_locked(
        data_root,
        DEFAULT_NETWORK,
        &NetworkOptions {
            bridge: Some(DEFAULT_BRIDGE.into()),
            ..Default::default()
        },
    )
}

/// Creates a user-defined network definition (the bridge itself appears on first attach).
/// Bridge name defaults to the first free `minirun<N>` (N >= 1). `--icc=false`
/// (`opts.icc == Some(false)`) fails with [`Error::IccUnavailable`] unless bridged traffic
/// passes the ip forward hook here (net.bridge.bridge-nf-call-iptables=1).
pub fn create_network(data_root: &Path, name: &str, opts: &NetworkOptions) -> Result<NetworkConfig> {
    check_name(name)?;
    if opts.icc == Some(false) {
        let state = crate::firewall::check_bridge_nf_call_iptables();
        if state != crate::sysctl::BridgeNfCall::Enabled {
            return Err(Error::IccUnavailable { state });
        }
    }
    let _l = FileLock::exclusive(&lock_path(data_root))?;
    if load_network(data_root, name)?.is_some() {
        return Err(Error::Network {
            network: name.into(),
            reason: "already exists".into(),
        });
    }
    create_locked(data_root, name, opts)
}

fn create_locked(data_root: &Path, name: &str, opts: &NetworkOptions) -> Result<NetworkConfig> {
    let others = list_networks(data_root)?;
    let net_err = |reason: String| Error::Network {
        network: name.into(),
        reason,
    };
    let subnet = match opts.subnet {
        Some(s) => {
            if !(8..=30).contains(&s.prefix_len()) {
                return Err(Error::InvalidSubnet(s.to_string()));
            }
            if let Some(o) = others.iter().find(|o| o.subnet.overlaps(&s)) {
                return Err(net_err(format!(
                    "subnet {s} overlaps network {:?} ({})",
                    o.name, o.subnet
                )));
            }
            if let Some(r) = host_main_routes()?.into_iter().find(|r| r.overlaps(&s)) {
                return Err(net_err(format!("subnet {s} overlaps the host route to {r}")));
            }
            s
        }
        None => {
            let mut taken: Vec<Ipv4Net> = others.iter().map(|o| o.subnet).collect();
            taken.extend(host_route_prefixes()?);
            pick_subnet(&taken).ok_or_else(|| Error::NoFreeSubnet { network: name.into() })?
        }
    };
    let gateway = match opts.gateway {
        Some(g) => {
            if !subnet.contains(g) || g == subnet.network() || g == subnet.broadcast() {
                return Err(net_err(format!("gateway {g} is not a host address of subnet {subnet}")));
            }
            g
        }
        None => subnet.nth(1).unwrap(),
    };
    let bridge = match &opts.bridge {
        Some(b) => {
            if b.is_empty() || b.len() > 15 || b.contains('/') || b.contains(char::is_whitespace) {
                return Err(net_err(format!("invalid bridge name {b:?}")));
            }
            if let Some(o) = others.iter().find(|o| &o.bridge == b) {
                return Err(net_err(format!("bridge {b} is already used by network {:?}", o.name)));
            }
            b.clone()
        }
        None => (1..)
            .map(|i| format!("minirun{i}"))
            .find(|c| !others.iter().any(|o| &o.bridge == c))
            .unwrap(),
    };
    let cfg = NetworkConfig {
        name: name.into(),
        bridge,
        subnet,
        gateway,
        icc: opts.icc.unwrap_or(true),
        mtu: match opts.mtu {
            Some(m) if !MTU_RANGE.contains(&m) => {
                return Err(net_err(format!(
                    "mtu {m} is out of range ({}-{})",
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                )))
            }
            m => m,
        },
    };
    write_json(&config_path(data_root, name), &cfg, "network definition")?;
    Ok(cfg)
}

/// Deletes the definition file only (see [`crate::attach::remove_network`] for the whole
/// network). Returns the removed definition.
pub fn delete_network_definition(data_root: &Path, name: &str) -> Result<Option<NetworkConfig>> {
    let _l = FileLock::exclusive(&lock_path(data_root))?;
    let n = load_network(data_root, name)?;
    crate::lock::remove_file_if_exists(&config_path(data_root, name), "network definition")?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_skips_taken_and_routes() {
        assert_eq!(pick_subnet(&[]).unwrap().to_string(), "10.89.0.0/24");
        let taken: Vec<Ipv4Net> = ["10.89.0.0/24", "10.89.1.128/25"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(pick_subnet(&taken).unwrap().to_string(), "10.89.2.0/24");
        assert_eq!(pick_subnet(&["10.0.0.0/8".parse().unwrap()]), None);
        for s in subnet_pool() {
            assert!(!s.overlaps(&"172.17.0.0/16".parse().unwrap()));
            assert!(!s.overlaps(&"10.88.0.0/16".parse().unwrap()));
        }
    }

    #[test]
    fn create_load_list_with_explicit_subnets() {
        let d = tempfile::tempdir().unwrap();
        let a = create_network(
            d.path(),
            "a",
            &NetworkOptions {
                subnet: Some("192.168.50.0/24".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (a.bridge.as_str(), a.gateway),
            ("minirun1", Ipv4Addr::new(192, 168, 50, 1))
        );
        assert!(a.icc);
        let quiet = NetworkOptions {
            subnet: Some("192.168.51.0/24".parse().unwrap()),
            icc: Some(false),
            ..Default::default()
        };
        let b = match crate::firewall::check_bridge_nf_call_iptables() {
            crate::sysctl::BridgeNfCall::Enabled => create_network(d.path(), "b", &quiet).unwrap(),
            state => {
                // --icc=false cannot work here: refused, nothing written; test the rest.
                let e = create_network(d.path(), "b", &quiet).unwrap_err();
                assert!(matches!(e, Error::IccUnavailable { state: s } if s == state), "{e}");
                assert_eq!(load_network(d.path(), "b").unwrap(), None);
                create_network(
                    d.path(),
                    "b",
                    &NetworkOptions {
                        icc: Some(true),
                        ..quiet
                    },
                )
                .unwrap()
            }
        };
        assert_eq!(b.bridge, "minirun2");
        assert_eq!(
            b.icc,
            crate::firewall::check_bridge_nf_call_iptables() != crate::sysctl::BridgeNfCall::Enabled
        );
        let e = create_network(
            d.path(),
            "c",
            &NetworkOptions {
                subnet: Some("192.168.50.128/25".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("overlaps network \"a\""), "{e}");
        let e = create_network(d.path(), "a", &NetworkOptions::default()).unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert!(matches!(
            create_network(d.path(), "x/y", &NetworkOptions::default()),
            Err(Error::InvalidNetworkName(_))
        ));
        let e = create_network(
            d.path(),
            "g",
            &NetworkOptions {
                subnet: Some("192.168.60.0/24".parse().unwrap()),
                gateway: Some(Ipv4Addr::new(192, 168, 61, 1)),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
        assert_eq!(load_network(d.path(), "a").unwrap(), Some(a.clone()));
        assert_eq!(list_networks(d.path()).unwrap(), vec![a, b]);
        assert!(matches!(get_network(d.path(), "nope"), Err(Error::NetworkNotFound(_))));
        delete_network_definition(d.path(), "a").unwrap();
        assert_eq!(load_network(d.path(), "a").unwrap(), None);
    }

    #[test]
    fn default_network_avoids_host_routes() {
        if !crate::testutil::require_root() {
            return;
        }
        crate::testutil::PrivateNetns::run(|| {
            // A "host" route over 10.89.0.0/24 pushes the default network to 10.89.1.0/24.
            crate::link::ensure_bridge("hostbr", Ipv4Addr::new(10, 89, 0, 1), 24, Some(1500)).unwrap();
            let d = tempfile::tempdir().unwrap();
            let n = get_network(d.path(), "bridge").unwrap();
            assert_eq!(n.subnet.to_string(), "10.89.1.0/24");
            assert_eq!(
                (n.bridge.as_str(), n.gateway),
                ("minirun0", Ipv4Addr::new(10, 89, 1, 1))
            );
            assert_eq!(get_network(d.path(), "bridge").unwrap(), n, "stable once created");
        });
    }
}
