//! IP leases per network: `<data_root>/networks/<name>.leases.json` ({address: container
//! id}), read-modify-written under an exclusive flock on `<name>.leases.lock`. Lowest free
//! host address first (network, gateway and broadcast are never handed out). Leases of
//! containers that the caller's [`Liveness`] says are gone are reclaimed when they are in
//! the way of an allocation (teardown and gc release the others). The file is replaced
//! atomically but not synced: it only says which running container holds which address,
//! and after a power loss none runs.
//!
//! A dual-stack network's containers also get an IPv6 address, in the same file and under
//! the same lock (`leases6`): lowest free first from `::2` of the prefix (the network
//! address, the subnet-router anycast, and the gateway are skipped). Both are taken and
//! released together.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::live::Liveness;
use crate::lock::{read_json, write_json_volatile, FileLock};
use crate::network::{networks_dir, NetworkConfig};

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    leases: BTreeMap<Ipv4Addr, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    leases6: BTreeMap<Ipv6Addr, String>,
}

/// How far into a v6 prefix allocation looks for a free address (a /64 holds 2^64; the
/// lowest free one is always among the first leases + 2).
const V6_SCAN: u128 = 1 << 20;

pub fn leases_path(data_root: &Path, network: &str) -> PathBuf {
    networks_dir(data_root).join(format!("{network}.leases.json"))
}

fn lock_path(data_root: &Path, network: &str) -> PathBuf {
    networks_dir(data_root).join(format!("{network}.leases.lock"))
}

/// The free address `free` finds in `f`, else the one it finds once `reclaim` has
/// taken back the leases of containers that are gone.
fn free_or_reclaimed<A>(
    f: &mut LeaseFile,
    free: impl Fn(&LeaseFile) -> Option<A>,
    reclaim: &mut impl FnMut(&mut LeaseFile),
) -> Option<A> {
    free(f).or_else(|| {
        reclaim(f);
        free(f)
    })
}

/// The lease file, written without syncs: leases only say which running container holds
/// which address, and after a power loss none runs. A file a power loss left unreadable
/// (possible on a filesystem without a journal) is therefore started afresh.
fn load(path: &Path) -> Result<LeaseFile> {
    match read_json(path, "lease file") {
        Ok(f) => Ok(f.unwrap_or_default()),
        Err(e @ Error::Json { .. }) => {
            tracing::warn!(
                "{}; starting it afresh (after a power loss no container holds an address)",
                crate::error::chain(&e)
            );
            Ok(LeaseFile::default())
        }
        Err(e) => Err(e),
    }
}

/// Leases `container_id` an address of `network` and returns it. Idempotent: a container
/// that already holds a lease gets the same address. Reclaims leases of containers that
/// `live` says are gone (it is called under the lock: see [`Liveness`]; attach passes the
/// in-use judgement, see [`crate::in_use_among`]).
pub fn allocate(
    data_root: &Path,
    network: &NetworkConfig,
    container_id: &str,
    live: &dyn Liveness,
) -> Result<Ipv4Addr> {
    Ok(allocate_dual(data_root, network, container_id, None, live)?.0)
}

/// [`allocate`] for both families: the IPv4 address (`fixed`, `--ip`, when given: it must
/// lie in the subnet, not be the gateway nor another live container's) and, on a
/// dual-stack network, the IPv6 one (one lock, one write).
pub fn allocate_dual(
    data_root: &Path,
    network: &NetworkConfig,
    container_id: &str,
    fixed: Option<Ipv4Addr>,
    live: &dyn Liveness,
) -> Result<(Ipv4Addr, Option<Ipv6Addr>)> {
    let refuse = |reason: String| Error::Network {
        network: network.name.clone(),
        reason,
    };
    let subnet = network.subnet;
    let last = subnet.size().saturating_sub(1) as u32;
    if let Some(wanted) = fixed {
        if !(1..last).filter_map(|i| subnet.nth(i)).any(|ip| ip == wanted) {
            return Err(refuse(format!(
                "Invalid address {wanted}: It does not belong to any of this network's subnets ({subnet})"
            )));
        }
        if wanted == network.gateway {
            return Err(refuse(format!("Address already in use: {wanted} is the gateway")));
        }
    }
    let _l = FileLock::exclusive(&lock_path(data_root, &network.name))?;
    // `network rm` deletes the definition under this lock once no lease is left: a lease
    // is only taken while the network still exists.
    if !crate::network::config_path(data_root, &network.name).exists() {
        return Err(Error::NetworkNotFound(network.name.clone()));
    }
    let path = leases_path(data_root, &network.name);
    let mut f = load(&path)?;
    let has6 = |f: &LeaseFile| {
        f.leases6
            .iter()
            .find(|(_, id)| id.as_str() == container_id)
            .map(|(ip, _)| *ip)
    };
    if let Some((ip, _)) = f.leases.iter().find(|(_, id)| id.as_str() == container_id) {
        if fixed.is_none_or(|w| w == *ip) && (network.subnet6.is_none() || has6(&f).is_some()) {
            return Ok((*ip, has6(&f)));
        }
    }
    // a container's own lease of another address than the one it now asks for goes
    f.leases
        .retain(|ip, id| id != container_id || fixed.is_none_or(|w| w == *ip));
    // Leases of containers that are gone are taken back only when they are in the way
    // (the subnet is full, the address asked for is leased): judging every lease on
    // every allocation would make the 500th container on a network pay for the 499
    // before it. Teardown and gc release the others.
    let mut reclaimed = false;
    let mut reclaim = |f: &mut LeaseFile| {
        if !std::mem::replace(&mut reclaimed, true) {
            f.leases.retain(|_, id| id == container_id || live.is_alive(id));
            f.leases6.retain(|_, id| id == container_id || live.is_alive(id));
        }
    };
    let free4 = |f: &LeaseFile| {
        (1..last)
            .filter_map(|i| subnet.nth(i))
            .find(|ip| *ip != network.gateway && !f.leases.contains_key(ip))
    };
    let ip = match (fixed, f.leases.iter().find(|(_, id)| id.as_str() == container_id)) {
        (_, Some((ip, _))) => *ip,
        (Some(wanted), None) => {
            if let Some(holder) = f.leases.get(&wanted) {
                if live.is_alive(holder) {
                    return Err(refuse(format!("Address already in use: {wanted}")));
                }
                f.leases.remove(&wanted);
            }
            wanted
        }
        (None, None) => free_or_reclaimed(&mut f, free4, &mut reclaim).ok_or_else(|| Error::SubnetExhausted {
            network: network.name.clone(),
            subnet,
        })?,
    };
    let ip6 = match (network.ipv6(), has6(&f)) {
        (None, _) => None,
        (Some(_), Some(a)) => Some(a),
        (Some((s6, gw6)), None) => {
            let free6 = |f: &LeaseFile| {
                (2..V6_SCAN)
                    .filter_map(|i| s6.nth(i))
                    .find(|a| *a != gw6 && *a != s6.last() && !f.leases6.contains_key(a))
            };
            Some(
                free_or_reclaimed(&mut f, free6, &mut reclaim)
                    .ok_or_else(|| refuse(format!("no free address left in subnet {s6}")))?,
            )
        }
    };
    f.leases.insert(ip, container_id.to_string());
    if let Some(a) = ip6 {
        f.leases6.insert(a, container_id.to_string());
    }
    write_json_volatile(&path, &f, "lease file")?;
    Ok((ip, ip6))
}

/// Current IPv6 leases of `network`: (address, container id), by address.
pub fn leases6(data_root: &Path, network: &str) -> Result<Vec<(Ipv6Addr, String)>> {
    let _l = FileLock::exclusive(&lock_path(data_root, network))?;
    Ok(load(&leases_path(data_root, network))?.leases6.into_iter().collect())
}

/// Releases the lease of `container_id` in `network`; returns the address it had.
pub fn release(data_root: &Path, network: &str, container_id: &str) -> Result<Option<Ipv4Addr>> {
    let path = leases_path(data_root, network);
    if !path.exists() {
        return Ok(None);
    }
    let _l = FileLock::exclusive(&lock_path(data_root, network))?;
    let mut f = load(&path)?;
    let ip = f
        .leases
        .iter()
        .find(|(_, id)| id.as_str() == container_id)
        .map(|(ip, _)| *ip);
    let before6 = f.leases6.len();
    f.leases6.retain(|_, id| id != container_id);
    if let Some(ip) = ip {
        f.leases.remove(&ip);
    }
    if ip.is_some() || f.leases6.len() != before6 {
        write_json_volatile(&path, &f, "lease file")?;
    }
    Ok(ip)
}

/// Holds `network`'s lease lock (what [`allocate`] takes).
pub(crate) fn lock(data_root: &Path, network: &str) -> Result<FileLock> {
    FileLock::exclusive(&lock_path(data_root, network))
}

/// [`leases`] for a caller that holds [`lock`].
pub(crate) fn leases_locked(data_root: &Path, network: &str) -> Result<Vec<(Ipv4Addr, String)>> {
    Ok(load(&leases_path(data_root, network))?.leases.into_iter().collect())
}

/// Current leases of `network`: (address, container id), by address.
pub fn leases(data_root: &Path, network: &str) -> Result<Vec<(Ipv4Addr, String)>> {
    let _l = FileLock::exclusive(&lock_path(data_root, network))?;
    Ok(load(&leases_path(data_root, network))?.leases.into_iter().collect())
}

/// Drops leases whose container `live` says is gone (asked under the lock); returns them.
pub fn reclaim(data_root: &Path, network: &str, live: &dyn Liveness) -> Result<Vec<(Ipv4Addr, String)>> {
    let path = leases_path(data_root, network);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let _l = FileLock::exclusive(&lock_path(data_root, network))?;
    let mut f = load(&path)?;
    let gone: Vec<(Ipv4Addr, String)> = f
        .leases
        .iter()
        .filter(|(_, id)| !live.is_alive(id))
        .map(|(a, b)| (*a, b.clone()))
        .collect();
    let before6 = f.leases6.len();
    f.leases6.retain(|_, id| live.is_alive(id));
    if !gone.is_empty() || f.leases6.len() != before6 {
        for (ip, _) in &gone {
            f.leases.remove(ip);
        }
        write_json_volatile(&path, &f, "lease file")?;
    }
    Ok(gone)
}

/// [`allocate`] of one given address (`--ip`): it must lie in the subnet,
/// not be the gateway nor another live container's.
pub fn allocate_fixed(
    data_root: &Path,
    network: &NetworkConfig,
    container_id: &str,
    wanted: Ipv4Addr,
    live: &dyn Liveness,
) -> Result<Ipv4Addr> {
    Ok(allocate_dual(data_root, network, container_id, Some(wanted), live)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lock::write_json;
    use std::collections::HashSet;

    fn net(subnet: &str) -> NetworkConfig {
        let s: crate::Ipv4Net = subnet.parse().unwrap();
        NetworkConfig {
            name: "t".into(),
            bridge: "minirun9".into(),
            subnet: s,
            gateway: s.nth(1).unwrap(),
            icc: true,
            mtu: None,
            subnet6: None,
            gateway6: None,
        }
    }
    fn net6(subnet: &str, subnet6: &str) -> NetworkConfig {
        let s6: crate::Ipv6Net = subnet6.parse().unwrap();
        NetworkConfig {
            subnet6: Some(s6),
            gateway6: s6.nth(1),
            ..net(subnet)
        }
    }

    #[test]
    fn v6_lowest_free_with_the_v4_lease_and_released_together() {
        let d = tempfile::tempdir().unwrap();
        let n = net6("10.89.5.0/24", "fd00:5::/64");
        let a = |s: &str| -> Option<std::net::Ipv6Addr> { Some(s.parse().unwrap()) };
        let dual = |id: &str, live: &dyn Liveness| {
            let p = crate::network::config_path(d.path(), &n.name);
            if !p.exists() {
                write_json(&p, &n, "network definition").unwrap();
            }
            allocate_dual(d.path(), &n, id, None, live).unwrap()
        };
        assert_eq!(dual("a", &alive), (Ipv4Addr::new(10, 89, 5, 2), a("fd00:5::2")));
        assert_eq!(dual("b", &alive), (Ipv4Addr::new(10, 89, 5, 3), a("fd00:5::3")));
        assert_eq!(dual("a", &alive).1, a("fd00:5::2"), "idempotent");
        release(d.path(), "t", "a").unwrap();
        assert_eq!(
            leases6(d.path(), "t").unwrap(),
            vec![("fd00:5::3".parse().unwrap(), "b".to_string())]
        );
        assert_eq!(dual("c", &alive).1, a("fd00:5::2"), "freed address reused");
        // A gateway inside the range is skipped; dead containers' v6 leases are reclaimed.
        let mut g = net6("10.89.6.0/24", "fd00:6::/64");
        g.name = "g".into();
        g.gateway6 = a("fd00:6::2");
        write_json(&crate::network::config_path(d.path(), "g"), &g, "network definition").unwrap();
        assert_eq!(
            allocate_dual(d.path(), &g, "x", None, &alive).unwrap().1,
            a("fd00:6::3")
        );
        assert_eq!(reclaim(d.path(), "g", &|_: &str| false).unwrap().len(), 1);
        assert!(leases6(d.path(), "g").unwrap().is_empty());
        // An IPv4-only network hands out no v6 address and writes no leases6.
        let v4 = net("10.89.7.0/24");
        let mut v4 = v4;
        v4.name = "v4".into();
        write_json(&crate::network::config_path(d.path(), "v4"), &v4, "network definition").unwrap();
        assert_eq!(allocate_dual(d.path(), &v4, "y", None, &alive).unwrap().1, None);
        let raw = std::fs::read_to_string(leases_path(d.path(), "v4")).unwrap();
        assert!(!raw.contains("leases6"), "{raw}");
    }
    fn alive(_: &str) -> bool {
        true
    }
    /// [`allocate`] on a network whose definition exists (as `network create` leaves it).
    fn alloc(d: &Path, n: &NetworkConfig, id: &str, alive: &dyn Liveness) -> Result<Ipv4Addr> {
        let p = crate::network::config_path(d, &n.name);
        if !p.exists() {
            write_json(&p, n, "network definition").unwrap();
        }
        allocate(d, n, id, alive)
    }

    #[test]
    fn a_fixed_address_is_leased_once_and_then_skipped() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.7.0/24");
        alloc(d.path(), &n, "first", &alive).unwrap();
        let want = Ipv4Addr::new(10, 89, 7, 3);
        assert_eq!(allocate_fixed(d.path(), &n, "f", want, &alive).unwrap(), want);
        // idempotent for its holder, refused to others while it lives
        assert_eq!(allocate_fixed(d.path(), &n, "f", want, &alive).unwrap(), want);
        let err = allocate_fixed(d.path(), &n, "g", want, &alive).unwrap_err().to_string();
        assert!(err.contains("Address already in use"), "{err}");
        for bad in [
            Ipv4Addr::new(10, 89, 8, 3),
            Ipv4Addr::new(10, 89, 7, 255),
            Ipv4Addr::new(10, 89, 7, 1),
        ] {
            assert!(allocate_fixed(d.path(), &n, "g", bad, &alive).is_err(), "{bad}");
        }
        // the dynamic allocator goes around it
        assert_eq!(alloc(d.path(), &n, "h", &alive).unwrap(), Ipv4Addr::new(10, 89, 7, 4));
        // a dead holder's address can be taken
        let dead = |id: &str| id != "f";
        assert_eq!(allocate_fixed(d.path(), &n, "g", want, &dead).unwrap(), want);
    }

    #[test]
    fn no_lease_once_the_network_is_gone() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.6.0/24");
        assert!(matches!(allocate(d.path(), &n, "a", &alive), Err(Error::NetworkNotFound(ref x)) if x == "t"));
        assert!(leases(d.path(), "t").unwrap().is_empty());
    }

    #[test]
    fn lowest_free_first_and_idempotent() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.5.0/24");
        assert_eq!(alloc(d.path(), &n, "a", &alive).unwrap(), Ipv4Addr::new(10, 89, 5, 2));
        assert_eq!(alloc(d.path(), &n, "b", &alive).unwrap(), Ipv4Addr::new(10, 89, 5, 3));
        assert_eq!(alloc(d.path(), &n, "a", &alive).unwrap(), Ipv4Addr::new(10, 89, 5, 2));
        assert_eq!(release(d.path(), "t", "a").unwrap(), Some(Ipv4Addr::new(10, 89, 5, 2)));
        assert_eq!(release(d.path(), "t", "a").unwrap(), None);
        assert_eq!(alloc(d.path(), &n, "c", &alive).unwrap(), Ipv4Addr::new(10, 89, 5, 2));
        assert_eq!(leases(d.path(), "t").unwrap().len(), 2);
    }

    #[test]
    fn gateway_elsewhere_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let mut n = net("10.89.5.0/29");
        n.gateway = Ipv4Addr::new(10, 89, 5, 6);
        let got: Vec<_> = (0..5)
            .map(|i| alloc(d.path(), &n, &format!("c{i}"), &alive).unwrap())
            .collect();
        assert_eq!(got, (1..=5).map(|i| Ipv4Addr::new(10, 89, 5, i)).collect::<Vec<_>>());
        assert!(alloc(d.path(), &n, "c5", &alive).is_err());
    }

    #[test]
    fn exhaustion_names_network_and_subnet() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.7.0/29"); // .1 gateway, .2-.6 usable, .7 broadcast
        for i in 0..5 {
            alloc(d.path(), &n, &format!("c{i}"), &alive).unwrap();
        }
        let e = alloc(d.path(), &n, "c5", &alive).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"network "t": no free address left in subnet 10.89.7.0/29"#
        );
    }

    #[test]
    fn reclaims_dead_containers() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.7.0/29");
        for i in 0..5 {
            alloc(d.path(), &n, &format!("c{i}"), &alive).unwrap();
        }
        // c1 and c3 are gone: allocation reuses the lowest of their addresses.
        let is_alive = |id: &str| id != "c1" && id != "c3";
        assert_eq!(
            alloc(d.path(), &n, "new", &is_alive).unwrap(),
            Ipv4Addr::new(10, 89, 7, 3)
        );
        let l = leases(d.path(), "t").unwrap();
        assert_eq!(l.len(), 4);
        assert!(!l.iter().any(|(_, id)| id == "c1" || id == "c3"));
        assert_eq!(reclaim(d.path(), "t", &|id: &str| id == "new").unwrap().len(), 3);
        assert_eq!(
            leases(d.path(), "t").unwrap(),
            vec![(Ipv4Addr::new(10, 89, 7, 3), "new".to_string())]
        );
    }

    #[test]
    fn leases_are_judged_only_when_in_the_way() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.8.0/24");
        for i in 0..50 {
            alloc(d.path(), &n, &format!("c{i}"), &alive).unwrap();
        }
        // room left: no lease is judged, whoever holds it
        let asked = std::cell::RefCell::new(Vec::new());
        let nobody = |id: &str| {
            asked.borrow_mut().push(id.to_string());
            false
        };
        assert_eq!(
            alloc(d.path(), &n, "new", &nobody).unwrap(),
            Ipv4Addr::new(10, 89, 8, 52)
        );
        assert!(asked.borrow().is_empty(), "{:?}", asked.borrow());
        assert_eq!(leases(d.path(), "t").unwrap().len(), 51);
        // an address asked for: only its holder is judged; a live one keeps it...
        let keeps = |id: &str| {
            asked.borrow_mut().push(id.to_string());
            true
        };
        let c4 = Ipv4Addr::new(10, 89, 8, 6);
        let e = allocate_dual(d.path(), &n, "fixed", Some(c4), &keeps).unwrap_err();
        assert!(e.to_string().contains("Address already in use: 10.89.8.6"), "{e}");
        assert_eq!(*asked.borrow(), ["c4"]);
        // ...a gone one loses it, and nobody else is asked
        asked.borrow_mut().clear();
        assert_eq!(allocate_dual(d.path(), &n, "fixed", Some(c4), &nobody).unwrap().0, c4);
        assert_eq!(*asked.borrow(), ["c4"]);
        let l = leases(d.path(), "t").unwrap();
        assert_eq!(l.len(), 51);
        assert!(l.contains(&(c4, "fixed".to_string())));
    }

    #[test]
    fn a_lease_file_left_unreadable_is_started_afresh() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.9.0/24");
        alloc(d.path(), &n, "a", &alive).unwrap();
        std::fs::write(leases_path(d.path(), "t"), "").unwrap();
        assert_eq!(alloc(d.path(), &n, "b", &alive).unwrap(), Ipv4Addr::new(10, 89, 9, 2));
        assert_eq!(
            leases(d.path(), "t").unwrap(),
            vec![(Ipv4Addr::new(10, 89, 9, 2), "b".to_string())]
        );
        // written without syncs, and without leaving a temporary file
        let names: Vec<String> = std::fs::read_dir(crate::network::networks_dir(d.path()))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn twenty_threads_get_distinct_addresses() {
        let d = tempfile::tempdir().unwrap();
        let n = net("10.89.8.0/24");
        let ips: Vec<Ipv4Addr> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..20)
                .map(|i| {
                    let (d, n) = (d.path(), &n);
                    s.spawn(move || alloc(d, n, &format!("ctr{i}"), &alive).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let set: HashSet<_> = ips.iter().collect();
        assert_eq!(set.len(), 20);
        let want: HashSet<Ipv4Addr> = (2..22).map(|i| Ipv4Addr::new(10, 89, 8, i)).collect();
        assert_eq!(ips.into_iter().collect::<HashSet<_>>(), want);
        assert_eq!(leases(d.path(), "t").unwrap().len(), 20);
    }
}
