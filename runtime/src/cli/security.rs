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

// `run`'s docker flags for devices, kernel parameters and the namespaces a
// container shares (checked by `imagespec::host`).
#[derive(Debug, Args, Clone, Default)]
pub struct HostArgs {
    /// Add a host device: HOST[:CONTAINER][:PERMISSIONS] (permissions r, w, m; default rwm)
    #[arg(long, value_name = "DEVICE")]
    pub device: Vec<String>,
    /// Add a rule to the device cgroup: 'TYPE MAJOR:MINOR ACCESS' (c 1:3 rwm, b *:* m, a *:* rwm)
    #[arg(long, value_name = "RULE")]
    pub device_cgroup_rule: Vec<String>,
    /// Set a namespaced kernel parameter (net.*, fs.mqueue.*, kernel.shm*/msg*/sem)
    #[arg(long, value_name = "KEY=VALUE")]
    pub sysctl: Vec<String>,
    /// IPC namespace: private, shareable, host, none or container:<name|id>
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// PID namespace: host or container:<name|id> (default: its own)
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// UTS namespace: host (default: its own)
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
}

// `run`'s mounts besides `-v`.
#[derive(Debug, Args, Clone, Default)]
pub struct MountArgs {
    /// Mount a tmpfs: PATH[:OPTIONS] (default options rw,noexec,nosuid,nodev)
    #[arg(long, value_name = "PATH[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Attach a mount, docker's CSV: type=bind|tmpfs,source=...,target=...,readonly,...
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Size of /dev/shm (default 64m)
    #[arg(long, value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Mount the volumes (named and bind) of another container: CONTAINER[:ro|rw]
    #[arg(long = "volumes-from", value_name = "CONTAINER[:ro|rw]")]
    pub volumes_from: Vec<String>,
}
