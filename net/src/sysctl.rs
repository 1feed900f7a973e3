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

/// `net.ipv6.conf.<ifname>.accept_ra=0`: minirun's bridges, host veths and containers'
/// eth0 take no router advertisements (addresses and routes are minirun's).
pub fn ipv6_no_ra(ifname: &str) -> Result<()> {
    write(
        PathBuf::from(format!("/proc/sys/net/ipv6/conf/{ifname}/accept_ra")),
        "0",
    )
}

/// IPv6 forwarding for a dual-stack network on `bridge`.
///
/// Linux forwards an IPv6 packet only when forwarding is on for the *incoming* interface's
/// namespace-wide switch: `net.ipv6.conf.all.forwarding` (6.17+ adds a per-interface
/// `force_forwarding`, but it too is judged on the incoming interface, so replies and
/// published ports arriving on the uplink would still need it there). So, like docker,
/// this sets `all.forwarding=1` (the IPv6 twin of `ip_forward=1`), plus `force_forwarding`
/// on the bridge where the kernel has it. Note: with forwarding on, interfaces whose
/// `accept_ra` is 1 ignore router advertisements; a host that configures its uplink by
/// SLAAC needs `accept_ra=2` there (docker documents the same).
pub fn enable_ipv6_forwarding(bridge: &str) -> Result<()> {
    let force = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{bridge}/force_forwarding"));
    if force.exists() {
        write(force, "1")?;
    }
    write(PathBuf::from("/proc/sys/net/ipv6/conf/all/forwarding"), "1")
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
    bridge_nf_call(BRIDGE_NF_CALL_IPTABLES)
}

pub const BRIDGE_NF_CALL_IP6TABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-ip6tables";

/// The IPv6 twin of [`bridge_nf_call_iptables`]: `--icc=false` on a dual-stack network
/// needs bridged IPv6 traffic to pass the ip6 forward hook too.
pub fn bridge_nf_call_ip6tables() -> BridgeNfCall {
    bridge_nf_call(BRIDGE_NF_CALL_IP6TABLES)
}

fn bridge_nf_call(path: &str) -> BridgeNfCall {
    match std::fs::read_to_string(path) {
        Ok(s) if s.trim() == "1" => BridgeNfCall::Enabled,
        Ok(_) => BridgeNfCall::Disabled,
        Err(_) => BridgeNfCall::Unavailable,
    }
}
