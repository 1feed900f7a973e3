//! What the docker run flags of issue 15 leave in a container's record:
//! flattened into meta.json, every field defaulted so older records load.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::health::{HealthConfig, HealthState};
use super::restart::RestartPolicy;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RunFlagsRecord {
    /// `--label`, `--label-file` (and the image's labels under them)
    pub labels: BTreeMap<String, String>,
    pub restart_policy: RestartPolicy,
    /// Restarts done by the monitor.
    pub restart_count: u32,
    /// The process ended and the monitor waits to start it again.
    pub restarting: bool,
    /// `--stop-signal` (docker's spelling, as given)
    pub stop_signal: Option<String>,
    /// `--stop-timeout`, seconds (-1: wait for ever)
    pub stop_timeout: Option<i64>,
    /// `--init`
    pub init: bool,
    pub healthcheck: Option<HealthConfig>,
    pub health: Option<HealthState>,
    /// The `linux.resources` docker's flags asked for (OCI JSON).
    pub resources: serde_json::Map<String, serde_json::Value>,
    /// `--ulimit`, as given
    pub ulimits: Vec<String>,
    /// `--expose` and the image's ExposedPorts: `80/tcp`
    pub exposed_ports: Vec<String>,
    /// `--add-host`, as written to /etc/hosts: `NAME:IP`
    pub extra_hosts: Vec<String>,
    pub mac_address: Option<String>,
    /// `--ip`
    pub ip: Option<Ipv4Addr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    /// `-a`: the streams a foreground run attaches
    pub attach: Vec<String>,
    /// `--sig-proxy`
    pub sig_proxy: Option<bool>,
    /// `--cidfile`
    pub cidfile: Option<std::path::PathBuf>,
}
