//! End to end, inside a private "host" network namespace: attach containers on a bridge,
//! verify with rtnetlink dumps (and nft/bridge only as test-side observers), detach, and
//! check nothing is left.

use super::*;
use crate::testutil::{has_nft, require_root, NetnsGuard, PrivateNetns};
use std::net::IpAddr;
use std::process::Command;

struct World {
    run: tempfile::TempDir,
    data: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        World {
            run: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
        }
    }
    fn req(&self, id: &str, mode: NetMode, ports: &[&str]) -> AttachRequest {
        AttachRequest {
            container_id: id.into(),
            mode,
            join_netns: None,
            runtime_root: self.run.path().into(),
            data_root: self.data.path().into(),
            ports: crate::parse_publish_all(ports).unwrap(),
            hostname: Some(id.into()),
            aliases: vec![format!("{id}-alias")],
            ip: None,
            mac: None,
        }
    }
    fn guard(&self, id: &str) -> NetnsGuard {
        NetnsGuard(netns_path(self.run.path(), id))
    }
    fn netns_files(&self) -> usize {
        std::fs::read_dir(netns_dir(self.run.path()))
            .map(|r| r.count())
            .unwrap_or(0)
    }
    fn records(&self) -> usize {
        list_attachments(self.run.path()).unwrap().len()
    }
    fn leases(&self, net: &str) -> usize {
        ipam::leases(self.data.path(), net).unwrap().len()
    }
}

fn alive(_: &str) -> bool {
    true
}

fn bridge() -> NetMode {
    NetMode::default()
}

fn mr_veths() -> Vec<String> {
    link::list_links()
        .unwrap()
        .into_iter()
        .filter(|l| l.name.starts_with("mr"))
        .map(|l| l.name)
        .collect()
}

/// Veths left after a (fast) detach go with their namespace, asynchronously: wait a bit.
fn mr_veths_settled() -> Vec<String> {
    mr_veths_settled_to(&[])
}

/// The `mr*` veths once they are `want` (a veth leaves asynchronously with
/// its namespace, which takes a while on a loaded machine), or after 10 s.
fn mr_veths_settled_to(want: &[String]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while mr_veths() != want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    mr_veths()
}

fn hairpin(dev: &str) -> Option<bool> {
    let out = Command::new("bridge")
        .args(["-j", "-d", "link", "show", "dev", dev])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v[0]["hairpin"].as_bool()
}

/// (addresses, routes, eth0 summary) inside a netns, via rtnetlink dumps.
#[allow(clippy::type_complexity)]
fn inside(
    ns: &Path,
) -> (
    Vec<(u32, Ipv4Addr, u8)>,
    Vec<link::RouteSummary>,
    Vec<link::LinkSummary>,
) {
    netns::in_netns(ns, || {
        (
            link::list_addresses().unwrap(),
            link::list_routes().unwrap(),
            link::list_links().unwrap(),
        )
    })
    .unwrap()
}

#[test]
fn two_containers_on_a_bridge_then_nothing_left() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2) = (w.guard("c1"), w.guard("c2"));
        let t = std::time::Instant::now();
        let a1 = attach(&w.req("c1", bridge(), &["8080:80", "127.0.0.1::81/udp"]), &alive).unwrap();
        let first = t.elapsed();
        let t = std::time::Instant::now();
        let a2 = attach(&w.req("c2", bridge(), &[]), &alive).unwrap();
        let second = t.elapsed();

        let net = network::load_network(w.data.path(), "bridge").unwrap().unwrap();
        assert_eq!(net.subnet.to_string(), "10.89.0.0/24");
        assert_eq!(a1.ip, Some(Ipv4Addr::new(10, 89, 0, 2)));
        assert_eq!(a2.ip, Some(Ipv4Addr::new(10, 89, 0, 3)));
        assert_eq!(a1.gateway, Some(Ipv4Addr::new(10, 89, 0, 1)));
        assert_eq!((a1.prefix_len, a1.bridge.as_deref()), (Some(24), Some("minirun0")));
        assert_eq!(a1.mac.as_deref(), Some("02:42:0a:59:00:02"));
        assert_eq!(a1.ports.len(), 2);
        assert_ne!(a1.ports[1].host_port, 0, "ephemeral port picked");
        assert!(a1.netns_owned);
        assert_eq!(load_attachment(w.run.path(), "c1").unwrap().as_ref(), Some(&a1));
        // Serializable for the runtime's state.
        let j = serde_json::to_string(&a1).unwrap();
        assert_eq!(serde_json::from_str::<Attachment>(&j).unwrap(), a1);

        // Host side: bridge up with the gateway, both veths enslaved with hairpin on.
        let links = link::list_links().unwrap();
        let br = links.iter().find(|l| l.name == "minirun0").unwrap();
        assert!(br.up && br.kind.as_deref() == Some("bridge"));
        for a in [&a1, &a2] {
            let v = links
                .iter()
                .find(|l| Some(l.name.as_str()) == a.veth_host.as_deref())
                .unwrap();
            assert_eq!(
                (v.master, v.kind.as_deref(), v.up),
                (Some(br.index), Some("veth"), true)
            );
            if Command::new("bridge").arg("-V").output().is_ok() {
                assert_eq!(hairpin(&v.name), Some(true), "hairpin on {}", v.name);
            }
        }
        assert!(link::list_addresses()
            .unwrap()
            .contains(&(br.index, Ipv4Addr::new(10, 89, 0, 1), 24)));
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap().trim(),
            "1"
        );
        assert_eq!(
            std::fs::read_to_string("/proc/sys/net/ipv4/conf/minirun0/route_localnet")
                .unwrap()
                .trim(),
            "1"
        );

        // Container side: eth0 with address, MAC, default route via the gateway, lo up.
        for a in [&a1, &a2] {
            let (addrs, routes, links) = inside(a.netns_path.as_ref().unwrap());
            let eth0 = links.iter().find(|l| l.name == "eth0").unwrap();
            let lo = links.iter().find(|l| l.name == "lo").unwrap();
            assert!(eth0.up && lo.up);
            assert_eq!(links.len(), 2, "only lo and eth0: {links:?}");
            assert_eq!(eth0.mac.map(|m| link::format_mac(&m)), a.mac.clone());
            assert!(addrs.contains(&(eth0.index, a.ip.unwrap(), 24)), "{addrs:?}");
            let def = routes
                .iter()
                .find(|r| r.prefix_len == 0 && r.table == 254)
                .expect("default route");
            assert_eq!((def.gateway, def.oif), (a.gateway, Some(eth0.index)));
        }

        // Firewall: network elements and exactly c1's published ports.
        let fw = Firewall::open().unwrap();
        assert_eq!(fw.list_bridges().unwrap(), vec!["minirun0"]);
        assert_eq!(fw.list_subnets().unwrap(), vec![net.subnet]);
        let mut pubs = fw.list_published().unwrap();
        pubs.sort();
        let mut want: Vec<_> = a1.ports.iter().map(|p| (*p, IpAddr::V4(a1.ip.unwrap()))).collect();
        want.sort();
        assert_eq!(pubs, want);
        // The same host port cannot be published twice.
        let e = attach(&w.req("c3", bridge(), &["8080:80"]), &alive).unwrap_err();
        assert!(matches!(e, Error::PortUnavailable { .. }), "{e}");
        assert_eq!(
            (w.records(), w.netns_files(), w.leases("bridge")),
            (2, 2, 2),
            "failed attach left nothing"
        );

        let t = std::time::Instant::now();
        detach(&a1).unwrap();
        let det = t.elapsed();
        detach(&a2).unwrap();
        detach(&a1).unwrap(); // idempotent
        detach(&a2).unwrap();
        assert_eq!(mr_veths_settled(), Vec::<String>::new());
        assert_eq!((w.records(), w.netns_files(), w.leases("bridge")), (0, 0, 0));
        assert!(fw.list_published().unwrap().is_empty());
        // The network itself stays (bridge and its elements), like docker's default bridge.
        assert_eq!(fw.list_bridges().unwrap(), vec!["minirun0"]);
        eprintln!("attach (creates network) {first:?}, attach {second:?}, detach with 2 ports {det:?}");
    });
}

#[test]
fn none_and_container_modes() {
    if !require_root() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2) = (w.guard("n1"), w.guard("j1"));
        let host = attach(&w.req("h1", NetMode::Host, &[]), &alive).unwrap();
        assert_eq!(host.netns_path, None);
        detach(&host).unwrap();
        let e = attach(&w.req("h2", NetMode::Host, &["80:80"]), &alive).unwrap_err();
        assert!(e.to_string().contains("h2"), "{e}");

        let n = attach(&w.req("n1", NetMode::None, &[]), &alive).unwrap();
        let ns = n.netns_path.clone().unwrap();
        // A second attach of the same container fails and leaves the first one intact.
        let e = attach(&w.req("n1", NetMode::None, &[]), &alive).unwrap_err();
        assert!(e.to_string().contains("already has a network attachment"), "{e}");
        assert!(netns::is_netns(&ns));
        let (addrs, routes, links) = inside(&ns);
        assert_eq!(
            links.iter().map(|l| (l.name.as_str(), l.up)).collect::<Vec<_>>(),
            vec![("lo", true)]
        );
        assert!(addrs.iter().all(|(_, ip, _)| ip.is_loopback()));
        assert!(
            routes.iter().all(|r| r.table != 254),
            "no main-table routes: {routes:?}"
        );

        let mut r = w.req("j1", NetMode::Container("n1".into()), &[]);
        let e = attach(&r, &alive).unwrap_err();
        assert!(e.to_string().contains("no network namespace path"), "{e}");
        r.join_netns = n.joinable_netns().map(Path::to_path_buf);
        let j = attach(&r, &alive).unwrap();
        assert_eq!(j.netns_path.as_ref(), Some(&ns));
        assert!(!j.netns_owned);
        detach(&j).unwrap();
        assert!(
            netns::is_netns(&ns),
            "joining container's detach leaves the namespace alone"
        );
        detach(&n).unwrap();
        assert!(!ns.exists());
        assert_eq!((w.records(), w.netns_files()), (0, 0));
        assert!(matches!(
            attach(&w.req("bad/id", NetMode::None, &[]), &alive),
            Err(Error::InvalidContainerId(_))
        ));
    });
}

#[test]
fn failure_after_veth_undoes_everything() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let _g = w.guard("f1");
        // A foreign "minirun" table without the pub_any map: netns, lease and veth get made,
        // then the firewall transaction fails.
        let out = Command::new("nft")
            .args(["add table ip minirun; add set ip minirun subnets { type ipv4_addr; flags interval; }; add set ip minirun bridges { type ifname; }; add set ip minirun isolate { type ifname . ifname; }"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let e = attach(&w.req("f1", bridge(), &["8080:80"]), &alive).unwrap_err();
        assert!(matches!(e, Error::Nftables { .. }), "{e}");
        assert!(e.to_string().contains("pub_any"), "{e}");
        assert!(mr_veths().is_empty(), "veth left: {:?}", mr_veths());
        assert_eq!((w.records(), w.netns_files(), w.leases("bridge")), (0, 0, 0));
        let fw = Firewall::open().unwrap();
        fw.delete_table().unwrap();

        // A link in the way of the bridge: fails before any veth, also leaves nothing.
        network::create_network(
            w.data.path(),
            "blocked",
            &network::NetworkOptions {
                subnet: Some("10.89.9.0/24".parse().unwrap()),
                bridge: Some("blocker".into()),
                ..Default::default()
            },
        )
        .unwrap();
        crate::rt::with_rtnl(|h| async move {
            h.link()
                .add(rtnetlink::LinkVeth::new("blocker", "blocker-p").build())
                .execute()
                .await
                .map_err(Error::nl("blocker", "add veth"))
        })
        .unwrap();
        let e = attach(&w.req("f2", NetMode::Bridge("blocked".into()), &[]), &alive).unwrap_err();
        assert!(
            e.to_string().contains("blocker") && e.to_string().contains("not a bridge"),
            "{e}"
        );
        assert_eq!((w.records(), w.netns_files(), w.leases("blocked")), (0, 0, 0));
    });
}

#[test]
fn gc_cleans_crashed_runs() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2, _g3) = (w.guard("dead1"), w.guard("dead2"), w.guard("live"));
        let d1 = attach(&w.req("dead1", bridge(), &["9001:80"]), &alive).unwrap();
        let d2 = attach(&w.req("dead2", bridge(), &["9002:80"]), &alive).unwrap();
        let live = attach(&w.req("live", bridge(), &["9003:80"]), &alive).unwrap();
        // dead2 crashed so hard that even its record is gone: gc must sweep its pieces.
        std::fs::remove_file(record_path(w.run.path(), "dead2")).unwrap();
        let is_alive = |id: &str| id == "live";
        let rep = gc(w.run.path(), w.data.path(), &is_alive).unwrap();
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert_eq!(rep.detached, vec!["dead1".to_string()]);
        assert_eq!(rep.netns_removed, vec![netns_path(w.run.path(), "dead2")]);
        assert_eq!(
            rep.leases_released,
            vec![("bridge".to_string(), d2.ip.unwrap(), "dead2".to_string())]
        );
        // Both dead veths leave with their namespaces, asynchronously: gc
        // deletes those still there, and never another one.
        assert!(rep
            .veths_deleted
            .iter()
            .all(|v| Some(v) == d1.veth_host.as_ref() || Some(v) == d2.veth_host.as_ref()));
        assert_eq!(rep.published_removed, vec![(d2.ports[0], IpAddr::V4(d2.ip.unwrap()))]);
        // The live container is untouched.
        assert_eq!(
            mr_veths_settled_to(&[live.veth_host.clone().unwrap()]),
            vec![live.veth_host.clone().unwrap()]
        );
        assert_eq!(
            Firewall::open().unwrap().list_published().unwrap(),
            vec![(live.ports[0], IpAddr::V4(live.ip.unwrap()))]
        );
        assert_eq!((w.records(), w.netns_files(), w.leases("bridge")), (1, 1, 1));
        let _ = d1;
        // Nothing more to do the second time.
        assert!(gc(w.run.path(), w.data.path(), &is_alive).unwrap().is_empty());
        detach(&live).unwrap();
        assert_eq!(mr_veths_settled(), Vec::<String>::new());
        assert!(gc(w.run.path(), w.data.path(), &|_: &str| false).unwrap().is_empty());
    });
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let n = 8;
        let _guards: Vec<_> = (0..n).map(|i| w.guard(&format!("p{i}"))).collect();
        // Threads spawned here inherit the private namespace.
        let atts: Vec<Attachment> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..n)
                .map(|i| {
                    let w = &w;
                    s.spawn(move || attach(&w.req(&format!("p{i}"), bridge(), &["80"]), &alive).unwrap())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ips: std::collections::HashSet<_> = atts.iter().map(|a| a.ip.unwrap()).collect();
        let veths: std::collections::HashSet<_> = atts.iter().map(|a| a.veth_host.clone().unwrap()).collect();
        let hports: std::collections::HashSet<_> = atts.iter().map(|a| a.ports[0].host_port).collect();
        assert_eq!((ips.len(), veths.len(), hports.len()), (n, n, n));
        assert_eq!(Firewall::open().unwrap().list_published().unwrap().len(), n);
        for a in &atts {
            detach(a).unwrap();
        }
        assert_eq!(mr_veths_settled(), Vec::<String>::new());
        assert_eq!((w.records(), w.netns_files(), w.leases("bridge")), (0, 0, 0));
    });
}

#[test]
fn remove_user_network() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let _g = w.guard("u1");
        let n = network::create_network(w.data.path(), "n1", &network::NetworkOptions::default()).unwrap();
        let a0 = attach(&w.req("u0", bridge(), &[]), &alive);
        let _g0 = w.guard("u0");
        let a = attach(&w.req("u1", NetMode::Bridge("n1".into()), &["7001:80"]), &alive).unwrap();
        assert_eq!(a.bridge.as_deref(), Some(n.bridge.as_str()));
        let fw = Firewall::open().unwrap();
        let mut iso = fw.list_isolate().unwrap();
        iso.sort();
        let mut want: Vec<(String, String)> = vec![
            (n.bridge.clone(), "minirun0".into()),
            ("minirun0".into(), n.bridge.clone()),
        ];
        want.sort();
        assert_eq!(iso, want);
        let e = remove_network(w.run.path(), w.data.path(), "n1", &alive).unwrap_err();
        assert!(e.to_string().contains("in use by container(s) u1"), "{e}");
        detach(&a).unwrap();
        remove_network(w.run.path(), w.data.path(), "n1", &alive).unwrap();
        assert!(fw.list_isolate().unwrap().is_empty());
        assert_eq!(fw.list_bridges().unwrap(), vec!["minirun0"]);
        assert!(!link::list_links().unwrap().iter().any(|l| l.name == n.bridge));
        assert!(network::load_network(w.data.path(), "n1").unwrap().is_none());
        detach(&a0.unwrap()).unwrap();
    });
}

/// Step timings (run with --nocapture --test-threads=1).
#[test]
fn step_costs() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let _g = w.guard("warm");
        let warm = attach(&w.req("warm", bridge(), &[]), &alive).unwrap();
        let ns = netns_path(w.run.path(), "x");
        let _gx = NetnsGuard(ns.clone());
        let net = network::get_network(w.data.path(), "bridge").unwrap();
        let mut line = String::new();
        let mut lap = |what: &str, t: &mut std::time::Instant| {
            line.push_str(&format!("{what} {:?}, ", t.elapsed()));
            *t = std::time::Instant::now();
        };
        let mut t = std::time::Instant::now();
        netns::create_netns(&ns).unwrap();
        lap("create_netns", &mut t);
        let ip = Ipv4Addr::new(10, 89, 0, 200);
        let cfg = VethConfig {
            host_ifname: "mrtest",
            ifname: crate::link::CONTAINER_IFNAME,
            default_route: true,
            bridge: &net.bridge,
            netns: &ns,
            ip,
            prefix_len: 24,
            gateway: net.gateway,
            mac: link::mac_for_ip(ip),
            ip6: None,
            mtu: None,
        };
        link::connect_container(&cfg).unwrap();
        lap("veth+addr+route", &mut t);
        let fw = Firewall::open().unwrap();
        fw.ensure_skeleton().unwrap();
        lap("fw open+check", &mut t);
        let tx = fw.network_tx(&net.bridge, net.subnet, true).unwrap();
        lap("network_tx dumps", &mut t);
        let published = fw.list_published().unwrap();
        lap("list published", &mut t);
        let ports = crate::ports::resolve_ports(&crate::parse_publish_all(&["8080:80"]).unwrap(), &published).unwrap();
        lap("resolve ports (bind probe)", &mut t);
        let mut tx2 = tx.clone();
        tx2.add_published(&ports[0], ip);
        fw.commit(&tx2).unwrap();
        lap("commit", &mut t);
        fw.unpublish(&ports, ip).unwrap();
        lap("unpublish", &mut t);
        link::delete_link("mrtest").unwrap();
        lap("delete veth", &mut t);
        netns::remove_netns(&ns).unwrap();
        lap("remove_netns", &mut t);
        netns::create_netns(&ns).unwrap();
        link::connect_container(&cfg).unwrap();
        t = std::time::Instant::now();
        netns::remove_netns(&ns).unwrap();
        lap("remove_netns with veth", &mut t);
        for _ in 0..500 {
            if !mr_veths().contains(&"mrtest".to_string()) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        lap("veth gone after", &mut t);
        eprintln!("steps: {line}");
        detach(&warm).unwrap();
    });
}

/// `--net container:o1`: o1's network stays for its live joiner (gc, lease reclaim,
/// `network rm`, release all agree), and goes with the joiner's release.
#[test]
fn shared_namespace_stays_until_its_last_user_is_gone() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2) = (w.guard("o1"), w.guard("x1"));
        let n = network::create_network(w.data.path(), "n1", &network::NetworkOptions::default()).unwrap();
        let owner = attach(&w.req("o1", NetMode::Bridge("n1".into()), &["7100:80"]), &alive).unwrap();
        let mut r = w.req("j1", NetMode::Container("o1".into()), &[]);
        r.join_netns = owner.joinable_netns().map(Path::to_path_buf);
        let joiner = attach(&r, &alive).unwrap();
        let ns = owner.netns_path.clone().unwrap();
        let marker = crate::paths::joiner_marker(w.run.path(), &ns, "j1").unwrap();
        assert!(marker.exists(), "{}", marker.display());

        // o1's process is gone, j1 runs on in o1's namespace.
        let j1_lives = |id: &str| id == "j1";
        assert!(crate::in_use(w.run.path(), "o1", &j1_lives));
        assert!(!crate::needs_gc(w.run.path(), &j1_lives));
        assert_eq!(
            crate::members(w.run.path(), "n1", &j1_lives).unwrap(),
            vec![owner.clone()]
        );
        let rep = gc(w.run.path(), w.data.path(), &j1_lives).unwrap();
        assert!(rep.is_empty() && rep.errors.is_empty(), "{rep:?}");
        let e = remove_network(w.run.path(), w.data.path(), "n1", &j1_lives).unwrap_err();
        assert!(crate::error::chain(&e).contains("in use by container(s) o1"), "{e}");
        // A new container on n1 does not take o1's lease.
        let x = attach(&w.req("x1", NetMode::Bridge("n1".into()), &[]), &j1_lives).unwrap();
        assert_ne!(x.ip, owner.ip);
        assert_eq!(w.leases("n1"), 2);
        detach(&x).unwrap();
        // o1's teardown keeps everything for j1.
        release(&owner, &j1_lives).unwrap();
        assert_eq!((w.records(), w.netns_files(), w.leases("n1")), (2, 1, 1));
        assert!(netns::is_netns(&ns));
        assert_eq!(
            Firewall::open().unwrap().list_published().unwrap(),
            vec![(owner.ports[0], IpAddr::V4(owner.ip.unwrap()))]
        );

        // j1's teardown (j1 still counts as alive while it runs) finishes o1 as well.
        release(&joiner, &j1_lives).unwrap();
        assert_eq!((w.records(), w.netns_files(), w.leases("n1")), (0, 0, 0));
        assert!(!marker.exists());
        assert!(!ns.exists());
        assert!(Firewall::open().unwrap().list_published().unwrap().is_empty());
        assert_eq!(mr_veths_settled(), Vec::<String>::new());
        remove_network(w.run.path(), w.data.path(), "n1", &j1_lives).unwrap();
        assert!(!link::list_links().unwrap().iter().any(|l| l.name == n.bridge));
    });
}

/// An owner's teardown reads the records only when a joiner left its marker, or when the
/// owner's record predates the markers; gc removes a marker whose joiner is gone.
#[test]
fn joiner_markers_decide_whether_records_are_read() {
    if !require_root() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2) = (w.guard("o2"), w.guard("j2"));
        let owner = attach(&w.req("o2", NetMode::None, &[]), &alive).unwrap();
        assert!(owner.joiners_marked);
        let mut r = w.req("j2", NetMode::Container("o2".into()), &[]);
        r.join_netns = owner.joinable_netns().map(Path::to_path_buf);
        let joiner = attach(&r, &alive).unwrap();
        let ns = owner.netns_path.clone().unwrap();
        let marker = crate::paths::joiner_marker(w.run.path(), &ns, "j2").unwrap();
        let j2_lives = |id: &str| id == "j2";
        std::fs::rename(&marker, w.run.path().join("aside")).unwrap();
        // a record from before the markers: the records are read, j2 keeps the namespace
        let old = Attachment {
            joiners_marked: false,
            ..owner.clone()
        };
        release(&old, &j2_lives).unwrap();
        assert!(netns::is_netns(&ns));
        // a marked owner without a marker: nobody joined, so the records are not read
        // (here that tears down what j2 uses: the marker is what tells)
        std::fs::rename(w.run.path().join("aside"), &marker).unwrap();
        release(&owner, &j2_lives).unwrap();
        assert!(netns::is_netns(&ns), "the marker keeps it");
        std::fs::remove_file(&marker).unwrap();
        release(&owner, &j2_lives).unwrap();
        assert!(!ns.exists());
        // a marker whose joiner has no record and is gone: gc removes it, not before
        detach(&joiner).unwrap();
        std::fs::write(&marker, "\"j2\"").unwrap();
        gc(w.run.path(), w.data.path(), &j2_lives).unwrap();
        assert!(marker.exists(), "j2 counts as alive: it may be attaching");
        gc(w.run.path(), w.data.path(), &|_: &str| false).unwrap();
        assert!(!marker.exists());
        assert_eq!((w.records(), w.netns_files()), (0, 0));
    });
}

/// Without a live joiner, a dead container's lease is reclaimed by the next attach, and
/// release detaches it at once.
#[test]
fn dead_owner_without_joiners_is_reclaimed_and_released() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let (_g1, _g2) = (w.guard("d1"), w.guard("y1"));
        network::create_network(
            w.data.path(),
            "tiny",
            &network::NetworkOptions {
                subnet: Some("10.89.33.0/30".parse().unwrap()),
                ..Default::default()
            },
        )
        .unwrap();
        let dead = attach(&w.req("d1", NetMode::Bridge("tiny".into()), &[]), &alive).unwrap();
        // One host address in a /30: y1 only gets it because d1's lease is reclaimed, and
        // y1 itself counts as alive whatever `live` says.
        let nobody = |_: &str| false;
        let y = attach(&w.req("y1", NetMode::Bridge("tiny".into()), &[]), &nobody).unwrap();
        assert_eq!(y.ip, dead.ip);
        assert_eq!(
            ipam::leases(w.data.path(), "tiny").unwrap(),
            vec![(y.ip.unwrap(), "y1".to_string())]
        );
        release(&dead, &nobody).unwrap();
        assert_eq!((w.records(), w.netns_files()), (1, 1));
        release(&y, &nobody).unwrap();
        assert_eq!((w.records(), w.netns_files(), w.leases("tiny")), (0, 0, 0));
    });
}

/// What dual stack adds to one container's network set-up and teardown: `attach` +
/// `detach` on an IPv4-only and on a dual-stack network (same everything else),
/// alternating, plain and with `-p`; prints the medians. A measurement, not a check:
/// `cargo test -p minirun-net --release dual_stack_attach_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn dual_stack_attach_cost() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let w = World::new();
        let opts = |s: &str, v6: bool| network::NetworkOptions {
            subnet: Some(s.parse().unwrap()),
            ipv6: v6,
            ..Default::default()
        };
        network::create_network(w.data.path(), "v4", &opts("10.97.0.0/24", false)).unwrap();
        network::create_network(w.data.path(), "dual", &opts("10.98.0.0/24", true)).unwrap();
        let median = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        for ports in [&[][..], &["18080:80"][..]] {
            let (mut a4, mut a6, mut d4, mut d6) = (vec![], vec![], vec![], vec![]);
            for i in 0..60 {
                for (net, att_ms, det_ms) in [("v4", &mut a4, &mut d4), ("dual", &mut a6, &mut d6)] {
                    let id = format!("c{net}{i}");
                    let _g = w.guard(&id);
                    let t = std::time::Instant::now();
                    let a = attach(&w.req(&id, NetMode::Bridge(net.into()), ports), &alive).unwrap();
                    let t1 = t.elapsed();
                    detach(&a).unwrap();
                    let t2 = t.elapsed() - t1;
                    if i >= 5 {
                        att_ms.push(t1.as_secs_f64() * 1e3);
                        det_ms.push(t2.as_secs_f64() * 1e3);
                    }
                }
            }
            let (a4, a6, d4, d6) = (median(&mut a4), median(&mut a6), median(&mut d4), median(&mut d6));
            eprintln!(
                "ports {ports:?}: attach v4 {a4:.3} ms, dual {a6:.3} ms (+{:.3}); detach v4 {d4:.3} ms, dual {d6:.3} ms (+{:.3})",
                a6 - a4,
                d6 - d4
            );
        }
        // The two parts dual stack changes, without the namespace/veth churn around them:
        // the links (bridge ensured, veth, addresses, routes, sysctls) and the firewall
        // dumps of the network's elements (v4 alone vs v4 + v6).
        let v4 = network::get_network(w.data.path(), "v4").unwrap();
        let dual = network::get_network(w.data.path(), "dual").unwrap();
        let (mut l4, mut l6) = (vec![], vec![]);
        for i in 0..60 {
            for (n, v) in [(&v4, &mut l4), (&dual, &mut l6)] {
                let id = format!("l{}{i}", n.name);
                let ns = netns_path(w.run.path(), &id);
                let _g = NetnsGuard(ns.clone());
                netns::create_netns(&ns).unwrap();
                let ip = n.subnet.nth(200).unwrap();
                let cfg = VethConfig {
                    host_ifname: "mrcost",
                    ifname: crate::link::CONTAINER_IFNAME,
                    default_route: true,
                    bridge: &n.bridge,
                    netns: &ns,
                    ip,
                    prefix_len: n.prefix_len(),
                    gateway: n.gateway,
                    mac: link::mac_for_ip(ip),
                    ip6: n.ipv6().map(|(s6, g6)| (s6.nth(200).unwrap(), 64, g6)),
                    mtu: None,
                };
                let t = std::time::Instant::now();
                link::connect_container(&cfg).unwrap();
                if i >= 5 {
                    v.push(t.elapsed().as_secs_f64() * 1e3);
                }
                link::delete_link("mrcost").unwrap();
                netns::remove_netns(&ns).unwrap();
            }
        }
        let fw = Firewall::open().unwrap();
        let (mut f4, mut f6) = (vec![], vec![]);
        for _ in 0..200 {
            let t = std::time::Instant::now();
            let tx = fw.network_tx(&v4.bridge, v4.subnet, true).unwrap();
            fw.commit(&tx).unwrap();
            f4.push(t.elapsed().as_secs_f64() * 1e3);
            let t = std::time::Instant::now();
            let mut tx = fw.network_tx(&dual.bridge, dual.subnet, true).unwrap();
            tx.extend(fw.network_tx6(&dual.bridge, dual.subnet6.unwrap(), true).unwrap());
            fw.commit(&tx).unwrap();
            f6.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (l4, l6, f4, f6) = (median(&mut l4), median(&mut l6), median(&mut f4), median(&mut f6));
        eprintln!(
            "links: v4 {l4:.3} ms, dual {l6:.3} ms (+{:.3}); network elements: v4 {f4:.3} ms, dual {f6:.3} ms (+{:.3})",
            l6 - l4,
            f6 - f4
        );
    });
}
