//! More than one network per container (issue 15): `run --network A --network B`,
//! `network connect` / `network disconnect` on a running container, `inspect`'s
//! `NetworkSettings.Networks`, bad input, and nothing left after `rm -f`.
//!
//! Every test builds its own sandbox (`minirun_integration::sandbox`): its own host
//! namespace, roots and nftables; traffic stays in it.

use std::net::Ipv4Addr;
use std::time::Duration;

use minirun_integration::sandbox::*;
use minirun_integration::wait_until;
use serde_json::Value;

const DEADLINE: Duration = Duration::from_secs(10);

/// `exec NAME sh -c SCRIPT`.
fn sh(sb: &Sandbox, name: &str, script: &str) -> minirun_integration::Run {
    sb.run(["exec", name, "sh", "-c", script])
}

/// Whether `from` gets an answer from `to` (a name or an address) within a second.
fn pings(sb: &Sandbox, from: &str, to: &str) -> bool {
    sh(sb, from, &format!("ping -c1 -W1 {to}")).code == 0
}

fn networks(sb: &Sandbox, name: &str) -> serde_json::Map<String, Value> {
    sb.inspect(name)["NetworkSettings"]["Networks"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn ip_on(sb: &Sandbox, name: &str, network: &str) -> Ipv4Addr {
    networks(sb, name)[network]["IPAddress"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{name} has no address on {network}: {:#?}", networks(sb, name)))
}

/// Two networks (front, back), a peer on back, and `web` on front only.
fn two_networks(sb: &Sandbox) {
    sb.load_busybox();
    sb.run(["network", "create", "--subnet", "10.141.0.0/24", "front"]).ok();
    sb.run(["network", "create", "--subnet", "10.142.0.0/24", "back"]).ok();
    sb.run([
        "run", "-d", "--net", "back", "--name", "peer", "busybox", "sleep", "600",
    ])
    .ok();
    sb.run([
        "run", "-d", "--net", "front", "--name", "web", "busybox", "sleep", "600",
    ])
    .ok();
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let sb = Sandbox::new();
    two_networks(&sb);
    let peer_ip = ip_on(&sb, "peer", "back");
    assert!(!pings(&sb, "web", "peer"), "web resolved peer before being on back");
    assert!(!pings(&sb, "web", &peer_ip.to_string()), "networks are not isolated");

    sb.run(["network", "connect", "--alias", "www", "back", "web"]).ok();
    let nets = networks(&sb, "web");
    assert_eq!(nets.keys().collect::<Vec<_>>(), ["back", "front"], "{nets:#?}");
    let web_back = ip_on(&sb, "web", "back");
    assert_eq!(web_back.octets()[..3], [10, 142, 0], "{web_back}");
    assert!(
        nets["back"]["Aliases"].as_array().unwrap().iter().any(|a| a == "www"),
        "{nets:#?}"
    );
    // eth1 inside, with its address; the default route stays on eth0
    let r = sh(&sb, "web", "ip -4 addr show eth1; ip route").ok();
    assert!(r.stdout.contains(&format!("inet {web_back}/24")), "{r:#?}");
    assert!(r.stdout.contains("default via 10.141.0.1 dev eth0"), "{r:#?}");
    // by name and address, both ways, through the embedded DNS on both networks
    wait_until("web pings peer by name", DEADLINE, || pings(&sb, "web", "peer"));
    assert!(pings(&sb, "web", &peer_ip.to_string()));
    assert!(pings(&sb, "peer", "www"), "peer does not resolve web's alias on back");
    assert!(pings(&sb, "peer", "web"));
    // /etc/hosts has the new address under web's names
    let hosts = sh(&sb, "web", "cat /etc/hosts").ok().stdout;
    assert!(hosts.contains(&format!("{web_back}\t")), "{hosts}");
    // `ps` shows both, and finds it by either
    let r = sb
        .run(["ps", "--filter", "network=back", "--format", "{{.Names}} {{.Networks}}"])
        .ok();
    assert!(r.stdout.lines().any(|l| l == "web front,back"), "{r:#?}");
    // `network inspect back` lists it
    let back = sb.run(["network", "inspect", "back"]).ok().stdout;
    assert!(back.contains(&web_back.to_string()), "{back}");

    // already connected: an error naming both
    sb.run(["network", "connect", "back", "web"])
        .fails_with("web")
        .fails_with("back");

    sb.run(["network", "disconnect", "back", "web"]).ok();
    assert_eq!(networks(&sb, "web").keys().collect::<Vec<_>>(), ["front"]);
    assert!(!pings(&sb, "web", "peer"), "peer still resolves after disconnect");
    assert!(
        !pings(&sb, "web", &peer_ip.to_string()),
        "peer still reachable after disconnect"
    );
    assert!(!sh(&sb, "web", "cat /etc/hosts")
        .ok()
        .stdout
        .contains(&web_back.to_string()));
    assert!(sh(&sb, "web", "ip link show eth1").code != 0, "eth1 left in web");
    sb.run(["network", "disconnect", "back", "web"])
        .fails_with("not connected to network \"back\"");

    // the last network: no networking, still running
    sb.run(["network", "disconnect", "front", "web"]).ok();
    assert_eq!(sb.status("web").as_deref(), Some("running"));
    assert!(networks(&sb, "web").is_empty(), "{:#?}", networks(&sb, "web"));
    let r = sh(&sb, "web", "ip -4 addr").ok();
    assert!(!r.stdout.contains("10.141."), "{r:#?}");
    // and connected again
    sb.run(["network", "connect", "back", "web"]).ok();
    wait_until("web pings peer again", DEADLINE, || pings(&sb, "web", "peer"));

    sb.run(["rm", "-f", "web", "peer"]).ok();
    sb.assert_net_clean("after rm -f");
}

#[test]
fn run_with_two_networks_and_start_again() {
    let sb = Sandbox::new();
    sb.add_ipv6();
    sb.load_busybox();
    sb.run(["network", "create", "--subnet", "10.151.0.0/24", "front"]).ok();
    sb.run(["network", "create", "--ipv6", "--subnet", "10.152.0.0/24", "back6"])
        .ok();
    sb.run(["run", "-d", "--net", "front", "--name", "a", "busybox", "sleep", "600"])
        .ok();
    sb.run(["run", "-d", "--net", "back6", "--name", "b", "busybox", "sleep", "600"])
        .ok();
    sb.run([
        "run",
        "-d",
        "--network",
        "front",
        "--network",
        "back6",
        "--name",
        "both",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let nets = networks(&sb, "both");
    assert_eq!(nets.keys().collect::<Vec<_>>(), ["back6", "front"], "{nets:#?}");
    // a dual-stack network gives the second interface both families
    let v6 = nets["back6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!v6.is_empty(), "{nets:#?}");
    let r = sh(&sb, "both", "ip addr show eth1").ok();
    assert!(r.stdout.contains(&v6), "{r:#?}");
    wait_until("both reaches a and b by name", DEADLINE, || {
        pings(&sb, "both", "a") && pings(&sb, "both", "b")
    });
    assert!(pings(&sb, "b", "both"));
    assert!(sh(&sb, "both", &format!("ping -6 -c1 -W1 {}", ip6_of(&sb, "b"))).code == 0);

    // stop, start: both networks come back
    sb.run(["stop", "-t", "1", "both"]).ok();
    sb.run(["start", "both"]).ok();
    let nets = networks(&sb, "both");
    assert_eq!(nets.keys().collect::<Vec<_>>(), ["back6", "front"], "{nets:#?}");
    wait_until("both reaches b after start", DEADLINE, || pings(&sb, "both", "b"));

    sb.run(["rm", "-f", "both", "a", "b"]).ok();
    sb.assert_net_clean("after rm -f");
    for fam in ["ip", "ip6"] {
        // no container address is left in any map of either table
        let t = sb.nft_table_of(fam).map(|v| v.to_string()).unwrap_or_default();
        assert!(!t.contains("10.152.0.2") && !t.contains("10.151.0.2"), "{fam}: {t}");
    }
}

fn ip6_of(sb: &Sandbox, name: &str) -> String {
    let n = networks(sb, name);
    n.values()
        .find_map(|v| v["GlobalIPv6Address"].as_str().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| panic!("{name}: no IPv6 address {n:#?}"))
        .to_string()
}

#[test]
fn bad_input_is_refused_and_leaves_nothing() {
    let sb = Sandbox::new();
    two_networks(&sb);
    let before = sb.leftovers();
    sb.run(["network", "connect", "nosuch", "web"]).fails_with("nosuch");
    sb.run(["network", "connect", "back", "nosuch"]).fails_with("nosuch");
    sb.run(["network", "disconnect", "back", "web"]).fails_with("back");
    sb.run(["network", "connect", "--ip", "10.99.0.5", "back", "web"])
        .fails_with("10.99.0.5");
    let peer_ip = ip_on(&sb, "peer", "back").to_string();
    sb.run(["network", "connect", "--ip", &peer_ip, "back", "web"])
        .fails_with(&peer_ip);
    sb.run([
        "run", "-d", "--net", "none", "--name", "lonely", "busybox", "sleep", "600",
    ])
    .ok();
    sb.run([
        "run", "-d", "--net", "host", "--name", "onhost", "busybox", "sleep", "600",
    ])
    .ok();
    sb.run([
        "run",
        "-d",
        "--net",
        "container:web",
        "--name",
        "joiner",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let mid = sb.leftovers();
    for c in ["lonely", "onhost", "joiner"] {
        sb.run(["network", "connect", "back", c]).fails_with(c);
    }
    assert_eq!(
        format!("{:?}", sb.leftovers()),
        format!("{mid:?}"),
        "a refused connect left something"
    );
    sb.run([
        "run",
        "--rm",
        "--network",
        "bridge",
        "--network",
        "back",
        "busybox",
        "true",
    ])
    .fails_with("conflicting options");
    sb.run([
        "run",
        "--rm",
        "--network",
        "back",
        "--network",
        "nosuch",
        "busybox",
        "true",
    ])
    .fails_with("nosuch");
    // --ip picks exactly that address
    sb.run(["network", "connect", "--ip", "10.142.0.77", "back", "web"])
        .ok();
    assert_eq!(ip_on(&sb, "web", "back"), Ipv4Addr::new(10, 142, 0, 77));
    sb.run(["rm", "-f", "lonely", "onhost", "joiner"]).ok();
    sb.run(["network", "disconnect", "back", "web"]).ok();
    assert_eq!(format!("{:?}", sb.leftovers()), format!("{before:?}"));
    sb.run(["rm", "-f", "web", "peer"]).ok();
    sb.assert_net_clean("after rm -f");
}

/// A container on two networks whose monitor and process were killed: `gc` collects
/// both attachments (veths, leases, records).
#[test]
fn killed_container_on_two_networks_then_gc_leaves_nothing() {
    let sb = Sandbox::new();
    two_networks(&sb);
    sb.run(["network", "connect", "back", "web"]).ok();
    sb.run(["rm", "-f", "peer"]).ok();
    let meta = sb.meta(sb.inspect("web")["Id"].as_str().unwrap());
    for key in ["monitor_pid", "pid"] {
        let pid = meta[key].as_i64().unwrap_or_else(|| panic!("no {key}")) as i32;
        // SAFETY: kill(2) of a process this test's minirun started.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
        wait_until(&format!("{key} {pid} dies"), DEADLINE, || {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
        });
    }
    let left = sb.leftovers();
    assert!(
        left.records.iter().any(|r| r.contains("@back")),
        "nothing of the second network to collect: {left:#?}"
    );
    sb.run(["gc"]).ok();
    sb.assert_net_clean("monitor and container killed, then gc");
}
