//! One error type for the crate. Every variant names the object it is about
//! (interface, network, subnet, container id, port spec, nftables set, path).

use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::subnet::Ipv4Net;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid network mode {0:?}: expected host, none, bridge, container:<id> or a network name")]
    InvalidMode(String),

    #[error("invalid port spec {spec:?}: {reason}")]
    InvalidPortSpec { spec: String, reason: String },

    #[error("port {spec}: {reason}")]
    PortUnavailable { spec: String, reason: String },

    #[error("invalid container id {0:?}: must be 1-128 characters of [A-Za-z0-9_.-]")]
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

    #[error("interface {ifname}: {op}: {source}")]
    Netlink {
        ifname: String,
        op: &'static str,
        #[source]
        source: rtnetlink::Error,
    },

    #[error("interface {ifname}: {reason}")]
    Link { ifname: String, reason: String },

    #[error("network namespace {path}: {op}: {source}")]
    Netns {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("nftables set {set} in table ip minirun: {op}: {reason}")]
    Nftables { set: String, op: &'static str, reason: String },

    #[error("nftables: {0}")]
    Firewall(String),

    #[error("address {ip} of network {network:?}: {reason}")]
    Address { network: String, ip: Ipv4Addr, reason: String },

    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{what} {path}: {source}")]
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
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn nl(ifname: impl Into<String>, op: &'static str) -> impl FnOnce(rtnetlink::Error) -> Error {
        let ifname = ifname.into();
        move |source| Error::Netlink { ifname, op, source }
    }
}

/// The errno carried by an rtnetlink error, if any (positive, e.g. `libc::EEXIST`).
pub(crate) fn rtnl_errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}
