//! `run`'s docker flags for confinement, devices and namespaces (parsed and
//! checked by `imagespec::security`).

use clap::Args;

#[derive(Debug, Args, Clone, Default)]
pub struct SecurityArgs {
    /// Add a capability (CAP_NET_ADMIN, NET_ADMIN, or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CAP_CHOWN, CHOWN, or ALL)
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Every capability and host device, no seccomp, no masked or read-only paths
    #[arg(long)]
    pub privileged: bool,
    /// seccomp=unconfined|FILE, no-new-privileges[=true|false], apparmor=PROFILE,
    /// systempaths=unconfined, label=disable
    #[arg(long, value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Add a supplementary group (name in the image's /etc/group, or gid)
    #[arg(long, value_name = "GROUP")]
    pub group_add: Vec<String>,
}
