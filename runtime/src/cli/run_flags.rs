//! `run`'s docker flags for resources, lifecycle, health, network details
//! and metadata (issue 15). Parsed and checked by `imagespec::resources`,
//! `container::restart`, `container::health` and `commands::run`.

use std::path::PathBuf;

use clap::Args;

// docker's resource flags, shared by `run` and (in part) `update`.
#[derive(Debug, Args, Clone, Default)]
pub struct ResourceArgs {
    /// Memory limit (bytes, or with b, k, m, g)
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap)
    #[arg(long, value_name = "SIZE", allow_negative_numbers = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "SIZE")]
    pub memory_reservation: Option<String>,
    /// Disable the OOM killer
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Number of CPUs (1.5: a quota of 150000 per 100000 microseconds)
    #[arg(long, value_name = "DECIMAL")]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "N")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS period, in microseconds
    #[arg(long, value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota, in microseconds
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Tune the container's pids limit (-1: unlimited)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight, relative (10-1000, 0: none)
    #[arg(long, value_name = "N")]
    pub blkio_weight: Option<u16>,
}

// The rest of docker's run flags of issue 15.
#[derive(Debug, Args, Clone, Default)]
pub struct RunFlags {
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Ulimit: NAME=SOFT[:HARD] (nofile=1024:2048)
    #[arg(long, value_name = "NAME=SOFT[:HARD]")]
    pub ulimit: Vec<String>,
    /// Restart policy: no, on-failure[:MAX], always, unless-stopped
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Run a small init as PID 1 that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Signal that stops the container (default SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL (default 10)
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub stop_timeout: Option<i64>,
    /// Command run to check the container's health (through `sh -c`)
    #[arg(long, value_name = "CMD")]
    pub health_cmd: Option<String>,
    /// Time between health checks (30s, 1m30s, 500ms)
    #[arg(long, value_name = "DURATION")]
    pub health_interval: Option<String>,
    /// Consecutive failures that make the container unhealthy (default 3)
    #[arg(long, value_name = "N")]
    pub health_retries: Option<u32>,
    /// Longest time one check may take (default 30s)
    #[arg(long, value_name = "DURATION")]
    pub health_timeout: Option<String>,
    /// Time to start up before failures count (default 0s)
    #[arg(long, value_name = "DURATION")]
    pub health_start_period: Option<String>,
    /// Disable any health check, the image's too
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Add a line to /etc/hosts: NAME:IP (IP may be host-gateway)
    #[arg(long, value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// IPv4 address on a user-defined network
    #[arg(long, value_name = "IP")]
    pub ip: Option<std::net::Ipv4Addr>,
    /// MAC address of the container's interface (02:42:ac:11:00:02)
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
    /// DNS search domain
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// DNS option (ndots:2)
    #[arg(long, value_name = "OPT")]
    pub dns_option: Vec<String>,
    /// Expose a port or a range of ports (80, 8000-8010/udp)
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Set metadata: KEY=VALUE
    #[arg(short = 'l', long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Read labels from a file of KEY=VALUE lines
    #[arg(long, value_name = "FILE")]
    pub label_file: Vec<PathBuf>,
    /// Write the container's id to this file
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long, value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Proxy received signals to the process (--sig-proxy=false: do not)
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub sig_proxy: Option<bool>,
}
