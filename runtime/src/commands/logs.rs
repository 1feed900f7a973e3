//! `logs [-f] NAME`: a detached container's output.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{bail, Result};

use super::Env;
use crate::cli::LogsArgs;
use crate::container::{logtimes, Ctx, Record, Status};

pub fn run(env: &Env, a: &LogsArgs) -> Result<u8> {
    let ctx = env.ctx();
    let r = ctx.resolve(&a.container)?;
    let path = ctx.dir(&r.id).join("container.log");
    if !path.exists() {
        if r.detached {
            return Ok(0);
        }
        bail!(
            "container \"{}\" ran attached: its output went to the terminal, no log was kept",
            a.container
        );
    }
    if a.timestamps || a.since.is_some() || a.until.is_some() {
        return timed(&ctx, &r, &path, a);
    }
    let mut file = File::open(&path)?;
    if let Some(n) = a.tail.as_deref().filter(|t| *t != "all") {
        let n: usize = n
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid value \"{n}\" for --tail: a number or \"all\""))?;
        let start = tail_offset(&mut file, n)?;
        file.seek(SeekFrom::Start(start))?;
    }
    copy(&ctx, &r, file, a.follow)
}

/// `logs` with times: each line's from when it arrived (see
/// [`logtimes`]), shown with `-t`, chosen by `--since`/`--until`, the
/// last `--tail` of those; with `-f`, new lines as they come (their time:
/// when they were read).
fn timed(ctx: &Ctx, r: &Record, path: &std::path::Path, a: &LogsArgs) -> Result<u8> {
    let since = a.since.as_deref().map(super::events::parse_time).transpose()?;
    let until = a.until.as_deref().map(super::events::parse_time).transpose()?;
    let text = std::fs::read(path)?;
    let times = logtimes::read(path);
    let fallback = logtimes::mtime(path);
    let mut lines = Vec::new();
    let mut start = 0usize;
    while start < text.len() {
        let end = text[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(text.len(), |i| start + i + 1);
        let t = logtimes::time_of(&times, start as u64, fallback);
        if since.is_none_or(|s| t >= s) && until.is_none_or(|u| t <= u) {
            lines.push((t, &text[start..end]));
        }
        start = end;
    }
    if let Some(n) = a.tail.as_deref().filter(|t| *t != "all") {
        let n: usize = n
            .parse()
            .map_err(|_| anyhow::anyhow!("invalid value \"{n}\" for --tail: a number or \"all\""))?;
        lines.drain(..lines.len().saturating_sub(n));
    }
    let mut out = std::io::stdout().lock();
    for (t, line) in &lines {
        if a.timestamps {
            write!(out, "{} ", stamp(*t))?;
        }
        out.write_all(line)?;
    }
    out.flush()?;
    if !a.follow || until.is_some() {
        return Ok(0);
    }
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(text.len() as u64))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            partial.extend_from_slice(&buf[..n]);
            while let Some(i) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=i).collect();
                if a.timestamps {
                    write!(out, "{} ", stamp(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)))?;
                }
                out.write_all(&line)?;
            }
            out.flush()?;
            continue;
        }
        let now = ctx.load(&r.id).unwrap_or_else(|_| r.clone());
        if !matches!(ctx.status(&now), Status::Running | Status::Created) {
            out.write_all(&partial)?;
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// docker's RFC3339NanoFixed.
fn stamp(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// Where the last `n` lines of `file` start.
fn tail_offset(file: &mut File, n: usize) -> Result<u64> {
    let mut text = Vec::new();
    file.read_to_end(&mut text)?;
    file.seek(SeekFrom::Start(0))?;
    if n == 0 {
        return Ok(text.len() as u64);
    }
    // a last line without its newline counts as a line
    let body = text.strip_suffix(b"\n").unwrap_or(&text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    Ok(start as u64)
}

/// Copies the log from where `file` stands to our stdout; with `follow`,
/// until the container no longer runs.
pub(super) fn copy(ctx: &Ctx, r: &Record, mut file: File, follow: bool) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n > 0 {
            out.write_all(&buf[..n])?;
            continue;
        }
        out.flush()?;
        let now = ctx.load(&r.id).unwrap_or_else(|_| r.clone());
        if !follow || !matches!(ctx.status(&now), Status::Running | Status::Created) {
            // one last read for what was written just before the end
            let pos = file.stream_position()?;
            file.seek(SeekFrom::Start(pos))?;
            std::io::copy(&mut file, &mut out)?;
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
