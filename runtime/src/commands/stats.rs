//! `stats [--no-stream] [--format] [NAME...]`: CPU %, memory usage and
//! limit, network I/O (the container's netns counters), block I/O and pids,
//! from its cgroup (v1 or v2, through libcgroups), as docker prints them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;
use libcgroups::common::CgroupManager;
use serde::Serialize;

use super::format::{self, Format};
use super::Env;
use crate::cli::StatsArgs;
use crate::container::{Record, Status};

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Row {
    #[serde(rename = "ID")]
    id: String,
    container: String,
    name: String,
    #[serde(rename = "CPUPerc")]
    cpu_perc: String,
    mem_usage: String,
    mem_perc: String,
    #[serde(rename = "NetIO")]
    net_io: String,
    #[serde(rename = "BlockIO")]
    block_io: String,
    #[serde(rename = "PIDs")]
    pids: String,
}

/// One reading of a container's counters.
struct Sample {
    cpu_ns: u64,
    at: Instant,
    mem: u64,
    limit: u64,
    net: (u64, u64),
    blk: (u64, u64),
    pids: u64,
}

const DEFAULT: &str =
    "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

pub fn run(env: &Env, a: &StatsArgs) -> Result<u8> {
    let ctx = env.ctx();
    let records: Vec<Record> = if a.containers.is_empty() {
        let mut all = ctx.all()?;
        all.sort_by(|x, y| y.created.cmp(&x.created));
        all.into_iter()
            .filter(|r| a.all || ctx.status(r) == Status::Running)
            .collect()
    } else {
        a.containers
            .iter()
            .map(|c| super::inspect::container(&ctx, c))
            .collect::<Result<_>>()?
    };
    let text = match a.format.as_deref() {
        None | Some("table") => DEFAULT,
        Some("json") => "{{json .}}",
        Some(t) => t,
    };
    let format = Format::parse(text)?;
    let headers: BTreeMap<&str, &str> = [
        ("ID", "CONTAINER ID"),
        ("Container", "CONTAINER"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ]
    .into_iter()
    .collect();
    let mut before: Vec<Option<Sample>> = records.iter().map(|r| sample(env, r)).collect();
    loop {
        std::thread::sleep(Duration::from_millis(if a.no_stream { 500 } else { 1000 }));
        let now: Vec<Option<Sample>> = records.iter().map(|r| sample(env, r)).collect();
        let rows: Vec<Row> = records
            .iter()
            .zip(before.iter().zip(&now))
            .map(|(r, (b, n))| row(r, b.as_ref(), n.as_ref(), a.no_trunc))
            .collect();
        if !a.no_stream {
            print!("\x1b[2J\x1b[H");
        }
        format::print_rows(&format, &headers, &rows)?;
        if a.no_stream {
            return Ok(0);
        }
        before = now;
    }
}

fn row(r: &Record, before: Option<&Sample>, now: Option<&Sample>, no_trunc: bool) -> Row {
    let id = if no_trunc { r.id.clone() } else { r.id[..12].to_string() };
    let Some(n) = now else {
        let dash = "--".to_string();
        return Row {
            id: id.clone(),
            container: id,
            name: r.name.clone(),
            cpu_perc: dash.clone(),
            mem_usage: "-- / --".into(),
            mem_perc: dash.clone(),
            net_io: "-- / --".into(),
            block_io: "-- / --".into(),
            pids: dash,
        };
    };
    let cpu = before
        .map(|b| {
            let wall = n.at.duration_since(b.at).as_nanos().max(1) as f64;
            n.cpu_ns.saturating_sub(b.cpu_ns) as f64 / wall * 100.0
        })
        .unwrap_or(0.0);
    let mem_perc = if n.limit > 0 {
        n.mem as f64 / n.limit as f64 * 100.0
    } else {
        0.0
    };
    Row {
        id: id.clone(),
        container: id,
        name: r.name.clone(),
        cpu_perc: format!("{cpu:.2}%"),
        mem_usage: format!("{} / {}", binary_size(n.mem), binary_size(n.limit)),
        mem_perc: format!("{mem_perc:.2}%"),
        net_io: format!("{} / {}", format::human_size(n.net.0), format::human_size(n.net.1)),
        block_io: format!("{} / {}", format::human_size(n.blk.0), format::human_size(n.blk.1)),
        pids: n.pids.to_string(),
    }
}

/// The counters of a running container; None when it does not run.
fn sample(env: &Env, r: &Record) -> Option<Sample> {
    let manager = super::top::cgroup(env, &r.id).ok()?;
    let stats = manager.stats().ok()?;
    let m = &stats.memory;
    // docker: usage less the inactive page cache
    let inactive = ["inactive_file", "total_inactive_file"]
        .iter()
        .find_map(|k| m.stats.get(*k).copied())
        .unwrap_or(0);
    let mem = m.memory.usage.saturating_sub(inactive);
    let host = host_memory();
    let limit = match m.memory.limit {
        0 => host,
        l if l >= host => host,
        l => l,
    };
    let (mut read, mut write) = (0, 0);
    for s in &stats.blkio.service_bytes {
        match s.op_type.as_deref().map(str::to_ascii_lowercase).as_deref() {
            Some("read") => read += s.value,
            Some("write") => write += s.value,
            _ => {}
        }
    }
    let pid = r.pid?;
    Some(Sample {
        cpu_ns: stats.cpu.usage.usage_total,
        at: Instant::now(),
        mem,
        limit,
        net: net_io(pid),
        blk: (read, write),
        pids: stats.pids.current,
    })
}

/// Bytes received and sent on every interface but lo of `pid`'s netns.
fn net_io(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for l in text.lines().skip(2) {
        let Some((iface, rest)) = l.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        if f.len() >= 9 {
            rx += f[0];
            tx += f[8];
        }
    }
    (rx, tx)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// docker's memory sizes: 1024-based, "1.5MiB", "7.667GiB".
fn binary_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_and_sizes() {
        let dev = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 100 1 0 0 0 0 0 0 100 1 0 0 0 0 0 0\n  eth0: 1500 10 0 0 0 0 0 0 648 5 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(dev), (1500, 648));
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(512), "512B");
    }
}
