//! docker's `ps`: containers made from images, newest first, with
//! `--filter`, `-n`/`-l`, `-s`, `-q` and `--format` (a table or a Go
//! template over docker's placeholders).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Result};
use serde::Serialize;

use super::format::{self, Format};
use super::inspect::docker_status;
use super::Env;
use crate::cli::PsArgs;
use crate::container::{Ctx, Record, Status};

/// One row, under docker's placeholder names.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Row {
    #[serde(rename = "ID")]
    pub id: String,
    pub image: String,
    pub command: String,
    pub created_at: String,
    pub running_for: String,
    pub ports: String,
    pub status: String,
    pub state: String,
    pub size: String,
    pub names: String,
    pub labels: String,
    pub mounts: String,
    pub networks: String,
}

const DEFAULT: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

fn headers() -> BTreeMap<&'static str, &'static str> {
    [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("Status", "STATUS"),
        ("State", "STATE"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
    ]
    .into_iter()
    .collect()
}

/// A parsed `--filter KEY=VALUE` set: values of one key are OR'ed, keys AND'ed.
pub struct Filters(BTreeMap<String, Vec<String>>);

impl Filters {
    pub fn parse(given: &[String], known: &[&str]) -> Result<Filters> {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for f in given {
            let Some((k, v)) = f.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            if !known.contains(&k) {
                bail!("invalid filter '{k}'");
            }
            map.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(Filters(map))
    }

    /// Whether every key given has one value `test` accepts.
    pub fn accepts(&self, mut test: impl FnMut(&str, &str) -> bool) -> bool {
        self.0.iter().all(|(k, vs)| vs.iter().any(|v| test(k, v)))
    }
}

/// Whether `labels` has `want` (`key` or `key=value`).
pub fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// The labels of a container: its image's.
fn labels_of(
    ctx: &Ctx,
    r: &Record,
    cache: &mut BTreeMap<String, BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    cache
        .entry(r.image_id.clone())
        .or_insert_with(|| {
            ctx.store()
                .ok()
                .and_then(|s| s.resolve(&r.image_id).ok())
                .and_then(|i| i.config.config().clone()?.labels().clone())
                .map(|l| l.into_iter().collect())
                .unwrap_or_default()
        })
        .clone()
}

pub fn containers(env: &Env, a: &PsArgs) -> Result<()> {
    let ctx = env.ctx();
    let filters = Filters::parse(
        &a.filter,
        &[
            "name", "status", "label", "ancestor", "id", "exited", "network", "volume",
        ],
    )?;
    let mut records = ctx.all()?;
    records.sort_by(|x, y| y.created.cmp(&x.created));
    let last = if a.latest { Some(1) } else { a.last.filter(|n| *n > 0) };
    let all = a.all || last.is_some() || filters.0.contains_key("status") || filters.0.contains_key("exited");
    let store = ctx.store().ok();
    let mut label_cache = BTreeMap::new();
    let mut rows = Vec::new();
    for r in records {
        if last.is_some_and(|n| rows.len() >= n) {
            break;
        }
        let (status, word) = docker_status(&ctx, &r);
        if !all && status != Status::Running && !r.run_flags.restarting {
            continue;
        }
        let labels = if r.run_flags.labels.is_empty() {
            labels_of(&ctx, &r, &mut label_cache)
        } else {
            r.run_flags.labels.clone()
        };
        let keep = filters.accepts(|k, v| match k {
            "name" => r.name.contains(v.trim_start_matches('/')),
            "id" => r.id.starts_with(v),
            "status" => word == v,
            "exited" => matches!(status, Status::Exited(c) if v.parse() == Ok(c)),
            "label" => label_matches(&labels, v),
            "ancestor" => {
                r.image == v
                    || r.image_id.starts_with(v.trim_start_matches("sha256:"))
                    || store
                        .as_ref()
                        .and_then(|s| s.resolve(v).ok())
                        .is_some_and(|i| i.id == r.image_id)
            }
            "network" => {
                r.network.as_ref().and_then(|n| n.network.as_deref()) == Some(v)
                    || r.net == v
                    || r.extra_networks.iter().any(|n| n.network.as_deref() == Some(v))
            }
            "volume" => r
                .volumes
                .iter()
                .any(|m| m.destination == Path::new(v) || m.source == Path::new(v)),
            _ => false,
        });
        if keep {
            rows.push(row(&ctx, &r, status, word, &labels, a.size, a.no_trunc));
        }
    }
    if a.quiet {
        for r in &rows {
            println!("{}", r.id);
        }
        return Ok(());
    }
    let text = match a.format.as_deref() {
        None | Some("table") if a.size => format!("{DEFAULT}\t{{{{.Size}}}}"),
        None | Some("table") => DEFAULT.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(t) => t.to_string(),
    };
    format::print_rows(&Format::parse(&text)?, &headers(), &rows)
}

fn row(
    ctx: &Ctx,
    r: &Record,
    status: Status,
    word: &str,
    labels: &BTreeMap<String, String>,
    size: bool,
    no_trunc: bool,
) -> Row {
    let cmd = r.args.join(" ");
    let cmd = if !no_trunc && cmd.chars().count() > 20 {
        format!("{}…", cmd.chars().take(19).collect::<String>())
    } else {
        cmd
    };
    let since = |t: &Option<String>| t.as_deref().and_then(format::seconds_since).unwrap_or(0);
    let status_text = match status {
        // --restart: waiting to be started again
        Status::Exited(c) if r.run_flags.restarting => crate::container::health::restarting_status(r, c),
        Status::Running => {
            let up = format!(
                "Up {}{}",
                format::human_duration(since(&r.started_at)),
                crate::container::health::ps_suffix(r)
            );
            if word == "paused" {
                format!("{up} (Paused)")
            } else {
                up
            }
        }
        Status::Created => "Created".into(),
        Status::Exited(c) => match &r.finished_at {
            Some(_) => format!("Exited ({c}) {} ago", format::human_duration(since(&r.finished_at))),
            None => format!("Exited ({c})"),
        },
        Status::Dead => "Dead".into(),
    };
    let ports = r
        .network
        .as_ref()
        .map(|a| {
            // one entry per family a port is published on (`[::]:P` too when the
            // container has IPv6), as `port` shows them
            a.published_elements()
                .iter()
                .map(|(p, _)| format!("{}->{}/{}", super::port::host_side(p), p.container_port, p.proto))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|_| status == Status::Running)
        .unwrap_or_default();
    let size = if size {
        let upper = dir_size(&ctx.dir(&r.id).join("upper"));
        let image = ctx
            .store()
            .ok()
            .and_then(|s| s.list().ok())
            .and_then(|l| l.into_iter().find(|i| i.id == r.image_id))
            .map(|i| i.size)
            .unwrap_or(0);
        format!(
            "{} (virtual {})",
            format::human_size(upper),
            format::human_size(upper + image)
        )
    } else {
        String::new()
    };
    let created_at = chrono::DateTime::parse_from_rfc3339(&r.created)
        .map(|t| {
            t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                .to_string()
        })
        .unwrap_or_default();
    Row {
        id: if no_trunc { r.id.clone() } else { r.id[..12].to_string() },
        image: r.image.clone(),
        command: format!("\"{cmd}\""),
        created_at,
        running_for: format::ago(&r.created),
        ports,
        status: status_text,
        state: word.to_string(),
        size,
        names: r.name.clone(),
        labels: labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
        mounts: r
            .volumes
            .iter()
            .map(|m| m.source.display().to_string())
            .collect::<Vec<_>>()
            .join(","),
        // docker's: every network, comma-separated
        networks: std::iter::once(
            r.network
                .as_ref()
                .and_then(|n| n.network.clone())
                .unwrap_or_else(|| r.net.clone()),
        )
        .filter(|_| !r.first_network_disconnected)
        .chain(r.extra_networks.iter().filter_map(|n| n.network.clone()))
        .collect::<Vec<_>>()
        .join(","),
    }
}

/// Bytes of the files under `dir` (not following links).
pub fn dir_size(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
