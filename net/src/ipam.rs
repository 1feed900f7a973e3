//! IP leases per network: `<data_root>/networks/<name>.leases.json` ({address: container
//! id}), read-modify-written under an exclusive flock on `<name>.leases.lock`. Lowest free
//! host address first (network, gateway and broadcast are never handed out). Leases of
//! containers that the caller's [`Liveness`] says are gone are reclaimed on allocation.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::live::Liveness;
use crate::lock::{read_json, write_json, FileLock};
use crate::network::{networks_dir, NetworkConfig};

#[derive(Debug, Default, Serialize, Deserialize)]
struct LeaseFile {
    leases: BTreeMap<Ipv4Addr, String>,
}

pub fn leases_path(data_root: &Path, network: &str) -> PathBuf {
    networks_dir(data_root).join(format!("{network}.leases.json"))
}

fn lock_path(data_root: &Path, network: &str) -> PathBuf {
    networks_dir(data_root).join(format!("{network}.leases.lock"))
}

fn load(path: &Path) -> Result<LeaseFile> {
    Ok(read_json(path, "lease file")?.unwrap_or_default())
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
    let _l = FileLock::exclusive(&lock_path(data_root, &network.name))?;
    // `network rm` deletes the definition under this lock once no lease is left: a lease
    // is only taken while the network still exists.
    if !crate::network::config_path(data_root, &network.name).exists() {
        return Err(Error::NetworkNotFound(network.name.clone()));
    }
    let path = leases_path(data_root, &network.name);
    let mut f = load(&path)?;
    if let Some((ip, _)) = f.leases.iter().find(|(_, id)| id.as_str() == container_id) {
        return Ok(*ip);
    }
    f.leases.retain(|_, id| live.is_alive(id));
    let subnet = network.subnet;
    let last = subnet.size().saturating_sub(1) as u32;
    let ip = (1..last)
        .filter_map(|i| subnet.nth(i))
        .find(|ip| *ip != network.gateway && !f.leases.contains_key(ip))
        .ok_or_else(|| Error::SubnetExhausted {
            network: network.name.clone(),
            subnet,
        })?;
    f.leases.insert(ip, container_id.to_string());
    write_json(&path, &f, "lease file")?;
    Ok(ip)
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
    if let Some(ip) = ip {
        f.leases.remove(&ip);
        write_json(&path, &f, "lease file")?;
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
    if !gone.is_empty() {
        for (ip, _) in &gone {
            f.leases.remove(ip);
        }
        write_json(&path, &f, "lease file")?;
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
    let refuse = |reason: String| Error::Network {
        network: network.name.clone(),
        reason,
    };
    let subnet = network.subnet;
    let last = subnet.size().saturating_sub(1) as u32;
    let usable = (1..last).filter_map(|i| subnet.nth(i)).any(|ip| ip == wanted);
    if !usable {
        return Err(refuse(format!(
            "Invalid address {wanted}: It does not belong to any of this network's subnets ({subnet})"
        )));
    }
    if wanted == network.gateway {
        return Err(refuse(format!("Address already in use: {wanted} is the gateway")));
    }
    let _l = FileLock::exclusive(&lock_path(data_root, &network.name))?;
    if !crate::network::config_path(data_root, &network.name).exists() {
        return Err(Error::NetworkNotFound(network.name.clone()));
    }
    let path = leases_path(data_root, &network.name);
    let mut f = load(&path)?;
    match f.leases.get(&wanted) {
        Some(id) if id == container_id => return Ok(wanted),
        Some(id) if live.is_alive(id) => {
            return Err(refuse(format!("Address already in use: {wanted}")));
        }
        _ => {}
    }
    f.leases.retain(|_, id| id != container_id && live.is_alive(id));
    f.leases.insert(wanted, container_id.to_string());
    write_json(&path, &f, "lease file")?;
    Ok(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
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
        }
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
