//! The few sysctls minirun sets, written through /proc/sys. Values under /proc/sys/net
//! belong to the network namespace of the calling *thread*.

use std::path::PathBuf;

use crate::error::{Error, Result};

fn write(path: PathBuf, value: &str) -> Result<()> {
    if let Ok(cur) = std::fs::read_to_string(&path) {
        if cur.trim() == value {
            return Ok(());
        }
    }
    std::fs::write(&path, value).map_err(Error::io("write sysctl", path))
}

/// `net.ipv4.ip_forward=1`.
pub fn enable_ip_forward() -> Result<()> {
    write(PathBuf::from("/proc/sys/net/ipv4/ip_forward"), "1")
}

/// `net.ipv4.conf.<ifname>.route_localnet=1` (published ports reachable from the host's
/// 127.0.0.1 need it on the bridge).
pub fn enable_route_localnet(ifname: &str) -> Result<()> {
    write(
        PathBuf::from(format!("/proc/sys/net/ipv4/conf/{ifname}/route_localnet")),
        "1",
    )
}

/// State of `net.bridge.bridge-nf-call-iptables` in the caller's network namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BridgeNfCall {
    /// Bridged IPv4 traffic passes the ip family's forward hook (`--icc=false` works).
    Enabled,
    /// br_netfilter is loaded but the sysctl is 0.
    Disabled,
    /// br_netfilter is not loaded (no /proc/sys/net/bridge): bridged traffic never reaches
    /// the ip family hooks here.
    Unavailable,
}

pub const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

pub fn bridge_nf_call_iptables() -> BridgeNfCall {
    match std::fs::read_to_string(BRIDGE_NF_CALL_IPTABLES) {
        Ok(s) if s.trim() == "1" => BridgeNfCall::Enabled,
        Ok(_) => BridgeNfCall::Disabled,
        Err(_) => BridgeNfCall::Unavailable,
    }
}
