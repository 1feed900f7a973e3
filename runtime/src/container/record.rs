//! The one typed record of a container made from an image: what it is, what
//! it holds, and where it is in its life.

use std::net::IpAddr;
use std::path::PathBuf;

use minirun_net::Attachment;
use serde::{Deserialize, Serialize};

use crate::util::proc::ProcessIdentity;

/// Exit code recorded when the container ended with nobody waiting for it
/// (its monitor was killed): docker reports 255 for the same situation.
pub const UNKNOWN_EXIT: i32 = 255;

/// Where a container is in its life, as recorded (what really runs is
/// [`Status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Being set up: root filesystem, network, libcontainer's create.
    Creating,
    /// Its process was started.
    Running,
    /// Torn down: exit code recorded, network and root filesystem released.
    Exited,
}

/// `meta.json` in the container's directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: String,
    pub args: Vec<String>,
    pub hostname: String,
    pub auto_remove: bool,
    pub detached: bool,
    pub tty: bool,
    /// `-i`: `attach` relays the user's input to its terminal.
    #[serde(default)]
    pub interactive: bool,
    pub net: String,
    pub volumes: Vec<MountInfo>,
    pub phase: Phase,
    pub pid: Option<i32>,
    pub monitor_pid: Option<i32>,
    /// The process setting the container up (the CLI, then its monitor):
    /// while the phase is `Creating`, the container is abandoned once it is gone.
    #[serde(default)]
    pub creator: Option<ProcessIdentity>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: Option<i32>,
    /// `--dns` servers (on a user-defined network: the embedded resolver's upstreams)
    #[serde(default)]
    pub dns: Vec<IpAddr>,
    /// The network the container holds, from attach until teardown released it.
    #[serde(default)]
    pub network: Option<Attachment>,
    /// The networks connected besides the first (`--network` given again, `network
    /// connect`), as last attached: kept after teardown, so `start` connects them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_networks: Vec<Attachment>,
    /// `network disconnect` took the first network away: `start` gives it none.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub first_network_disconnected: bool,
    // run flags (issue 15)
    #[serde(flatten, default)]
    pub run_flags: super::run_flags::RunFlagsRecord,
    // verbs (issue 15)
    /// What docker's `inspect` shows under Config: the run's entrypoint and
    /// command apart, its environment, user and working directory.
    #[serde(default)]
    pub config: Option<RunSummary>,
}

/// The process a container runs, as docker's Config describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub working_dir: String,
    /// The network it was first attached to (mode, ports, aliases): what a
    /// `start` after it exited asks for again.
    #[serde(default)]
    pub network: Option<Attachment>,
}

impl RunSummary {
    /// From the image's config, the run's flags and the spec made of them
    /// (its environment and working directory are the final ones).
    pub fn of(
        image: &oci_spec::image::ImageConfiguration,
        run: &crate::imagespec::RunConfig,
        spec: &libcontainer::oci_spec::runtime::Spec,
        network: &Attachment,
    ) -> RunSummary {
        let cfg = image.config().as_ref();
        let (entrypoint, cmd) = match &run.entrypoint {
            Some(e) if e.is_empty() => (Vec::new(), run.command.clone()),
            Some(e) => (vec![e.clone()], run.command.clone()),
            None => (
                cfg.and_then(|c| c.entrypoint().clone()).unwrap_or_default(),
                if run.command.is_empty() {
                    cfg.and_then(|c| c.cmd().clone()).unwrap_or_default()
                } else {
                    run.command.clone()
                },
            ),
        };
        let process = spec.process().as_ref();
        RunSummary {
            entrypoint,
            cmd,
            env: process.and_then(|p| p.env().clone()).unwrap_or_default(),
            user: run
                .user
                .clone()
                .or_else(|| cfg.and_then(|c| c.user().clone()))
                .unwrap_or_default(),
            working_dir: process.map(|p| p.cwd().display().to_string()).unwrap_or_default(),
            network: Some(network.clone()),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MountInfo {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub read_only: bool,
}

impl Record {
    /// The process runs: its pid and start time.
    pub fn mark_running(&mut self, pid: i32) {
        self.phase = Phase::Running;
        self.pid = Some(pid);
        self.started_at = Some(now());
    }

    /// Torn down: the first exit code recorded wins; none known means
    /// [`UNKNOWN_EXIT`].
    pub fn mark_exited(&mut self, exit_code: Option<i32>) {
        self.phase = Phase::Exited;
        self.exit_code = self.exit_code.or(exit_code).or(Some(UNKNOWN_EXIT));
        self.finished_at = Some(now());
    }
}

/// The docker-ish status of a container right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Exited(i32),
    Dead,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited(_) => "exited",
            Status::Dead => "dead",
        }
    }
}

/// Now, as the record's timestamps are written (RFC 3339, nanoseconds).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_keep_their_names_on_disk() {
        assert_eq!(serde_json::to_string(&Phase::Creating).unwrap(), "\"creating\"");
        assert_eq!(serde_json::from_str::<Phase>("\"exited\"").unwrap(), Phase::Exited);
    }

    #[test]
    fn the_first_exit_code_recorded_wins() {
        let mut r: Record = serde_json::from_value(serde_json::json!({
            "id": "x", "name": "n", "image": "i", "image_id": "d", "created": "t", "args": [],
            "hostname": "h", "auto_remove": false, "detached": true, "tty": false, "net": "none",
            "volumes": [], "phase": "running", "pid": 7, "monitor_pid": null, "started_at": null,
            "finished_at": null, "exit_code": null
        }))
        .unwrap();
        assert!(r.network.is_none() && r.dns.is_empty() && r.creator.is_none());
        assert!(r.extra_networks.is_empty() && !r.first_network_disconnected);
        r.exit_code = Some(3);
        r.mark_exited(Some(0));
        assert_eq!((r.phase, r.exit_code), (Phase::Exited, Some(3)));
        r.exit_code = None;
        r.mark_exited(None);
        assert_eq!(r.exit_code, Some(UNKNOWN_EXIT));
    }
}
