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

/// The container whose attachment record a file of [`attachments_dir`] is, and the
/// network for one connected besides the first: `<id>.json` ([`record_path`]) and
/// `<id>@<network>.json` ([`extra_record_path`]). None for any other file (a record
/// being written is a dot file).
pub fn record_owner(file_name: &str) -> Option<(&str, Option<&str>)> {
    if file_name.starts_with('.') {
        return None;
    }
    let stem = file_name.strip_suffix(".json")?;
    Some(match stem.split_once('@') {
        Some((id, network)) => (id, Some(network)),
        None => (stem, None),
    })
}

/// `<runtime_root>/.net/attachments/<key>+<joiner_id>.joined`, `key` being the file name
/// of the joined namespace's file ([`joiner_marker_key`]): says that `joiner_id` joined
/// it (`--net container:`), so that the owner's teardown reads the records only when
/// someone did. None for a namespace path without a file name.
pub fn joiner_marker(runtime_root: &Path, joined_netns: &Path, joiner_id: &str) -> Option<PathBuf> {
    let key = joiner_marker_key(joined_netns)?;
    Some(attachments_dir(runtime_root).join(format!("{key}+{joiner_id}.joined")))
}

/// The key of the markers of the namespace at `joined_netns`: its file's name (its
/// owner's id for a namespace minirun made).
pub fn joiner_marker_key(joined_netns: &Path) -> Option<&str> {
    joined_netns.file_name()?.to_str()
}

/// The (key, joiner id) a [`joiner_marker`] file name stands for; None for other files.
pub fn parse_joiner_marker(file_name: &str) -> Option<(&str, &str)> {
    file_name.strip_suffix(".joined")?.rsplit_once('+')
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

    #[test]
    fn file_names_read_back_as_what_made_them() {
        let root = Path::new("/r");
        let name = |p: PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(record_owner(&name(record_path(root, "abc"))), Some(("abc", None)));
        assert_eq!(
            record_owner(&name(extra_record_path(root, "abc", "net2"))),
            Some(("abc", Some("net2")))
        );
        for other in [".abc.json.1.ThreadId(1).tmp", "abc.json.tmp", "o+j.joined", "abc"] {
            assert_eq!(record_owner(other), None, "{other}");
        }
        let marker = joiner_marker(root, &netns_path(root, "own"), "joi").unwrap();
        assert_eq!(joiner_marker_key(&netns_path(root, "own")), Some("own"));
        assert_eq!(parse_joiner_marker(&name(marker)), Some(("own", "joi")));
        assert_eq!(parse_joiner_marker("own.json"), None);
    }
}
