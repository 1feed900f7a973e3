//! Where minirun-net keeps its files under the runtime root (`--root`): everything lives
//! in `<runtime_root>/.net/`. Container ids never start with '.', so no container's state
//! directory (libcontainer keeps `<runtime_root>/<id>/`) can collide with it.
//!
//! ```text
//! <runtime_root>/.net/attachments/<id>.json   attachment record (see crate::attach)
//! <runtime_root>/.net/netns/<id>              bind-mounted network namespace
//! ```
//!
//! Networks and leases live under the data root instead (see [`crate::network`],
//! [`crate::ipam`]).

use std::path::{Path, PathBuf};

/// Name of the directory under the runtime root that holds everything of minirun-net.
pub const STATE_DIR: &str = ".net";

/// `<runtime_root>/.net`.
pub fn state_dir(runtime_root: &Path) -> PathBuf {
    runtime_root.join(STATE_DIR)
}

/// `<runtime_root>/.net/attachments`: one record per attached container.
pub fn attachments_dir(runtime_root: &Path) -> PathBuf {
    state_dir(runtime_root).join("attachments")
}

/// `<runtime_root>/.net/attachments/<container_id>.json`.
pub fn record_path(runtime_root: &Path, container_id: &str) -> PathBuf {
    attachments_dir(runtime_root).join(format!("{container_id}.json"))
}

/// `<runtime_root>/.net/attachments/<container_id>@<network>.json`: the record of a
/// network connected besides the first (`@` is in no container id).
pub fn extra_record_path(runtime_root: &Path, container_id: &str, network: &str) -> PathBuf {
    attachments_dir(runtime_root).join(format!("{container_id}@{network}.json"))
}

/// `<runtime_root>/.net/attachments/<key>+<joiner_id>.joined`, `key` being the file name
/// of the joined namespace's file (its owner's id for a namespace minirun made): says
/// that `joiner_id` joined it (`--net container:`), so that the owner's teardown reads
/// the records only when someone did. None for a namespace path without a file name.
pub fn joiner_marker(runtime_root: &Path, joined_netns: &Path, joiner_id: &str) -> Option<PathBuf> {
    let key = joined_netns.file_name()?.to_str()?;
    Some(attachments_dir(runtime_root).join(format!("{key}+{joiner_id}.joined")))
}

/// `<runtime_root>/.net/netns`: the network namespace files minirun created.
pub fn netns_dir(runtime_root: &Path) -> PathBuf {
    state_dir(runtime_root).join("netns")
}

/// `<runtime_root>/.net/netns/<container_id>`.
pub fn netns_path(runtime_root: &Path, container_id: &str) -> PathBuf {
    netns_dir(runtime_root).join(container_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_is_under_the_hidden_dir() {
        let r = Path::new("/run/minirun");
        assert_eq!(record_path(r, "c1"), Path::new("/run/minirun/.net/attachments/c1.json"));
        assert_eq!(netns_path(r, "c1"), Path::new("/run/minirun/.net/netns/c1"));
        // No valid container id names a path of ours.
        assert!(!crate::attach::valid_container_id(STATE_DIR));
    }
}
