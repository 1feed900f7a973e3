//! Published ports end to end (issue 5): from outside, from the host's 127.0.0.1 and
//! uplink address, from another container, hairpin, address-bound publishes, picked
//! ports, ranges, -P, conflicts, teardown (also after a killed monitor) and bad specs.
//!
//! Each test builds its own sandbox (see `minirun_integration::sandbox`); the "outside"
//! namespace reaches the sandbox host at 198.18.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use minirun_integration::sandbox::*;

const SECOND: Duration = Duration::from_secs(1);
const HTTPD: [&str; 6] = ["httpd", "-f", "-p", "80", "-h", "/var/www"];

fn at(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// `run -d --name NAME [publish...] busybox httpd -f -p 80 -h /var/www`.
#[track_caller]
fn web(sb: &Sandbox, name: &str, publish: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    for p in publish {
        args.extend(["-p", p]);
    }
    args.push("busybox");
    args.extend(HTTPD);
    sb.run(&args).ok().stdout.trim().to_string()
}

/// An HTTP GET through busybox nc, run by `sh -c` inside a container.
fn nc_get(addr: SocketAddrV4) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {} {}", addr.ip(), addr.port())
}

/// Asserts that nothing answers a TCP connection to `to` from `ns`.
#[track_caller]
fn tcp_refused(sb: &Sandbox, ns: &Ns, to: SocketAddrV4) {
    let r = sb.http_get(ns, to);
    assert!(
        !matches!(&r, Ok(body) if !body.is_empty()),
        "{to} answered from {ns:?}: {r:?}"
    );
}

/// Published-map elements that mention `ip` (quoted, as nft -j writes it).
fn elements_of(sb: &Sandbox, ip: Ipv4Addr) -> Vec<String> {
    let needle = format!("\"{ip}\"");
    sb.published_elements()
        .into_iter()
        .filter(|e| e.contains(&needle))
        .collect()
}

#[test]
fn tcp_and_udp_from_the_outside() {
    let sb = Sandbox::new();
    web(&sb, "web", &["8080:80", "5353:99/udp"]);
    let info = sb.inspect("web");
    assert_eq!(
        info["NetworkSettings"]["ports"].as_array().map(Vec::len),
        Some(2),
        "{info:#}"
    );

    let body = sb
        .http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("TCP 8080 from outside");
    assert!(body.starts_with("HTTP/1."), "{body}");

    // UDP: the echo server is a socket made inside the container's namespace.
    let sock = sb.udp_bind(&Ns::Path(sb.netns_of("web")), at(Ipv4Addr::UNSPECIFIED, 99));
    let server = udp_echo(sock, "echo:", 1, 5 * SECOND);
    let answer = sb
        .udp_request(&Ns::Outside, at(HOST_ADDR, 5353), b"ping")
        .expect("UDP 5353 from outside");
    assert_eq!(answer, "echo:ping");
    let seen = server.join().unwrap();
    // inbound traffic keeps the client's address (only DNAT, no masquerade)
    assert_eq!(seen.first().map(|a| a.ip()), Some(IpAddr::V4(OUT_ADDR)), "{seen:?}");

    // each protocol only where it was published
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 5353));
    assert!(
        sb.udp_request(&Ns::Outside, at(HOST_ADDR, 8080), b"x").is_err(),
        "UDP 8080 answered"
    );
}

#[test]
fn from_the_host_loopback_and_uplink_address() {
    let sb = Sandbox::new();
    web(&sb, "web", &["8080:80", "5353:99/udp"]);
    sb.http_get_ok(&Ns::Host, at(Ipv4Addr::LOCALHOST, 8080))
        .expect("host 127.0.0.1:8080");
    sb.http_get_ok(&Ns::Host, at(HOST_ADDR, 8080))
        .expect("host 198.18.0.1:8080");

    let sock = sb.udp_bind(&Ns::Path(sb.netns_of("web")), at(Ipv4Addr::UNSPECIFIED, 99));
    let server = udp_echo(sock, "echo:", 2, 5 * SECOND);
    let a = sb.udp_request(&Ns::Host, at(Ipv4Addr::LOCALHOST, 5353), b"lo");
    let b = sb.udp_request(&Ns::Host, at(HOST_ADDR, 5353), b"up");
    assert_eq!(
        (a.ok().as_deref(), b.ok().as_deref()),
        (Some("echo:lo"), Some("echo:up"))
    );
    let seen = server.join().unwrap();
    // 127.0.0.1 cannot be a source on the bridge: it is masqueraded to the gateway
    let gateway: Ipv4Addr = sb.inspect("web")["NetworkSettings"]["gateway"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seen.first().map(|a| a.ip()), Some(IpAddr::V4(gateway)), "{seen:?}");
}

#[test]
fn from_another_container_and_from_itself_through_the_host_address() {
    let sb = Sandbox::new();
    web(&sb, "web", &["8080:80"]);
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("web is not up");
    let r = sb
        .run(["run", "--rm", "busybox", "sh", "-c", &nc_get(at(HOST_ADDR, 8080))])
        .ok();
    assert!(
        r.stdout.contains(rootfs_fixtures::INDEX_HTML),
        "second container: {r:#?}"
    );
    // hairpin: web reaches its own published port through the host's address
    let r = sb.run(["exec", "web", "sh", "-c", &nc_get(at(HOST_ADDR, 8080))]).ok();
    assert!(r.stdout.contains(rootfs_fixtures::INDEX_HTML), "hairpin: {r:#?}");
}

#[test]
fn a_loopback_bound_publish_is_not_reachable_from_outside() {
    let sb = Sandbox::new();
    web(&sb, "web", &["127.0.0.1:8081:80"]);
    assert_eq!(sb.ports("web"), ["80/tcp -> 127.0.0.1:8081"]);
    sb.http_get_ok(&Ns::Host, at(Ipv4Addr::LOCALHOST, 8081))
        .expect("host 127.0.0.1:8081");
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 8081));
    // bound to one address: not through the others either
    tcp_refused(&sb, &Ns::Host, at(HOST_ADDR, 8081));
}

/// Runs `ip -n NS ARGS...` and asserts it worked.
#[track_caller]
fn ip_in(ns: &str, args: &[&str]) {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_neighbour_sending_to_127_0_0_1_does_not_reach_a_loopback_publish() {
    // CVE-2020-8558: a machine on the host's link sends to 127.0.0.1 with the host's MAC;
    // without the guard, DNAT would carry it to the container.
    let sb = Sandbox::new();
    web(&sb, "web", &["127.0.0.1:8081:80"]);
    sb.http_get_ok(&Ns::Host, at(Ipv4Addr::LOCALHOST, 8081))
        .expect("host 127.0.0.1:8081");
    // The outside routes 127.0.0.1 to the sandbox host (only inside the outside namespace).
    let o = sb.out_ns.as_str();
    ip_in(o, &["rule", "add", "pref", "100", "lookup", "local"]);
    ip_in(o, &["rule", "del", "pref", "0"]);
    ip_in(
        o,
        &[
            "route",
            "add",
            "127.0.0.1/32",
            "via",
            &HOST_ADDR.to_string(),
            "dev",
            WAN,
            "table",
            "100",
        ],
    );
    ip_in(o, &["rule", "add", "pref", "50", "to", "127.0.0.1/32", "lookup", "100"]);
    let out = sb
        .outside_cmd("sysctl")
        .args(["-w", &format!("net.ipv4.conf.{WAN}.route_localnet=1")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    tcp_refused(&sb, &Ns::Outside, at(Ipv4Addr::LOCALHOST, 8081));

    // Control: without minirun's guard rule the same packets do get through, so the
    // refusal above is the guard's doing.
    let listing = sb
        .host_cmd("nft")
        .args(["-a", "list", "chain", "ip", "minirun", "guard"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let handle = listing
        .lines()
        .find(|l| l.contains("127.0.0.0/8") && l.contains("drop"))
        .and_then(|l| l.rsplit("handle ").next())
        .unwrap_or_else(|| panic!("no guard rule in {listing}"))
        .trim()
        .to_string();
    let out = sb
        .host_cmd("nft")
        .args(["delete", "rule", "ip", "minirun", "guard", "handle", &handle])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    sb.http_get_ok(&Ns::Outside, at(Ipv4Addr::LOCALHOST, 8081))
        .expect("control: the crafted route does not work");
}

#[test]
fn a_picked_host_port_is_reported_by_port() {
    let sb = Sandbox::new();
    web(&sb, "web", &["80"]);
    let lines = sb.ports("web");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("80/tcp -> 0.0.0.0:"), "{lines:?}");
    let port = sb.host_port("web", "80/tcp");
    assert_ne!(port, 0);
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, port))
        .expect("picked port from outside");
}

#[test]
fn a_range_publishes_each_port() {
    let sb = Sandbox::new();
    sb.run([
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "8000-8002:80-82",
        "busybox",
        "sh",
        "-c",
        "httpd -p 81 -h /var/www; httpd -p 82 -h /var/www; exec httpd -f -p 80 -h /var/www",
    ])
    .ok();
    let mut lines = sb.ports("web");
    lines.sort();
    assert_eq!(
        lines,
        [
            "80/tcp -> 0.0.0.0:8000",
            "81/tcp -> 0.0.0.0:8001",
            "82/tcp -> 0.0.0.0:8002"
        ]
    );
    for port in 8000..=8002 {
        sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, port))
            .unwrap_or_else(|e| panic!("{port}: {e}"));
    }
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 8003));
}

#[test]
fn publish_all_publishes_the_exposed_ports() {
    let sb = Sandbox::new();
    sb.run([
        "run", "-d", "--name", "web", "-P", "busybox", "httpd", "-f", "-p", "80", "-h", "/var/www",
    ])
    .ok();
    let lines = sb.ports("web");
    assert_eq!(lines.len(), 1, "the image exposes 80/tcp only: {lines:?}");
    let port = sb.host_port("web", "80/tcp");
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, port))
        .expect("-P port from outside");
}

/// A run that must be refused before it starts: the error names `port`, and no
/// container, name, veth, lease, netns file, record or element is left.
#[track_caller]
fn refused_before_start(sb: &Sandbox, publish: &str, port: &str) {
    let dirs = sb.container_dirs();
    let names = sb.names();
    let before = sb.leftovers();
    let r = sb.run(["run", "-d", "--name", "late", "-p", publish, "busybox", "sleep", "60"]);
    r.fails_with(port);
    assert_eq!(sb.container_dirs(), dirs, "-p {publish} left a container");
    assert_eq!(sb.names(), names, "-p {publish} left a name");
    // the refused run's veth may still be on its way out
    let start = Instant::now();
    while sb.leftovers() != before && start.elapsed() < 5 * SECOND {
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(sb.leftovers(), before, "-p {publish} left network pieces");
}

#[test]
fn conflicts_are_refused_before_start() {
    let sb = Sandbox::new();
    web(&sb, "web", &["8080:80", "5353:53/udp"]);
    refused_before_start(&sb, "8080:80", "8080");
    refused_before_start(&sb, "8080:81", "8080");
    refused_before_start(&sb, "127.0.0.1:8080:80", "8080");
    refused_before_start(&sb, "5353:53/udp", "5353");

    // Host processes in the sandbox host namespace hold ports too.
    let _tcp = sb.tcp_listen(&Ns::Host, at(Ipv4Addr::UNSPECIFIED, 9090));
    let _udp = sb.udp_bind(&Ns::Host, at(Ipv4Addr::UNSPECIFIED, 9191));
    refused_before_start(&sb, "9090:80", "9090");
    refused_before_start(&sb, "9191:80/udp", "9191");

    // the first container is untouched, and other protocols/ports are free
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("web after the refusals");
    sb.run([
        "run",
        "-d",
        "--name",
        "udp8080",
        "-p",
        "8080:80/udp",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    sb.run([
        "run", "-d", "--name", "tcp9191", "-p", "9191:80", "busybox", "sleep", "60",
    ])
    .ok();
}

#[test]
fn rm_f_unpublishes_exactly_that_container() {
    let sb = Sandbox::new();
    web(&sb, "web", &["8080:80", "127.0.0.1:8081:80", "5353:99/udp"]);
    web(&sb, "other", &["8090:80"]);
    let (web_ip, other_ip) = (sb.ip_of("web"), sb.ip_of("other"));
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("web before rm");
    assert_eq!(elements_of(&sb, web_ip).len(), 3, "{:#?}", sb.published_elements());

    sb.run(["rm", "-f", "web"]).ok();
    assert_eq!(elements_of(&sb, web_ip), Vec::<String>::new());
    assert_eq!(elements_of(&sb, other_ip).len(), 1, "{:#?}", sb.published_elements());
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 8080));
    tcp_refused(&sb, &Ns::Host, at(Ipv4Addr::LOCALHOST, 8080));
    tcp_refused(&sb, &Ns::Host, at(Ipv4Addr::LOCALHOST, 8081));
    assert!(sb.udp_request(&Ns::Outside, at(HOST_ADDR, 5353), b"x").is_err());
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8090))
        .expect("other after rm -f web");

    sb.run(["rm", "-f", "other"]).ok();
    sb.assert_net_clean("after rm -f of both");
}

/// `run -d -p 8080:80` then SIGKILL its monitor; returns (id, container pid).
fn web_with_killed_monitor(sb: &Sandbox) -> (String, i32) {
    let id = web(sb, "web", &["8080:80"]);
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("web is not up");
    let meta = sb.meta(&id);
    let monitor = meta["monitor_pid"].as_i64().expect("no monitor pid") as i32;
    let pid = meta["pid"].as_i64().expect("no container pid") as i32;
    // SAFETY: kill(2) of the monitor this test's minirun forked.
    assert_eq!(unsafe { libc::kill(monitor, libc::SIGKILL) }, 0);
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{monitor}/cmdline")).exists()
        && std::fs::read(format!("/proc/{monitor}/cmdline")).is_ok_and(|c| !c.is_empty())
    {
        assert!(start.elapsed() < 5 * SECOND, "monitor {monitor} does not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    (id, pid)
}

#[test]
fn killed_monitor_then_rm_f_leaves_nothing() {
    let sb = Sandbox::new();
    let (_, _) = web_with_killed_monitor(&sb);
    // the container outlives its monitor, and still serves
    sb.http_get_ok(&Ns::Outside, at(HOST_ADDR, 8080))
        .expect("web after its monitor died");
    let r = sb.run(["rm", "-f", "web"]);
    assert_eq!(r.code, 0, "{r:#?}");
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 8080));
    sb.assert_net_clean("monitor killed, then rm -f");
    assert!(sb.container_dirs().is_empty());
}

#[test]
fn killed_monitor_and_container_then_gc_leaves_nothing() {
    let sb = Sandbox::new();
    let (id, pid) = web_with_killed_monitor(&sb);
    // SAFETY: kill(2) of the container process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let start = Instant::now();
    while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(start.elapsed() < 5 * SECOND, "container process {pid} does not die");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !sb.leftovers().is_empty(),
        "nothing was left to collect: the test proves nothing"
    );
    let r = sb.run(["gc"]);
    assert_eq!(r.code, 0, "{r:#?}");
    tcp_refused(&sb, &Ns::Outside, at(HOST_ADDR, 8080));
    sb.assert_net_clean("monitor and container killed, then gc");
    assert_eq!(sb.status(&id).as_deref(), Some("exited"));
}

#[test]
fn malformed_specs_are_refused_quoting_the_spec() {
    let sb = Sandbox::new();
    for spec in [
        "99999:80",
        "80:0",
        "abc",
        "1.2.3.4.5:80:80",
        "8080:80/sctpx",
        "8000-8001:80-82",
    ] {
        let r = sb.run(["run", "--rm", "-p", spec, "busybox", "true"]);
        r.fails_with(&format!("\"{spec}\""));
        assert!(sb.container_dirs().is_empty(), "{spec}: {:?}", sb.container_dirs());
        assert!(sb.names().is_empty(), "{spec}: {:?}", sb.names());
        assert!(sb.leftovers().is_empty(), "{spec}: {:#?}", sb.leftovers());
        // nothing at all: not even the default network's bridge or minirun's table
        assert!(
            !sb.host_links().iter().any(|l| l == "minirun0"),
            "{spec}: created the bridge"
        );
        assert!(sb.nft_table().is_none(), "{spec}: created the nftables table");
    }
}
