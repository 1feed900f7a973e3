//! Contents of the container's `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname`.
//!
//! Pure functions (plus thin wrappers that read the host's files). The runtime writes them.
//!
//! resolv.conf: a container in its own network namespace cannot reach a resolver on the
//! host's loopback (e.g. systemd-resolved's 127.0.0.53). Such nameservers are dropped and
//! replaced by the upstream servers listed in `/run/systemd/resolve/resolv.conf` when that
//! file exists and has non-loopback servers; if nothing usable is left, docker's public
//! defaults (8.8.8.8, 8.8.4.4) are used. `search`/`options` lines are kept. In `host` mode
//! the host's file is used unchanged.

use std::net::{IpAddr, Ipv4Addr};

/// Docker's fallback public resolvers.
pub const DEFAULT_NAMESERVERS: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
pub const SYSTEMD_RESOLV_CONF: &str = "/run/systemd/resolve/resolv.conf";

pub(crate) fn nameservers(conf: &str) -> Vec<IpAddr> {
    conf.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            match it.next() {
                Some("nameserver") => it.next().and_then(|a| a.split('%').next()?.parse().ok()),
                _ => None,
            }
        })
        .collect()
}

fn is_loopback(ip: &IpAddr) -> bool {
    ip.is_loopback()
}

/// The `search`, `domain` and `options` lines of a resolv.conf, as they are.
fn search_and_options(host: &str) -> String {
    let mut out = String::new();
    for l in host.lines() {
        let t = l.trim_start();
        if t.starts_with("search ") || t.starts_with("domain ") || t.starts_with("options ") {
            out.push_str(t.trim_end());
            out.push('\n');
        }
    }
    out
}

/// resolv.conf for a container with its own network namespace, from the host's
/// resolv.conf text and (if present) systemd-resolved's upstream file text. IPv6
/// nameservers are dropped (containers get IPv4 only).
pub fn resolv_conf(host: &str, systemd_upstream: Option<&str>) -> String {
    let mut servers: Vec<IpAddr> = nameservers(host)
        .into_iter()
        .filter(|ip| !is_loopback(ip) && ip.is_ipv4())
        .collect();
    let had_loopback = nameservers(host).iter().any(is_loopback);
    if servers.is_empty() || had_loopback {
        if let Some(up) = systemd_upstream {
            for ip in nameservers(up)
                .into_iter()
                .filter(|ip| !is_loopback(ip) && ip.is_ipv4())
            {
                if !servers.contains(&ip) {
                    servers.push(ip);
                }
            }
        }
    }
    if servers.is_empty() {
        servers = DEFAULT_NAMESERVERS.iter().map(|s| s.parse().unwrap()).collect();
    }
    let mut out = search_and_options(host);
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// resolv.conf for a container on a user-defined network: the embedded DNS responder
/// (see [`crate::dns`]) as the only nameserver, the host's `search`/`domain`/`options`
/// lines kept, and `ndots:0` (as docker) so a bare container name is asked as it is first.
pub fn resolv_conf_embedded(host: &str) -> String {
    let mut out = format!("nameserver {}\n", crate::dns::DNS_IP);
    out.push_str(&search_and_options(host));
    out.push_str("options ndots:0\n");
    out
}

/// resolv.conf naming `servers` (`--dns`), with the host's `search`/`domain`/`options`.
pub fn resolv_conf_with_servers(host: &str, servers: &[IpAddr]) -> String {
    let mut out = search_and_options(host);
    for s in servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    out
}

/// [`resolv_conf`] from the files of the caller's host.
pub fn resolv_conf_from_host() -> String {
    let host = std::fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
    let up = std::fs::read_to_string(SYSTEMD_RESOLV_CONF).ok();
    resolv_conf(&host, up.as_deref())
}

/// /etc/hosts: the localhost lines, then `<ip>\t<hostname> [<name>]` when the container has
/// an address, then `extra` entries (`--add-host`).
pub fn hosts(ip: Option<Ipv4Addr>, hostname: &str, name: Option<&str>, extra: &[(String, IpAddr)]) -> String {
    let mut out = String::from(
        "127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\n\
         ff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n",
    );
    match ip {
        Some(ip) => {
            out.push_str(&format!("{ip}\t{hostname}"));
            if let Some(n) = name.filter(|n| !n.is_empty() && *n != hostname) {
                out.push(' ');
                out.push_str(n);
            }
            out.push('\n');
        }
        // No address of its own (none mode): the hostname still resolves, to loopback.
        None if !hostname.is_empty() && hostname != "localhost" => {
            out.push_str(&format!("127.0.1.1\t{hostname}\n"));
        }
        None => {}
    }
    for (h, a) in extra {
        out.push_str(&format!("{a}\t{h}\n"));
    }
    out
}

/// /etc/hostname.
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// Docker's default hostname: the first 12 characters of the container id.
pub fn default_hostname(container_id: &str) -> String {
    container_id.chars().take(12).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_replaces_stub_with_upstream() {
        let host = "# stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch example.org\n";
        let up = "nameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 198.51.100.1\n";
        let r = resolv_conf(host, Some(up));
        assert_eq!(
            r,
            "options edns0 trust-ad\nsearch example.org\nnameserver 192.0.2.53\nnameserver 198.51.100.1\n"
        );
    }

    #[test]
    fn resolv_defaults_when_only_loopback() {
        let r = resolv_conf("nameserver 127.0.0.1\nnameserver ::1\n", None);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        let r = resolv_conf("", None);
        assert_eq!(r, "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        // Upstream file with only loopback is no help either.
        let r = resolv_conf("nameserver 127.0.0.53\n", Some("nameserver 127.0.0.1\n"));
        assert!(r.contains("8.8.8.8"));
    }

    #[test]
    fn resolv_keeps_real_servers() {
        let r = resolv_conf("domain lan\nnameserver 192.168.1.1\n", Some("nameserver 192.0.2.1\n"));
        assert_eq!(r, "domain lan\nnameserver 192.168.1.1\n");
        // Mixed: loopback dropped, real kept, upstream appended.
        let r = resolv_conf(
            "nameserver 127.0.0.53\nnameserver 10.0.0.1\n",
            Some("nameserver 10.0.0.2\n"),
        );
        assert_eq!(r, "nameserver 10.0.0.1\nnameserver 10.0.0.2\n");
    }

    #[test]
    fn resolv_for_embedded_dns_and_explicit_servers() {
        let host = "nameserver 127.0.0.53\noptions edns0\nsearch example.org\n";
        assert_eq!(
            resolv_conf_embedded(host),
            "nameserver 127.0.0.11\noptions edns0\nsearch example.org\noptions ndots:0\n"
        );
        let servers: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
        assert_eq!(
            resolv_conf_with_servers(host, &servers),
            "options edns0\nsearch example.org\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
        );
    }

    #[test]
    fn hosts_file() {
        let h = hosts(Some(Ipv4Addr::new(10, 89, 0, 2)), "abc123", Some("web"), &[]);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.ends_with("10.89.0.2\tabc123 web\n"), "{h}");
        let h = hosts(
            Some(Ipv4Addr::new(10, 89, 0, 2)),
            "web",
            Some("web"),
            &[("db".into(), "10.89.0.9".parse().unwrap())],
        );
        assert!(h.ends_with("10.89.0.2\tweb\n10.89.0.9\tdb\n"), "{h}");
        let h = hosts(None, "box", None, &[]);
        assert!(h.ends_with("127.0.1.1\tbox\n"));
        assert_eq!(hostname_file("web"), "web\n");
        assert_eq!(default_hostname("0123456789abcdef"), "0123456789ab");
    }
}
