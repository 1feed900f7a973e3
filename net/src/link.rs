//! Links, addresses and routes over rtnetlink (never the `ip` tool).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, RouteMessageBuilder};

use crate::error::{rtnl_errno, Error, Result};
use crate::rt::{with_rtnl, with_rtnl_pair};

/// Name of the interface inside the container.
pub const CONTAINER_IFNAME: &str = "eth0";
/// MTU when the host has no default route.
pub const DEFAULT_MTU: u32 = 1500;
/// Prefix of minirun's host-side veth names.
pub const VETH_PREFIX: &str = "mr";

/// A link as seen in a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSummary {
    pub index: u32,
    pub name: String,
    pub kind: Option<String>,
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub mac: Option<[u8; 6]>,
}

fn summarize(m: &LinkMessage) -> LinkSummary {
    let mut s = LinkSummary {
        index: m.header.index,
        name: String::new(),
        kind: None,
        master: None,
        mtu: None,
        up: m.header.flags.contains(LinkFlags::Up),
        mac: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Mtu(v) => s.mtu = Some(*v),
            LinkAttribute::Controller(v) => s.master = Some(*v),
            LinkAttribute::Address(v) if v.len() == 6 => s.mac = Some(v.as_slice().try_into().unwrap()),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        s.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    s
}

pub(crate) async fn get_link(h: &Handle, name: &str) -> Result<Option<LinkSummary>> {
    let mut st = h.link().get().match_name(name.to_string()).execute();
    match st.try_next().await {
        Ok(Some(m)) => Ok(Some(summarize(&m))),
        Ok(None) => Ok(None),
        Err(e) if matches!(rtnl_errno(&e), Some(libc::ENODEV) | Some(libc::ENOENT)) => Ok(None),
        Err(e) => Err(Error::nl(name, "get link")(e)),
    }
}

pub(crate) async fn dump_links(h: &Handle) -> Result<Vec<LinkSummary>> {
    let v: Vec<LinkMessage> = h
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(Error::nl("*", "dump links"))?;
    Ok(v.iter().map(summarize).collect())
}

/// All links of the caller's network namespace.
pub fn list_links() -> Result<Vec<LinkSummary>> {
    with_rtnl(|h| async move { dump_links(&h).await })
}

/// Flags (IFF_*) of a link in the caller's network namespace.
pub fn link_flags(name: &str) -> Result<u32> {
    let name = name.to_string();
    with_rtnl(|h| async move {
        let mut st = h.link().get().match_name(name.clone()).execute();
        let m = st
            .try_next()
            .await
            .map_err(Error::nl(name.clone(), "get link"))?
            .ok_or_else(|| Error::Link {
                ifname: name.clone(),
                reason: "not found".into(),
            })?;
        Ok(m.header.flags.bits())
    })
}

/// Brings `lo` (always ifindex 1) up in the caller's network namespace.
pub(crate) fn set_lo_up() -> Result<()> {
    with_rtnl(|h| async move {
        h.link()
            .change(LinkUnspec::new_with_index(1).up().build())
            .execute()
            .await
            .map_err(Error::nl("lo", "set up"))
    })
}

/// IPv4 routes of the main table in the caller's namespace, as (destination, oif, gateway).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSummary {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub oif: Option<u32>,
    pub gateway: Option<Ipv4Addr>,
    pub table: u32,
}

fn route_summary(m: &RouteMessage) -> RouteSummary {
    let mut r = RouteSummary {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix_len: m.header.destination_prefix_length,
        oif: None,
        gateway: None,
        table: m.header.table as u32,
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => r.dst = *d,
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(*g),
            RouteAttribute::Table(t) => r.table = *t,
            _ => {}
        }
    }
    r
}

pub(crate) async fn dump_routes(h: &Handle) -> Result<Vec<RouteSummary>> {
    let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let v: Vec<RouteMessage> = h
        .route()
        .get(req)
        .execute()
        .try_collect()
        .await
        .map_err(Error::nl("*", "dump routes"))?;
    Ok(v.iter().map(route_summary).collect())
}

/// All IPv4 routes (every table) of the caller's network namespace.
pub fn list_routes() -> Result<Vec<RouteSummary>> {
    with_rtnl(|h| async move { dump_routes(&h).await })
}

/// IPv4 addresses as (ifindex, address, prefix_len).
pub fn list_addresses() -> Result<Vec<(u32, Ipv4Addr, u8)>> {
    with_rtnl(|h| async move {
        let v: Vec<_> = h
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(Error::nl("*", "dump addresses"))?;
        Ok(v.iter()
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(IpAddr::V4(ip)) | AddressAttribute::Address(IpAddr::V4(ip)) => {
                        Some((m.header.index, *ip, m.header.prefix_len))
                    }
                    _ => None,
                })
            })
            .collect())
    })
}

pub(crate) async fn uplink_mtu_async(h: &Handle) -> Result<u32> {
    let routes = dump_routes(h).await?;
    let Some(oif) = routes
        .iter()
        .filter(|r| r.prefix_len == 0 && r.table == 254)
        .find_map(|r| r.oif)
    else {
        return Ok(DEFAULT_MTU);
    };
    // that one link, not a dump of all (one veth per container on the host)
    let mut st = h.link().get().match_index(oif).execute();
    Ok(match st.try_next().await {
        Ok(Some(m)) => summarize(&m).mtu.unwrap_or(DEFAULT_MTU),
        Ok(None) => DEFAULT_MTU,
        Err(e) if matches!(rtnl_errno(&e), Some(libc::ENODEV) | Some(libc::ENOENT)) => DEFAULT_MTU,
        Err(e) => return Err(Error::nl(&format!("index {oif}"), "get link")(e)),
    })
}

/// MTU of the host's uplink: the interface of the main table's default route, else 1500.
pub fn uplink_mtu() -> Result<u32> {
    with_rtnl(|h| async move { uplink_mtu_async(&h).await })
}

/// What `ensure_bridge` found or made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BridgeState {
    pub index: u32,
    pub mtu: u32,
    pub created: bool,
}

/// Bridge `name` exists, is up, carries `gateway/prefix_len` and has the MTU its containers
/// get: `mtu` (the network's `--opt mtu=N`) or, when `None`, the uplink's. An existing bridge
/// whose MTU differs gets it back: the kernel resets an emptied bridge to 1500, so the
/// bridge's current MTU is never what decides. Concurrent callers are fine (EEXIST is
/// success, and they all want the same MTU).
/// Adds an IPv6 address without duplicate address detection (a tentative address would
/// be unusable for a second or more; minirun's IPAM already made it unique). EEXIST is
/// success.
async fn add_address6(
    h: &Handle,
    index: u32,
    ip: Ipv6Addr,
    prefix_len: u8,
    ifname: &str,
    what: &'static str,
) -> Result<()> {
    let mut req = h.address().add(index, IpAddr::V6(ip), prefix_len);
    req.message_mut()
        .attributes
        .push(AddressAttribute::Flags(AddressFlags::Nodad));
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if rtnl_errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(Error::nl(ifname, what)(e)),
    }
}

pub(crate) async fn ensure_bridge_async(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
    mtu: Option<u32>,
) -> Result<BridgeState> {
    ensure_bridge_dual_async(h, name, gateway, prefix_len, None, mtu).await
}

/// [`ensure_bridge_async`] that also gives the bridge its IPv6 gateway address (`v6`:
/// address and prefix length) on a dual-stack network.
pub(crate) async fn ensure_bridge_dual_async(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix_len: u8,
    v6: Option<(Ipv6Addr, u8)>,
    mtu: Option<u32>,
) -> Result<BridgeState> {
    let mtu = match mtu {
        Some(m) => m,
        None => uplink_mtu_async(h).await?,
    };
    let mut created = false;
    let link = match get_link(h, name).await? {
        Some(l) => l,
        None => {
            match h
                .link()
                .add(LinkBridge::new(name).mtu(mtu).up().build())
                .execute()
                .await
            {
                Ok(()) => created = true,
                Err(e) if rtnl_errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => return Err(Error::nl(name, "create bridge")(e)),
            }
            get_link(h, name).await?.ok_or_else(|| Error::Link {
                ifname: name.into(),
                reason: "vanished right after creation".into(),
            })?
        }
    };
    if link.kind.as_deref() != Some("bridge") {
        return Err(Error::Link {
            ifname: name.into(),
            reason: format!(
                "exists but is a {} device, not a bridge",
                link.kind.as_deref().unwrap_or("plain")
            ),
        });
    }
    match h
        .address()
        .add(link.index, IpAddr::V4(gateway), prefix_len)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if rtnl_errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(Error::nl(name, "add gateway address")(e)),
    }
    if let Some((gw6, len6)) = v6 {
        add_address6(h, link.index, gw6, len6, name, "add IPv6 gateway address").await?;
    }
    if link.mtu != Some(mtu) {
        // set explicitly, the kernel no longer adjusts the bridge's MTU to its ports'
        h.link()
            .change(LinkUnspec::new_with_index(link.index).mtu(mtu).build())
            .execute()
            .await
            .map_err(Error::nl(name, "set mtu"))?;
    }
    if !link.up {
        h.link()
            .change(LinkUnspec::new_with_index(link.index).up().build())
            .execute()
            .await
            .map_err(Error::nl(name, "set up"))?;
    }
    Ok(BridgeState {
        index: link.index,
        mtu,
        created,
    })
}

/// Sync wrapper of the bridge set-up, in the caller's network namespace, plus the host
/// sysctls minirun needs (`ip_forward=1`, `route_localnet=1` on the bridge).
pub fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix_len: u8, mtu: Option<u32>) -> Result<BridgeState> {
    let st = with_rtnl(|h| async move { ensure_bridge_async(&h, name, gateway, prefix_len, mtu).await })?;
    crate::sysctl::enable_route_localnet(name)?;
    crate::sysctl::enable_ip_forward()?;
    Ok(st)
}

/// Deletes a bridge; absent is fine. Returns whether it existed.
pub fn delete_bridge(name: &str) -> Result<bool> {
    delete_link(name)
}

/// A unique host-side veth name for a container: `mr` + 8 hex of a hash of the container
/// id + 4 random hex = 14 characters (IFNAMSIZ-1 is 15). The random part keeps concurrent
/// runs apart even when two ids hash alike; creation retries on EEXIST anyway.
pub fn veth_name(container_id: &str) -> String {
    let mut r = [0u8; 2];
    // SAFETY: getrandom writes at most r.len() bytes into r.
    let n = unsafe { libc::getrandom(r.as_mut_ptr().cast(), r.len(), 0) };
    if n != 2 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        r = ((t.subsec_nanos() ^ std::process::id()) as u16).to_le_bytes();
    }
    format!("{VETH_PREFIX}{:08x}{:02x}{:02x}", fnv1a32(container_id), r[0], r[1])
}

/// The 8-hex-digit part of [`veth_name`] for a container id.
pub fn veth_id_part(container_id: &str) -> String {
    format!("{:08x}", fnv1a32(container_id))
}

fn fnv1a32(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

/// A locally administered MAC derived from the IPv4 address (docker style `02:42:` + ip), so
/// a reused address comes with the same MAC and neighbours' ARP caches stay right.
pub fn mac_for_ip(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn format_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Everything needed to plug one container namespace into a bridge.
#[derive(Clone, Debug)]
pub struct VethConfig<'a> {
    pub host_ifname: &'a str,
    /// The interface's name inside the container: `eth0`, or `eth1`... for a network
    /// connected later ([`crate::attach::connect`]).
    pub ifname: &'a str,
    /// Whether the container's default routes go through this interface (the first
    /// network's only).
    pub default_route: bool,
    pub bridge: &'a str,
    pub netns: &'a Path,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub mac: [u8; 6],
    /// Dual stack: the container's IPv6 address, prefix length and gateway (the bridge's
    /// IPv6 address).
    pub ip6: Option<(Ipv6Addr, u8, Ipv6Addr)>,
    /// The network's MTU (`--opt mtu=N`); `None`: the uplink's. Both veth ends get it.
    pub mtu: Option<u32>,
}

/// Errors from [`connect_container`]: which step, and whether the veth exists now.
async fn create_veth(h: &Handle, c: &VethConfig<'_>, bridge: &BridgeState, netns_fd: i32) -> Result<u32> {
    let peer = LinkMessageBuilder::<LinkUnspec>::new()
        .name(c.ifname.to_string())
        .mtu(bridge.mtu)
        .address(c.mac.to_vec())
        .setns_by_fd(netns_fd)
        .build(); // not up here: the kernel opens the peer before the pair is linked (ENOTCONN)
    let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
        .name(c.host_ifname.to_string())
        .mtu(bridge.mtu)
        .controller(bridge.index)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .up()
        .build();
    h.link()
        .add(msg)
        .execute()
        .await
        .map_err(Error::nl(c.host_ifname, "create veth pair"))?;
    let l = get_link(h, c.host_ifname).await?.ok_or_else(|| Error::Link {
        ifname: c.host_ifname.into(),
        reason: "vanished right after creation".into(),
    })?;
    Ok(l.index)
}

/// Creates the veth pair (host side on the bridge, up, hairpin on; peer created directly
/// inside the container's namespace as `eth0` with its MAC), then inside the namespace
/// sets eth0 up, adds the address and the default route via the gateway. One thread, two netlink
/// connections (host, container). On failure the veth is deleted again.
/// Returns the bridge state (the bridge is ensured too).
pub fn connect_container(c: &VethConfig<'_>) -> Result<BridgeState> {
    let netns_file = std::fs::File::open(c.netns).map_err(|source| Error::Netns {
        path: c.netns.into(),
        op: "open",
        source,
    })?;
    let fd = netns_file.as_raw_fd();
    let res = with_rtnl_pair(c.netns, |host, ns| async move {
        let v6 = c.ip6.map(|(_, len, gw)| (gw, len));
        let bridge = ensure_bridge_dual_async(&host, c.bridge, c.gateway, c.prefix_len, v6, c.mtu).await?;
        let idx = create_veth(&host, c, &bridge, fd).await?;
        let inner = async {
            host.link()
                .set_port(LinkBridgePort::new(idx).hairpin(true).build())
                .execute()
                .await
                .map_err(Error::nl(c.host_ifname, "set hairpin"))?;
            let eth0 = get_link(&ns, c.ifname).await?.ok_or_else(|| Error::Link {
                ifname: c.ifname.into(),
                reason: format!("missing in {}", c.netns.display()),
            })?;
            ns.link()
                .change(LinkUnspec::new_with_index(eth0.index).up().build())
                .execute()
                .await
                .map_err(Error::nl(c.ifname, "set up"))?;
            ns.address()
                .add(eth0.index, IpAddr::V4(c.ip), c.prefix_len)
                .execute()
                .await
                .map_err(Error::nl(c.ifname, "add address"))?;
            if c.default_route {
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(Ipv4Addr::UNSPECIFIED, 0)
                    .gateway(c.gateway)
                    .output_interface(eth0.index)
                    .build();
                ns.route()
                    .add(route)
                    .execute()
                    .await
                    .map_err(Error::nl(c.ifname, "add default route"))?;
            }
            if let Some((ip6, len6, _)) = c.ip6 {
                // This thread is inside the container's namespace now: its /proc/sys/net
                // is the container's.
                crate::sysctl::ipv6_no_ra(c.ifname)?;
                add_address6(&ns, eth0.index, ip6, len6, c.ifname, "add IPv6 address").await?;
            }
            if let (Some((_, _, gw6)), true) = (c.ip6, c.default_route) {
                let route = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(Ipv6Addr::UNSPECIFIED, 0)
                    .gateway(gw6)
                    .output_interface(eth0.index)
                    .build();
                ns.route()
                    .add(route)
                    .execute()
                    .await
                    .map_err(Error::nl(c.ifname, "add IPv6 default route"))?;
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = inner.await {
            let _ = host.link().del(idx).execute().await;
            return Err(e);
        }
        Ok(bridge)
    });
    drop(netns_file);
    let bridge = res?;
    crate::sysctl::enable_route_localnet(c.bridge)?;
    crate::sysctl::enable_ip_forward()?;
    if c.ip6.is_some() {
        crate::sysctl::ipv6_no_ra(c.bridge)?;
        crate::sysctl::ipv6_no_ra(c.host_ifname)?;
        crate::sysctl::enable_ipv6_forwarding(c.bridge)?;
    }
    Ok(bridge)
}

/// Deletes a link by name in the caller's network namespace. Absent is fine: returns
/// whether it existed. Deleting one end of a veth pair deletes both.
pub fn delete_link(name: &str) -> Result<bool> {
    with_rtnl(|h| async move {
        let Some(l) = get_link(&h, name).await? else {
            return Ok(false);
        };
        match h.link().del(l.index).execute().await {
            Ok(()) => Ok(true),
            Err(e) if matches!(rtnl_errno(&e), Some(libc::ENODEV) | Some(libc::ENOENT)) => Ok(false),
            Err(e) => Err(Error::nl(name, "delete link")(e)),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_short_and_unique() {
        let id = "f00dfeedc0ffee0123456789abcdef0123456789abcdef0123456789abcdef01";
        let a = veth_name(id);
        assert!(a.len() <= 15 && a.starts_with("mr"), "{a}");
        assert!(a.starts_with(&format!("mr{}", veth_id_part(id))));
        let names: std::collections::HashSet<_> = (0..50).map(|_| veth_name(id)).collect();
        assert!(names.len() > 40, "random suffix should vary");
        assert_ne!(veth_id_part("a"), veth_id_part("b"));
    }

    #[test]
    fn mac_from_ip() {
        let m = mac_for_ip(Ipv4Addr::new(10, 89, 0, 2));
        assert_eq!(format_mac(&m), "02:42:0a:59:00:02");
    }
}
