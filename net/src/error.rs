//! One error type for the crate. Every variant names the object it is about
//! (interface, network, subnet, container id, port spec, nftables set, path).
//!
//! A variant with a `#[source]` does not repeat it in its message: print the whole chain
//! (e.g. anyhow's `{:#}`, or [`chain`]) to see the cause. Kernel errors keep their errno
//! ([`Error::errno`]): match on that, never on message text.

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::subnet::Ipv4Net;
use crate::sysctl::BridgeNfCall;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid network mode {0:?}: expected host, none, bridge, container:<id> or a network name")]
    InvalidMode(String),

    #[error("invalid port spec {spec:?}: {reason}")]
    InvalidPortSpec { spec: String, reason: String },

    #[error("port {spec}: {reason}")]
    PortUnavailable { spec: String, reason: String },

    #[error("invalid container id {0:?}: use 1-1024 letters, digits, _ + - and . (not first)")]
    InvalidContainerId(String),

    #[error("invalid network name {0:?}: must be 1-64 characters of [A-Za-z0-9_.-]")]
    InvalidNetworkName(String),

    #[error("network {0:?} not found")]
    NetworkNotFound(String),

    #[error("network {network:?}: {reason}")]
    Network { network: String, reason: String },

    #[error("network {network:?}: no free address left in subnet {subnet}")]
    SubnetExhausted { network: String, subnet: Ipv4Net },

    #[error("no free subnet for network {network:?}: every candidate overlaps a route or another network")]
    NoFreeSubnet { network: String },

    #[error("invalid subnet {0:?}: expected a.b.c.d/len with len 8-30")]
    InvalidSubnet(String),

    #[error("container {container_id}: {reason}")]
    Container { container_id: String, reason: String },

    #[error("interface {ifname}: {op}")]
    Netlink {
        ifname: String,
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },

    #[error("interface {ifname}: {reason}")]
    Link { ifname: String, reason: String },

    #[error("network namespace {path}: {op}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    /// A set/map element transaction or dump failed; `errno` is the kernel's (positive).
    #[error("nftables set {set} in table ip minirun: {op}: {reason}")]
    Nftables {
        set: String,
        op: &'static str,
        errno: Option<i32>,
        reason: String,
    },

    /// Anything else about the nftables table (socket, table, chains, `nft`); `errno` is
    /// the kernel's when it answered with one.
    #[error("nftables: {reason}")]
    Firewall { reason: String, errno: Option<i32> },

    /// `--icc=false` needs bridged IPv4 traffic to pass the ip family's forward hook, which
    /// it does not here ([`crate::sysctl::bridge_nf_call_iptables`] is `state`).
    #[error(
        "--icc=false needs bridged traffic to pass the ip forward hook, but {} is not 1 \
         (load br_netfilter and set net.bridge.bridge-nf-call-iptables=1)",
        crate::sysctl::BRIDGE_NF_CALL_IPTABLES
    )]
    IccUnavailable { state: BridgeNfCall },
    /// The IPv6 twin of [`Error::IccUnavailable`], for a dual-stack network.
    #[error(
        "--icc=false on a dual-stack network needs bridged IPv6 traffic to pass the ip6 forward hook, \
         but {} is not 1 (load br_netfilter and set net.bridge.bridge-nf-call-ip6tables=1)",
        crate::sysctl::BRIDGE_NF_CALL_IP6TABLES
    )]
    Icc6Unavailable { state: BridgeNfCall },

    #[error("address {ip} of network {network:?}: {reason}")]
    Address {
        network: String,
        ip: Ipv4Addr,
        reason: String,
    },

    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} {path}")]
    Json {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{0}")]
    Runtime(String),
}

impl Error {
    /// The kernel's errno behind this error (positive, e.g. `libc::EEXIST`), if it came
    /// from a system call, rtnetlink or nf_tables.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Netlink { source, .. } => rtnl_errno(source),
            Error::Nftables { errno, .. } | Error::Firewall { errno, .. } => *errno,
            Error::Netns { source, .. } | Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn firewall(reason: impl Into<String>) -> Error {
        Error::Firewall {
            reason: reason.into(),
            errno: None,
        }
    }

    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn nl(ifname: impl Into<String>, op: &'static str) -> impl FnOnce(rtnetlink::Error) -> Error {
        let ifname = ifname.into();
        move |source| Error::Netlink { ifname, op, source }
    }
}

/// `e` followed by each of its sources, joined with ": " (what anyhow prints for `{:#}`).
/// For logs and reports made inside this crate, which has no anyhow.
pub(crate) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The errno carried by an rtnetlink error, if any (positive, e.g. `libc::EEXIST`).
pub(crate) fn rtnl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_do_not_repeat_their_source_and_the_chain_reads_as_before() {
        let e = Error::Io {
            what: "attachment record",
            path: "/r/x.json".into(),
            source: io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(e.to_string(), "attachment record /r/x.json");
        assert_eq!(
            chain(&e),
            "attachment record /r/x.json: Permission denied (os error 13)"
        );
        assert_eq!(e.errno(), Some(libc::EACCES));

        let mut m = rtnetlink::packet_core::ErrorMessage::default();
        m.code = std::num::NonZeroI32::new(-libc::EEXIST);
        let e = Error::nl("mr1", "create veth pair")(rtnetlink::Error::NetlinkError(m));
        assert_eq!(e.to_string(), "interface mr1: create veth pair");
        assert_eq!(
            chain(&e),
            "interface mr1: create veth pair: Received a netlink error message File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));

        let e = Error::Nftables {
            set: "pub_any".into(),
            op: "add elements",
            errno: Some(libc::EEXIST),
            reason: "File exists (os error 17)".into(),
        };
        assert_eq!(
            chain(&e),
            "nftables set pub_any in table ip minirun: add elements: File exists (os error 17)"
        );
        assert_eq!(e.errno(), Some(libc::EEXIST));
        assert_eq!(Error::NetworkNotFound("n".into()).errno(), None);
    }

    #[test]
    fn icc_message_is_the_one_users_know() {
        assert_eq!(
            Error::IccUnavailable {
                state: BridgeNfCall::Unavailable
            }
            .to_string(),
            "--icc=false needs bridged traffic to pass the ip forward hook, but \
             /proc/sys/net/bridge/bridge-nf-call-iptables is not 1 \
             (load br_netfilter and set net.bridge.bridge-nf-call-iptables=1)"
        );
    }
}
