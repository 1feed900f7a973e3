//! Networking end to end (issue 4): host, none, container:<id> and bridge, egress with
//! SNAT, teardown after every kind of exit, crash recovery, concurrency and bad input.
//!
//! Each test builds its own sandbox (a "host" and an "outside" network namespace, see
//! `minirun_integration::sandbox`); minirun runs in the sandbox host namespace and no
//! packet leaves the sandbox.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::{Duration, Instant};

use minirun_integration::sandbox::*;

const SECOND: Duration = Duration::from_secs(1);

/// The default network's subnet, from its definition.
fn default_subnet(sb: &Sandbox) -> String {
    let p = sb.env.data_root.join("networks/bridge.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    v["subnet"].as_str().unwrap().to_string()
}

fn ipv4_of_eth0(ip_addr_output: &str) -> Ipv4Addr {
    let line = ip_addr_output
        .lines()
        .find(|l| l.contains("eth0") && l.contains("inet "))
        .unwrap_or_else(|| panic!("no IPv4 address on eth0 in {ip_addr_output:?}"));
    let cidr = line.split_whitespace().skip_while(|w| *w != "inet").nth(1).unwrap();
    cidr.split('/').next().unwrap().parse().unwrap()
}

#[test]
fn egress_reaches_the_outside_masqueraded_and_outside_has_no_route_back() {
    let sb = Sandbox::new();
    let listener = sb.tcp_listen(&Ns::Outside, SocketAddrV4::new(OUT_ADDR, 7000));
    let server = accept_one(listener, b"ok\n", 10 * SECOND);
    let r = sb
        .run([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; ping -c1 -W2 198.18.0.2 >/dev/null && echo PING-OK; echo hello | nc 198.18.0.2 7000",
        ])
        .ok();
    assert!(r.stdout.contains("PING-OK"), "ping to the outside failed: {r:#?}");
    assert!(
        r.stdout.contains("ok"),
        "the outside's answer did not come back: {r:#?}"
    );
    let container_ip = ipv4_of_eth0(&r.stdout);
    let (peer, got) = server.join().unwrap().expect("the outside saw no connection");
    assert_eq!(got, "hello\n");
    // SNAT: the outside sees the sandbox host's uplink address, not the container's.
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(HOST_ADDR),
        "source seen outside (container was {container_ip})"
    );

    // The outside has no route to the container subnet: only masquerading made this work.
    let subnet = default_subnet(&sb);
    let out = sb
        .outside_cmd("ip")
        .args(["route", "get", &container_ip.to_string()])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "outside has a route to {container_ip}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let routes = String::from_utf8(
        sb.outside_cmd("ip")
            .args(["-4", "route", "show"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(
        !routes.contains(subnet.split('/').next().unwrap()),
        "outside routes mention {subnet}: {routes}"
    );
    sb.assert_net_clean("after egress --rm");
}

#[test]
fn none_has_exactly_lo_and_it_is_up() {
    let sb = Sandbox::new();
    let r = sb
        .run(["run", "--rm", "--net", "none", "busybox", "ip", "-o", "link"])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{r:#?}");
    assert_eq!(parse_link_names(&r.stdout), ["lo"]);
    let flags = lines[0].split('<').nth(1).unwrap().split('>').next().unwrap();
    assert!(flags.split(',').any(|f| f == "UP"), "lo is not up: {}", lines[0]);
    let r = sb.run([
        "run",
        "--rm",
        "--net",
        "none",
        "busybox",
        "ping",
        "-c1",
        "-W1",
        "127.0.0.1",
    ]);
    assert_eq!(r.code, 0, "loopback does not work in --net none: {r:#?}");
    sb.assert_net_clean("after --net none");
}

#[test]
fn host_mode_sees_the_host_namespace_links() {
    let sb = Sandbox::new();
    let r = sb
        .run(["run", "--rm", "--net", "host", "busybox", "ip", "-o", "link"])
        .ok();
    let inside: BTreeSet<String> = parse_link_names(&r.stdout).into_iter().collect();
    let host: BTreeSet<String> = sb.host_links().into_iter().collect();
    assert!(inside.contains(UPLINK), "the sandbox uplink is not visible: {inside:?}");
    assert_eq!(inside, host, "container links differ from the (sandbox) host's");
    let r = sb
        .run(["run", "--rm", "--net", "host", "busybox", "ip", "-o", "-4", "addr"])
        .ok();
    assert!(r.stdout.contains(&format!("{HOST_ADDR}/24")), "{r:#?}");
    let v = sb
        .run(["run", "-d", "--name", "h", "--net", "host", "busybox", "sleep", "30"])
        .ok();
    assert_eq!(sb.inspect("h")["HostConfig"]["NetworkMode"], "host", "{v:?}");
    sb.run(["rm", "-f", "h"]).ok();
    sb.assert_net_clean("after --net host");
}

#[test]
fn container_mode_shares_the_address_and_survives_the_owner() {
    let sb = Sandbox::new();
    sb.run([
        "run", "-d", "--name", "web", "busybox", "httpd", "-f", "-p", "80", "-h", "/var/www",
    ])
    .ok();
    let web_ip = sb.ip_of("web");
    let info = sb.inspect("web");
    let ns = &info["NetworkSettings"];
    assert_eq!(
        ns["gateway"].as_str().unwrap(),
        default_subnet(&sb).replace(".0/24", ".1"),
        "{ns:#}"
    );
    assert!(ns["mac"].as_str().is_some_and(|m| m.len() == 17), "{ns:#}");
    assert_eq!(info["HostConfig"]["NetworkMode"], "bridge");

    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "container:web",
            "busybox",
            "ip",
            "-o",
            "-4",
            "addr",
            "show",
            "eth0",
        ])
        .ok();
    assert_eq!(ipv4_of_eth0(&r.stdout), web_ip, "{r:#?}");
    // Same namespace: web's server is on the joiner's loopback.
    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "container:web",
            "busybox",
            "sh",
            "-c",
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 80",
        ])
        .ok();
    assert!(r.stdout.contains(rootfs_fixtures::INDEX_HTML), "{r:#?}");

    // The owner goes first: the joiner keeps its network, and everything goes with it.
    sb.run([
        "run",
        "-d",
        "--name",
        "joiner",
        "--net",
        "container:web",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    sb.run(["rm", "-f", "web"]).ok();
    assert_eq!(sb.status("joiner").as_deref(), Some("running"));
    let r = sb
        .run(["exec", "joiner", "ip", "-o", "-4", "addr", "show", "eth0"])
        .ok();
    assert_eq!(ipv4_of_eth0(&r.stdout), web_ip, "{r:#?}");
    sb.run(["rm", "-f", "joiner"]).ok();
    sb.assert_net_clean("after container: joiner and owner removed");
}

#[test]
fn two_bridge_containers_reach_each_other() {
    let sb = Sandbox::new();
    sb.run([
        "run", "-d", "--name", "a", "busybox", "httpd", "-f", "-p", "80", "-h", "/var/www",
    ])
    .ok();
    sb.run(["run", "-d", "--name", "b", "busybox", "sleep", "60"]).ok();
    let (a, b) = (sb.ip_of("a"), sb.ip_of("b"));
    assert_ne!(a, b);
    let r = sb.run(["exec", "b", "ping", "-c1", "-W2", &a.to_string()]);
    assert_eq!(r.code, 0, "b cannot ping a: {r:#?}");
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {a} 80");
    let r = sb.run(["exec", "b", "sh", "-c", &get]).ok();
    assert!(r.stdout.contains(rootfs_fixtures::INDEX_HTML), "{r:#?}");
    let r = sb.run(["exec", "a", "ping", "-c1", "-W2", &b.to_string()]);
    assert_eq!(r.code, 0, "a cannot ping b: {r:#?}");
    sb.run(["rm", "-f", "a", "b"]).ok();
    sb.assert_net_clean("after rm -f a b");
}

#[test]
fn every_kind_of_exit_leaves_no_network_behind() {
    let sb = Sandbox::new();
    // Each case is first checked to have made something, so the clean check can fail.
    // foreground, kept
    let r = sb.run([
        "run",
        "--name",
        "fg",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; exit 3",
    ]);
    assert_eq!(r.code, 3, "{r:#?}");
    ipv4_of_eth0(&r.stdout);
    sb.assert_net_clean("foreground exit");
    assert_eq!(sb.status("fg").as_deref(), Some("exited"));

    // foreground --rm
    sb.run(["run", "--rm", "--name", "fgrm", "busybox", "true"]).ok();
    sb.assert_net_clean("foreground --rm");
    assert_eq!(sb.status("fgrm"), None, "--rm left the container");

    // detached, exits by itself
    sb.run(["run", "-d", "--name", "dexit", "busybox", "sh", "-c", "sleep 0.5"])
        .ok();
    assert!(
        !sb.leftovers().is_empty(),
        "a running bridge container shows no network"
    );
    sb.wait_status("dexit", "exited", 10 * SECOND);
    sb.assert_net_clean("detached exit");

    // detached --rm, exits by itself
    sb.run(["run", "-d", "--rm", "--name", "drm", "busybox", "sh", "-c", "sleep 0.3"])
        .ok();
    let start = Instant::now();
    while sb.status("drm").is_some() {
        assert!(start.elapsed() < 10 * SECOND, "detached --rm container never went away");
        std::thread::sleep(Duration::from_millis(50));
    }
    sb.assert_net_clean("detached --rm exit");

    // stop
    sb.run(["run", "-d", "--name", "stopped", "busybox", "sleep", "60"])
        .ok();
    assert!(!sb.leftovers().is_empty());
    sb.run(["stop", "-t", "1", "stopped"]).ok();
    assert_eq!(sb.status("stopped").as_deref(), Some("exited"));
    sb.assert_net_clean("stop");

    // rm -f of a running one
    sb.run(["run", "-d", "--name", "forced", "busybox", "sleep", "60"]).ok();
    assert!(!sb.leftovers().is_empty());
    sb.run(["rm", "-f", "forced"]).ok();
    assert_eq!(sb.status("forced"), None);
    sb.assert_net_clean("rm -f");

    // --net none and container: own no lease or veth but a netns file / record
    sb.run([
        "run", "-d", "--name", "nonet", "--net", "none", "busybox", "sleep", "60",
    ])
    .ok();
    sb.run([
        "run",
        "-d",
        "--name",
        "joiner",
        "--net",
        "container:nonet",
        "busybox",
        "sleep",
        "60",
    ])
    .ok();
    assert!(!sb.leftovers().netns_files.is_empty());
    sb.run(["rm", "-f", "joiner", "nonet"]).ok();
    sb.assert_net_clean("rm -f of none + container:");

    // what remains are the two exited, kept containers
    let left = sb.run(["ps", "-a", "-q"]).ok().stdout.lines().count();
    assert_eq!(left, 3, "expected fg, dexit and stopped to remain");
}

#[test]
fn kill_9_during_setup_then_gc_leaves_nothing() {
    let sb = Sandbox::new();
    // How long one whole run takes here, to aim the kills inside it.
    let t = Instant::now();
    sb.run(["run", "--rm", "busybox", "true"]).ok();
    let whole = t.elapsed();
    let mut landed_mid_setup = 0;
    let mut attempts = Vec::new();
    for i in 0..40u32 {
        let delay = whole.mul_f64(f64::from(i % 20) / 20.0);
        let p = sb.spawn(["run", "--rm", "busybox", "true"]);
        std::thread::sleep(delay);
        // SAFETY: kill(2) on the minirun we just spawned (nsenter exec'd it: same pid).
        unsafe { libc::kill(p.pid(), libc::SIGKILL) };
        let r = p.wait();
        let killed = r.code == -1;
        let left = sb.leftovers();
        let mid = killed && (!left.records.is_empty() || !left.netns_files.is_empty() || !left.leases.is_empty());
        if mid {
            landed_mid_setup += 1;
        }
        attempts.push((delay, killed, mid));
        let gc = sb.run(["gc"]);
        assert_eq!(gc.code, 0, "gc failed after a kill at {delay:?}: {gc:#?}");
        let start = Instant::now();
        loop {
            let left = sb.leftovers();
            let dirs = sb.container_dirs();
            let names = sb.names();
            if left.is_empty() && dirs.is_empty() && names.is_empty() {
                break;
            }
            if start.elapsed() > 5 * SECOND {
                let ps = sb.run(["ps", "-a"]);
                let states: Vec<String> = dirs
                    .iter()
                    .map(|id| {
                        format!(
                            "{id}: libcontainer {} / meta phase {}",
                            sb.run(["state", id]).stdout.replace('\n', " "),
                            sb.meta(id)["phase"]
                        )
                    })
                    .collect();
                panic!(
                    "kill -9 at {delay:?} (attempt {i}, killed: {killed}), then gc, left:\n{left:#?}\ncontainers: {states:#?}\nnames: {names:?}\n{}\nprocesses still running (pid, state, cmdline): {:#?}",
                    ps.stdout,
                    sb.processes()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        if landed_mid_setup >= 3 && i >= 20 {
            break;
        }
    }
    assert!(
        landed_mid_setup > 0,
        "no kill landed while the network was set up: {attempts:?}"
    );
}

#[test]
fn twenty_concurrent_runs_get_twenty_distinct_addresses() {
    let sb = Sandbox::new();
    let pending: Vec<Pending> = (0..20)
        .map(|_| sb.spawn(["run", "-d", "busybox", "sleep", "60"]))
        .collect();
    let ids: Vec<String> = pending
        .into_iter()
        .map(|p| {
            let r = p.wait().ok();
            r.stdout.trim().to_string()
        })
        .collect();
    let by_id: Vec<(String, Ipv4Addr)> = ids.iter().map(|id| (id[..12].to_string(), sb.ip_of(id))).collect();
    let addrs: BTreeSet<Ipv4Addr> = by_id.iter().map(|(_, ip)| *ip).collect();
    assert_eq!(
        addrs.len(),
        20,
        "addresses: {by_id:#?}\nleases: {:#?}\nps -a:\n{}",
        sb.leftovers().leases,
        sb.run(["ps", "-a", "--no-trunc"]).stdout
    );
    let veths = sb.leftovers().veths;
    assert_eq!(veths.len(), 20, "{veths:?}");
    let mut rm = vec!["rm".to_string(), "-f".to_string()];
    rm.extend(ids);
    sb.run(&rm).ok();
    sb.assert_net_clean("after rm -f of the twenty");
}

/// A bad `--net` value: a one-line error naming it, and nothing created.
#[track_caller]
fn refused(sb: &Sandbox, net: &str, needle: &str) {
    let dirs = sb.container_dirs();
    let names = sb.names();
    let before = sb.leftovers();
    let r = sb.run(["run", "--rm", "--net", net, "busybox", "true"]);
    r.fails_with(needle);
    assert_eq!(sb.container_dirs(), dirs, "--net {net} left a container directory");
    assert_eq!(sb.names(), names, "--net {net} left a name");
    assert_eq!(sb.leftovers(), before, "--net {net} left network pieces");
}

#[test]
fn bad_network_values_are_refused_naming_the_value() {
    let sb = Sandbox::new();
    refused(&sb, "bogus", "bogus");
    refused(&sb, "container:nosuchthing", "nosuchthing");
    sb.run(["run", "-d", "--name", "gone", "busybox", "true"]).ok();
    sb.wait_status("gone", "exited", 10 * SECOND);
    sb.assert_net_clean("exited container");
    refused(&sb, "container:gone", "gone");
    sb.run(["run", "-d", "--name", "alive", "busybox", "sleep", "60"]).ok();
    let before = sb.leftovers();
    assert_eq!(before.veths.len(), 1);
    refused(&sb, "bogus", "bogus");
    refused(&sb, "container:alive2", "alive2");
    sb.run(["rm", "-f", "alive"]).ok();
    sb.assert_net_clean("after the bad inputs");
}

#[test]
fn a_full_subnet_is_refused_and_leaves_nothing() {
    let sb = Sandbox::new();
    // A default network with room for exactly one container (.1 is the gateway).
    let dir = sb.env.data_root.join("networks");
    std::fs::create_dir_all(&dir).unwrap();
    let def = serde_json::json!({
        "name": "bridge", "bridge": "minirun0", "subnet": "10.89.77.0/30", "gateway": "10.89.77.1", "icc": true
    });
    std::fs::write(dir.join("bridge.json"), def.to_string()).unwrap();
    sb.run(["run", "-d", "--name", "first", "busybox", "sleep", "60"]).ok();
    assert_eq!(sb.ip_of("first"), Ipv4Addr::new(10, 89, 77, 2));
    let before = sb.leftovers();
    let dirs = sb.container_dirs();
    let r = sb.run(["run", "--rm", "--name", "second", "busybox", "true"]);
    r.fails_with("10.89.77.0/30");
    assert_eq!(sb.leftovers(), before);
    assert_eq!(sb.container_dirs(), dirs);
    assert!(!sb.names().contains(&"second".to_string()));
    sb.run(["rm", "-f", "first"]).ok();
    sb.assert_net_clean("after rm -f first");
    // the address is free again
    sb.run(["run", "-d", "--name", "third", "busybox", "sleep", "60"]).ok();
    assert_eq!(sb.ip_of("third"), Ipv4Addr::new(10, 89, 77, 2));
}

#[test]
fn default_subnet_skips_a_route_of_the_host() {
    let sb = Sandbox::new();
    // The sandbox host already routes 10.89.0.0/24 (towards the outside).
    let out = Command::new("ip")
        .args([
            "-n",
            &sb.host_ns,
            "route",
            "add",
            "10.89.0.0/24",
            "via",
            &OUT_ADDR.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    sb.run(["run", "--rm", "busybox", "true"]).ok();
    assert_eq!(default_subnet(&sb), "10.89.1.0/24");
}

#[test]
fn bundle_runs_with_bridge_networking() {
    let sb = Sandbox::new();
    let b = sb.env.bundle("netb", &["sh", "-c", "ip -o -4 addr show eth0"], |_| {});
    let r = sb.run(["run", "--bundle", b.to_str().unwrap(), "--net", "bridge", "netb"]);
    assert_eq!(r.code, 0, "run --bundle --net bridge: {r:#?}");
    let ip = ipv4_of_eth0(&r.stdout);
    assert!(
        default_subnet(&sb).starts_with(&ip.to_string()[..ip.to_string().rfind('.').unwrap()]),
        "{ip}"
    );
    sb.assert_net_clean("after run --bundle --net bridge");
}

#[test]
fn etc_files_and_mtu_follow_the_container_and_the_host() {
    let sb = Sandbox::new();
    // The sandbox uplink (the interface of the default route) gets an unusual MTU first.
    let out = Command::new("ip")
        .args(["-n", &sb.host_ns, "link", "set", UPLINK, "mtu", "1420"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r = sb
        .run([
            "run",
            "--rm",
            "--name",
            "named",
            "--hostname",
            "hn1",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname; echo ---; cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; ip -o link show eth0; ip -o -4 addr show eth0",
        ])
        .ok();
    let parts: Vec<&str> = r.stdout.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{r:#?}");
    assert_eq!(parts[0].trim(), "hn1");
    let ip = ipv4_of_eth0(parts[3]);
    let own = parts[1]
        .lines()
        .find(|l| l.split_whitespace().next() == Some(&ip.to_string()[..]));
    assert!(
        own.is_some_and(|l| l.contains("hn1") && l.contains("named")),
        "/etc/hosts lacks {ip} hn1 named:\n{}",
        parts[1]
    );
    assert!(
        parts[1]
            .lines()
            .any(|l| l.starts_with("127.0.0.1") && l.contains("localhost")),
        "{}",
        parts[1]
    );
    let servers: Vec<Ipv4Addr> = parts[2]
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("odd nameserver {s:?}")))
        .collect();
    assert!(
        !servers.is_empty() && servers.iter().all(|s| !s.is_loopback()),
        "resolv.conf:\n{}",
        parts[2]
    );
    assert!(
        parts[3].contains("mtu 1420"),
        "eth0 does not follow the uplink's MTU: {}",
        parts[3]
    );
}

/// The MTU of a link in the sandbox host namespace (`ip -o link show LINK`).
fn host_link_mtu(sb: &Sandbox, link: &str) -> u32 {
    let out = sb.host_cmd("ip").args(["-o", "link", "show", link]).output().unwrap();
    assert!(out.status.success(), "{link}: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace().skip_while(|w| *w != "mtu");
    words
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {text:?}"))
}

/// Runs `sleep` in a detached container on `net`, after a container on the same network
/// that has already gone (so the bridge was emptied, which makes the kernel reset its MTU
/// to 1500); returns (eth0's MTU inside, the host-side veth's MTU, the bridge's MTU).
fn mtus_after_the_bridge_emptied(sb: &Sandbox, net: &str, name: &str) -> (u32, u32, u32) {
    sb.run(["run", "--rm", "--net", net, "busybox", "true"]).ok();
    sb.run(["run", "-d", "--net", net, "--name", name, "busybox", "sleep", "60"])
        .ok();
    sb.wait_status(name, "running", 10 * SECOND);
    let inside = sb.run(["exec", name, "cat", "/sys/class/net/eth0/mtu"]).ok();
    let settings = &sb.inspect(name)["NetworkSettings"];
    let veth = settings["veth_host"].as_str().unwrap().to_string();
    let bridge = settings["bridge"].as_str().unwrap().to_string();
    (
        inside.stdout.trim().parse().unwrap(),
        host_link_mtu(sb, &veth),
        host_link_mtu(sb, &bridge),
    )
}

/// Issue 13: every veth takes the uplink's MTU (or the network's `--opt mtu=N`), whatever
/// the bridge's MTU is at the time; the bridge gets it back too.
#[test]
fn veths_take_the_uplink_or_network_mtu_after_the_bridge_emptied() {
    let sb = Sandbox::new();
    let out = Command::new("ip")
        .args(["-n", &sb.host_ns, "link", "set", UPLINK, "mtu", "1400"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        mtus_after_the_bridge_emptied(&sb, "bridge", "second"),
        (1400, 1400, 1400)
    );

    sb.run(["network", "create", "--opt", "mtu=1300", "small"]).ok();
    let inspect = sb.run(["network", "inspect", "small"]).ok();
    let inspect: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(inspect[0]["MTU"], 1300, "{inspect:#}");
    assert_eq!(mtus_after_the_bridge_emptied(&sb, "small", "third"), (1300, 1300, 1300));
    sb.run(["network", "create", "-o", "mtu=40", "tiny"]).fails_with("mtu");
    sb.run(["network", "create", "-o", "color=red", "odd"])
        .fails_with("color=red");

    sb.run(["rm", "-f", "second", "third"]).ok();
    sb.assert_net_clean("after the MTU containers");
}
