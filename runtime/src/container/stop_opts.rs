//! `--stop-signal` and `--stop-timeout` as `stop` uses them (`rm -f` keeps
//! SIGKILL, as docker).

use std::time::Duration;

use super::record::Record;

/// docker's default stop timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The signal `stop` sends first and how long it waits before SIGKILL:
/// `-t` wins over the container's `--stop-timeout`; a negative one waits
/// for ever (a day, here).
pub fn stop_opts(r: &Record, given: Option<Duration>) -> (String, Duration) {
    let signal = r.run_flags.stop_signal.clone().unwrap_or_else(|| "SIGTERM".into());
    let signal = match signal.parse::<i32>() {
        Ok(_) => signal,
        Err(_) if signal.to_ascii_uppercase().starts_with("SIG") => signal.to_ascii_uppercase(),
        Err(_) => format!("SIG{}", signal.to_ascii_uppercase()),
    };
    let timeout = given.unwrap_or(match r.run_flags.stop_timeout {
        Some(t) if t < 0 => Duration::from_secs(86400),
        Some(t) => Duration::from_secs(t as u64),
        None => DEFAULT_TIMEOUT,
    });
    (signal, timeout)
}
