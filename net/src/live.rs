//! Who still needs a network: the caller says which containers exist ([`Liveness`]);
//! minirun-net knows who shares whose network namespace (its attachment records) and
//! combines both ([`in_use`]).
//!
//! A container's network must stay while the container lives, and also after it died
//! while other live containers joined its namespace (`--net container:<it>`): they still
//! use its namespace, address and published ports. [`crate::release`] tears it down once
//! the last of them is gone.

use std::path::Path;

use crate::attach::{list_attachments, Attachment};
use crate::error::Result;

/// Whether a container still exists.
///
/// Contract for implementations:
/// * answer only "does this container still exist": it is being set up, runs, or is
///   supervised (e.g. a monitor or a teardown holds it). It must be true for a container
///   from before its [`crate::attach`] starts until its [`crate::release`] /
///   [`crate::detach`] has finished;
/// * never call into minirun-net: it is called while minirun-net holds its lease lock;
/// * keep it cheap (a few small file reads): it is called for each lease in the way of an
///   allocation, and for each record [`needs_gc`] and gc look at.
///
/// Any `Fn(&str) -> bool` is one: `&|id: &str| state_dir_exists(id)`.
pub trait Liveness {
    fn is_alive(&self, container_id: &str) -> bool;
}

impl<F: Fn(&str) -> bool + ?Sized> Liveness for F {
    fn is_alive(&self, container_id: &str) -> bool {
        self(container_id)
    }
}

/// Whether live containers other than `owner` joined the network namespace `owner`
/// created, among `records`.
pub(crate) fn joined_by_live(owner: &Attachment, records: &[Attachment], live: &dyn Liveness) -> bool {
    owner.netns_owned
        && owner.netns_path.is_some()
        && records.iter().any(|j| {
            j.container_id != owner.container_id
                && !j.netns_owned
                && j.netns_path == owner.netns_path
                && live.is_alive(&j.container_id)
        })
}

/// Whether the network of `container_id` must stay: the container lives, or it owns a
/// namespace that a live other container joined (`--net container:<it>`), judged from
/// the attachment records `records` (read once by the caller, e.g. with
/// [`list_attachments`]). Calls nothing but `live`.
pub fn in_use_among(container_id: &str, records: &[Attachment], live: &dyn Liveness) -> bool {
    live.is_alive(container_id)
        || records
            .iter()
            .find(|a| a.container_id == container_id && a.ifname.is_none())
            .is_some_and(|owner| joined_by_live(owner, records, live))
}

/// [`in_use_among`] against the records under `runtime_root` (read only when the
/// container itself is not alive). Unreadable records count as none.
pub fn in_use(runtime_root: &Path, container_id: &str, live: &dyn Liveness) -> bool {
    InUse::new(runtime_root, live).check(container_id)
}

/// [`in_use`] for many containers: the records are read once, and only when a container
/// is not alive itself (a lease or record whose container lives costs one look at it).
pub(crate) struct InUse<'a> {
    runtime_root: &'a Path,
    live: &'a dyn Liveness,
    records: std::cell::OnceCell<Vec<Attachment>>,
}

impl<'a> InUse<'a> {
    pub(crate) fn new(runtime_root: &'a Path, live: &'a dyn Liveness) -> Self {
        InUse {
            runtime_root,
            live,
            records: std::cell::OnceCell::new(),
        }
    }

    pub(crate) fn check(&self, container_id: &str) -> bool {
        // (in_use_among asks `live` again: only for a container that is gone)
        self.live.is_alive(container_id)
            || in_use_among(
                container_id,
                self.records
                    .get_or_init(|| list_attachments(self.runtime_root).unwrap_or_default()),
                self.live,
            )
    }
}

/// The records on `network` whose container's network is in use ([`in_use_among`]),
/// sorted by container id: the members `network ls/inspect/rm` show. Reads the records
/// once.
pub fn members(runtime_root: &Path, network: &str, live: &dyn Liveness) -> Result<Vec<Attachment>> {
    Ok(members_among(network, &list_attachments(runtime_root)?, live))
}

/// [`members`] among records already read (one read for every network of a command).
pub fn members_among(network: &str, records: &[Attachment], live: &dyn Liveness) -> Vec<Attachment> {
    let mut out: Vec<Attachment> = records
        .iter()
        .filter(|a| a.network.as_deref() == Some(network) && in_use_among(&a.container_id, records, live))
        .cloned()
        .collect();
    out.sort_by(|a, b| a.container_id.cmp(&b.container_id));
    out
}

/// Whether any attachment record under `runtime_root` is no longer in use: the cheap
/// check (small file reads, no netlink) before deciding to run [`crate::gc`].
///
/// Every `run` asks, so the common case - every record's container lives - costs one
/// liveness look per container, named by the record's file; the records are read only
/// when one of them is not alive.
pub fn needs_gc(runtime_root: &Path, live: &dyn Liveness) -> bool {
    let ids = attachment_ids(runtime_root);
    if ids.iter().all(|id| live.is_alive(id)) {
        return false;
    }
    let records = list_attachments(runtime_root).unwrap_or_default();
    records.iter().any(|a| !in_use_among(&a.container_id, &records, live))
}

/// The containers that have attachment records, from the records' file names
/// (`<id>.json`, `<id>@<network>.json`), without reading them; none when unreadable.
fn attachment_ids(runtime_root: &Path) -> std::collections::BTreeSet<String> {
    crate::lock::read_dir_or_empty(&crate::paths::attachments_dir(runtime_root))
        .unwrap_or_default()
        .iter()
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            crate::paths::record_owner(&n).map(|(id, _)| id.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mode::NetMode;
    use std::path::PathBuf;

    fn rec(id: &str, netns: &str, owned: bool, network: Option<&str>) -> Attachment {
        Attachment {
            container_id: id.into(),
            mode: if owned {
                NetMode::default()
            } else {
                NetMode::Container("x".into())
            },
            netns_path: Some(PathBuf::from(netns)),
            netns_owned: owned,
            network: network.map(Into::into),
            bridge: None,
            veth_host: None,
            ip: None,
            prefix_len: None,
            gateway: None,
            ipv6: None,
            ipv6_prefix_len: None,
            ipv6_gateway: None,
            mac: None,
            ports: Vec::new(),
            hostname: None,
            aliases: Vec::new(),
            ifname: None,
            joiners_marked: true,
            runtime_root: PathBuf::from("/r"),
            data_root: PathBuf::from("/d"),
        }
    }

    #[test]
    fn needs_gc_judges_containers_named_by_their_record_files() {
        let d = tempfile::tempdir().unwrap();
        let dir = crate::paths::attachments_dir(d.path());
        std::fs::create_dir_all(&dir).unwrap();
        for (file, id, owned) in [("a.json", "a", true), ("a@n2.json", "a", false), ("b.json", "b", true)] {
            let mut r = rec(id, &format!("/ns/{id}"), owned, Some("n1"));
            if !owned {
                r.ifname = Some("eth1".into());
            }
            std::fs::write(dir.join(file), serde_json::to_vec(&r).unwrap()).unwrap();
        }
        // a record being written (a dot file) and one that does not parse name no one else
        std::fs::write(dir.join(".c.json.tmp"), "{").unwrap();
        std::fs::write(dir.join("d.json"), "{").unwrap();
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let all_live = |id: &str| {
            asked.borrow_mut().insert(id.to_string());
            true
        };
        assert!(!needs_gc(d.path(), &all_live));
        assert_eq!(asked.borrow().iter().collect::<Vec<_>>(), ["a", "b", "d"]);
        assert!(needs_gc(d.path(), &|id: &str| id != "b"));
        // d's record does not parse: nothing to collect for it
        assert!(!needs_gc(d.path(), &|id: &str| id != "d"));
    }

    #[test]
    fn owner_stays_while_a_live_container_joined_it() {
        let records = vec![
            rec("owner", "/ns/owner", true, Some("n1")),
            rec("joiner", "/ns/owner", false, None),
            rec("other", "/ns/other", true, Some("n1")),
            rec("zz", "/ns/zz", true, Some("n2")),
        ];
        let joiner_lives = |id: &str| id == "joiner";
        assert!(in_use_among("owner", &records, &joiner_lives));
        assert!(in_use_among("joiner", &records, &joiner_lives));
        assert!(!in_use_among("other", &records, &joiner_lives));
        assert!(!in_use_among("unknown", &records, &joiner_lives));
        // A dead joiner keeps nothing.
        let nobody = |_: &str| false;
        assert!(!in_use_among("owner", &records, &nobody));
        // A joiner is not an owner: a live container "joining" it keeps nothing of it.
        let mut rs = records.clone();
        rs.push(rec("j2", "/ns/owner", false, None));
        assert!(!in_use_among("joiner", &rs, &|id: &str| id == "j2"));

        let m: Vec<String> = members_among("n1", &records, &|id: &str| id == "joiner" || id == "other")
            .into_iter()
            .map(|a| a.container_id)
            .collect();
        assert_eq!(m, vec!["other", "owner"], "sorted by id");
        assert!(members_among("n2", &records, &joiner_lives).is_empty());
    }

    #[test]
    fn queries_against_the_records_on_disk() {
        let d = tempfile::tempdir().unwrap();
        let mut records = vec![
            rec("owner", "/ns/owner", true, Some("n1")),
            rec("joiner", "/ns/owner", false, None),
        ];
        for r in &mut records {
            r.runtime_root = d.path().into();
            crate::lock::write_json(
                &crate::paths::record_path(d.path(), &r.container_id),
                r,
                "attachment record",
            )
            .unwrap();
        }
        let joiner_lives = |id: &str| id == "joiner";
        assert!(in_use(d.path(), "owner", &joiner_lives));
        assert!(!needs_gc(d.path(), &joiner_lives));
        assert!(needs_gc(d.path(), &|_: &str| false));
        assert!(!needs_gc(&d.path().join("nothing"), &|_: &str| false));
        let m = members(d.path(), "n1", &joiner_lives).unwrap();
        assert_eq!(m, vec![records[0].clone()]);
        assert!(members(d.path(), "n1", &|_: &str| false).unwrap().is_empty());
    }
}
