//! runc's `state` output for one container.

use std::fs;
use std::path::PathBuf;

use libcontainer::container::{Container, ContainerStatus};
use serde::Serialize;

use super::ORIGINAL_BUNDLE;

/// runc's `state` output: the OCI state plus rootfs, created and owner.
#[derive(Debug, Serialize)]
pub struct OciState {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: Option<String>,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

impl OciState {
    pub fn of(c: &Container) -> Self {
        let status = c.status();
        let pid = match status {
            ContainerStatus::Stopped => 0,
            _ => c.pid().map(|p| p.as_raw()).unwrap_or(0),
        };
        let rootfs = rootfs_of(c).unwrap_or_default();
        Self {
            oci_version: libcontainer::oci_spec::runtime::VERSION.to_string(),
            id: c.id().to_string(),
            pid,
            status: status_name(status),
            bundle: fs::read_to_string(c.root.join(ORIGINAL_BUNDLE))
                .map(PathBuf::from)
                .unwrap_or_else(|_| c.bundle().clone()),
            rootfs,
            created: c
                .created()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
            owner: c
                .creator()
                .map(|o| o.to_string_lossy().into_owned())
                .unwrap_or_default(),
            annotations: c.state.annotations.clone(),
        }
    }
}

/// The rootfs of a container as its bundle's spec names it.
fn rootfs_of(c: &Container) -> Option<PathBuf> {
    let spec = crate::spec::load_bundle_spec(c.bundle()).ok()?;
    let root = spec.root().as_ref()?.path().clone();
    Some(if root.is_absolute() {
        root
    } else {
        c.bundle().join(root)
    })
}

pub fn status_name(s: ContainerStatus) -> &'static str {
    match s {
        ContainerStatus::Creating => "creating",
        ContainerStatus::Created => "created",
        ContainerStatus::Running => "running",
        ContainerStatus::Stopped => "stopped",
        ContainerStatus::Paused => "paused",
    }
}
