//! `--net` / `--network` values.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Name of the default network (bridge `minirun0`).
pub const DEFAULT_NETWORK: &str = "bridge";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum NetMode {
    /// No network namespace: the host's interfaces.
    Host,
    /// Own namespace with only `lo` up.
    None,
    /// A bridge network, by network name (`"bridge"` is the default network on `minirun0`).
    Bridge(String),
    /// Join the network namespace of another container, by id or name (resolved by the
    /// runtime, which passes the netns path in [`crate::AttachRequest::join_netns`]).
    Container(String),
}

impl Default for NetMode {
    fn default() -> Self {
        NetMode::Bridge(DEFAULT_NETWORK.to_string())
    }
}

impl FromStr for NetMode {
    type Err = Error;

    /// `host`, `none`, `bridge`, `default` (= bridge), `container:<id|name>`, or the name of a
    /// user-defined network (`appnet`, as docker's `--network appnet`; `bridge:appnet` is
    /// accepted too). Whether that network exists is checked when it is used.
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "host" => Ok(NetMode::Host),
            "none" => Ok(NetMode::None),
            "bridge" | "default" => Ok(NetMode::default()),
            _ => {
                if let Some(rest) = s.strip_prefix("container:") {
                    if !rest.is_empty() && !rest.contains('/') && !rest.contains(char::is_whitespace) {
                        return Ok(NetMode::Container(rest.to_string()));
                    }
                } else if let Some(rest) = s.strip_prefix("bridge:") {
                    if crate::network::valid_network_name(rest) {
                        return Ok(NetMode::Bridge(rest.to_string()));
                    }
                } else if !s.contains(':') && crate::network::valid_network_name(s) {
                    return Ok(NetMode::Bridge(s.to_string()));
                }
                Err(Error::InvalidMode(s.to_string()))
            }
        }
    }
}

impl fmt::Display for NetMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetMode::Host => f.write_str("host"),
            NetMode::None => f.write_str("none"),
            NetMode::Bridge(n) if n == DEFAULT_NETWORK => f.write_str("bridge"),
            NetMode::Bridge(n) => f.write_str(n),
            NetMode::Container(c) => write!(f, "container:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modes() {
        assert_eq!("host".parse::<NetMode>().unwrap(), NetMode::Host);
        assert_eq!("none".parse::<NetMode>().unwrap(), NetMode::None);
        assert_eq!("bridge".parse::<NetMode>().unwrap(), NetMode::Bridge("bridge".into()));
        assert_eq!("default".parse::<NetMode>().unwrap(), NetMode::Bridge("bridge".into()));
        assert_eq!(
            "bridge:mynet".parse::<NetMode>().unwrap(),
            NetMode::Bridge("mynet".into())
        );
        assert_eq!(
            "container:abc123".parse::<NetMode>().unwrap(),
            NetMode::Container("abc123".into())
        );
        assert_eq!(NetMode::default(), NetMode::Bridge("bridge".into()));
    }

    #[test]
    fn rejects_bogus_with_quote() {
        let e = "bo/gus".parse::<NetMode>().unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"invalid network mode "bo/gus": expected host, none, bridge, container:<id> or a network name"#
        );
        assert_eq!("appnet".parse::<NetMode>().unwrap(), NetMode::Bridge("appnet".into()));
        for bad in [
            "",
            "container:",
            "container:a/b",
            "bridge:",
            "bridge:a/b",
            "foo:bar",
            ".hidden",
            "a b",
        ] {
            let e = bad.parse::<NetMode>().unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn display_roundtrip() {
        for s in ["host", "none", "bridge", "n1", "container:x"] {
            assert_eq!(s.parse::<NetMode>().unwrap().to_string(), s);
        }
        let j = serde_json::to_string(&NetMode::Bridge("bridge".into())).unwrap();
        assert_eq!(serde_json::from_str::<NetMode>(&j).unwrap(), NetMode::default());
    }
}
