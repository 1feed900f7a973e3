//! minirun-net: everything minirun needs to give a container its network.
//!
//! * [`mode`]: `--net` values ([`NetMode`]).
//! * [`ports`]: `-p` specs ([`parse_publish`]) and host-port checks.
//! * [`netns`]: network namespaces as bind-mounted files.
//! * [`link`]: bridge, veth, addresses, routes over rtnetlink.
//! * [`network`], [`ipam`]: network definitions and IP leases on disk (file-locked).
//! * [`firewall`]: the static nftables skeleton plus set/map elements, in-process over
//!   NETLINK_NETFILTER.
//! * [`dns`]: the embedded DNS responder of user-defined networks (127.0.0.11).
//! * [`etc`]: `/etc/resolv.conf`, `/etc/hosts`, `/etc/hostname` contents.
//! * [`attach`]: [`attach()`], [`detach()`], [`release()`], [`gc()`]: the whole thing for
//!   one container.
//! * [`live`]: [`Liveness`] (the caller's "does this container exist") and who still needs
//!   a network ([`in_use()`], [`members()`], [`needs_gc()`]), shared namespaces included.
//! * [`paths`]: where the files under the runtime root are (`<root>/.net/`).
//!
//! No function leaves a tokio runtime or a thread behind: everything that is async runs on
//! a current-thread runtime created and dropped inside the call, so the caller may fork
//! (libcontainer) afterwards.

pub mod attach;
pub mod dns;
pub mod error;
pub mod etc;
pub mod firewall;
pub mod ipam;
pub mod link;
pub mod live;
mod lock;
pub mod mode;
pub mod netns;
pub mod network;
mod nfnl;
pub mod paths;
pub mod ports;
mod rt;
pub mod subnet;
pub mod sysctl;

#[cfg(test)]
pub(crate) mod testutil;

pub use attach::{
    attach, connect, detach, detach_sync, disconnect, gc, release, remove_network, AttachRequest, Attachment,
    ConnectRequest, GcReport,
};
pub use error::{Error, Result};
pub use firewall::Firewall;
pub use live::{in_use, in_use_among, members, members_among, needs_gc, Liveness};
pub use mode::NetMode;
pub use network::NetworkConfig;
pub use ports::{parse_publish, parse_publish_all, PortMapping, PortSpec, Proto};
pub use subnet::{Ipv4Net, Ipv6Net};
