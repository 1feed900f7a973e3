//! `container prune`, `image prune [-a]`, `network prune` and `system
//! prune [-a]`: what nothing uses, removed after docker's question (unless
//! `-f`), reported as docker reports it.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use anyhow::{bail, Result};

use super::format::human_size;
use super::ps_docker::{dir_size, label_matches};
use super::Env;
use crate::cli::PruneArgs;
use crate::container::{teardown, Record, Status};

/// Docker's question; true when the user said yes.
pub(super) fn confirmed(force: bool, warning: &str) -> Result<bool> {
    if force {
        return Ok(true);
    }
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}

/// `until=` and `label=` filters on a container's record.
fn keep_by_filters(r: &Record, filters: &[String]) -> Result<bool> {
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        match k {
            "until" => {
                let limit = until(v)?;
                if r.created.as_str() >= limit.as_str() {
                    return Ok(false);
                }
            }
            "label" => {
                if !label_matches(&r.run_flags.labels, v) {
                    return Ok(false);
                }
            }
            _ => bail!("invalid filter '{k}'"),
        }
    }
    Ok(true)
}

/// `until=10m`, `until=2h30m`, or an RFC 3339 time, as a comparable timestamp.
fn until(v: &str) -> Result<String> {
    if chrono::DateTime::parse_from_rfc3339(v).is_ok() {
        return Ok(v.to_string());
    }
    let mut secs = 0i64;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid until filter \"{v}\""))?;
        num.clear();
        secs += n * match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => bail!("invalid until filter \"{v}\""),
        };
    }
    if !num.is_empty() {
        bail!("invalid until filter \"{v}\" (a duration needs a unit: s, m, h)");
    }
    let t = chrono::Utc::now() - chrono::Duration::seconds(secs);
    Ok(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

pub fn containers(env: &Env, a: &PruneArgs) -> Result<u8> {
    if !confirmed(a.force, "WARNING! This will remove all stopped containers.")? {
        return Ok(0);
    }
    let (ids, space) = prune_containers(env, &a.filter)?;
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in &ids {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(space));
    Ok(0)
}

fn prune_containers(env: &Env, filters: &[String]) -> Result<(Vec<String>, u64)> {
    let ctx = env.ctx();
    let mut ids = Vec::new();
    let mut space = 0;
    for r in ctx.all()? {
        if !matches!(ctx.status(&r), Status::Exited(_) | Status::Dead) || !keep_by_filters(&r, filters)? {
            continue;
        }
        let size = dir_size(&ctx.dir(&r.id).join("upper"));
        match teardown::rm(&ctx, &r.id, false) {
            Ok(id) => {
                ids.push(id);
                space += size;
            }
            Err(e) => crate::logging::report_error(&env.global, &e),
        }
    }
    Ok((ids, space))
}

pub fn images(env: &Env, a: &PruneArgs) -> Result<u8> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !confirmed(a.force, warning)? {
        return Ok(0);
    }
    let (lines, space) = prune_images(env, a.all)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(space));
    Ok(0)
}

fn prune_images(env: &Env, all: bool) -> Result<(Vec<String>, u64)> {
    let ctx = env.ctx();
    let store = ctx.store()?;
    let used: BTreeSet<String> = ctx.all()?.into_iter().map(|r| r.image_id).collect();
    let mut lines = Vec::new();
    let mut space = 0;
    let mut done = BTreeSet::new();
    for i in store.list()? {
        let dangling = i.repository == "<none>";
        if used.contains(&i.id) || !(all || dangling) || !done.insert(i.id.clone()) {
            continue;
        }
        // every name of the image goes, then the image
        let refs = store.resolve(&i.id).map(|img| img.references).unwrap_or_default();
        let mut removed = false;
        for r in refs.iter().map(String::as_str).chain(std::iter::once(i.id.as_str())) {
            if let Ok(out) = store.remove(r) {
                for l in out {
                    removed |= l.starts_with("Deleted");
                    let mut c = l.chars();
                    lines.push(
                        c.next()
                            .map(|f| f.to_lowercase().chain(c).collect())
                            .unwrap_or_default(),
                    );
                }
            }
            if removed {
                break;
            }
        }
        if removed {
            space += i.size;
        }
    }
    Ok((lines, space))
}

pub fn networks(env: &Env, a: &PruneArgs) -> Result<u8> {
    if !confirmed(
        a.force,
        "WARNING! This will remove all custom networks not used by at least one container.",
    )? {
        return Ok(0);
    }
    let removed = super::network::prune(&env.ctx())?;
    if !removed.is_empty() {
        println!("Deleted Networks:");
        for n in removed {
            println!("{n}");
        }
    }
    Ok(0)
}

pub fn system(env: &Env, a: &PruneArgs) -> Result<u8> {
    let images = if a.all {
        "  - all images without at least one container associated to them"
    } else {
        "  - all dangling images"
    };
    let volumes = if a.volumes {
        "  - all volumes not used by at least one container\n"
    } else {
        ""
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n{volumes}{images}\n  - all build cache\n"
    );
    if !confirmed(a.force, &warning)? {
        return Ok(0);
    }
    let (ids, c_space) = prune_containers(env, &a.filter)?;
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in &ids {
            println!("{id}");
        }
        println!();
    }
    let nets = super::network::prune(&env.ctx())?;
    if !nets.is_empty() {
        println!("Deleted Networks:");
        for n in &nets {
            println!("{n}");
        }
        println!();
    }
    let mut v_space = 0;
    if a.volumes {
        let (names, space) = super::volume::prune(&env.ctx())?;
        v_space = space;
        if !names.is_empty() {
            println!("Deleted Volumes:");
            for n in &names {
                println!("{n}");
            }
            println!();
        }
    }
    let (lines, i_space) = prune_images(env, a.all)?;
    if !lines.is_empty() {
        println!("Deleted Images:");
        for l in &lines {
            println!("{l}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(c_space + v_space + i_space));
    Ok(0)
}
