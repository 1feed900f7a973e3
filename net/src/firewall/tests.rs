use super::*;
use crate::testutil::{has_nft, nft_elems, nft_json, require_root, PrivateNetns};
use std::net::IpAddr;

fn m(s: &str) -> PortMapping {
    crate::ports::parse_publish(s).unwrap()[0].exact().unwrap()
}

#[test]
fn encodings() {
    assert_eq!(ifname_key("minirun0").len(), 16);
    assert_eq!(&ifname_key("minirun0")[..9], b"minirun0\0");
    assert_eq!(proto_port(Proto::Tcp, 8080), [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    assert_eq!(
        addr_port(IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2)), 80),
        vec![10, 89, 0, 2, 0, 80, 0, 0]
    );
    let (set, e) = pub_elem(&m("127.0.0.1:8080:80/udp"), IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2)));
    assert_eq!(set, MAP_PUB_ADDR);
    assert_eq!(e.key, vec![127, 0, 0, 1, 17, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    let net: Ipv4Net = "10.89.0.0/24".parse().unwrap();
    let es = subnet_elems(&net, true);
    assert_eq!(es.len(), 3);
    assert_eq!(es[1].key, vec![10, 89, 0, 0]);
    assert_eq!(
        (es[2].key.clone(), es[2].flags),
        (vec![10, 89, 1, 0], NFT_SET_ELEM_INTERVAL_END)
    );
    let mut out = Vec::new();
    range_to_prefixes(
        u32::from(Ipv4Addr::new(10, 89, 0, 0)) as u64,
        u32::from(Ipv4Addr::new(10, 89, 1, 0)) as u64,
        &mut out,
    );
    assert_eq!(out, vec![net]);
    let e = Elem {
        key: vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0],
        data: Some(vec![10, 89, 0, 2, 0, 80, 0, 0]),
        flags: 0,
    };
    assert_eq!(
        decode_pub(Family::V4, &e, false),
        Some((m("8080:80"), IpAddr::V4(Ipv4Addr::new(10, 89, 0, 2))))
    );
}

#[test]
fn transaction_groups_messages() {
    let mut tx = Transaction::new();
    let ip = Ipv4Addr::new(10, 89, 0, 2);
    for p in ["8080:80", "8081:81", "127.0.0.1:9000:90", "5353:53/udp"] {
        tx.add_published(&m(p), ip);
    }
    // pub_any, pub_addr, pub_any: consecutive same-set ops share one message.
    assert_eq!(tx.messages().len(), 3);
    assert_eq!(tx.len(), 4);
}

#[test]
fn skeleton_and_elements_in_private_netns() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let fw = Firewall::open().unwrap();
        assert!(!fw.table_exists().unwrap());
        assert!(fw.ensure_skeleton().unwrap(), "created now");
        assert!(fw.table_exists().unwrap());
        assert!(!fw.ensure_skeleton().unwrap(), "written once");
        // The skeleton is exactly one table with its 6 chains and 5 sets/maps.
        let j = nft_json();
        let items = j["nftables"].as_array().unwrap();
        let count = |k: &str| items.iter().filter(|i| i.get(k).is_some()).count();
        assert_eq!(count("table"), 1);
        assert_eq!(count("chain"), 6);
        assert_eq!(count("set") + count("map"), 5);
        assert_eq!(count("rule"), 11);

        // Networks.
        let n0: Ipv4Net = "10.89.0.0/24".parse().unwrap();
        let n1: Ipv4Net = "10.89.1.0/24".parse().unwrap();
        fw.add_network("minirun0", n0).unwrap();
        fw.add_network("minirun0", n0).unwrap(); // idempotent
        fw.add_network_icc("minirun1", n1, false).unwrap();
        let mut subs = fw.list_subnets().unwrap();
        subs.sort();
        assert_eq!(subs, vec![n0, n1]);
        let mut br = fw.list_bridges().unwrap();
        br.sort();
        assert_eq!(br, vec!["minirun0", "minirun1"]);
        let mut iso = fw.list_isolate().unwrap();
        iso.sort();
        let p = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            iso,
            vec![
                p("minirun0", "minirun1"),
                p("minirun1", "minirun0"),
                p("minirun1", "minirun1")
            ]
        );
        let subnets_json = nft_elems("subnets").join(" ");
        assert!(
            subnets_json.contains("10.89.0.0") && subnets_json.contains("10.89.1.0"),
            "{subnets_json}"
        );
        assert_eq!(nft_elems("isolate").len(), 3);

        // Publish N ports: one transaction (generation +1), visible to nft, removable.
        let ip = Ipv4Addr::new(10, 89, 0, 2);
        let ports: Vec<PortMapping> = ["8080:80", "8081:81", "127.0.0.1:9000:90", "5353:53/udp"]
            .iter()
            .map(|s| m(s))
            .collect();
        let g0 = fw.generation().unwrap();
        fw.publish(&ports, ip).unwrap();
        assert_eq!(fw.generation().unwrap(), g0 + 1, "one transaction");
        let mut got = fw.list_published().unwrap();
        got.sort();
        let mut want: Vec<_> = ports.iter().map(|p| (*p, IpAddr::V4(ip))).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(nft_elems("pub_any").len(), 3);
        let pa = nft_elems("pub_addr");
        assert_eq!(pa.len(), 1);
        assert!(
            pa[0].contains("127.0.0.1") && pa[0].contains("10.89.0.2") && pa[0].contains("9000"),
            "{pa:?}"
        );

        // A conflicting publish fails as a whole and adds nothing.
        let other = Ipv4Addr::new(10, 89, 0, 3);
        let e = fw.publish(&[m("7000:70"), m("8080:80")], other).unwrap_err();
        assert!(matches!(e, Error::PortUnavailable { .. }), "{e}");
        assert_eq!(fw.list_published().unwrap().len(), 4);

        // Unpublish only removes elements pointing at this container.
        fw.unpublish(&ports, other).unwrap();
        assert_eq!(fw.list_published().unwrap().len(), 4);
        let g1 = fw.generation().unwrap();
        fw.unpublish(&ports, ip).unwrap();
        assert_eq!(fw.generation().unwrap(), g1 + 1, "one transaction");
        assert!(fw.list_published().unwrap().is_empty());
        assert!(nft_elems("pub_any").is_empty());
        fw.unpublish(&ports, ip).unwrap(); // idempotent

        // Removing a network removes its elements only.
        fw.remove_network("minirun1", n1).unwrap();
        assert_eq!(fw.list_subnets().unwrap(), vec![n0]);
        assert_eq!(fw.list_bridges().unwrap(), vec!["minirun0"]);
        assert!(fw.list_isolate().unwrap().is_empty());
        fw.remove_network("minirun1", n1).unwrap(); // idempotent
        fw.remove_network("minirun0", n0).unwrap();
        assert!(fw.list_subnets().unwrap().is_empty());

        // The skeleton survives element churn unchanged.
        assert_eq!(
            nft_json()["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i.get("rule").is_some())
                .count(),
            11
        );
        assert!(fw.foreign_forward_drops().unwrap().is_empty());
        fw.delete_table().unwrap();
        assert!(!fw.table_exists().unwrap());
        fw.delete_table().unwrap();
    });
}

#[test]
fn detects_foreign_forward_drop() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let out = std::process::Command::new("nft")
            .args(["add table ip filter; add chain ip filter FORWARD { type filter hook forward priority 0; policy drop; }"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let fw = Firewall::open().unwrap();
        fw.ensure_skeleton().unwrap();
        let d = fw.foreign_forward_drops().unwrap();
        assert_eq!(
            d,
            vec![ForeignDrop {
                family: "ip".into(),
                table: "filter".into(),
                chain: "FORWARD".into()
            }]
        );
        assert!(d[0].to_string().contains("policy drop"));
    });
}

#[test]
fn concurrent_skeleton_writers_create_one_table() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let created: Vec<bool> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| Firewall::open().unwrap().ensure_skeleton().unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(created.iter().filter(|c| **c).count() <= 1, "{created:?}");
        let j = nft_json();
        assert_eq!(
            j["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|i| i.get("rule").is_some())
                .count(),
            11
        );
    });
}

/// Measures per-transaction cost; run with `--nocapture` to see numbers.
#[test]
fn transaction_cost() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let fw = Firewall::open().unwrap();
        let t = std::time::Instant::now();
        fw.ensure_skeleton().unwrap();
        let skel = t.elapsed();
        let t = std::time::Instant::now();
        fw.table_exists().unwrap();
        let check = t.elapsed();
        fw.add_network("minirun0", "10.89.0.0/24".parse().unwrap()).unwrap();
        let n = 50u32;
        let (mut add, mut del, mut unp) = (
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
            std::time::Duration::ZERO,
        );
        for i in 0..n {
            let ip = Ipv4Addr::new(10, 89, 0, 2 + (i % 200) as u8);
            let ports = [
                m(&format!("{}:80", 20000 + i)),
                m(&format!("127.0.0.1:{}:81", 20000 + i)),
            ];
            let t = std::time::Instant::now();
            fw.publish(&ports, ip).unwrap();
            add += t.elapsed();
            let t = std::time::Instant::now();
            let tx = fw.unpublish_tx(&ports, ip).unwrap();
            unp += t.elapsed();
            let t = std::time::Instant::now();
            fw.commit(&tx).unwrap();
            del += t.elapsed();
        }
        // Closing a NETLINK_NETFILTER socket right after a delete waits for the kernel's
        // deferred destroy work (an RCU grace period): why Firewall keeps its socket.
        let fw2 = Firewall::open().unwrap();
        fw2.publish(&[m("30000:80")], Ipv4Addr::new(10, 89, 0, 2)).unwrap();
        fw2.unpublish(&[m("30000:80")], Ipv4Addr::new(10, 89, 0, 2)).unwrap();
        drop(fw2);
        drop(fw);
        let t = std::time::Instant::now();
        Firewall::close_cached();
        eprintln!("socket close right after a delete: {:?}", t.elapsed());
        eprintln!(
            "nft cost: skeleton via nft -f {:?}, table check {:?}, publish tx {:?}/run, unpublish dump {:?} + delete tx {:?}/run",
            skel,
            check,
            add / n,
            unp / n,
            del / n
        );
    });
}

#[test]
fn two_networks_added_at_once_isolate_each_other() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        Firewall::open().unwrap().ensure_skeleton().unwrap();
        let a: Ipv4Net = "10.89.10.0/24".parse().unwrap();
        let b: Ipv4Net = "10.89.11.0/24".parse().unwrap();
        for _ in 0..10 {
            std::thread::scope(|s| {
                s.spawn(|| Firewall::open().unwrap().add_network("mrnetA", a).unwrap());
                s.spawn(|| Firewall::open().unwrap().add_network("mrnetB", b).unwrap());
            });
            let fw = Firewall::open().unwrap();
            let mut iso = fw.list_isolate().unwrap();
            iso.sort();
            assert_eq!(
                iso,
                vec![("mrnetA".into(), "mrnetB".into()), ("mrnetB".into(), "mrnetA".into())]
            );
            fw.remove_network("mrnetA", a).unwrap();
            fw.remove_network("mrnetB", b).unwrap();
            assert!(fw.list_isolate().unwrap().is_empty() && fw.list_bridges().unwrap().is_empty());
        }
    });
}

#[test]
fn ipv6_encodings_round_trip() {
    let ctr: IpAddr = "fd00:90::2".parse().unwrap();
    // -p 8080:80 on a dual-stack container: its IPv6 side is pub_any of table ip6.
    let plain = m("8080:80");
    let v6 = plain.v6_side().unwrap();
    let (set, e) = pub_elem(&v6, ctr);
    assert_eq!(set, MAP_PUB_ANY);
    assert_eq!(e.key, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
    assert_eq!(e.data.as_ref().unwrap().len(), 20);
    assert_eq!(decode_pub(Family::V6, &e, false), Some((v6, ctr)));
    // An address-bound IPv6 publish: pub_addr with a 16-byte address in the key.
    let bound = m("[2001:db8::1]:8080:80/udp");
    let (set, e) = pub_elem(&bound, ctr);
    assert_eq!((set, e.key.len()), (MAP_PUB_ADDR, 24));
    assert_eq!(decode_pub(Family::V6, &e, true), Some((bound, ctr)));
    assert_eq!(pub_family(&bound), Family::V6);
    assert_eq!(pub_family(&plain), Family::V4);
    // One transaction, two tables: the v6 ops carry family ip6.
    let mut tx = Transaction::new();
    tx.add_published_to(&plain, IpAddr::V4(Ipv4Addr::new(10, 90, 0, 2)))
        .add_published_to(&v6, ctr)
        .add_loopback6(&v6, "fd00:90::1".parse().unwrap())
        .add_loopback6(&bound, "fd00:90::1".parse().unwrap());
    let fams: Vec<u8> = tx.messages().iter().map(|m| m.family).collect();
    assert_eq!(
        fams,
        vec![2, 10, 10],
        "ip pub_any, ip6 pub_any, ip6 lo_src (none for a bound address)"
    );
    // Interval of a /64: start, end = next /64, and the :: floor first.
    let s6: Ipv6Net = "fd00:90::/64".parse().unwrap();
    let el = subnet6_elems(&s6, true);
    assert_eq!(el.len(), 3);
    assert_eq!(el[0].key, vec![0; 16]);
    assert_eq!(
        el[2].key,
        "fd00:90:0:1::".parse::<std::net::Ipv6Addr>().unwrap().octets().to_vec()
    );
    assert_eq!(el[2].flags, NFT_SET_ELEM_INTERVAL_END);
}

#[test]
fn ipv6_skeleton_and_elements_in_a_private_namespace() {
    if !require_root() || !has_nft() {
        return;
    }
    PrivateNetns::run(|| {
        let fw = Firewall::open().unwrap();
        assert!(fw.ensure_skeleton6().unwrap());
        assert!(!fw.ensure_skeleton6().unwrap(), "written once");
        assert!(!fw.table_exists().unwrap(), "the ip table is separate");
        let s6: Ipv6Net = "fd00:91::/64".parse().unwrap();
        let tx = fw.network_tx6("minirun5", s6, false).unwrap();
        fw.commit(&tx).unwrap();
        assert_eq!(fw.list_subnets6().unwrap(), vec![s6]);
        assert_eq!(fw.list_bridges_in(Family::V6).unwrap(), vec!["minirun5"]);
        assert_eq!(
            fw.list_isolate_in(Family::V6).unwrap(),
            vec![("minirun5".to_string(), "minirun5".to_string())]
        );
        let ctr6: std::net::Ipv6Addr = "fd00:91::2".parse().unwrap();
        let p = m("[::]:8080:80");
        let mut tx = Transaction::new();
        tx.add_published_to(&p, IpAddr::V6(ctr6))
            .add_loopback6(&p, "fd00:91::1".parse().unwrap());
        fw.commit(&tx).unwrap();
        assert_eq!(fw.list_published().unwrap(), vec![(p, IpAddr::V6(ctr6))]);
        assert_eq!(fw.list_loopback6().unwrap().len(), 1);
        fw.unpublish_dual(&[p], None, Some(ctr6)).unwrap();
        assert!(fw.list_published().unwrap().is_empty());
        assert!(fw.list_loopback6().unwrap().is_empty(), "lo_src goes with its port");
        fw.remove_network6("minirun5", s6).unwrap();
        assert!(fw.list_subnets6().unwrap().is_empty());
        assert!(fw.list_bridges_in(Family::V6).unwrap().is_empty());
        assert!(fw.list_isolate_in(Family::V6).unwrap().is_empty());
        fw.delete_table().unwrap();
        assert!(!fw.table_exists_in(Family::V6).unwrap());
    });
}
