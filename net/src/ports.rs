//! `-p/--publish` specs (docker's forms) and host-port availability checks.
//!
//! Accepted forms (each optionally followed by `/tcp` (default) or `/udp`):
//!
//! | spec | meaning |
//! | --- | --- |
//! | `CTR` | container port, host port picked later (ephemeral) |
//! | `HOST:CTR` | host port on every host address (`0` = pick) |
//! | `IP:HOST:CTR` | host port on one host address |
//! | `IP::CTR` | one host address, host port picked later |
//! | `8000-8009:80-89` | ranges of equal length, pairwise |
//! | `80-89` / `IP::80-89` | container range, each with a picked host port |
//! | `8000-8009:80` | docker's "pick one from range": the **lowest** host port of the range that is free (not used by a host socket, not published) is chosen |
//!
//! `0.0.0.0` as IP means "every address" (same as no IP: both families on a dual-stack
//! network). An IPv6 host address is written in brackets: `[2001:db8::1]:8080:80`,
//! `[::1]::80`; `[::]` means every IPv6 address (and no IPv4 one). `sctp` is rejected with
//! an error quoting the spec.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// IP protocol number (as nftables' `inet_proto`).
    pub fn ipproto(self) -> u8 {
        match self {
            Proto::Tcp => libc::IPPROTO_TCP as u8,
            Proto::Udp => libc::IPPROTO_UDP as u8,
        }
    }
    pub fn from_ipproto(p: u8) -> Option<Proto> {
        match p as i32 {
            libc::IPPROTO_TCP => Some(Proto::Tcp),
            libc::IPPROTO_UDP => Some(Proto::Udp),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One resolved published port: host side fully known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortMapping {
    /// `None` = every host address (of both families when the container has IPv6);
    /// `Some(::)` = every IPv6 host address.
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortMapping {
    /// Whether both claim the same host socket (same proto and port, and same address or
    /// either on every address).
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && match (self.host_ip, other.host_ip) {
                (None, _) | (_, None) => true,
                (Some(a), Some(b)) => {
                    a == b || a.is_ipv6() && b.is_ipv6() && (a.is_unspecified() || b.is_unspecified())
                }
            }
    }

    /// The host side of this mapping on the IPv6 side: `None` (every address) becomes
    /// `[::]`; an IPv4 host address has none.
    pub fn v6_side(&self) -> Option<PortMapping> {
        match self.host_ip {
            Some(IpAddr::V4(_)) => None,
            Some(IpAddr::V6(_)) => Some(*self),
            None => Some(PortMapping {
                host_ip: Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
                ..*self
            }),
        }
    }

    /// Whether the mapping has an IPv4 side (no host address, or an IPv4 one).
    pub fn has_v4_side(&self) -> bool {
        !matches!(self.host_ip, Some(IpAddr::V6(_)))
    }

    /// The firewall elements this mapping of a container with addresses `ip4`/`ip6` is
    /// made of, each with its target: the IPv4 side as is, the IPv6 side as
    /// [`PortMapping::v6_side`] (which is how [`crate::Firewall::list_published`] reads
    /// them back).
    pub fn elements(&self, ip4: Option<Ipv4Addr>, ip6: Option<Ipv6Addr>) -> Vec<(PortMapping, IpAddr)> {
        let mut v = Vec::new();
        if let (true, Some(a)) = (self.has_v4_side(), ip4) {
            v.push((*self, IpAddr::V4(a)));
        }
        if let (Some(m), Some(a)) = (self.v6_side(), ip6) {
            v.push((m, IpAddr::V6(a)));
        }
        v
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}:{}/{}", self.host_port, self.container_port, self.proto)
    }
}

/// Host side of a parsed spec before a port is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostPorts {
    /// Any free port (kernel-chosen ephemeral port).
    Ephemeral,
    /// An inclusive range; `start == end` is one exact port.
    Range { start: u16, end: u16 },
}

/// One parsed `-p` item; `parse_publish` may return several for one spec (ranges).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    /// The text it came from, for error messages.
    pub spec: String,
    pub host_ip: Option<IpAddr>,
    pub host_ports: HostPorts,
    pub container_port: u16,
    pub proto: Proto,
}

impl PortSpec {
    /// The mapping if the host port is already fixed.
    pub fn exact(&self) -> Option<PortMapping> {
        match self.host_ports {
            HostPorts::Range { start, end } if start == end => Some(PortMapping {
                host_ip: self.host_ip,
                host_port: start,
                container_port: self.container_port,
                proto: self.proto,
            }),
            _ => None,
        }
    }
}

fn bad(spec: &str, reason: impl Into<String>) -> Error {
    Error::InvalidPortSpec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// Parses one port or range `a` / `a-b`; `allow_zero` for a single host port.
fn parse_range(spec: &str, s: &str, what: &str, allow_zero: bool) -> Result<(u16, u16)> {
    let num = |t: &str| -> Result<u16> {
        if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(spec, format!("{what} {t:?} is not a number")));
        }
        let v: u32 = t
            .parse()
            .map_err(|_| bad(spec, format!("{what} {t:?} is not a number")))?;
        if v > 65535 {
            return Err(bad(spec, format!("{what} {v} is out of range 1-65535")));
        }
        Ok(v as u16)
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a == 0 || b == 0 {
                return Err(bad(spec, format!("{what} range {s:?} contains port 0")));
            }
            if a > b {
                return Err(bad(spec, format!("{what} range {s:?} ends before it starts")));
            }
            (a, b)
        }
        None => {
            let a = num(s)?;
            if a == 0 && !allow_zero {
                return Err(bad(spec, format!("{what} 0 is out of range 1-65535")));
            }
            (a, a)
        }
    };
    Ok((a, b))
}

/// Parses one `-p` value into one or more [`PortSpec`]s. Errors quote the spec.
pub fn parse_publish(spec: &str) -> Result<Vec<PortSpec>> {
    let s = spec.trim();
    if s.is_empty() {
        return Err(bad(spec, "empty"));
    }
    let (body, proto) = match s.rsplit_once('/') {
        Some((b, p)) => {
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                "sctp" => return Err(bad(spec, "protocol sctp is not supported (tcp or udp)")),
                _ => return Err(bad(spec, format!("unknown protocol {p:?} (tcp or udp)"))),
            };
            (b, proto)
        }
        None => (s, Proto::Tcp),
    };
    // `[v6]:HOST:CTR` / `[v6]::CTR`: the bracketed address, then the usual two fields.
    let (v6, body) = match body.strip_prefix('[') {
        Some(rest) => {
            let (a, after) = rest
                .split_once(']')
                .ok_or_else(|| bad(spec, "missing \"]\" after the IPv6 host address"))?;
            let ip: Ipv6Addr = a
                .parse()
                .map_err(|_| bad(spec, format!("invalid IPv6 host address {a:?}")))?;
            let after = after
                .strip_prefix(':')
                .filter(|r| r.contains(':'))
                .ok_or_else(|| bad(spec, "expected [IPv6]:HOST:CONTAINER"))?;
            (Some(ip), after)
        }
        None => (None, body),
    };
    if v6.is_none() && body.matches(':').count() > 2 {
        return Err(bad(
            spec,
            "an IPv6 host address must be in brackets: [ADDR]:HOST:CONTAINER",
        ));
    }
    let parts: Vec<&str> = body.split(':').collect();
    let (ip_s, host_s, ctr_s) = match (v6, parts.as_slice()) {
        (None, [c]) => (None, None, *c),
        (None, [h, c]) => (None, Some(*h), *c),
        (None, [i, h, c]) => (Some(*i), if h.is_empty() { None } else { Some(*h) }, *c),
        (Some(_), [h, c]) => (None, if h.is_empty() { None } else { Some(*h) }, *c),
        _ => return Err(bad(spec, "expected [IPv6]:HOST:CONTAINER")),
    };
    let host_ip: Option<IpAddr> = match (v6, ip_s) {
        (Some(ip), _) => Some(IpAddr::V6(ip)),
        (None, None) => None,
        (None, Some(i)) => {
            let ip: Ipv4Addr = i
                .parse()
                .map_err(|_| bad(spec, format!("invalid host IP address {i:?}")))?;
            if ip.is_unspecified() {
                None
            } else {
                Some(IpAddr::V4(ip))
            }
        }
    };
    let (cs, ce) = parse_range(spec, ctr_s, "container port", false)?;
    let clen = (ce - cs) as u32 + 1;
    let mk = |host_ports: HostPorts, container_port: u16| PortSpec {
        spec: spec.to_string(),
        host_ip,
        host_ports,
        container_port,
        proto,
    };
    let Some(host_s) = host_s else {
        return Ok((cs..=ce).map(|c| mk(HostPorts::Ephemeral, c)).collect());
    };
    let (hs, he) = parse_range(spec, host_s, "host port", true)?;
    let hlen = (he - hs) as u32 + 1;
    if hlen == clen {
        if hlen == 1 && hs == 0 {
            return Ok(vec![mk(HostPorts::Ephemeral, cs)]);
        }
        return Ok((0..clen)
            .map(|i| {
                let h = hs + i as u16;
                mk(HostPorts::Range { start: h, end: h }, cs + i as u16)
            })
            .collect());
    }
    if clen == 1 {
        // docker: one container port with a host range = pick one host port from the range.
        return Ok(vec![mk(HostPorts::Range { start: hs, end: he }, cs)]);
    }
    Err(bad(
        spec,
        format!(
            "host port range {host_s} ({hlen} ports) and container port range {ctr_s} ({clen} ports) differ in length"
        ),
    ))
}

/// Parses several `-p` values; rejects two specs that claim the same exact host port.
pub fn parse_publish_all<S: AsRef<str>>(specs: &[S]) -> Result<Vec<PortSpec>> {
    let mut out: Vec<PortSpec> = Vec::new();
    for s in specs {
        for p in parse_publish(s.as_ref())? {
            if let Some(m) = p.exact() {
                if let Some(prev) = out
                    .iter()
                    .filter_map(|o| o.exact().map(|e| (o, e)))
                    .find(|(_, e)| e.conflicts_with(&m))
                {
                    return Err(bad(
                        s.as_ref(),
                        format!(
                            "host port {}/{} is also requested by {:?}",
                            m.host_port, m.proto, prev.0.spec
                        ),
                    ));
                }
            }
            out.push(p);
        }
    }
    Ok(out)
}

fn bind_probe(proto: Proto, host_ip: Option<IpAddr>, port: u16) -> std::io::Result<u16> {
    let addr = SocketAddr::new(host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), port);
    match proto {
        // std sets SO_REUSEADDR on TcpListener, so TIME_WAIT leftovers do not count as busy.
        Proto::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Proto::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

/// A host port that is free right now in the caller's network namespace, chosen by the
/// kernel (bind to port 0). Not reserved: publishing it is what claims it.
pub fn pick_free_port(proto: Proto, host_ip: Option<IpAddr>) -> Result<u16> {
    bind_probe(proto, host_ip, 0).map_err(|e| Error::PortUnavailable {
        spec: format!("{}:0/{}", host_ip.map(|i| i.to_string()).unwrap_or_default(), proto),
        reason: format!("cannot pick a free host port: {e}"),
    })
}

/// Fails when a host socket holds the port or an already-published mapping (as returned by
/// [`crate::Firewall::list_published`]) claims it.
pub fn check_host_port_free(mapping: &PortMapping, published: &[(PortMapping, IpAddr)]) -> Result<()> {
    if let Some((p, ip)) = published.iter().find(|(p, _)| p.conflicts_with(mapping)) {
        return Err(Error::PortUnavailable {
            spec: mapping.to_string(),
            reason: format!("host port already published as {p} for container address {ip}"),
        });
    }
    bind_probe(mapping.proto, mapping.host_ip, mapping.host_port).map_err(|e| {
        let reason = match e.raw_os_error() {
            Some(libc::EADDRINUSE) => "host port is in use by a process on the host".to_string(),
            Some(libc::EADDRNOTAVAIL) => format!(
                "host address {} is not an address of this host",
                mapping.host_ip.map(|i| i.to_string()).unwrap_or_default()
            ),
            _ => format!("cannot bind host port: {e}"),
        };
        Error::PortUnavailable {
            spec: mapping.to_string(),
            reason,
        }
    })?;
    Ok(())
}

/// Turns specs into mappings: exact ports are checked, ranges take their lowest free port,
/// ephemeral ports are picked by the kernel and skip already-published ones. `published` is
/// what the firewall already holds.
pub fn resolve_ports(specs: &[PortSpec], published: &[(PortMapping, IpAddr)]) -> Result<Vec<PortMapping>> {
    let mut taken: Vec<(PortMapping, IpAddr)> = published.to_vec();
    let mut out = Vec::with_capacity(specs.len());
    for s in specs {
        let m = match s.host_ports {
            HostPorts::Range { start, end } if start == end => {
                let m = s.exact().expect("exact");
                check_host_port_free(&m, &taken).map_err(|e| respec(e, &s.spec))?;
                m
            }
            HostPorts::Range { start, end } => {
                let mut found = None;
                for port in start..=end {
                    let m = PortMapping {
                        host_ip: s.host_ip,
                        host_port: port,
                        container_port: s.container_port,
                        proto: s.proto,
                    };
                    if check_host_port_free(&m, &taken).is_ok() {
                        found = Some(m);
                        break;
                    }
                }
                found.ok_or_else(|| Error::PortUnavailable {
                    spec: s.spec.clone(),
                    reason: format!("no free host port in range {start}-{end}/{}", s.proto),
                })?
            }
            HostPorts::Ephemeral => {
                let mut found = None;
                for _ in 0..32 {
                    let port = pick_free_port(s.proto, s.host_ip).map_err(|e| respec(e, &s.spec))?;
                    let m = PortMapping {
                        host_ip: s.host_ip,
                        host_port: port,
                        container_port: s.container_port,
                        proto: s.proto,
                    };
                    if !taken.iter().any(|(p, _)| p.conflicts_with(&m)) {
                        found = Some(m);
                        break;
                    }
                }
                found.ok_or_else(|| Error::PortUnavailable {
                    spec: s.spec.clone(),
                    reason: "could not pick a free host port".into(),
                })?
            }
        };
        taken.push((m, IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        out.push(m);
    }
    Ok(out)
}

fn respec(e: Error, spec: &str) -> Error {
    match e {
        Error::PortUnavailable { reason, spec: m } if m != spec => Error::PortUnavailable {
            spec: spec.to_string(),
            reason: format!("{m}: {reason}"),
        },
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> PortSpec {
        let v = parse_publish(s).unwrap();
        assert_eq!(v.len(), 1, "{s}");
        v.into_iter().next().unwrap()
    }
    fn exact(s: &str) -> PortMapping {
        one(s).exact().unwrap()
    }

    #[test]
    fn host_ctr() {
        assert_eq!(
            exact("8080:80"),
            PortMapping {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        assert_eq!(exact("8080:80/udp").proto, Proto::Udp);
        assert_eq!(exact("8080:80/TCP").proto, Proto::Tcp);
    }

    #[test]
    fn ip_host_ctr() {
        let m = exact("127.0.0.1:8080:80");
        assert_eq!(m.host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!((m.host_port, m.container_port), (8080, 80));
        assert_eq!(exact("0.0.0.0:8080:80").host_ip, None);
        assert_eq!(m.to_string(), "127.0.0.1:8080:80/tcp");
    }

    #[test]
    fn ipv6_host_addresses() {
        let any6 = Some(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let m = exact("[::]:80:80");
        assert_eq!((m.host_ip, m.host_port, m.container_port), (any6, 80, 80));
        assert_eq!(m.to_string(), "[::]:80:80/tcp");
        let m = exact("[2001:db8::1]:8080:80/udp");
        assert_eq!(m.host_ip, Some(IpAddr::V6("2001:db8::1".parse().unwrap())));
        assert_eq!((m.host_port, m.container_port, m.proto), (8080, 80, Proto::Udp));
        assert_eq!(m.to_string(), "[2001:db8::1]:8080:80/udp");
        let p = one("[::1]::53");
        assert_eq!(
            (p.host_ip, p.host_ports),
            (Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), HostPorts::Ephemeral)
        );
        assert_eq!(parse_publish("[fd00::5]:8000-8001:80-81").unwrap().len(), 2);
        // serialized like IPv4 host addresses: a plain string
        let j = serde_json::to_string(&m).unwrap();
        assert!(j.contains("\"2001:db8::1\""), "{j}");
        assert_eq!(serde_json::from_str::<PortMapping>(&j).unwrap(), m);
        let e = parse_publish("::1:80:80").unwrap_err().to_string();
        assert!(e.contains("brackets"), "{e}");
    }

    #[test]
    fn sides_and_conflicts_of_both_families() {
        let plain = exact("8080:80");
        let v6 = exact("[::]:8080:80");
        let lo6 = exact("[::1]:8080:80");
        let v4 = exact("127.0.0.1:8080:80");
        // -p 8080:80 on a dual-stack container: one element per family
        let (ip4, ip6) = (Ipv4Addr::new(10, 0, 0, 2), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            plain.elements(Some(ip4), Some(ip6)),
            vec![(plain, IpAddr::V4(ip4)), (v6, IpAddr::V6(ip6))]
        );
        assert_eq!(plain.elements(Some(ip4), None), vec![(plain, IpAddr::V4(ip4))]);
        assert_eq!(v4.elements(Some(ip4), Some(ip6)).len(), 1);
        assert_eq!(lo6.elements(Some(ip4), Some(ip6)), vec![(lo6, IpAddr::V6(ip6))]);
        assert!(lo6.elements(Some(ip4), None).is_empty());
        assert!(plain.conflicts_with(&lo6) && v6.conflicts_with(&lo6) && lo6.conflicts_with(&v6));
        assert!(!v4.conflicts_with(&lo6) && !v4.conflicts_with(&v6));
        assert!(!lo6.conflicts_with(&exact("[::2]:8080:80")));
        let e = parse_publish_all(&["[::]:80:80", "[::1]:80:81"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("also requested"), "{e}");
        assert!(parse_publish_all(&["127.0.0.1:80:80", "[::1]:80:80"]).is_ok());
    }

    #[test]
    fn ip_empty_host() {
        let p = one("10.0.0.1::53/udp");
        assert_eq!(p.host_ip, Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert_eq!(p.host_ports, HostPorts::Ephemeral);
        assert_eq!((p.container_port, p.proto), (53, Proto::Udp));
    }

    #[test]
    fn ctr_only_and_zero() {
        let p = one("80");
        assert_eq!(
            (p.host_ip, p.host_ports, p.container_port),
            (None, HostPorts::Ephemeral, 80)
        );
        assert_eq!(one("0:80").host_ports, HostPorts::Ephemeral);
        let v = parse_publish("80-82/udp").unwrap();
        assert_eq!(v.len(), 3);
        assert!(v
            .iter()
            .all(|p| p.host_ports == HostPorts::Ephemeral && p.proto == Proto::Udp));
        assert_eq!(v[2].container_port, 82);
    }

    #[test]
    fn ranges() {
        let v = parse_publish("8000-8009:80-89").unwrap();
        assert_eq!(v.len(), 10);
        for (i, p) in v.iter().enumerate() {
            let m = p.exact().unwrap();
            assert_eq!((m.host_port, m.container_port), (8000 + i as u16, 80 + i as u16));
            assert_eq!(p.spec, "8000-8009:80-89");
        }
        let p = one("8000-8009:80");
        assert_eq!(p.host_ports, HostPorts::Range { start: 8000, end: 8009 });
        assert_eq!(p.exact(), None);
        assert_eq!(parse_publish("1.2.3.4:9000-9001:90-91/udp").unwrap().len(), 2);
    }

    #[test]
    fn bad_specs_quote_spec() {
        for s in [
            "99999:80",
            "80:0",
            "abc",
            "1.2.3.4.5:80:80",
            "8080:80/sctpx",
            "8000-8002:80-89",
            "8080:80-81",
            "",
            "80:",
            ":80",
            "-1:80",
            "90-80:80",
            "8080:80/sctp",
            "::1:80:80",
            "[::1]80:80",
            "[::1:80:80",
            "[1.2.3.4]:80:80",
            "[::1]:80",
            "[::1]:1:80:80",
            "1.2.3.4:80:80:80",
            "80:80/",
            "+80:80",
            "0-5:80",
        ] {
            let e = parse_publish(s).unwrap_err();
            let msg = e.to_string();
            assert!(msg.starts_with(&format!("invalid port spec {s:?}: ")), "{s}: {msg}");
        }
        let e = parse_publish("99999:80").unwrap_err().to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = parse_publish("8080:80/sctpx").unwrap_err().to_string();
        assert!(e.contains("sctpx"), "{e}");
        let e = parse_publish("8000-8002:80-89").unwrap_err().to_string();
        assert!(e.contains("differ in length"), "{e}");
        let e = parse_publish("1.2.3.4.5:80:80").unwrap_err().to_string();
        assert!(e.contains("\"1.2.3.4.5\""), "{e}");
    }

    #[test]
    fn several_specs_and_duplicates() {
        let v = parse_publish_all(&["8080:80", "53:53/udp", "53:53/tcp", "127.0.0.1:9000:90"]).unwrap();
        assert_eq!(v.len(), 4);
        let e = parse_publish_all(&["8080:80", "127.0.0.1:8080:81"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("127.0.0.1:8080:81") && e.contains("also requested"), "{e}");
        // Different addresses do not conflict.
        parse_publish_all(&["127.0.0.1:8080:80", "127.0.0.2:8080:81"]).unwrap();
    }

    #[test]
    fn conflicts() {
        let a = exact("8080:80");
        assert!(a.conflicts_with(&exact("127.0.0.1:8080:81")));
        assert!(!a.conflicts_with(&exact("8080:80/udp")));
        assert!(!exact("127.0.0.1:8080:80").conflicts_with(&exact("127.0.0.2:8080:80")));
    }

    #[test]
    fn pick_and_check_ports() {
        // Binding to loopback port 0 works in any namespace where lo is up; skip otherwise.
        let Ok(port) = pick_free_port(Proto::Tcp, Some(IpAddr::V4(Ipv4Addr::LOCALHOST))) else {
            eprintln!("skipping: cannot bind on 127.0.0.1 here");
            return;
        };
        assert_ne!(port, 0);
        let m = PortMapping {
            host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            host_port: port,
            container_port: 80,
            proto: Proto::Tcp,
        };
        check_host_port_free(&m, &[]).unwrap();
        // A listener makes it busy.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
        let e = check_host_port_free(&m, &[]).unwrap_err().to_string();
        assert!(e.contains("in use by a process"), "{e}");
        drop(l);
        // A published element makes it busy too.
        let published = vec![(
            PortMapping { host_ip: None, ..m },
            IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2)),
        )];
        let e = check_host_port_free(&m, &published).unwrap_err().to_string();
        assert!(e.contains("already published") && e.contains("10.89.0.2"), "{e}");
        // Not an address of this host.
        let m2 = PortMapping {
            host_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 77))),
            ..m
        };
        let e = check_host_port_free(&m2, &[]).unwrap_err().to_string();
        assert!(e.contains("not an address of this host"), "{e}");
        // Ranges take the lowest free port; ephemeral ports skip published ones.
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = l.local_addr().unwrap().port();
        if busy < 65535 {
            let spec = PortSpec {
                spec: "x".into(),
                host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                host_ports: HostPorts::Range {
                    start: busy,
                    end: busy + 1,
                },
                container_port: 80,
                proto: Proto::Tcp,
            };
            if let Ok(v) = resolve_ports(&[spec], &[]) {
                assert_eq!(v[0].host_port, busy + 1);
            }
        }
        let specs = parse_publish("127.0.0.1::80").unwrap();
        let v = resolve_ports(&specs, &[]).unwrap();
        assert_ne!(v[0].host_port, 0);
        assert_eq!(v[0].host_ip, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
