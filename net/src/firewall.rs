//! The nftables side: one static table (`table ip minirun`, DESIGN.md's skeleton) plus
//! elements of its sets and maps.
//!
//! * The skeleton is written once, when absent, by `nft -f -` (stdin, one atomic
//!   transaction that starts with `create table`, so two racing writers cannot both
//!   succeed and rules are never doubled). Presence is checked in-process (GETTABLE).
//! * Every per-network / per-container change is set/map elements, sent in-process over
//!   NETLINK_NETFILTER as one batch (BATCH_BEGIN, NEWSETELEM/DELSETELEM..., BATCH_END), one
//!   transaction per change, every message ACK-checked.
//! * Deletions first dump the affected set and delete only elements that are there (and,
//!   for published ports, only those still pointing at the given container address), so
//!   they are idempotent and never remove another container's mapping.
//!
//! IPv6 (dual-stack networks) has the same design in its own table, `table ip6 minirun`
//! ([`SKELETON6`], same set names with IPv6 keys), written the first time a dual-stack
//! network is used (an IPv4-only host never gets it). One [`Transaction`] may hold
//! elements of both tables: nf_tables commits a batch across families atomically.
//!
//! Element encoding (as nft does): `ipv4_addr` 4 bytes network order; `inet_proto` 1 byte;
//! `inet_service` 2 bytes network order; `ifname` 16 bytes NUL padded; in a concatenation
//! every field is padded to a multiple of 4 bytes. An interval (the `subnets` set) is a
//! start element plus an end element (first address after the range) flagged
//! NFT_SET_ELEM_INTERVAL_END; like nft, a `0.0.0.0` end element is kept at the bottom.

use std::cell::RefCell;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::nfnl::{self, attr, attr_be32, attr_str, parse_attrs, Attrs, Msg, NfSocket, NlError};
use crate::ports::{PortMapping, Proto};
use crate::subnet::{Ipv4Net, Ipv6Net};
use crate::sysctl::BridgeNfCall;

/// Name of minirun's table (family ip).
pub const TABLE: &str = "minirun";

pub const SET_SUBNETS: &str = "subnets";
pub const SET_BRIDGES: &str = "bridges";
pub const MAP_PUB_ANY: &str = "pub_any";
pub const MAP_PUB_ADDR: &str = "pub_addr";
pub const SET_ISOLATE: &str = "isolate";
/// `table ip6` only: protocol . host port -> the IPv6 gateway `::1` clients appear from.
pub const MAP_LO_SRC: &str = "lo_src";

/// DESIGN.md's skeleton, formatted for nft 1.0.6 (which wants a newline before a closing
/// brace). Static text: nothing is ever interpolated into it.
pub const SKELETON: &str = r#"table ip minirun {
  set subnets  { type ipv4_addr; flags interval; }
  set bridges  { type ifname; }
  map pub_any  { type inet_proto . inet_service : ipv4_addr . inet_service; }
  map pub_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
  set isolate  { type ifname . ifname; }
  chain guard {
    type filter hook prerouting priority raw; policy accept;
    iifname != "lo" ip daddr 127.0.0.0/8 drop
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }
  chain publish {
    dnat ip to ip daddr . meta l4proto . th dport map @pub_addr
    dnat ip to meta l4proto . th dport map @pub_any
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @subnets oifname != @bridges masquerade
    ct status dnat oifname @bridges ip saddr 127.0.0.0/8 masquerade
    ct status dnat oifname @bridges ip saddr @subnets masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct status dnat accept
    iifname . oifname @isolate drop
  }
}
"#;

/// The IPv6 twin of [`SKELETON`] (`table ip6 minirun`): same sets and chains with IPv6
/// keys; `::1` takes the place of 127.0.0.0/8 in the guard.
///
/// Published ports on the host's `::1` need more than IPv4's route_localnet trick, which
/// IPv6 lacks: a reply addressed to `::1` arriving on a bridge is dropped by the routing
/// lookup itself (loopback destinations are only routed from `lo`), before any hook could
/// help. So a connection from `::1` to a published `::1` port never *has* `::1` as its
/// source outside the host's loopback: `loopback_out` (hook output, priority raw, before
/// conntrack) rewrites the source of `::1 -> ::1` packets to a published port into the
/// container network's IPv6 gateway (map `lo_src`: protocol . host port -> gateway, one
/// element per port published on `[::]` or `[::1]`); conntrack, DNAT and routing then see
/// an ordinary host address, the container sees its gateway as the peer (as IPv4's
/// masquerade shows it), and `loopback_in` (hook input, after conntrack's reverse NAT)
/// gives the replies of such connections (`ct original ip6 daddr ::1`) their `::1`
/// destination back, so the client socket gets them. Stateless rewrites of the two
/// addresses only; no proxy, nothing per connection.
pub const SKELETON6: &str = r#"table ip6 minirun {
  set subnets  { type ipv6_addr; flags interval; }
  set bridges  { type ifname; }
  map pub_any  { type inet_proto . inet_service : ipv6_addr . inet_service; }
  map pub_addr { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
  set isolate  { type ifname . ifname; }
  map lo_src   { type inet_proto . inet_service : ipv6_addr; }
  chain guard {
    type filter hook prerouting priority raw; policy accept;
    iifname != "lo" ip6 daddr ::1 drop
  }
  chain loopback_out {
    type filter hook output priority raw; policy accept;
    ip6 saddr ::1 ip6 daddr ::1 ip6 saddr set meta l4proto . th dport map @lo_src
  }
  chain loopback_in {
    type filter hook input priority filter; policy accept;
    ct status dnat ct direction reply ct original ip6 daddr ::1 ip6 daddr set ::1
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    fib daddr type local jump publish
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump publish
  }
  chain publish {
    dnat ip6 to ip6 daddr . meta l4proto . th dport map @pub_addr
    dnat ip6 to meta l4proto . th dport map @pub_any
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip6 saddr @subnets oifname != @bridges masquerade
    ct status dnat oifname @bridges ip6 saddr @subnets masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ct status dnat accept
    iifname . oifname @isolate drop
  }
}
"#;

/// Address family of one of minirun's two tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// `table ip minirun`
    V4,
    /// `table ip6 minirun`
    V6,
}

impl Family {
    fn nfproto(self) -> u8 {
        match self {
            Family::V4 => nfnl::NFPROTO_IPV4,
            Family::V6 => 10,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }
    fn skeleton(self) -> &'static str {
        match self {
            Family::V4 => SKELETON,
            Family::V6 => SKELETON6,
        }
    }
    fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }
}

// nf_tables attribute numbers.
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NFTA_GEN_ID: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NF_INET_FORWARD: u32 = 2;
const NF_DROP: u32 = 0;
const IFNAMSIZ: usize = 16;

/// One set/map element as raw bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Elem {
    key: Vec<u8>,
    data: Option<Vec<u8>>,
    flags: u32,
}

#[derive(Clone, Debug)]
struct SetOp {
    family: Family,
    set: &'static str,
    add: bool,
    excl: bool,
    elems: Vec<Elem>,
}

/// A batch of element additions/deletions committed atomically by [`Firewall::commit`].
#[derive(Clone, Debug, Default)]
pub struct Transaction {
    ops: Vec<SetOp>,
}

fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.truncate(IFNAMSIZ - 1);
    k.resize(IFNAMSIZ, 0);
    k
}

fn proto_port(proto: Proto, port: u16) -> [u8; 8] {
    let p = port.to_be_bytes();
    [proto.ipproto(), 0, 0, 0, p[0], p[1], 0, 0]
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn addr_port(ip: IpAddr, port: u16) -> Vec<u8> {
    let mut v = ip_bytes(ip);
    let p = port.to_be_bytes();
    v.extend_from_slice(&[p[0], p[1], 0, 0]);
    v
}

/// The table of a published element: its host address's family (no host address: IPv4;
/// the IPv6 side of such a mapping is written as `[::]`, see [`PortMapping::v6_side`]).
fn pub_family(m: &PortMapping) -> Family {
    m.host_ip.map(Family::of).unwrap_or(Family::V4)
}

fn pub_elem(m: &PortMapping, ip: IpAddr) -> (&'static str, Elem) {
    let data = Some(addr_port(ip, m.container_port));
    match m.host_ip.filter(|h| !h.is_unspecified()) {
        None => (
            MAP_PUB_ANY,
            Elem {
                key: proto_port(m.proto, m.host_port).to_vec(),
                data,
                flags: 0,
            },
        ),
        Some(h) => {
            let mut key = ip_bytes(h);
            key.extend_from_slice(&proto_port(m.proto, m.host_port));
            (MAP_PUB_ADDR, Elem { key, data, flags: 0 })
        }
    }
}

fn subnet_elems(net: &Ipv4Net, with_floor: bool) -> Vec<Elem> {
    let mut v = Vec::new();
    if with_floor && net.network() != Ipv4Addr::UNSPECIFIED {
        v.push(Elem {
            key: vec![0, 0, 0, 0],
            data: None,
            flags: NFT_SET_ELEM_INTERVAL_END,
        });
    }
    v.push(Elem {
        key: net.network().octets().to_vec(),
        data: None,
        flags: 0,
    });
    let last = u32::from(net.last());
    if last != u32::MAX {
        v.push(Elem {
            key: Ipv4Addr::from(last + 1).octets().to_vec(),
            data: None,
            flags: NFT_SET_ELEM_INTERVAL_END,
        });
    }
    v
}

/// Whether the IPv6 side `m` of a mapping is reachable at the host's `::1`.
fn loopback6_published(m: &PortMapping) -> bool {
    matches!(m.host_ip, Some(IpAddr::V6(a)) if a.is_unspecified() || a.is_loopback())
}

fn v6_bytes(a: Ipv6Addr) -> Vec<u8> {
    a.octets().to_vec()
}

fn subnet6_elems(net: &Ipv6Net, with_floor: bool) -> Vec<Elem> {
    let mut v = Vec::new();
    if with_floor && net.network() != Ipv6Addr::UNSPECIFIED {
        v.push(Elem {
            key: vec![0; 16],
            data: None,
            flags: NFT_SET_ELEM_INTERVAL_END,
        });
    }
    v.push(Elem {
        key: net.network().octets().to_vec(),
        data: None,
        flags: 0,
    });
    let last = u128::from(net.last());
    if last != u128::MAX {
        v.push(Elem {
            key: Ipv6Addr::from(last + 1).octets().to_vec(),
            data: None,
            flags: NFT_SET_ELEM_INTERVAL_END,
        });
    }
    v
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.iter().all(|o| o.elems.is_empty())
    }
    /// Number of elements touched.
    pub fn len(&self) -> usize {
        self.ops.iter().map(|o| o.elems.len()).sum()
    }
    fn push(&mut self, set: &'static str, add: bool, excl: bool, e: Elem) {
        self.push_in(Family::V4, set, add, excl, e)
    }
    fn push_in(&mut self, family: Family, set: &'static str, add: bool, excl: bool, e: Elem) {
        if let Some(last) = self.ops.last_mut() {
            if last.family == family && last.set == set && last.add == add && last.excl == excl {
                if !last.elems.contains(&e) {
                    last.elems.push(e);
                }
                return;
            }
        }
        self.ops.push(SetOp {
            family,
            set,
            add,
            excl,
            elems: vec![e],
        });
    }
    pub fn add_subnet(&mut self, net: Ipv4Net) -> &mut Self {
        for e in subnet_elems(&net, true) {
            self.push(SET_SUBNETS, true, false, e);
        }
        self
    }
    pub fn del_subnet(&mut self, net: Ipv4Net) -> &mut Self {
        for e in subnet_elems(&net, false) {
            self.push(SET_SUBNETS, false, false, e);
        }
        self
    }
    pub fn add_subnet6(&mut self, net: Ipv6Net) -> &mut Self {
        for e in subnet6_elems(&net, true) {
            self.push_in(Family::V6, SET_SUBNETS, true, false, e);
        }
        self
    }
    pub fn del_subnet6(&mut self, net: Ipv6Net) -> &mut Self {
        for e in subnet6_elems(&net, false) {
            self.push_in(Family::V6, SET_SUBNETS, false, false, e);
        }
        self
    }
    /// [`Transaction::add_bridge`] in `family`'s table.
    pub fn add_bridge_in(&mut self, family: Family, bridge: &str) -> &mut Self {
        let e = Elem {
            key: ifname_key(bridge),
            data: None,
            flags: 0,
        };
        self.push_in(family, SET_BRIDGES, true, false, e);
        self
    }
    pub fn del_bridge_in(&mut self, family: Family, bridge: &str) -> &mut Self {
        let e = Elem {
            key: ifname_key(bridge),
            data: None,
            flags: 0,
        };
        self.push_in(family, SET_BRIDGES, false, false, e);
        self
    }
    /// [`Transaction::add_isolate`] in `family`'s table.
    pub fn add_isolate_in(&mut self, family: Family, a: &str, b: &str) -> &mut Self {
        let e = Elem {
            key: Self::isolate_key(a, b),
            data: None,
            flags: 0,
        };
        self.push_in(family, SET_ISOLATE, true, false, e);
        self
    }
    pub fn del_isolate_in(&mut self, family: Family, a: &str, b: &str) -> &mut Self {
        let e = Elem {
            key: Self::isolate_key(a, b),
            data: None,
            flags: 0,
        };
        self.push_in(family, SET_ISOLATE, false, false, e);
        self
    }
    /// Publishes one element: `m` (as [`PortMapping::elements`] gives it) to `ip`, in the
    /// table of `ip`'s family. Exclusive like [`Transaction::add_published`].
    pub fn add_published_to(&mut self, m: &PortMapping, ip: IpAddr) -> &mut Self {
        let (set, e) = pub_elem(m, ip);
        self.push_in(Family::of(ip), set, true, true, e);
        self
    }
    /// A port published on `[::]` or `[::1]` (`m`, its IPv6 side) is reachable from the
    /// host's `::1`: clients there appear from `gateway6` (see [`SKELETON6`]).
    pub fn add_loopback6(&mut self, m: &PortMapping, gateway6: Ipv6Addr) -> &mut Self {
        if loopback6_published(m) {
            let e = Elem {
                key: proto_port(m.proto, m.host_port).to_vec(),
                data: Some(v6_bytes(gateway6)),
                flags: 0,
            };
            self.push_in(Family::V6, MAP_LO_SRC, true, true, e);
        }
        self
    }
    pub fn del_loopback6(&mut self, proto: Proto, host_port: u16) -> &mut Self {
        let e = Elem {
            key: proto_port(proto, host_port).to_vec(),
            data: None,
            flags: 0,
        };
        self.push_in(Family::V6, MAP_LO_SRC, false, false, e);
        self
    }
    pub fn add_bridge(&mut self, bridge: &str) -> &mut Self {
        self.push(
            SET_BRIDGES,
            true,
            false,
            Elem {
                key: ifname_key(bridge),
                data: None,
                flags: 0,
            },
        );
        self
    }
    pub fn del_bridge(&mut self, bridge: &str) -> &mut Self {
        self.push(
            SET_BRIDGES,
            false,
            false,
            Elem {
                key: ifname_key(bridge),
                data: None,
                flags: 0,
            },
        );
        self
    }
    fn isolate_key(a: &str, b: &str) -> Vec<u8> {
        let mut k = ifname_key(a);
        k.extend_from_slice(&ifname_key(b));
        k
    }
    /// Traffic from bridge `a` to bridge `b` is dropped (unless it is a published port).
    pub fn add_isolate(&mut self, a: &str, b: &str) -> &mut Self {
        self.push(
            SET_ISOLATE,
            true,
            false,
            Elem {
                key: Self::isolate_key(a, b),
                data: None,
                flags: 0,
            },
        );
        self
    }
    pub fn del_isolate(&mut self, a: &str, b: &str) -> &mut Self {
        self.push(
            SET_ISOLATE,
            false,
            false,
            Elem {
                key: Self::isolate_key(a, b),
                data: None,
                flags: 0,
            },
        );
        self
    }
    /// Publishes `m` to container address `ip`. Added exclusively: if the host side is
    /// already published the whole transaction fails (EEXIST).
    pub fn add_published(&mut self, m: &PortMapping, ip: Ipv4Addr) -> &mut Self {
        self.add_published_to(m, IpAddr::V4(ip))
    }
    /// Deletes the element for `m`'s host side (whatever it points at); the table is the
    /// host address's family (IPv4 when there is none).
    pub fn del_published(&mut self, m: &PortMapping) -> &mut Self {
        let fam = pub_family(m);
        let (set, mut e) = pub_elem(m, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        e.data = None;
        self.push_in(fam, set, false, false, e);
        self
    }
    /// Appends all operations of `other`.
    pub fn extend(&mut self, other: Transaction) -> &mut Self {
        for op in other.ops {
            for e in op.elems {
                self.push_in(op.family, op.set, op.add, op.excl, e);
            }
        }
        self
    }

    fn messages(&self) -> Vec<Msg> {
        self.ops
            .iter()
            .filter(|o| !o.elems.is_empty())
            .map(|o| {
                let mut list = Attrs::new();
                for e in &o.elems {
                    let mut el = Attrs::new();
                    el.nest(NFTA_SET_ELEM_KEY, Attrs::new().put(NFTA_DATA_VALUE, &e.key));
                    if let Some(d) = &e.data {
                        el.nest(NFTA_SET_ELEM_DATA, Attrs::new().put(NFTA_DATA_VALUE, d));
                    }
                    if e.flags != 0 {
                        el.put_be32(NFTA_SET_ELEM_FLAGS, e.flags);
                    }
                    list.nest(NFTA_LIST_ELEM, &el);
                }
                let mut a = Attrs::new();
                a.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
                    .put_str(NFTA_SET_ELEM_LIST_SET, o.set);
                a.nest(NFTA_SET_ELEM_LIST_ELEMENTS, &list);
                let (ty, flags) = if o.add {
                    (
                        nfnl::NFT_MSG_NEWSETELEM,
                        nfnl::NLM_F_CREATE | if o.excl { nfnl::NLM_F_EXCL } else { 0 },
                    )
                } else {
                    (nfnl::NFT_MSG_DELSETELEM, 0)
                };
                Msg {
                    ty,
                    flags,
                    family: o.family.nfproto(),
                    attrs: a,
                }
            })
            .collect()
    }

    fn describe(&self, index: Option<usize>) -> (String, &'static str) {
        let live: Vec<&SetOp> = self.ops.iter().filter(|o| !o.elems.is_empty()).collect();
        match index.and_then(|i| live.get(i)) {
            Some(o) => (
                match o.family {
                    Family::V4 => o.set.to_string(),
                    Family::V6 => format!("ip6 {}", o.set),
                },
                if o.add { "add elements" } else { "delete elements" },
            ),
            None => ("*".to_string(), "commit"),
        }
    }
}

/// A chain of another table whose forward hook drops by default (so minirun's accepts do
/// not help: a packet must be accepted by every base chain).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignDrop {
    /// `ip`, `inet`, `bridge`, ...
    pub family: String,
    pub table: String,
    pub chain: String,
}

impl std::fmt::Display for ForeignDrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "table {} {} chain {} (hook forward, policy drop)",
            self.family, self.table, self.chain
        )
    }
}

fn family_name(f: u8) -> String {
    match f {
        1 => "inet".into(),
        2 => "ip".into(),
        3 => "arp".into(),
        5 => "netdev".into(),
        7 => "bridge".into(),
        10 => "ip6".into(),
        n => format!("family{n}"),
    }
}

/// Handle on the nf_tables netlink socket of the calling thread's network namespace.
///
/// The socket is kept for the life of the process (one per network namespace) instead of
/// being closed on drop: closing a NETLINK_NETFILTER socket makes the kernel flush
/// nf_tables' pending destroy work, which after any element *deletion* (by anyone) waits
/// for an RCU grace period, 10-30 ms here. Kept open, that wait overlaps other work and is
/// paid at most once, at process exit. [`Firewall::close_cached`] closes them.
pub struct Firewall {
    sock: RefCell<Option<NfSocket>>,
    netns: u64,
}

static CACHE: std::sync::Mutex<Vec<(u64, NfSocket)>> = std::sync::Mutex::new(Vec::new());

fn current_netns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| m.ino())
        .unwrap_or(0)
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if self.netns == 0 {
            return;
        }
        let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if !c.iter().any(|(ns, _)| *ns == self.netns) {
            if let Some(s) = self.sock.get_mut().take() {
                c.push((self.netns, s));
            }
        }
    }
}

fn nft_err(set: &str, op: &'static str, e: NlError) -> Error {
    Error::Nftables {
        set: set.to_string(),
        op,
        errno: Some(e.errno),
        reason: e.to_string(),
    }
}

/// An [`Error::Firewall`] about `what` that the kernel refused with `e`.
fn fw_err(what: impl std::fmt::Display, e: NlError) -> Error {
    Error::Firewall {
        reason: format!("{what}: {e}"),
        errno: Some(e.errno),
    }
}

impl Firewall {
    /// Opens the netlink socket (in the calling thread's network namespace).
    pub fn open() -> Result<Firewall> {
        let netns = current_netns();
        let cached = {
            let mut c = CACHE.lock().unwrap_or_else(|e| e.into_inner());
            c.iter()
                .position(|(ns, _)| *ns == netns && netns != 0)
                .map(|i| c.swap_remove(i).1)
        };
        let s = match cached {
            Some(mut s) => {
                s.drain();
                s
            }
            None => NfSocket::open().map_err(|e| Error::Firewall {
                reason: format!("cannot open NETLINK_NETFILTER socket: {e}"),
                errno: e.raw_os_error(),
            })?,
        };
        Ok(Firewall {
            sock: RefCell::new(Some(s)),
            netns,
        })
    }

    fn sock(&self) -> std::cell::RefMut<'_, NfSocket> {
        std::cell::RefMut::map(self.sock.borrow_mut(), |s| {
            s.as_mut().expect("socket present until drop")
        })
    }

    /// Closes the sockets kept by [`Firewall`] handles of this process (may wait for the
    /// kernel, see the type's doc).
    pub fn close_cached() {
        CACHE.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// For a process about to exit: lets a child close the cached sockets
    /// once this process is gone, so the kernel's wait on close (see the
    /// type's doc) is not paid by the caller - a foreground `run -p` would
    /// otherwise return 10-30 ms later than it could. The child keeps
    /// nothing else open (no stdio), so a reader of our output sees EOF at
    /// once; it exits when this process does.
    pub fn close_cached_after_exit() {
        let sockets = std::mem::take(&mut *CACHE.lock().unwrap_or_else(|e| e.into_inner()));
        if sockets.is_empty() {
            return;
        }
        let Ok((rd, wr)) = nix::unistd::pipe() else {
            return;
        };
        // Every descriptor the child keeps, sorted: the sockets and the pipe.
        let mut keep: Vec<i32> = sockets.iter().map(|(_, s)| s.raw_fd()).collect();
        keep.push(rd.as_raw_fd());
        keep.sort_unstable();
        // SAFETY: the child only calls close_range, read and _exit, all
        // async-signal-safe, on data prepared before the fork.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => unsafe {
                let mut lo = 0u32;
                for &fd in &keep {
                    if (fd as u32) > lo {
                        libc::syscall(libc::SYS_close_range, lo, fd as u32 - 1, 0);
                    }
                    lo = fd as u32 + 1;
                }
                libc::syscall(libc::SYS_close_range, lo, u32::MAX, 0);
                let mut b = 0u8;
                while libc::read(rd.as_raw_fd(), (&mut b as *mut u8).cast(), 1) > 0 {}
                libc::_exit(0);
            },
            Ok(nix::unistd::ForkResult::Parent { .. }) => {
                // The write end closes when this process exits, waking the child.
                std::mem::forget(wr);
                drop(rd);
                drop(sockets); // not the last reference: cheap
            }
            Err(_) => drop(sockets),
        }
    }

    /// Whether `table ip minirun` exists (one GETTABLE round trip).
    pub fn table_exists(&self) -> Result<bool> {
        self.table_exists_in(Family::V4)
    }

    /// Whether minirun's table of `family` exists.
    pub fn table_exists_in(&self, family: Family) -> Result<bool> {
        let mut a = Attrs::new();
        a.put_str(NFTA_TABLE_NAME, TABLE);
        match self.sock().request(nfnl::NFT_MSG_GETTABLE, family.nfproto(), &a) {
            Ok(_) => Ok(true),
            Err(e) if e.errno == libc::ENOENT => Ok(false),
            Err(e) => Err(fw_err(format_args!("cannot query table {} {TABLE}", family.name()), e)),
        }
    }

    /// [`Firewall::ensure_skeleton`] for `table ip6 minirun` ([`SKELETON6`]).
    pub fn ensure_skeleton6(&self) -> Result<bool> {
        self.ensure_skeleton_in(Family::V6)
    }

    /// Writes the skeleton when the table is absent. Returns whether it was written now.
    /// Uses `nft -f -` (one transaction starting with `create table`, which fails if another
    /// minirun created the table meanwhile; that case is success).
    pub fn ensure_skeleton(&self) -> Result<bool> {
        self.ensure_skeleton_in(Family::V4)
    }

    fn ensure_skeleton_in(&self, family: Family) -> Result<bool> {
        let fam = family.name();
        if self.table_exists_in(family)? {
            return Ok(false);
        }
        let script = format!("create table {fam} {TABLE}\n{}", family.skeleton());
        let mut child = Command::new("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::firewall(format!("cannot run nft to write table {fam} {TABLE}: {e}")))?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .map_err(|e| Error::firewall(format!("writing table {fam} {TABLE} to nft: {e}")))?;
        let out = child
            .wait_with_output()
            .map_err(|e| Error::firewall(format!("waiting for nft: {e}")))?;
        if out.status.success() {
            return Ok(true);
        }
        if self.table_exists_in(family)? {
            return Ok(false); // lost a race with another minirun: fine
        }
        Err(Error::firewall(format!(
            "nft failed to create table {fam} {TABLE}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }

    /// Deletes both tables (uninstall / tests). Absent is fine.
    pub fn delete_table(&self) -> Result<()> {
        for family in [Family::V4, Family::V6] {
            let mut a = Attrs::new();
            a.put_str(NFTA_TABLE_NAME, TABLE);
            let m = Msg {
                ty: nfnl::NFT_MSG_DELTABLE,
                flags: 0,
                family: family.nfproto(),
                attrs: a,
            };
            match self.sock().batch(&[m]) {
                Ok(()) => {}
                Err(e) if e.errno == libc::ENOENT => {}
                Err(e) => return Err(fw_err(format_args!("cannot delete table {} {TABLE}", family.name()), e)),
            }
        }
        Ok(())
    }

    /// Commits `tx` as one nf_tables transaction (all or nothing).
    pub fn commit(&self, tx: &Transaction) -> Result<()> {
        if tx.is_empty() {
            return Ok(());
        }
        let msgs = tx.messages();
        self.sock().batch(&msgs).map_err(|e| {
            let (set, op) = tx.describe(e.index);
            nft_err(&set, op, e)
        })
    }

    /// The ruleset generation id; every committed transaction increases it by one.
    pub fn generation(&self) -> Result<u32> {
        let r = self
            .sock()
            .request(nfnl::NFT_MSG_GETGEN, nfnl::NFPROTO_UNSPEC, &Attrs::new())
            .map_err(|e| fw_err("cannot read generation", e))?;
        r.iter()
            .find_map(|m| attr_be32(&parse_attrs(&m.payload), NFTA_GEN_ID))
            .ok_or_else(|| Error::firewall("no generation id in reply"))
    }

    /// Raw elements of a set: (key, data, flags).
    fn dump_set(&self, set: &'static str) -> Result<Vec<Elem>> {
        self.dump_set_in(Family::V4, set)
    }

    fn dump_set_in(&self, family: Family, set: &'static str) -> Result<Vec<Elem>> {
        let mut a = Attrs::new();
        a.put_str(NFTA_SET_ELEM_LIST_TABLE, TABLE)
            .put_str(NFTA_SET_ELEM_LIST_SET, set);
        let replies = match self.sock().dump(nfnl::NFT_MSG_GETSETELEM, family.nfproto(), &a) {
            Ok(r) => r,
            Err(e) if e.errno == libc::ENOENT => return Ok(Vec::new()),
            Err(e) => return Err(nft_err(set, "list elements", e)),
        };
        let mut out = Vec::new();
        for r in replies {
            let top = parse_attrs(&r.payload);
            let Some(list) = attr(&top, NFTA_SET_ELEM_LIST_ELEMENTS) else {
                continue;
            };
            for (ty, el) in parse_attrs(list) {
                if ty != NFTA_LIST_ELEM {
                    continue;
                }
                let ea = parse_attrs(el);
                let val = |t| {
                    attr(&ea, t)
                        .and_then(|n| attr(&parse_attrs(n), NFTA_DATA_VALUE))
                        .map(|v| v.to_vec())
                };
                let Some(key) = val(NFTA_SET_ELEM_KEY) else {
                    continue;
                };
                out.push(Elem {
                    key,
                    data: val(NFTA_SET_ELEM_DATA),
                    flags: attr_be32(&ea, NFTA_SET_ELEM_FLAGS).unwrap_or(0),
                });
            }
        }
        Ok(out)
    }

    /// Names in the `bridges` set.
    pub fn list_bridges(&self) -> Result<Vec<String>> {
        self.list_bridges_in(Family::V4)
    }

    /// Names in the `bridges` set of `family`'s table (none when the table is absent).
    pub fn list_bridges_in(&self, family: Family) -> Result<Vec<String>> {
        Ok(self
            .dump_set_in(family, SET_BRIDGES)?
            .iter()
            .map(|e| ifname_of(&e.key))
            .collect())
    }

    /// Pairs in the `isolate` set.
    pub fn list_isolate(&self) -> Result<Vec<(String, String)>> {
        self.list_isolate_in(Family::V4)
    }

    /// Pairs in the `isolate` set of `family`'s table.
    pub fn list_isolate_in(&self, family: Family) -> Result<Vec<(String, String)>> {
        Ok(self
            .dump_set_in(family, SET_ISOLATE)?
            .iter()
            .filter(|e| e.key.len() == 2 * IFNAMSIZ)
            .map(|e| (ifname_of(&e.key[..IFNAMSIZ]), ifname_of(&e.key[IFNAMSIZ..])))
            .collect())
    }

    /// Intervals in the `subnets` set, as prefixes (non-prefix ranges are split).
    pub fn list_subnets(&self) -> Result<Vec<Ipv4Net>> {
        let mut pts: Vec<(u32, bool)> = self
            .dump_set(SET_SUBNETS)?
            .iter()
            .filter(|e| e.key.len() == 4)
            .map(|e| {
                (
                    u32::from_be_bytes(e.key[..4].try_into().unwrap()),
                    e.flags & NFT_SET_ELEM_INTERVAL_END != 0,
                )
            })
            .collect();
        pts.sort();
        let mut out = Vec::new();
        for (i, (start, end)) in pts.iter().enumerate() {
            if *end {
                continue;
            }
            let stop = pts[i + 1..]
                .iter()
                .find(|(k, e)| *e && k > start)
                .map(|(k, _)| *k as u64)
                .unwrap_or(1 << 32);
            range_to_prefixes(*start as u64, stop, &mut out);
        }
        Ok(out)
    }

    /// Everything published in both tables: (mapping, container address). An element of
    /// `table ip6`'s `pub_any` reads as host address `[::]`.
    pub fn list_published(&self) -> Result<Vec<(PortMapping, IpAddr)>> {
        let mut out = Vec::new();
        for family in [Family::V4, Family::V6] {
            for (set, with_ip) in [(MAP_PUB_ANY, false), (MAP_PUB_ADDR, true)] {
                for e in self.dump_set_in(family, set)? {
                    if let Some(x) = decode_pub(family, &e, with_ip) {
                        out.push(x);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Intervals in `table ip6`'s `subnets` set, as prefixes (ranges that are no prefix
    /// are left out: minirun only ever adds prefixes).
    pub fn list_subnets6(&self) -> Result<Vec<Ipv6Net>> {
        let mut pts: Vec<(u128, bool)> = self
            .dump_set_in(Family::V6, SET_SUBNETS)?
            .iter()
            .filter(|e| e.key.len() == 16)
            .map(|e| {
                (
                    u128::from_be_bytes(e.key[..16].try_into().unwrap()),
                    e.flags & NFT_SET_ELEM_INTERVAL_END != 0,
                )
            })
            .collect();
        pts.sort();
        let mut out = Vec::new();
        for (i, (start, end)) in pts.iter().enumerate() {
            if *end {
                continue;
            }
            let stop = pts[i + 1..].iter().find(|(k, e)| *e && k > start).map(|(k, _)| *k);
            let size = stop.map(|s| s - start).unwrap_or(0u128.wrapping_sub(*start));
            if size.is_power_of_two() && start & (size - 1) == 0 {
                let len = 128 - size.trailing_zeros() as u8;
                out.extend(Ipv6Net::new(Ipv6Addr::from(*start), len));
            }
        }
        Ok(out)
    }

    /// [`Firewall::network_tx`] for the IPv6 side of a dual-stack network (`table ip6`,
    /// which must exist: [`Firewall::ensure_skeleton6`]).
    pub fn network_tx6(&self, bridge: &str, subnet: Ipv6Net, icc: bool) -> Result<Transaction> {
        let bridges = self.list_bridges_in(Family::V6)?;
        let pairs = self.list_isolate_in(Family::V6)?;
        let mut tx = Transaction::new();
        let present = bridges.iter().any(|b| b == bridge);
        if !present || !self.list_subnets6()?.contains(&subnet) {
            tx.add_subnet6(subnet);
        }
        if !present {
            tx.add_bridge_in(Family::V6, bridge);
        }
        let has = |a: &str, b: &str| pairs.iter().any(|(x, y)| x == a && y == b);
        for other in bridges.iter().filter(|b| *b != bridge) {
            if !has(bridge, other) {
                tx.add_isolate_in(Family::V6, bridge, other);
            }
            if !has(other, bridge) {
                tx.add_isolate_in(Family::V6, other, bridge);
            }
        }
        match (icc, has(bridge, bridge)) {
            (false, false) => {
                tx.add_isolate_in(Family::V6, bridge, bridge);
            }
            (true, true) => {
                tx.del_isolate_in(Family::V6, bridge, bridge);
            }
            _ => {}
        }
        Ok(tx)
    }

    /// Elements that make `bridge`/`subnet` a minirun network: the subnet, the bridge, and
    /// isolation pairs with every other bridge in the `bridges` set; `(b . b)` when `icc` is
    /// false. Only what is missing (empty when everything is there). Costs three dumps.
    pub fn network_tx(&self, bridge: &str, subnet: Ipv4Net, icc: bool) -> Result<Transaction> {
        let bridges = self.list_bridges()?;
        let pairs = self.list_isolate()?;
        let mut tx = Transaction::new();
        let present = bridges.iter().any(|b| b == bridge);
        if !present || !self.list_subnets()?.contains(&subnet) {
            tx.add_subnet(subnet);
        }
        if !present {
            tx.add_bridge(bridge);
        }
        let has = |a: &str, b: &str| pairs.iter().any(|(x, y)| x == a && y == b);
        for other in bridges.iter().filter(|b| *b != bridge) {
            if !has(bridge, other) {
                tx.add_isolate(bridge, other);
            }
            if !has(other, bridge) {
                tx.add_isolate(other, bridge);
            }
        }
        match (icc, has(bridge, bridge)) {
            (false, false) => {
                tx.add_isolate(bridge, bridge);
            }
            (true, true) => {
                tx.del_isolate(bridge, bridge);
            }
            _ => {}
        }
        Ok(tx)
    }

    /// Whether `tx` adds `bridge` to the `bridges` set.
    pub fn adds_bridge(tx: &Transaction, bridge: &str) -> bool {
        let key = ifname_key(bridge);
        tx.ops
            .iter()
            .any(|o| o.set == SET_BRIDGES && o.add && o.elems.iter().any(|e| e.key == key))
    }

    /// Elements of `lo_src`: (protocol, host port, gateway).
    pub fn list_loopback6(&self) -> Result<Vec<(Proto, u16, Ipv6Addr)>> {
        Ok(self
            .dump_set_in(Family::V6, MAP_LO_SRC)?
            .iter()
            .filter_map(|e| {
                let proto = Proto::from_ipproto(*e.key.first()?)?;
                let port = u16::from_be_bytes([*e.key.get(4)?, *e.key.get(5)?]);
                let gw = <[u8; 16]>::try_from(e.data.as_deref()?.get(..16)?).ok()?;
                Some((proto, port, Ipv6Addr::from(gw)))
            })
            .collect())
    }

    /// Removes the IPv6 side of a dual-stack network (its `table ip6` elements: subnet,
    /// bridge, isolation pairs, ports published into the subnet), one transaction.
    pub fn remove_network6(&self, bridge: &str, subnet: Ipv6Net) -> Result<()> {
        if !self.table_exists_in(Family::V6)? {
            return Ok(());
        }
        let mut tx = Transaction::new();
        for (m, ip) in self.list_published()? {
            if matches!(ip, IpAddr::V6(a) if subnet.contains(a)) {
                tx.del_published(&m);
            }
        }
        for (proto, port, gw) in self.list_loopback6()? {
            if subnet.contains(gw) {
                tx.del_loopback6(proto, port);
            }
        }
        for (a, b) in self.list_isolate_in(Family::V6)? {
            if a == bridge || b == bridge {
                tx.del_isolate_in(Family::V6, &a, &b);
            }
        }
        if self.list_bridges_in(Family::V6)?.iter().any(|b| b == bridge) {
            tx.del_bridge_in(Family::V6, bridge);
        }
        if self.list_subnets6()?.contains(&subnet) {
            tx.del_subnet6(subnet);
        }
        self.commit(&tx)
    }

    /// The deletions that undo the publishing of `ports` for a container with addresses
    /// `ip4`/`ip6` (both families): only elements still pointing at that container.
    pub fn unpublish_dual_tx(
        &self,
        ports: &[PortMapping],
        ip4: Option<Ipv4Addr>,
        ip6: Option<Ipv6Addr>,
    ) -> Result<Transaction> {
        let mut tx = Transaction::new();
        if ports.is_empty() {
            return Ok(tx);
        }
        let mine: Vec<(PortMapping, IpAddr)> = ports.iter().flat_map(|m| m.elements(ip4, ip6)).collect();
        let mut loopback: Vec<(Proto, u16)> = Vec::new();
        for x in self.list_published()? {
            if mine.contains(&x) {
                tx.del_published(&x.0);
                if loopback6_published(&x.0) {
                    loopback.push((x.0.proto, x.0.host_port));
                }
            }
        }
        if !loopback.is_empty() {
            for (proto, port, _) in self.list_loopback6()? {
                if loopback.contains(&(proto, port)) {
                    tx.del_loopback6(proto, port);
                }
            }
        }
        Ok(tx)
    }

    /// [`Firewall::unpublish`] for both families.
    pub fn unpublish_dual(&self, ports: &[PortMapping], ip4: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>) -> Result<()> {
        for attempt in 0..3 {
            let tx = self.unpublish_dual_tx(ports, ip4, ip6)?;
            match self.commit(&tx) {
                Err(e @ Error::Nftables { .. }) if attempt < 2 && e.errno() == Some(libc::ENOENT) => continue,
                r => return r,
            }
        }
        Ok(())
    }

    /// Adds a network's elements (idempotent; one transaction).
    pub fn add_network(&self, bridge: &str, subnet: Ipv4Net) -> Result<()> {
        self.add_network_icc(bridge, subnet, true)
    }

    /// [`Firewall::add_network`] with `--icc=false` support (needs bridge-nf-call-iptables).
    pub fn add_network_icc(&self, bridge: &str, subnet: Ipv4Net, icc: bool) -> Result<()> {
        let tx = self.network_tx(bridge, subnet, icc)?;
        self.commit(&tx)?;
        if Self::adds_bridge(&tx, bridge) {
            // Two networks added at the same time may each have missed the other's bridge:
            // the later of the two sees the earlier now and adds the missing pairs.
            self.commit(&self.network_tx(bridge, subnet, icc)?)?;
        }
        Ok(())
    }

    /// Removes a network's elements: its subnet, its bridge, every isolation pair naming
    /// it and every published port into the subnet (one transaction; absent elements are
    /// skipped).
    pub fn remove_network(&self, bridge: &str, subnet: Ipv4Net) -> Result<()> {
        let mut tx = Transaction::new();
        for (m, ip) in self.list_published()? {
            if matches!(ip, IpAddr::V4(a) if subnet.contains(a)) {
                tx.del_published(&m);
            }
        }
        for (a, b) in self.list_isolate()? {
            if a == bridge || b == bridge {
                tx.del_isolate(&a, &b);
            }
        }
        if self.list_bridges()?.iter().any(|b| b == bridge) {
            tx.del_bridge(bridge);
        }
        if self.list_subnets()?.contains(&subnet) {
            tx.del_subnet(subnet);
        }
        self.commit(&tx)
    }

    /// Publishes all `ports` to `ip` in one transaction. Fails as a whole (nothing added)
    /// if any host side is already published.
    pub fn publish(&self, ports: &[PortMapping], ip: Ipv4Addr) -> Result<()> {
        let mut tx = Transaction::new();
        for p in ports {
            tx.add_published(p, ip);
        }
        self.commit(&tx).map_err(|e| publish_error(e, ports))
    }

    /// The deletions that undo [`Firewall::publish`]: only elements still pointing at `ip`
    /// with the same container port.
    pub fn unpublish_tx(&self, ports: &[PortMapping], ip: Ipv4Addr) -> Result<Transaction> {
        let mut tx = Transaction::new();
        if ports.is_empty() {
            return Ok(tx);
        }
        for (m, to) in self.list_published()? {
            if to == IpAddr::V4(ip) && ports.contains(&m) {
                tx.del_published(&m);
            }
        }
        Ok(tx)
    }

    /// Removes what [`Firewall::publish`] added, in one transaction; elements already gone
    /// (or now owned by another container) are left alone.
    pub fn unpublish(&self, ports: &[PortMapping], ip: Ipv4Addr) -> Result<()> {
        for attempt in 0..3 {
            let tx = self.unpublish_tx(ports, ip)?;
            match self.commit(&tx) {
                // An element vanished between the dump and the commit (another detach).
                Err(e @ Error::Nftables { .. }) if attempt < 2 && e.errno() == Some(libc::ENOENT) => continue,
                r => return r,
            }
        }
        Ok(())
    }

    /// Chains of *other* tables hooked at forward with policy drop (ip, ip6, inet, bridge
    /// families). minirun cannot override those: report, don't fight.
    pub fn foreign_forward_drops(&self) -> Result<Vec<ForeignDrop>> {
        let replies = self
            .sock()
            .dump(nfnl::NFT_MSG_GETCHAIN, nfnl::NFPROTO_UNSPEC, &Attrs::new())
            .map_err(|e| fw_err("cannot list chains", e))?;
        let mut out = Vec::new();
        for r in replies {
            if !matches!(r.family, 1 | 2 | 7 | 10) {
                continue;
            }
            let a = parse_attrs(&r.payload);
            let table = attr_str(&a, NFTA_CHAIN_TABLE).unwrap_or_default();
            if matches!(r.family, 2 | 10) && table == TABLE {
                continue;
            }
            let Some(hook) = attr(&a, NFTA_CHAIN_HOOK) else {
                continue;
            };
            let hooknum = attr_be32(&parse_attrs(hook), NFTA_HOOK_HOOKNUM);
            let policy = attr_be32(&a, NFTA_CHAIN_POLICY);
            if hooknum == Some(NF_INET_FORWARD) && policy == Some(NF_DROP) {
                out.push(ForeignDrop {
                    family: family_name(r.family),
                    table,
                    chain: attr_str(&a, NFTA_CHAIN_NAME).unwrap_or_default(),
                });
            }
        }
        Ok(out)
    }
}

fn publish_error(e: Error, ports: &[PortMapping]) -> Error {
    match e {
        e @ Error::Nftables { .. } if e.errno() == Some(libc::EEXIST) => Error::PortUnavailable {
            spec: ports.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", "),
            reason: "a host port is already published (by another container)".into(),
        },
        e => e,
    }
}

/// Whether bridged IPv4 traffic passes the ip forward hook here
/// (`net.bridge.bridge-nf-call-iptables`); `--icc=false` needs [`BridgeNfCall::Enabled`].
pub fn check_bridge_nf_call_iptables() -> BridgeNfCall {
    crate::sysctl::bridge_nf_call_iptables()
}

/// Legacy (x_tables) iptables filter table present in the caller's namespace: its FORWARD
/// policy cannot be read without iptables' own protocol, so it is only reported.
pub fn legacy_iptables_filter_present() -> bool {
    std::fs::read_to_string("/proc/thread-self/net/ip_tables_names")
        .map(|s| s.lines().any(|l| l.trim() == "filter"))
        .unwrap_or(false)
}

fn ifname_of(b: &[u8]) -> String {
    String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(&[])).into_owned()
}

fn ip_from(family: Family, b: &[u8]) -> Option<IpAddr> {
    match family {
        Family::V4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(..4)?).ok()?))),
        Family::V6 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(..16)?).ok()?))),
    }
}

fn decode_pub(family: Family, e: &Elem, with_ip: bool) -> Option<(PortMapping, IpAddr)> {
    let alen = match family {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    let (host_ip, k) = if with_ip {
        if e.key.len() != alen + 8 {
            return None;
        }
        (Some(ip_from(family, &e.key)?), &e.key[alen..])
    } else if family == Family::V6 {
        (Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)), &e.key[..])
    } else {
        (None, &e.key[..])
    };
    if k.len() != 8 {
        return None;
    }
    let proto = Proto::from_ipproto(k[0])?;
    let host_port = u16::from_be_bytes([k[4], k[5]]);
    let d = e.data.as_ref()?;
    if d.len() != alen + 4 {
        return None;
    }
    let ip = ip_from(family, d)?;
    let container_port = u16::from_be_bytes([d[alen], d[alen + 1]]);
    Some((
        PortMapping {
            host_ip,
            host_port,
            container_port,
            proto,
        },
        ip,
    ))
}

/// Splits [start, stop) into maximal aligned prefixes.
fn range_to_prefixes(mut start: u64, stop: u64, out: &mut Vec<Ipv4Net>) {
    while start < stop {
        let mut len = 32u32;
        while len > 0 {
            let size = 1u64 << (32 - (len - 1));
            if start & (size - 1) != 0 || start + size > stop {
                break;
            }
            len -= 1;
        }
        out.push(Ipv4Net::new(Ipv4Addr::from(start as u32), len as u8).unwrap());
        start += 1u64 << (32 - len);
    }
}

#[cfg(test)]
mod tests;
