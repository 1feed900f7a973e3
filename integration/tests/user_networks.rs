//! User-defined networks end to end (issue 6): `network create/ls/inspect/rm`, name
//! resolution through the embedded DNS responder, isolation between networks,
//! `--icc=false`, and bad input.
//!
//! Every test builds its own sandbox (see `minirun_integration::sandbox`). Containers that
//! resolve names are given `--dns 198.18.0.2`: a fake upstream DNS server in the sandbox's
//! outside namespace, so forwarded queries never leave the sandbox.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minirun_integration::sandbox::*;
use serde_json::Value;
use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, ResourceRecord, CLASS, RCODE};

const SECOND: Duration = Duration::from_secs(1);
/// The one name the fake upstream knows, and its address.
const OUTSIDE_NAME: &str = "outside.test";

/// A DNS server in the outside namespace at 198.18.0.2:53: `outside.test` is 198.18.0.2,
/// every other name is NXDOMAIN. Records the names it was asked; stops when dropped.
struct FakeUpstream {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl FakeUpstream {
    fn start(sb: &Sandbox) -> FakeUpstream {
        let sock: UdpSocket = sb.udp_bind(&Ns::Outside, SocketAddrV4::new(OUT_ADDR, 53));
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stop2.load(Ordering::SeqCst) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(q) = Packet::parse(&buf[..n]) else {
                    continue;
                };
                let Some(question) = q.questions.first() else {
                    continue;
                };
                let name = question.qname.to_string().to_ascii_lowercase();
                seen2.lock().unwrap().push(name.clone());
                let mut r = Packet::new_reply(q.id());
                r.questions = q.questions.clone();
                if name.trim_end_matches('.') == OUTSIDE_NAME {
                    if u16::from(question.qtype) == 1 {
                        r.answers.push(ResourceRecord::new(
                            question.qname.clone(),
                            CLASS::IN,
                            60,
                            RData::A(A {
                                address: OUT_ADDR.into(),
                            }),
                        ));
                    }
                } else {
                    *r.rcode_mut() = RCODE::NameError;
                }
                let _ = sock.send_to(&r.build_bytes_vec().unwrap(), peer);
            }
        });
        FakeUpstream { stop, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn network_json(sb: &Sandbox, name: &str) -> Value {
    let r = sb.run(["network", "inspect", name]).ok();
    let v: Value = serde_json::from_str(&r.stdout).expect("network inspect is not JSON");
    v[0].clone()
}

/// `run -d --net NET --name NAME busybox ARGS...` with the fake upstream as `--dns`.
#[track_caller]
fn run_d(sb: &Sandbox, net: &str, name: &str, args: &[&str]) -> String {
    let mut a = vec![
        "run",
        "-d",
        "--net",
        net,
        "--dns",
        "198.18.0.2",
        "--name",
        name,
        "busybox",
    ];
    a.extend_from_slice(args);
    sb.run(a).ok().stdout.trim().to_string()
}

/// `exec NAME sh -c SCRIPT`.
fn sh(sb: &Sandbox, name: &str, script: &str) -> minirun_integration::Run {
    sb.run(["exec", name, "sh", "-c", script])
}

/// `nslookup NAME` inside container `from`: the addresses it printed for NAME.
fn nslookup(sb: &Sandbox, from: &str, name: &str) -> Vec<Ipv4Addr> {
    let r = sh(sb, from, &format!("nslookup -type=a {name} 127.0.0.11"));
    // busybox prints the server first ("Server: 127.0.0.11" / "Address: 127.0.0.11:53").
    r.stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Address:"))
        .filter_map(|a| a.trim().parse::<Ipv4Addr>().ok())
        .collect()
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_address() {
    let sb = Sandbox::new();
    let upstream = FakeUpstream::start(&sb);
    sb.run(["network", "create", "--subnet", "10.123.0.0/24", "appnet"])
        .ok();
    let db_id = run_d(&sb, "appnet", "db", &["httpd", "-f", "-p", "80", "-h", "/var/www"]);
    let db_ip = sb.ip_of("db");
    assert_eq!(
        db_ip.octets()[..3],
        [10, 123, 0],
        "db got {db_ip}, not an address of --subnet"
    );
    let short = &db_id[..12];
    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "appnet",
            "--dns",
            "198.18.0.2",
            "busybox",
            "sh",
            "-c",
            &format!(
                "cat /etc/resolv.conf; ping -c1 -W2 db; ping -c1 -W2 {short}; ping -c1 -W2 {db_ip} >/dev/null && echo ADDR-OK; \
                 for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc db 80 > /tmp/o && grep -q minirun /tmp/o && break; sleep 0.3; done; cat /tmp/o; \
                 nslookup -type=a {OUTSIDE_NAME}"
            ),
        ])
        .ok();
    assert!(r.stdout.contains("nameserver 127.0.0.11"), "{r:#?}");
    assert!(
        r.stdout.contains(&format!("PING db ({db_ip})")),
        "name did not resolve to {db_ip}: {r:#?}"
    );
    assert!(
        r.stdout.contains(&format!("PING {short} ({db_ip})")),
        "short id did not resolve: {r:#?}"
    );
    assert!(
        r.stdout.contains(&format!("64 bytes from {db_ip}")),
        "no ping answer: {r:#?}"
    );
    assert!(r.stdout.contains("ADDR-OK"), "{r:#?}");
    assert!(
        r.stdout.contains(rootfs_fixtures::INDEX_HTML.trim()),
        "HTTP by name failed: {r:#?}"
    );
    // Names it does not know are asked upstream (the host's servers, here --dns).
    assert!(
        r.stdout.contains(&format!("Address: {OUT_ADDR}")),
        "outside name not resolved: {r:#?}"
    );
    assert!(
        upstream.seen().iter().any(|n| n.starts_with(OUTSIDE_NAME)),
        "upstream saw {:?}",
        upstream.seen()
    );
    assert!(
        !upstream.seen().iter().any(|n| n.starts_with("db")),
        "local name was forwarded: {:?}",
        upstream.seen()
    );

    // A container in db's namespace uses db's resolver as well.
    let r = sb
        .run([
            "run",
            "--rm",
            "--net",
            "container:db",
            "busybox",
            "sh",
            "-c",
            "cat /etc/resolv.conf; ping -c1 -W2 db",
        ])
        .ok();
    assert!(
        r.stdout.contains("nameserver 127.0.0.11") && r.stdout.contains(&format!("64 bytes from {db_ip}")),
        "{r:#?}"
    );

    // inspect lists the member with its address.
    let v = network_json(&sb, "appnet");
    assert_eq!(v["Containers"][&db_id]["Name"], "db", "{v:#}");
    assert_eq!(v["Containers"][&db_id]["IPv4Address"], format!("{db_ip}/24"), "{v:#}");
    sb.run(["rm", "-f", "db"]).ok();
    sb.run(["network", "rm", "appnet"]).ok();
    sb.assert_net_clean("after rm -f and network rm");
}

#[test]
fn a_later_container_resolves_and_is_resolved_and_names_go_when_it_stops() {
    let sb = Sandbox::new();
    let _upstream = FakeUpstream::start(&sb);
    sb.run(["network", "create", "appnet"]).ok();
    run_d(&sb, "appnet", "first", &["sleep", "300"]);
    sb.run([
        "run",
        "-d",
        "--net",
        "appnet",
        "--dns",
        "198.18.0.2",
        "--name",
        "late",
        "--network-alias",
        "cache",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let (first_ip, late_ip) = (sb.ip_of("first"), sb.ip_of("late"));
    assert_ne!(first_ip, late_ip);
    assert_eq!(
        nslookup(&sb, "first", "late"),
        vec![late_ip],
        "the earlier container does not resolve the later one"
    );
    assert_eq!(
        nslookup(&sb, "first", "cache"),
        vec![late_ip],
        "--network-alias does not resolve"
    );
    assert_eq!(nslookup(&sb, "late", "first"), vec![first_ip]);
    let r = sh(&sb, "first", "ping -c1 -W2 late");
    assert!(r.stdout.contains(&format!("64 bytes from {late_ip}")), "{r:#?}");

    sb.run(["stop", "-t", "1", "late"]).ok();
    assert!(
        nslookup(&sb, "first", "late").is_empty(),
        "a stopped container still resolves"
    );
    assert!(
        nslookup(&sb, "first", "cache").is_empty(),
        "a stopped container's alias still resolves"
    );
    let r = sh(&sb, "first", "ping -c1 -W1 late");
    assert_ne!(r.code, 0, "ping of a stopped container's name worked: {r:#?}");
    assert!(
        r.stderr.contains("bad address") || r.stdout.contains("bad address"),
        "{r:#?}"
    );
    // ... and comes back when a new container takes the name.
    sb.run(["rm", "late"]).ok();
    run_d(&sb, "appnet", "late", &["sleep", "300"]);
    assert_eq!(nslookup(&sb, "first", "late"), vec![sb.ip_of("late")]);
    sb.run(["rm", "-f", "first", "late"]).ok();
    sb.assert_net_clean("after rm -f");
}

#[test]
fn networks_are_isolated_from_each_other_and_from_the_default_bridge() {
    let sb = Sandbox::new();
    let _upstream = FakeUpstream::start(&sb);
    sb.run(["network", "create", "appnet"]).ok();
    sb.run(["network", "create", "othernet"]).ok();
    run_d(&sb, "appnet", "db", &["httpd", "-f", "-p", "80", "-h", "/var/www"]);
    let db_ip = sb.ip_of("db");
    let probe = format!(
        "for i in 1 2 3; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {db_ip} 80 > /tmp/o; grep -q minirun /tmp/o && echo REACHED && break; sleep 0.3; done; \
         ping -c1 -W1 {db_ip} >/dev/null && echo PINGED; true"
    );
    // Positive control: a peer on the same network gets through.
    let r = sb
        .run(["run", "--rm", "--net", "appnet", "busybox", "sh", "-c", &probe])
        .ok();
    assert!(
        r.stdout.contains("REACHED") && r.stdout.contains("PINGED"),
        "same network blocked: {r:#?}"
    );
    for net in ["bridge", "othernet"] {
        let r = sb
            .run([
                "run",
                "--rm",
                "--net",
                net,
                "--dns",
                "198.18.0.2",
                "busybox",
                "sh",
                "-c",
                &format!("{probe}; nslookup -type=a db 127.0.0.11 || true"),
            ])
            .ok();
        assert!(
            !r.stdout.contains("REACHED") && !r.stdout.contains("PINGED"),
            "{net} reached appnet's container: {r:#?}"
        );
        assert!(
            !r.stdout.contains(&format!("Address: {db_ip}")),
            "{net} resolved appnet's db: {r:#?}"
        );
    }
    // The isolation pairs are in the firewall, both directions for every pair of bridges.
    let bridges: Vec<String> = ["bridge", "appnet", "othernet"]
        .iter()
        .map(|n| network_json(&sb, n)["Bridge"].as_str().unwrap().to_string())
        .collect();
    let table = sb.nft_table().expect("minirun table");
    let isolate = table["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["set"]["name"] == "isolate")
        .map(|o| o["set"]["elem"].to_string())
        .unwrap_or_default();
    for a in &bridges {
        for b in bridges.iter().filter(|b| *b != a) {
            assert!(
                isolate.contains(&format!("[\"{a}\",\"{b}\"]")) || isolate.contains(&format!("\"{a}\",\"{b}\"")),
                "no ({a} . {b}) in {isolate}"
            );
        }
    }
    sb.run(["rm", "-f", "db"]).ok();
    sb.assert_net_clean("after rm -f");
}

#[test]
fn icc_false_blocks_peers_but_not_egress_or_published_ports() {
    let sb = Sandbox::new();
    let _upstream = FakeUpstream::start(&sb);
    sb.run(["network", "create", "--icc=false", "quiet"]).ok();
    assert_eq!(network_json(&sb, "quiet")["ICC"], false);
    run_d(&sb, "quiet", "q1", &["httpd", "-f", "-p", "80", "-h", "/var/www"]);
    sb.run([
        "run", "-d", "--net", "quiet", "--name", "q2", "-p", "8081:80", "busybox", "httpd", "-f", "-p", "80", "-h",
        "/var/www",
    ])
    .ok();
    let q1_ip = sb.ip_of("q1");
    // From outside, the published port of q2 answers.
    sb.http_get_ok(&Ns::Outside, SocketAddrV4::new(HOST_ADDR, 8081))
        .expect("published port with --icc=false");
    let listener = sb.tcp_listen(&Ns::Outside, SocketAddrV4::new(OUT_ADDR, 7000));
    let server = accept_one(listener, b"ok\n", 15 * SECOND);
    let r = sh(
        &sb,
        "q1",
        &format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {HOST_ADDR} 8081 | grep -q minirun && echo PUBLISHED-OK; \
             ping -c1 -W1 q2 >/dev/null && echo PEER-PINGED; \
             printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 q2 80 | grep -q minirun && echo PEER-HTTP; \
             echo hi | nc -w 2 {OUT_ADDR} 7000"
        ),
    );
    assert!(
        r.stdout.contains("PUBLISHED-OK"),
        "a peer's published port is unreachable: {r:#?}"
    );
    assert!(
        !r.stdout.contains("PEER-PINGED") && !r.stdout.contains("PEER-HTTP"),
        "--icc=false let peers talk: {r:#?}"
    );
    assert!(r.stdout.contains("ok"), "egress blocked: {r:#?}");
    let (peer, got) = server.join().unwrap().expect("the outside saw no connection");
    assert_eq!((peer.ip(), got.as_str()), (std::net::IpAddr::V4(HOST_ADDR), "hi\n"));
    // Names still resolve (DNS is local to each container), only traffic is blocked.
    assert_eq!(nslookup(&sb, "q2", "q1"), vec![q1_ip]);
    sb.run(["rm", "-f", "q1", "q2"]).ok();
    sb.assert_net_clean("after rm -f");
}

#[test]
fn network_rm_is_refused_while_in_use_then_removes_bridge_and_elements() {
    let sb = Sandbox::new();
    sb.run(["network", "create", "--subnet", "10.124.0.0/24", "appnet"])
        .ok();
    sb.run(["network", "create", "--subnet", "10.125.0.0/24", "keep"]).ok();
    sb.run([
        "run", "-d", "--net", "appnet", "--name", "user1", "busybox", "sleep", "300",
    ])
    .ok();
    sb.run([
        "run", "-d", "--net", "keep", "--name", "keeper", "busybox", "sleep", "300",
    ])
    .ok();
    let bridge = network_json(&sb, "appnet")["Bridge"].as_str().unwrap().to_string();
    assert!(sb.host_links().contains(&bridge));
    sb.run(["network", "rm", "appnet"]).fails_with("user1");
    sb.run(["network", "rm", "bridge"]).fails_with("default network");
    sb.run(["network", "rm", "nosuch"]).fails_with("\"nosuch\" not found");
    sb.run(["rm", "-f", "user1"]).ok();
    sb.run(["network", "rm", "appnet"]).ok();
    assert!(
        !sb.host_links().contains(&bridge),
        "bridge {bridge} left: {:?}",
        sb.host_links()
    );
    let table = sb.nft_table().expect("minirun table").to_string();
    assert!(
        !table.contains(&format!("\"{bridge}\"")),
        "{bridge} still in the firewall: {table}"
    );
    assert!(!table.contains("10.124.0.0"), "subnet still in the firewall: {table}");
    assert!(
        table.contains("10.125.0.0"),
        "the other network's subnet went too: {table}"
    );
    let ls = sb.run(["network", "ls"]).ok().stdout;
    assert!(
        !ls.contains("appnet") && ls.contains("keep") && ls.contains("bridge"),
        "{ls}"
    );
    let files: Vec<String> = std::fs::read_dir(sb.env.data_root.join("networks"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !files
            .iter()
            .any(|f| f.starts_with("appnet.") && f != "appnet.leases.lock"),
        "{files:?}"
    );
    // The name is free again.
    sb.run(["network", "create", "appnet"]).ok();
    sb.run(["network", "rm", "appnet"]).ok();
    sb.run(["rm", "-f", "keeper"]).ok();
    sb.assert_net_clean("after rm -f");
}

#[test]
fn bad_network_input_is_refused_naming_the_value_and_creates_nothing() {
    let sb = Sandbox::new();
    sb.run(["network", "create", "--subnet", "10.126.0.0/24", "good"]).ok();
    let before = sb.run(["network", "ls"]).ok().stdout;
    let links_before = sb.host_links();
    for (args, needle) in [
        (vec!["--subnet", "10.127.0.0/33", "n1"], "10.127.0.0/33"),
        (vec!["--subnet", "10.127.0.5/24", "n1"], "10.127.0.5/24"),
        (vec!["--subnet", "nonsense", "n1"], "nonsense"),
        (vec!["--subnet", "10.126.0.128/25", "n1"], "overlaps network \"good\""),
        // the sandbox host's uplink route
        (vec!["--subnet", "198.18.0.0/16", "n1"], "198.18.0.0/24"),
        (
            vec!["--subnet", "10.128.0.0/24", "--gateway", "10.129.0.1", "n1"],
            "10.129.0.1",
        ),
        (vec!["--subnet", "10.128.0.0/24", "--gateway", "bogus", "n1"], "bogus"),
        (vec!["good"], "already exists"),
        (vec!["host"], "\"host\" is reserved"),
        (vec!["bad/name"], "bad/name"),
    ] {
        let mut a = vec!["network", "create"];
        a.extend(args.iter().copied());
        sb.run(a).fails_with(needle);
    }
    sb.run(["run", "--rm", "--net", "nosuch", "busybox", "true"])
        .fails_with("network \"nosuch\" not found");
    sb.run(["run", "--rm", "--network-alias", "x", "busybox", "true"])
        .fails_with("--network-alias x");
    sb.run([
        "run",
        "--rm",
        "--net",
        "good",
        "--network-alias",
        "a.b",
        "busybox",
        "true",
    ])
    .fails_with("\"a.b\"");
    sb.run(["run", "-d", "--net", "nosuch", "--name", "x", "busybox", "true"])
        .fails_with("\"nosuch\"");
    assert_eq!(sb.run(["network", "ls"]).ok().stdout, before);
    assert_eq!(sb.host_links(), links_before);
    assert!(sb.container_dirs().is_empty(), "{:?}", sb.container_dirs());
    assert!(sb.names().is_empty(), "{:?}", sb.names());
    sb.assert_net_clean("after refused input");
}

#[test]
fn concurrent_creates_get_distinct_subnets_and_bridges() {
    let sb = Sandbox::bare();
    let pending: Vec<_> = (0..8)
        .map(|i| sb.spawn(["network", "create", &format!("n{i}")]))
        .collect();
    for p in pending {
        p.wait().ok();
    }
    let mut subnets = BTreeSet::new();
    let mut bridges = BTreeSet::new();
    for i in 0..8 {
        let v = network_json(&sb, &format!("n{i}"));
        subnets.insert(v["Subnet"].as_str().unwrap().to_string());
        bridges.insert(v["Bridge"].as_str().unwrap().to_string());
    }
    let default = network_json(&sb, "bridge");
    subnets.insert(default["Subnet"].as_str().unwrap().to_string());
    bridges.insert(default["Bridge"].as_str().unwrap().to_string());
    assert_eq!((subnets.len(), bridges.len()), (9, 9), "{subnets:?} {bridges:?}");
    // No two overlap (all are /24 here, so distinct means disjoint).
    assert!(subnets.iter().all(|s| s.ends_with("/24")), "{subnets:?}");
    let start = Instant::now();
    let pending: Vec<_> = (0..8).map(|i| sb.spawn(["network", "rm", &format!("n{i}")])).collect();
    for p in pending {
        p.wait().ok();
    }
    assert!(start.elapsed() < 30 * SECOND);
    let ls = sb.run(["network", "ls"]).ok().stdout;
    assert_eq!(ls.lines().count(), 2, "{ls}");
}
