//! Dual-stack networks end to end (issue 17): `network create --ipv6`, the container's
//! IPv6 address and default route, egress over IPv6 masqueraded to the host's address,
//! ports published on both families (from outside over IPv6, from the host's `::1`),
//! AAAA answers of the embedded DNS, isolation of two IPv6 networks, `[::]:` publishes,
//! the default network with IPv6, and a teardown that leaves no element of either family
//! and no lease.
//!
//! The sandbox uplink gets 2001:db8:18::1/64 ([`Sandbox::add_ipv6`]); the outside
//! namespace (2001:db8:18::2) has no route to any container prefix, so an answer reaching
//! a container proves the masquerade.

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::Duration;

use minirun_integration::sandbox::*;
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);
const HTTPD: [&str; 6] = ["httpd", "-f", "-p", "80", "-h", "/var/www"];

fn at6(ip: Ipv6Addr, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V6(ip), port)
}

fn dual_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.add_ipv6();
    sb
}

fn network_json(sb: &Sandbox, name: &str) -> Value {
    let r = sb.run(["network", "inspect", name]).ok();
    let v: Value = serde_json::from_str(&r.stdout).expect("network inspect is not JSON");
    v[0].clone()
}

/// The container's one network endpoint in `inspect` (`NetworkSettings.Networks.NAME`:
/// docker fills the top-level address fields for the default bridge only).
#[track_caller]
fn endpoint(v: &Value) -> &Value {
    let nets = v["NetworkSettings"]["Networks"]
        .as_object()
        .unwrap_or_else(|| panic!("no Networks: {v:#}"));
    assert_eq!(nets.len(), 1, "{v:#}");
    nets.values().next().unwrap()
}

/// The container's IPv6 address, from `inspect` (docker's `GlobalIPv6Address`).
#[track_caller]
fn ip6_of(sb: &Sandbox, name: &str) -> Ipv6Addr {
    let v = sb.inspect(name);
    endpoint(&v)["GlobalIPv6Address"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name} has no IPv6 address: {v:#}"))
}

/// `run -d --net NET --name NAME [-p ..] busybox httpd`.
#[track_caller]
fn web(sb: &Sandbox, net: &str, name: &str, publish: &[&str]) {
    let mut args = vec!["run", "-d", "--net", net, "--name", name];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.push("busybox");
    args.extend(HTTPD);
    sb.run(&args).ok();
}

/// Asserts that nothing answers a TCP connection to `to` from `ns`.
#[track_caller]
fn tcp_refused(sb: &Sandbox, ns: &Ns, to: SocketAddr) {
    let r = sb.tcp_request_to(ns, to, b"GET / HTTP/1.0\r\n\r\n");
    assert!(
        !matches!(&r, Ok(body) if !body.is_empty()),
        "{to} answered from {ns:?}: {r:?}"
    );
}

/// A TCP listener in the outside namespace on [OUT_ADDR6]:port.
fn outside_listener6(sb: &Sandbox, port: u16) -> TcpListener {
    let addr = at6(OUT_ADDR6, port);
    sb.in_ns(&Ns::Outside, move || {
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
    })
}

#[test]
fn dual_stack_network_egress_publish_dns_and_clean_teardown() {
    let sb = dual_sandbox();
    sb.run([
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.90.0.0/24",
        "--subnet",
        "fd00:90::/64",
        "v6net",
    ])
    .ok();
    let n = network_json(&sb, "v6net");
    assert_eq!(n["Subnet"], "10.90.0.0/24", "{n:#}");
    assert_eq!(n["SubnetV6"], "fd00:90::/64", "{n:#}");
    assert_eq!(n["GatewayV6"], "fd00:90::1", "{n:#}");
    assert_eq!(n["IPAM"]["Config"].as_array().map(Vec::len), Some(2), "{n:#}");

    web(&sb, "v6net", "web", &["8080:80"]);
    let web6 = ip6_of(&sb, "web");
    assert!(
        "fd00:90::/64".parse::<minirun_net::Ipv6Net>().unwrap().contains(web6),
        "{web6}"
    );
    let info = sb.inspect("web");
    let ep = endpoint(&info);
    assert_eq!(ep["IPv6Gateway"], "fd00:90::1", "{info:#}");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64, "{info:#}");
    assert_eq!(ep["IPAddress"], sb.ip_of("web").to_string());
    assert_eq!(info["NetworkSettings"]["GlobalIPv6Address"], "", "{info:#}");

    // Inside: the address, and the default route via the bridge.
    let r = sb
        .run([
            "exec",
            "web",
            "sh",
            "-c",
            "ip -6 addr show dev eth0; ip -6 route; cat /etc/hosts",
        ])
        .ok();
    assert!(r.stdout.contains(&format!("{web6}/64")), "{r:#?}");
    assert!(
        r.stdout.contains(&format!("{web6}\t")),
        "own IPv6 address in /etc/hosts: {r:#?}"
    );
    assert!(r.stdout.contains("default via fd00:90::1"), "{r:#?}");

    // Egress over IPv6: the outside has no route back, so the answer proves the SNAT,
    // and the source it saw is the host's uplink address.
    let server = accept_one(outside_listener6(&sb, 9000), b"pong6", 5 * SECOND);
    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "v6net",
            "busybox",
            "sh",
            "-c",
            &format!("echo ping6 | nc {OUT_ADDR6} 9000"),
        ])
        .ok();
    assert!(r.stdout.contains("pong6"), "{r:#?}");
    let (peer, got) = server.join().unwrap().expect("outside saw no connection");
    assert_eq!(peer.ip(), IpAddr::V6(HOST_ADDR6), "egress not masqueraded");
    assert!(got.contains("ping6"));

    // -p 8080:80 is published on both families.
    sb.http_get_ok_to(&Ns::Outside, at6(HOST_ADDR6, 8080))
        .expect("published port over IPv6 from outside");
    sb.http_get_ok(&Ns::Outside, std::net::SocketAddrV4::new(HOST_ADDR, 8080))
        .expect("published port over IPv4 from outside");
    // From the host itself: its IPv6 address and its ::1.
    sb.http_get_ok_to(&Ns::Host, at6(HOST_ADDR6, 8080))
        .expect("published port from the host's own IPv6 address");
    sb.http_get_ok_to(&Ns::Host, at6(Ipv6Addr::LOCALHOST, 8080))
        .expect("published port from the host's ::1");
    // Hairpin: the container itself through the host's IPv6 address.
    let r = sb.run([
        "exec",
        "web",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {HOST_ADDR6} 8080"),
    ]);
    assert!(r.stdout.contains("HTTP/1."), "hairpin over IPv6: {r:#?}");
    let r = sb.run(["port", "web"]).ok();
    assert!(r.stdout.contains("80/tcp -> [::]:8080"), "{r:#?}");
    assert!(r.stdout.contains("80/tcp -> 0.0.0.0:8080"), "{r:#?}");

    // AAAA for container names on a dual-stack network (A still there).
    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "v6net",
            "busybox",
            "sh",
            "-c",
            "nslookup -type=aaaa web 127.0.0.11; ping -6 -c1 -W2 web",
        ])
        .ok();
    assert!(r.stdout.contains(&web6.to_string()), "no AAAA answer: {r:#?}");
    assert!(r.stdout.contains("1 packets received"), "ping -6 by name: {r:#?}");

    // Teardown of both families: no element, no lease, no veth.
    sb.run(["rm", "-f", "web"]).ok();
    sb.assert_net_clean("after rm -f of a dual-stack container");
    sb.run(["network", "rm", "v6net"]).ok();
    for family in ["ip", "ip6"] {
        for set in ["subnets", "bridges", "isolate"] {
            let left = sb.set_elements(family, set);
            assert!(left.is_empty(), "table {family} set {set} keeps {left:?}");
        }
    }
}

#[test]
fn ipv6_networks_are_isolated_and_ipv6_only_publishes() {
    let sb = dual_sandbox();
    sb.run(["network", "create", "--ipv6", "v6a"]).ok();
    sb.run(["network", "create", "--ipv6", "v6b"]).ok();
    let (a, b) = (network_json(&sb, "v6a"), network_json(&sb, "v6b"));
    let (sa, sb6) = (a["SubnetV6"].as_str().unwrap(), b["SubnetV6"].as_str().unwrap());
    assert!(sa.starts_with("fd") && sa.ends_with("/64"), "auto ULA /64: {sa}");
    assert_ne!(sa, sb6);
    // stable: the definition keeps it
    assert_eq!(network_json(&sb, "v6a")["SubnetV6"], sa);

    web(&sb, "v6a", "srv", &["[::]:8081:80"]);
    let srv6 = ip6_of(&sb, "srv");
    // From the other network: nothing over IPv6 (nor IPv4).
    let r = sb.run([
        "run", "--rm", "--net", "v6b", "busybox", "sh", "-c",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {srv6} 80 | head -1; ping -6 -c1 -W1 {srv6} >/dev/null && echo PINGED6; true"
        ),
    ]);
    assert!(
        !r.stdout.contains("HTTP/1.") && !r.stdout.contains("PINGED6"),
        "v6b reached v6a: {r:#?}"
    );
    // The same network reaches it.
    let r = sb.run([
        "run",
        "--rm",
        "--net",
        "v6a",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {srv6} 80 | head -1"),
    ]);
    assert!(r.stdout.contains("HTTP/1."), "same network over IPv6: {r:#?}");
    // [::]:8081 is IPv6 only.
    sb.http_get_ok_to(&Ns::Outside, at6(HOST_ADDR6, 8081))
        .expect("[::]:8081 over IPv6");
    tcp_refused(&sb, &Ns::Outside, SocketAddr::new(IpAddr::V4(HOST_ADDR), 8081));
    sb.http_get_ok_to(&Ns::Host, at6(Ipv6Addr::LOCALHOST, 8081))
        .expect("[::]:8081 from the host's ::1");
    // One element in ip6's pub_any and its ::1 source in lo_src; none in table ip.
    let mut elems = sb.published_elements();
    elems.sort();
    assert_eq!(elems.len(), 2, "{elems:?}");
    assert!(
        elems[0].starts_with("ip6 lo_src: ") && elems[1].starts_with("ip6 pub_any: "),
        "{elems:?}"
    );

    // An IPv6 publish on an IPv4-only network is refused, leaving nothing.
    sb.run(["network", "create", "v4only"]).ok();
    sb.run([
        "run",
        "--rm",
        "--net",
        "v4only",
        "-p",
        "[::]:8082:80",
        "busybox",
        "true",
    ])
    .fails_with("has no IPv6");

    sb.run(["rm", "-f", "srv"]).ok();
    sb.assert_net_clean("after rm -f srv");
    sb.run(["network", "rm", "v6a", "v6b", "v4only"]).ok();
    assert!(sb.set_elements("ip6", "isolate").is_empty());
    assert!(sb.set_elements("ip6", "bridges").is_empty());
}

#[test]
fn the_default_network_gets_ipv6_when_created_with_it() {
    let sb = dual_sandbox();
    sb.run(["network", "create", "--ipv6", "--subnet", "fd00:89::/64", "bridge"])
        .ok();
    let n = network_json(&sb, "bridge");
    assert_eq!(
        (n["Bridge"].as_str(), n["SubnetV6"].as_str()),
        (Some("minirun0"), Some("fd00:89::/64"))
    );
    // configured once, before first use
    sb.run(["network", "create", "--ipv6", "bridge"])
        .fails_with("already defined");
    let server = accept_one(outside_listener6(&sb, 9001), b"pong", 5 * SECOND);
    let r = sb
        .run([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("echo hi | nc {OUT_ADDR6} 9001"),
        ])
        .ok();
    assert!(r.stdout.contains("pong"), "{r:#?}");
    assert_eq!(server.join().unwrap().unwrap().0.ip(), IpAddr::V6(HOST_ADDR6));
    sb.assert_net_clean("after run --rm on the default network");
}

#[test]
fn icc_false_blocks_ipv6_peers_but_not_egress_or_published_ports() {
    let sb = dual_sandbox();
    sb.run(["network", "create", "--ipv6", "--icc=false", "quiet6"]).ok();
    web(&sb, "quiet6", "q1", &[]);
    web(&sb, "quiet6", "q2", &["8083:80"]);
    let q2 = ip6_of(&sb, "q2");
    sb.http_get_ok_to(&Ns::Outside, at6(HOST_ADDR6, 8083))
        .expect("published port over IPv6 with --icc=false");
    let server = accept_one(outside_listener6(&sb, 9002), b"ok\n", 10 * SECOND);
    let r = sb.run([
        "exec",
        "q1",
        "sh",
        "-c",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {HOST_ADDR6} 8083 | grep -q HTTP && echo PUBLISHED-OK; \
             ping -6 -c1 -W1 {q2} >/dev/null && echo PEER-PINGED; \
             printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {q2} 80 | grep -q HTTP && echo PEER-HTTP; \
             echo hi | nc -w 2 {OUT_ADDR6} 9002"
        ),
    ]);
    assert!(r.stdout.contains("PUBLISHED-OK"), "published port over IPv6: {r:#?}");
    assert!(
        !r.stdout.contains("PEER-PINGED") && !r.stdout.contains("PEER-HTTP"),
        "--icc=false let peers talk over IPv6: {r:#?}"
    );
    assert!(r.stdout.contains("ok"), "IPv6 egress blocked: {r:#?}");
    assert_eq!(server.join().unwrap().unwrap().0.ip(), IpAddr::V6(HOST_ADDR6));
    sb.run(["rm", "-f", "q1", "q2"]).ok();
    sb.assert_net_clean("after rm -f");
    sb.run(["network", "rm", "quiet6"]).ok();
    assert!(sb.set_elements("ip6", "isolate").is_empty());
}

/// Monitor and container killed: `gc` removes the elements of both tables (the `::1`
/// source of the port included) and both leases.
#[test]
fn gc_after_a_killed_dual_stack_container_leaves_no_element_of_either_family() {
    let sb = dual_sandbox();
    sb.run(["network", "create", "--ipv6", "v6gc"]).ok();
    web(&sb, "v6gc", "web", &["8084:80"]);
    sb.http_get_ok_to(&Ns::Outside, at6(HOST_ADDR6, 8084))
        .expect("web is not up");
    let id = sb.inspect("web")["Id"].as_str().unwrap().to_string();
    let meta = sb.meta(&id);
    for key in ["monitor_pid", "pid"] {
        let pid = meta[key].as_i64().unwrap_or_else(|| panic!("no {key}")) as i32;
        // SAFETY: kill(2) of a process this test's minirun started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        let start = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
            assert!(start.elapsed() < 5 * SECOND, "{key} {pid} does not die");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let left = sb.leftovers();
    assert!(left.published.iter().any(|e| e.starts_with("ip6 pub_any")), "{left:#?}");
    assert!(left.published.iter().any(|e| e.starts_with("ip6 lo_src")), "{left:#?}");
    assert!(left.leases.len() >= 2, "both leases held: {left:#?}");
    let r = sb.run(["gc"]);
    assert_eq!(r.code, 0, "{r:#?}");
    tcp_refused(&sb, &Ns::Outside, at6(HOST_ADDR6, 8084));
    sb.assert_net_clean("monitor and container killed, then gc");
}
