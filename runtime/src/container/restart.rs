//! `--restart`: docker's restart policies, applied by the monitor with
//! docker's back-off (100 ms, doubled at each restart, back to 100 ms once a
//! run lasted 10 s). There is no daemon: nothing restarts containers after a
//! reboot, or after their monitor was killed.

use std::time::Duration;

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// The first back-off delay.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest delay between two restarts (docker's).
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// A restart policy, as docker's HostConfig.RestartPolicy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// "no", "always", "unless-stopped" or "on-failure"
    #[serde(rename = "Name")]
    pub name: String,
    /// on-failure's most restarts (0: no limit)
    #[serde(rename = "MaximumRetryCount")]
    pub max_retries: u32,
}

impl RestartPolicy {
    /// `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<Self> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let max_retries = match (name, count) {
            ("no" | "always" | "unless-stopped", None) | ("on-failure", None) => 0,
            ("on-failure", Some(c)) => match c.parse::<i64>() {
                Ok(n) if n >= 0 => n as u32,
                Ok(_) => bail!("invalid restart policy format: maximum retry count cannot be negative ({s})"),
                Err(_) => bail!("invalid restart policy format: maximum retry count must be an integer ({s})"),
            },
            ("no" | "always" | "unless-stopped", Some(_)) => {
                bail!("invalid restart policy format: maximum retry count cannot be used with restart policy '{name}'")
            }
            _ => bail!(
                "invalid restart policy format: unknown policy '{name}' (no, always, unless-stopped, on-failure[:N])"
            ),
        };
        Ok(RestartPolicy {
            name: name.to_string(),
            max_retries,
        })
    }

    /// Whether any restart may happen.
    pub fn restarts(&self) -> bool {
        !matches!(self.name.as_str(), "" | "no")
    }

    /// Whether a process that ended with `code`, after `done` restarts,
    /// is started again (a stop or removal asked for excluded: the caller
    /// checks those).
    pub fn should_restart(&self, code: i32, done: u32) -> bool {
        match self.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => code != 0 && (self.max_retries == 0 || done < self.max_retries),
            _ => false,
        }
    }
}

/// The next delay: doubled, or back to the first after a long run.
pub fn next_delay(previous: Option<Duration>, ran: Duration) -> Duration {
    match previous {
        _ if ran >= RESET_AFTER => FIRST_DELAY,
        None => FIRST_DELAY,
        Some(d) => (d * 2).min(MAX_DELAY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(!RestartPolicy::parse("no").unwrap().restarts());
        let p = RestartPolicy::parse("on-failure:2").unwrap();
        assert_eq!(p.max_retries, 2);
        assert!(p.should_restart(1, 0) && p.should_restart(1, 1) && !p.should_restart(1, 2));
        assert!(!p.should_restart(0, 0));
        assert!(RestartPolicy::parse("always").unwrap().should_restart(0, 99));
        assert!(RestartPolicy::parse("sometimes")
            .unwrap_err()
            .to_string()
            .contains("sometimes"));
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn back_off_doubles_and_resets() {
        let d1 = next_delay(None, Duration::ZERO);
        let d2 = next_delay(Some(d1), Duration::ZERO);
        assert_eq!((d1, d2), (FIRST_DELAY, FIRST_DELAY * 2));
        assert_eq!(next_delay(Some(d2), RESET_AFTER), FIRST_DELAY);
        assert_eq!(next_delay(Some(MAX_DELAY), Duration::ZERO), MAX_DELAY);
    }
}
