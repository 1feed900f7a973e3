//! Health checks (`--health-cmd`, `--health-interval`, ...): the monitor runs
//! the command in the container through `minirun exec` every interval and
//! records docker's `starting` / `healthy` / `unhealthy` in the record,
//! with the last results, for `ps` and `inspect`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::record::{now, Record};
use crate::util::json;

/// Serialises the monitor's writes of meta.json with its health thread's.
pub static RECORD_WRITE: Mutex<()> = Mutex::new(());

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: u32 = 3;
/// How many results the record keeps (docker's 5).
const KEEP_LOG: usize = 5;

/// docker's Config.Healthcheck (durations in nanoseconds, as docker).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default)]
    pub interval: u64,
    #[serde(rename = "Timeout", default)]
    pub timeout: u64,
    #[serde(rename = "StartPeriod", default)]
    pub start_period: u64,
    #[serde(rename = "Retries", default)]
    pub retries: u32,
}

/// docker's State.Health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    #[serde(rename = "Status")]
    pub status: String,
    #[serde(rename = "FailingStreak")]
    pub failing_streak: u32,
    #[serde(rename = "Log")]
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    #[serde(rename = "Start")]
    pub start: String,
    #[serde(rename = "End")]
    pub end: String,
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    #[serde(rename = "Output")]
    pub output: String,
}

/// A Go duration as docker's flags take it: `30s`, `1m30s`, `500ms`, `1h`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        bail!("time: invalid duration \"{s}\"");
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let n: f64 = rest[..end]
            .parse()
            .map_err(|_| anyhow::anyhow!("time: invalid duration \"{s}\""))?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => bail!("time: missing unit in duration \"{s}\""),
            u => bail!("time: unknown unit \"{u}\" in duration \"{s}\""),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(Duration::from_secs_f64(total))
}

/// The check `run`'s flags ask for, over the image's (`image`, docker's
/// Healthcheck of the image config, if any); None: no check.
pub fn config(flags: &crate::cli::RunFlags, image: Option<HealthConfig>) -> Result<Option<HealthConfig>> {
    let given = flags.health_cmd.is_some()
        || flags.health_interval.is_some()
        || flags.health_retries.is_some()
        || flags.health_timeout.is_some()
        || flags.health_start_period.is_some();
    if flags.no_healthcheck {
        if given {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        return Ok(None);
    }
    let mut c = image.unwrap_or(HealthConfig {
        test: Vec::new(),
        interval: 0,
        timeout: 0,
        start_period: 0,
        retries: 0,
    });
    if let Some(cmd) = &flags.health_cmd {
        c.test = vec!["CMD-SHELL".into(), cmd.clone()];
    }
    let dur = |flag: &str, v: &Option<String>| -> Result<Option<u64>> {
        v.as_deref()
            .map(|s| {
                let d = parse_duration(s).with_context(|| format!("invalid argument \"{s}\" for \"--{flag}\" flag"))?;
                if !d.is_zero() && d < Duration::from_millis(1) {
                    bail!("--{flag} cannot be less than 1ms ({s})");
                }
                Ok(d.as_nanos() as u64)
            })
            .transpose()
    };
    if let Some(d) = dur("health-interval", &flags.health_interval)? {
        c.interval = d;
    }
    if let Some(d) = dur("health-timeout", &flags.health_timeout)? {
        c.timeout = d;
    }
    if let Some(d) = dur("health-start-period", &flags.health_start_period)? {
        c.start_period = d;
    }
    if let Some(r) = flags.health_retries {
        c.retries = r;
    }
    // ["NONE"] in an image: no check
    if c.test.is_empty() || c.test[0] == "NONE" {
        return Ok(None);
    }
    Ok(Some(c))
}

impl HealthConfig {
    /// The longest one check may take.
    pub fn timeout(&self) -> Duration {
        nonzero(self.timeout).unwrap_or(DEFAULT_TIMEOUT)
    }
    fn interval(&self) -> Duration {
        nonzero(self.interval).unwrap_or(DEFAULT_INTERVAL)
    }
    fn retries(&self) -> u32 {
        if self.retries == 0 {
            DEFAULT_RETRIES
        } else {
            self.retries
        }
    }
    /// The argv run in the container.
    fn argv(&self) -> Vec<String> {
        match self.test.first().map(String::as_str) {
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), self.test[1..].join(" ")],
            Some("CMD") => self.test[1..].to_vec(),
            _ => self.test.clone(),
        }
    }
}

fn nonzero(ns: u64) -> Option<Duration> {
    (ns > 0).then(|| Duration::from_nanos(ns))
}

/// What `ps` adds after "Up ...": ` (healthy)`, ` (health: starting)`, ` (unhealthy)`.
pub fn ps_suffix(r: &Record) -> String {
    match r.run_flags.health.as_ref().map(|h| h.status.as_str()) {
        Some("starting") => " (health: starting)".into(),
        Some(s) if !s.is_empty() => format!(" ({s})"),
        _ => String::new(),
    }
}

/// docker's `Restarting (CODE) 3 seconds ago` for a container waiting to be
/// started again.
pub fn restarting_status(r: &Record, code: i32) -> String {
    let ago = r
        .finished_at
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| {
            (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                .num_seconds()
                .max(0)
        })
        .unwrap_or(0);
    let ago = match ago {
        0 => "Less than a second".to_string(),
        1 => "1 second".to_string(),
        s if s < 60 => format!("{s} seconds"),
        s if s < 120 => "About a minute".to_string(),
        s if s < 3600 => format!("{} minutes", s / 60),
        s => format!("{} hours", s / 3600),
    };
    format!("Restarting ({code}) {ago} ago")
}

/// The checker of one container: a thread of its monitor.
pub struct Checker {
    flags: Arc<Flags>,
    thread: std::thread::JoinHandle<()>,
}

#[derive(Default)]
struct Flags {
    stop: AtomicBool,
    /// The monitor is about to start the process again: park.
    hold: AtomicBool,
    /// Parked: between two checks, not running anything.
    parked: AtomicBool,
}

/// While it lives, the checker is parked (see [`Checker::pause`]).
pub struct Paused<'a>(&'a Checker);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.flags.hold.store(false, Ordering::SeqCst);
    }
}

impl Checker {
    /// Starts checking container `id` (its record at `meta`); `globals`
    /// are the global flags `minirun exec` needs.
    pub fn start(cfg: HealthConfig, meta: PathBuf, id: String, globals: Vec<String>) -> Checker {
        let flags = Arc::new(Flags::default());
        let f = flags.clone();
        let thread = std::thread::spawn(move || check_loop(&cfg, &meta, &id, &globals, &f));
        Checker { flags, thread }
    }

    /// Parks the checker between two checks and returns once it is: the
    /// monitor then starts the process again (libcontainer clones the
    /// monitor, which no other thread may be allocating in meanwhile). A
    /// check under way (it fails fast: the container is not running) is
    /// waited for, at most its timeout.
    pub fn pause(&self, timeout: Duration) -> Paused<'_> {
        self.flags.hold.store(true, Ordering::SeqCst);
        let end = Instant::now() + timeout + Duration::from_secs(1);
        while !self.flags.parked.load(Ordering::SeqCst) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        Paused(self)
    }

    pub fn stop(self) {
        self.flags.stop.store(true, Ordering::SeqCst);
        let _ = self.thread.join();
    }
}

/// Sleeps `d` unless told to stop (parked meanwhile when asked); whether to go on.
fn sleep_unless(f: &Flags, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if f.stop.load(Ordering::SeqCst) {
            return false;
        }
        if f.hold.load(Ordering::SeqCst) {
            f.parked.store(true, Ordering::SeqCst);
            while f.hold.load(Ordering::SeqCst) && !f.stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(10));
            }
            f.parked.store(false, Ordering::SeqCst);
            continue;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

/// Resets the record's health to `starting` (at each start of the process).
pub fn reset(meta: &Path) {
    let _g = RECORD_WRITE.lock();
    if let Ok(mut r) = json::read::<Record>(meta) {
        r.run_flags.health = Some(HealthState {
            status: "starting".into(),
            ..Default::default()
        });
        let _ = json::write_atomic(meta, &r);
    }
}

fn check_loop(cfg: &HealthConfig, meta: &Path, id: &str, globals: &[String], flags: &Flags) {
    let started = Instant::now();
    let start_period = nonzero(cfg.start_period).unwrap_or(Duration::ZERO);
    while sleep_unless(flags, cfg.interval()) {
        let start = now();
        let (code, output) = probe(cfg, id, globals);
        let _g = RECORD_WRITE.lock();
        let Ok(mut r) = json::read::<Record>(meta) else {
            return;
        };
        let h = r.run_flags.health.get_or_insert_with(Default::default);
        if h.status.is_empty() {
            h.status = "starting".into();
        }
        if code == 0 {
            h.status = "healthy".into();
            h.failing_streak = 0;
        } else if started.elapsed() >= start_period || h.status != "starting" {
            h.failing_streak += 1;
            if h.failing_streak >= cfg.retries() {
                h.status = "unhealthy".into();
            }
        }
        h.log.push(HealthResult {
            start,
            end: now(),
            exit_code: code,
            output,
        });
        let skip = h.log.len().saturating_sub(KEEP_LOG);
        h.log.drain(..skip);
        let _ = json::write_atomic(meta, &r);
    }
}

/// Runs the check once: its exit code (-1 when it timed out or could not
/// run) and output.
fn probe(cfg: &HealthConfig, id: &str, globals: &[String]) -> (i32, String) {
    let child = Command::new("/proc/self/exe")
        .args(globals)
        .arg("exec")
        .arg(id)
        .args(cfg.argv())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (-1, format!("cannot run the health check: {e}")),
    };
    let deadline = Instant::now() + cfg.timeout();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut out);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut out);
                }
                out.truncate(4096);
                return (status.code().unwrap_or(-1), out);
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return (-1, format!("Health check exceeded timeout ({:?})", cfg.timeout()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_images_check() {
        let image: HealthConfig = serde_json::from_value(serde_json::json!({
            "Test": ["CMD", "/bin/check"], "Interval": 5_000_000_000u64, "Retries": 4
        }))
        .unwrap();
        let none = crate::cli::RunFlags::default();
        assert_eq!(config(&none, Some(image.clone())).unwrap().unwrap(), image);
        assert_eq!(image.argv(), ["/bin/check"]);
        let flags = crate::cli::RunFlags {
            health_cmd: Some("true".into()),
            health_interval: Some("1s".into()),
            ..Default::default()
        };
        let c = config(&flags, Some(image.clone())).unwrap().unwrap();
        assert_eq!(
            (c.test.clone(), c.interval, c.retries),
            (vec!["CMD-SHELL".to_string(), "true".into()], 1_000_000_000, 4)
        );
        assert_eq!(c.argv(), ["/bin/sh", "-c", "true"]);
        let off = crate::cli::RunFlags {
            no_healthcheck: true,
            ..Default::default()
        };
        assert!(config(&off, Some(image)).unwrap().is_none());
        let nothing: HealthConfig = serde_json::from_value(serde_json::json!({"Test": ["NONE"]})).unwrap();
        assert!(config(&none, Some(nothing)).unwrap().is_none());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "5", "3x", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
