//! Network definitions: `<data_root>/networks/<name>.json` = {name, bridge, subnet, gateway,
//! icc, mtu, and for a dual-stack network subnet6, gateway6}. The default network `bridge`
//! (bridge `minirun0`) is created on first use (or before it, with options, by
//! [`create_default_network`]); its subnet is the first of 10.89.0.0/24, 10.89.1.0/24, ...
//! that overlaps no route of the caller's (host) network namespace and no other minirun
//! network. (172.17.0.0/16 is docker's, 10.88.0.0/16 podman's: both avoided.) Creation is
//! serialized by a file lock.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lock::{read_dir_or_empty, read_json, write_json, FileLock};
use crate::mode::DEFAULT_NETWORK;
use crate::subnet::{Ipv4Net, Ipv6Net};

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
    /// Dual stack (`--ipv6`): the network's IPv6 prefix (a /64 ULA picked from fd00::/8
    /// when none is given) and its gateway on the bridge. Absent: IPv4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
}

impl NetworkConfig {
    pub fn prefix_len(&self) -> u8 {
        self.subnet.prefix_len()
    }
    /// (prefix, gateway) of a dual-stack network.
    pub fn ipv6(&self) -> Option<(Ipv6Net, Ipv6Addr)> {
        Some((self.subnet6?, self.gateway6?))
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
    /// `--ipv6`: dual stack.
    pub ipv6: bool,
    /// An IPv6 `--subnet` (implies `ipv6`); none with `ipv6`: a ULA /64 is picked.
    pub subnet6: Option<Ipv6Net>,
    /// An IPv6 `--gateway` (default: the prefix's first address).
    pub gateway6: Option<Ipv6Addr>,
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

/// The ULA /64 offered to a network `name` that asked for IPv6 without a subnet: `fd` +
/// a 40-bit global id and the 16-bit subnet id 0, both from a hash of the name (RFC 4193's
/// "pseudo-random" global id, but reproducible), then the next subnet ids while it overlaps
/// one of `taken`. Stable: the chosen prefix is saved in the definition.
pub fn pick_subnet6(name: &str, taken: &[Ipv6Net]) -> Option<Ipv6Net> {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in name.bytes().chain(*b"minirun") {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    let global = (h >> 8) & 0xff_ffff_ffff;
    (0..=u16::MAX as u128)
        .map(|sid| {
            let a = (0xfdu128 << 120) | ((global as u128) << 80) | (sid << 64);
            Ipv6Net::new(Ipv6Addr::from(a), 64).unwrap()
        })
        .find(|c| !taken.iter().any(|t| t.overlaps(c)))
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

/// Loads or creates the default network `bridge` on `minirun0` (or the first free
/// `minirun<N>` when a link of that name exists already; IPv4 only; see
/// [`create_default_network`] for a dual-stack default network).
pub fn ensure_default_network(data_root: &Path) -> Result<NetworkConfig> {
    if let Some(n) = load_network(data_root, DEFAULT_NETWORK)? {
        return Ok(n);
    }
    let _l = FileLock::exclusive(&lock_path(data_root))?;
    if let Some(n) = load_network(data_root, DEFAULT_NETWORK)? {
        return Ok(n);
    }
    create_locked(data_root, DEFAULT_NETWORK, &NetworkOptions::default())
}

/// Defines the default network `bridge` (on `minirun0`) with `opts` (docker's daemon
/// `ipv6`/`fixed-cidr-v6` and `bip`, as `network create --ipv6 [--subnet ..] bridge`).
/// Only before its first use: once defined (by this or by a first `run`), it stays as it
/// is; an already defined default network is an error naming it.
pub fn create_default_network(data_root: &Path, opts: &NetworkOptions) -> Result<NetworkConfig> {
    let _l = FileLock::exclusive(&lock_path(data_root))?;
    if let Some(n) = load_network(data_root, DEFAULT_NETWORK)? {
        return Err(Error::Network {
            network: n.name,
            reason: "is already defined (the default network is configured before its first use)".into(),
        });
    }
    create_locked(data_root, DEFAULT_NETWORK, opts)
}

/// Creates a user-defined network definition (the bridge itself appears on first attach).
/// Bridge name defaults to the first free `minirun<N>` (N >= 1) that no other network
/// defines and no link of the network namespace has. `--icc=false`
/// (`opts.icc == Some(false)`) fails with [`Error::IccUnavailable`] unless bridged traffic
/// passes the ip forward hook here (net.bridge.bridge-nf-call-iptables=1).
pub fn create_network(data_root: &Path, name: &str, opts: &NetworkOptions) -> Result<NetworkConfig> {
    check_name(name)?;
    if opts.icc == Some(false) {
        let state = crate::firewall::check_bridge_nf_call_iptables();
        if state != crate::sysctl::BridgeNfCall::Enabled {
            return Err(Error::IccUnavailable { state });
        }
        let state = crate::sysctl::bridge_nf_call_ip6tables();
        if (opts.ipv6 || opts.subnet6.is_some()) && state != crate::sysctl::BridgeNfCall::Enabled {
            return Err(Error::Icc6Unavailable { state });
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
        // `minirun0` for the default network, else the first free `minirun<N>`;
        // never a link that exists here already: with no definition of ours it is
        // someone else's (another data root's network, or not minirun's at all).
        None => {
            let links: Vec<String> = crate::link::list_links()?.into_iter().map(|l| l.name).collect();
            let first = usize::from(name != DEFAULT_NETWORK);
            (first..)
                .map(|i| format!("minirun{i}"))
                .find(|c| !others.iter().any(|o| &o.bridge == c) && !links.contains(c))
                .unwrap()
        }
    };
    let (subnet6, gateway6) = if opts.ipv6 || opts.subnet6.is_some() {
        let taken6: Vec<Ipv6Net> = others.iter().filter_map(|o| o.subnet6).collect();
        let s6 = match opts.subnet6 {
            Some(s) => {
                if !(48..=120).contains(&s.prefix_len()) {
                    return Err(Error::InvalidSubnet(s.to_string()));
                }
                if let Some(o) = others.iter().find(|o| o.subnet6.is_some_and(|t| t.overlaps(&s))) {
                    return Err(net_err(format!(
                        "subnet {s} overlaps network {:?} ({})",
                        o.name,
                        o.subnet6.unwrap()
                    )));
                }
                s
            }
            None => pick_subnet6(name, &taken6).ok_or_else(|| Error::NoFreeSubnet { network: name.into() })?,
        };
        let g6 = match opts.gateway6 {
            Some(g) => {
                if !s6.contains(g) || g == s6.network() {
                    return Err(net_err(format!("gateway {g} is not a host address of subnet {s6}")));
                }
                g
            }
            None => s6.nth(1).unwrap(),
        };
        (Some(s6), Some(g6))
    } else if opts.gateway6.is_some() {
        return Err(net_err("an IPv6 gateway needs --ipv6".into()));
    } else {
        (None, None)
    };
    let cfg = NetworkConfig {
        subnet6,
        gateway6,
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
        let a = pick_subnet6("v6net", &[]).unwrap();
        assert_eq!(a, pick_subnet6("v6net", &[]).unwrap(), "stable per name");
        assert_eq!(a.prefix_len(), 64);
        assert_eq!(a.network().octets()[0], 0xfd);
        assert_ne!(a, pick_subnet6("other", &[]).unwrap());
        let b = pick_subnet6("v6net", &[a]).unwrap();
        assert!(!b.overlaps(&a) && b.network().segments()[..3] == a.network().segments()[..3]);
        for s in subnet_pool() {
            assert!(!s.overlaps(&"172.17.0.0/16".parse().unwrap()));
            assert!(!s.overlaps(&"10.88.0.0/16".parse().unwrap()));
        }
    }

    #[test]
    fn create_load_list_with_explicit_subnets() {
        crate::testutil::hermetic(create_load_list_with_explicit_subnets_here);
    }

    fn create_load_list_with_explicit_subnets_here() {
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
    fn dual_stack_definitions() {
        crate::testutil::hermetic(dual_stack_definitions_here);
    }

    fn dual_stack_definitions_here() {
        let d = tempfile::tempdir().unwrap();
        let v4 = |s: &str| Some(s.parse::<Ipv4Net>().unwrap());
        let a = create_network(
            d.path(),
            "a",
            &NetworkOptions {
                subnet: v4("192.168.70.0/24"),
                ipv6: true,
                ..Default::default()
            },
        )
        .unwrap();
        let (s6, g6) = a.ipv6().unwrap();
        assert_eq!(s6, pick_subnet6("a", &[]).unwrap(), "auto ULA /64");
        assert_eq!(g6, s6.nth(1).unwrap());
        let b = create_network(
            d.path(),
            "b",
            &NetworkOptions {
                subnet: v4("192.168.71.0/24"),
                subnet6: Some("fd00:71::/64".parse().unwrap()),
                gateway6: Some("fd00:71::fe".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (b.subnet6.unwrap().to_string(), b.gateway6.unwrap().to_string()),
            ("fd00:71::/64".into(), "fd00:71::fe".into())
        );
        let e = create_network(
            d.path(),
            "c",
            &NetworkOptions {
                subnet: v4("192.168.72.0/24"),
                subnet6: Some("fd00:71::/48".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("overlaps network \"b\""), "{e}");
        let e = create_network(
            d.path(),
            "c",
            &NetworkOptions {
                subnet: v4("192.168.72.0/24"),
                gateway6: Some("fd00:72::1".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs --ipv6"), "{e}");
        // IPv4-only definitions are written as before (no v6 keys).
        let plain = create_network(
            d.path(),
            "plain",
            &NetworkOptions {
                subnet: v4("192.168.73.0/24"),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(plain.ipv6(), None);
        let raw = std::fs::read_to_string(config_path(d.path(), "plain")).unwrap();
        assert!(!raw.contains("subnet6"), "{raw}");
        // The default network takes options once, before first use.
        let def = create_default_network(
            d.path(),
            &NetworkOptions {
                subnet: v4("192.168.74.0/24"),
                subnet6: Some("fd00:89::/64".parse().unwrap()),
                ipv6: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            (def.bridge.as_str(), def.name.as_str()),
            (DEFAULT_BRIDGE, DEFAULT_NETWORK)
        );
        assert_eq!(ensure_default_network(d.path()).unwrap(), def);
        let e = create_default_network(d.path(), &NetworkOptions::default()).unwrap_err();
        assert!(e.to_string().contains("already defined"), "{e}");
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

    #[test]
    fn bridges_of_others_are_never_taken() {
        if !crate::testutil::require_root() {
            return;
        }
        crate::testutil::PrivateNetns::run(|| {
            // Another data root's default bridge and one of its networks.
            crate::link::ensure_bridge("minirun0", Ipv4Addr::new(10, 89, 0, 1), 24, Some(1500)).unwrap();
            crate::link::ensure_bridge("minirun2", Ipv4Addr::new(10, 89, 7, 1), 24, Some(1500)).unwrap();
            let d = tempfile::tempdir().unwrap();
            let def = get_network(d.path(), DEFAULT_NETWORK).unwrap();
            assert_eq!(
                (def.bridge.as_str(), def.subnet.to_string().as_str()),
                ("minirun1", "10.89.1.0/24")
            );
            let a = create_network(d.path(), "a", &NetworkOptions::default()).unwrap();
            assert_eq!(a.bridge, "minirun3", "minirun1 is ours, minirun2 someone else's");
            // Once defined, the default network keeps its bridge.
            assert_eq!(get_network(d.path(), DEFAULT_NETWORK).unwrap().bridge, "minirun1");
        });
    }
}
