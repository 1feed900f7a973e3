//! `images [-q] [--filter] [--format] [REPOSITORY[:TAG]]`: the images in the
//! store, as docker lists them.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::format::{self, Format};
use super::ps_docker::{label_matches, Filters};
use super::Env;
use crate::cli::ImagesArgs;

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    repository: String,
    tag: String,
    digest: String,
    created_since: String,
    created_at: String,
    size: String,
}

const DEFAULT: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

pub fn run(env: &Env, a: &ImagesArgs) -> Result<u8> {
    let store = env.ctx().store()?;
    let filters = Filters::parse(&a.filter, &["dangling", "reference", "label", "before", "since"])?;
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut labels_of = BTreeMap::new();
    for i in store.list()? {
        let dangling = i.repository == "<none>";
        let reference = format!("{}:{}", i.repository, i.tag);
        let labels: &BTreeMap<String, String> = labels_of.entry(i.id.clone()).or_insert_with(|| {
            store
                .resolve(&i.id)
                .ok()
                .and_then(|img| img.config.config().clone()?.labels().clone())
                .map(|l| l.into_iter().collect())
                .unwrap_or_default()
        });
        let keep = filters.accepts(|k, v| match k {
            "dangling" => dangling == (v == "true" || v == "1"),
            "reference" => !dangling && (glob(v, &reference) || glob(v, &i.repository)),
            "label" => label_matches(labels, v),
            _ => true,
        }) && a
            .reference
            .as_deref()
            .is_none_or(|r| !dangling && (glob(r, &reference) || glob(r, &i.repository)));
        if !keep {
            continue;
        }
        if a.quiet {
            if seen.insert(i.id.clone()) {
                println!(
                    "{}",
                    if a.no_trunc {
                        format!("sha256:{}", i.id)
                    } else {
                        i.id[..12].to_string()
                    }
                );
            }
            continue;
        }
        let created = i.created.clone().unwrap_or_default();
        rows.push(Row {
            id: if a.no_trunc {
                format!("sha256:{}", i.id)
            } else {
                i.id[..12].to_string()
            },
            repository: i.repository,
            tag: i.tag,
            digest: "<none>".into(),
            created_since: if created.is_empty() {
                "N/A".into()
            } else {
                format::ago(&created)
            },
            created_at: chrono::DateTime::parse_from_rfc3339(&created)
                .map(|t| {
                    t.with_timezone(&chrono::Utc)
                        .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                        .to_string()
                })
                .unwrap_or_default(),
            size: format::human_size(i.size),
        });
    }
    if a.quiet {
        return Ok(0);
    }
    let headers: BTreeMap<&str, &str> = [
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
    ]
    .into_iter()
    .collect();
    let text = match a.format.as_deref() {
        None | Some("table") => DEFAULT,
        Some("json") => "{{json .}}",
        Some(t) => t,
    };
    format::print_rows(&Format::parse(text)?, &headers, &rows)?;
    Ok(0)
}

/// Docker's reference filter: a shell pattern (`*` and `?`) over the whole.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && t[0] != '/' && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    go(&p, &t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_match_as_docker() {
        assert!(glob("busy*", "busybox:latest"));
        assert!(glob("busybox", "busybox"));
        assert!(!glob("alp*", "busybox:latest"));
    }
}
