//! The local event log behind `events`: one JSON object per line, in
//! docker's shape, appended to `<data root>/events.log` by whichever
//! process saw the event (create, start, die, destroy; network connect and
//! disconnect). Appends are single `write`s on an O_APPEND file, so
//! processes writing at once never interleave within a line.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::Record;

/// One event, as docker's `events --format '{{json .}}'` prints it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "status", default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}

pub fn log_path(data_root: &Path) -> PathBuf {
    data_root.join("events.log")
}

fn append(data_root: &Path, ev: &Event) {
    let Ok(mut line) = serde_json::to_vec(ev) else { return };
    line.push(b'\n');
    let _ = std::fs::create_dir_all(data_root);
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(log_path(data_root)) {
        let _ = f.write_all(&line);
    }
}

fn now() -> (i64, i64) {
    let n = chrono::Utc::now();
    (n.timestamp(), n.timestamp_nanos_opt().unwrap_or(0))
}

/// A container event (`create`, `start`, `die`, `destroy`...); `extra`
/// attributes besides image and name (die: exitCode).
pub fn container(data_root: &Path, action: &str, r: &Record, extra: &[(&str, String)]) {
    let mut attributes: BTreeMap<String, String> = [
        ("image".to_string(), r.image.clone()),
        ("name".to_string(), r.name.clone()),
    ]
    .into();
    for (k, v) in extra {
        attributes.insert(k.to_string(), v.clone());
    }
    let (time, time_nano) = now();
    append(
        data_root,
        &Event {
            status: action.into(),
            id: r.id.clone(),
            from: r.image.clone(),
            kind: "container".into(),
            action: action.into(),
            actor: Actor {
                id: r.id.clone(),
                attributes,
            },
            scope: "local".into(),
            time,
            time_nano,
        },
    );
}

/// A network event (`connect`, `disconnect`) of container `container_id` on `network`.
pub fn network(data_root: &Path, action: &str, network: &str, container_id: &str) {
    let (time, time_nano) = now();
    append(
        data_root,
        &Event {
            status: String::new(),
            id: String::new(),
            from: String::new(),
            kind: "network".into(),
            action: action.into(),
            actor: Actor {
                id: crate::commands::network_id(network),
                attributes: [
                    ("container".to_string(), container_id.to_string()),
                    ("name".to_string(), network.to_string()),
                    ("type".to_string(), "bridge".to_string()),
                ]
                .into(),
            },
            scope: "local".into(),
            time,
            time_nano,
        },
    );
}
