//! `events [--since T] [--until T] [--filter K=V] [--format F]`: the local
//! event log, then (without --until) new events as they come, as docker.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::time::Duration;

use anyhow::{bail, Result};

use super::format::Format;
use super::Env;
use crate::cli::EventsArgs;
use crate::events::{log_path, Event};

/// A time as docker takes it: RFC 3339, unix seconds (`1700000000.5`), or
/// a duration before now (`10m`, `1h30m`, `45s`); in nanoseconds.
pub fn parse_time(v: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp_nanos_opt().unwrap_or(0));
    }
    if let Ok(secs) = v.parse::<f64>() {
        return Ok((secs * 1e9) as i64);
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| anyhow::anyhow!("invalid time \"{v}\""))?;
        num.clear();
        total += n * match c {
            's' => 1.0,
            'm' => 60.0,
            'h' => 3600.0,
            _ => bail!("invalid time \"{v}\""),
        };
    }
    if !num.is_empty() {
        bail!("invalid time \"{v}\"");
    }
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    Ok(now - (total * 1e9) as i64)
}

pub fn run(env: &Env, a: &EventsArgs) -> Result<u8> {
    let since = a.since.as_deref().map(parse_time).transpose()?;
    let until = a.until.as_deref().map(parse_time).transpose()?;
    let filters =
        super::ps_docker::Filters::parse(&a.filter, &["container", "event", "type", "image", "network", "label"])?;
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    let path = log_path(&env.global.data_root);
    let _ = std::fs::create_dir_all(&env.global.data_root);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(&path)?;
    let mut reader = BufReader::new(file);
    if since.is_none() && until.is_none() {
        // only what comes from now on, as docker without --since
        reader.seek(SeekFrom::End(0))?;
    }
    let accepts = |e: &Event| {
        filters.accepts(|k, v| match k {
            "container" => {
                e.actor.id.starts_with(v)
                    || e.actor.attributes.get("name").is_some_and(|n| n == v)
                    || e.actor.attributes.get("container").is_some_and(|c| c.starts_with(v))
            }
            "event" => e.action == v || e.action.split(':').next() == Some(v),
            "type" => e.kind == v,
            "image" => e
                .actor
                .attributes
                .get("image")
                .is_some_and(|i| i == v || i.split(':').next() == Some(v)),
            "network" => {
                e.kind == "network"
                    && (e.actor.attributes.get("name").is_some_and(|n| n == v) || e.actor.id.starts_with(v))
            }
            "label" => super::ps_docker::label_matches(&e.actor.attributes.clone().into_iter().collect(), v),
            _ => false,
        })
    };
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            if until.is_some_and(|u| u <= chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)) {
                return Ok(0);
            }
            if n > 0 {
                // a line being written: read it again whole
                let back = n as i64;
                reader.seek(SeekFrom::Current(-back))?;
            }
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let Ok(e) = serde_json::from_str::<Event>(line.trim_end()) else {
            continue;
        };
        if since.is_some_and(|s| e.time_nano < s) {
            continue;
        }
        if until.is_some_and(|u| e.time_nano > u) {
            return Ok(0);
        }
        if !accepts(&e) {
            continue;
        }
        match &format {
            Some(f) => println!("{}", f.render(&e)?),
            None => println!("{}", text(&e)),
        }
        use std::io::Write;
        std::io::stdout().flush()?;
    }
}

/// docker's line: `TIME TYPE ACTION ID (k=v, ...)`.
fn text(e: &Event) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(e.time_nano).format("%Y-%m-%dT%H:%M:%S%.9f%:z");
    let attrs: Vec<String> = e.actor.attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{t} {} {} {} ({})", e.kind, e.action, e.actor.id, attrs.join(", "))
}
