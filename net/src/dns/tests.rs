use super::*;
use crate::attach::{record_path, Attachment};
use crate::lock::write_json;
use crate::mode::NetMode;
use crate::testutil::{require_root, NetnsGuard, PrivateNetns};
use simple_dns::Question;

/// An attachment record as `attach` writes it, for container `id` on `network`.
fn record(root: &Path, id: &str, network: &str, ip: Ipv4Addr, aliases: &[&str]) {
    let att = Attachment {
        container_id: id.into(),
        mode: NetMode::Bridge(network.into()),
        netns_path: Some(crate::paths::netns_path(root, id)),
        netns_owned: true,
        network: Some(network.into()),
        bridge: Some("minirun9".into()),
        veth_host: None,
        ip: Some(ip),
        prefix_len: Some(24),
        gateway: None,
        ipv6: None,
        ipv6_prefix_len: None,
        ipv6_gateway: None,
        mac: None,
        ports: vec![],
        hostname: None,
        aliases: aliases.iter().map(|s| s.to_string()).collect(),
        ifname: None,
        joiners_marked: true,
        runtime_root: root.into(),
        data_root: root.into(),
    };
    write_json(&record_path(root, id), &att, "attachment record").unwrap();
}

fn query(id: u16, name: &str, qtype: TYPE) -> Vec<u8> {
    let mut q = Packet::new_query(id);
    q.set_flags(PacketFlag::RECURSION_DESIRED);
    q.questions.push(Question::new(
        simple_dns::Name::new_unchecked(name),
        qtype.into(),
        CLASS::IN.into(),
        false,
    ));
    q.build_bytes_vec().unwrap()
}

/// (rcode, A addresses) of a reply, checking it answers `id`.
fn decode(id: u16, reply: &[u8]) -> (RCODE, Vec<Ipv4Addr>) {
    let p = Packet::parse(reply).unwrap();
    assert_eq!(p.id(), id);
    assert!(p.has_flags(PacketFlag::RESPONSE));
    let ips = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect();
    (p.rcode(), ips)
}

fn reply_of(a: Answer) -> Vec<u8> {
    match a {
        Answer::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[test]
fn answers_names_ids_and_aliases_of_its_own_network_only() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let db = Ipv4Addr::new(10, 123, 0, 2);
    record(root, "aaaabbbbccccdddd", "appnet", db, &["db", "aaaabbbbcccc"]);
    record(
        root,
        "eeeeffff00001111",
        "othernet",
        Ipv4Addr::new(10, 124, 0, 2),
        &["other"],
    );
    let dir = Directory::new(root, "appnet");

    for name in ["db", "DB.", "aaaabbbbcccc", "aaaabbbbccccdddd"] {
        let (rcode, ips) = decode(7, &reply_of(answer(&query(7, name, TYPE::A), &dir)));
        assert_eq!((rcode, ips), (RCODE::NoError, vec![db]), "{name}");
    }
    // Known name, other type: the name exists, without records of that type.
    let (rcode, ips) = decode(8, &reply_of(answer(&query(8, "db", TYPE::AAAA), &dir)));
    assert_eq!((rcode, ips.len()), (RCODE::NoError, 0));
    // Another network's container, a dotted name and an unknown one go upstream.
    for name in ["other", "db.example.org", "nosuch"] {
        assert_eq!(answer(&query(9, name, TYPE::A), &dir), Answer::Forward, "{name}");
    }
    // Garbage and responses are dropped.
    assert_eq!(answer(b"\x01\x02", &dir), Answer::Drop);
    let resp = reply_of(answer(&query(10, "db", TYPE::A), &dir));
    assert_eq!(answer(&resp, &dir), Answer::Drop);
    // Gone from the records: gone from DNS.
    std::fs::remove_file(record_path(root, "aaaabbbbccccdddd")).unwrap();
    assert_eq!(answer(&query(11, "db", TYPE::A), &dir), Answer::Forward);
    // SERVFAIL keeps the id and the question.
    let (rcode, _) = decode(12, &reply_of(failure(&query(12, "x", TYPE::A))));
    assert_eq!(rcode, RCODE::ServerFailure);
}

#[test]
fn answers_aaaa_on_dual_stack_networks() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let db = Ipv4Addr::new(10, 123, 0, 2);
    record(root, "aaaabbbbccccdddd", "v6net", db, &["db"]);
    let path = record_path(root, "aaaabbbbccccdddd");
    let mut att: Attachment = crate::lock::read_json(&path, "attachment record").unwrap().unwrap();
    let db6: Ipv6Addr = "fd00:90::2".parse().unwrap();
    att.ipv6 = Some(db6);
    write_json(&path, &att, "attachment record").unwrap();
    let dir = Directory::new(root, "v6net");
    let bytes = reply_of(answer(&query(3, "db", TYPE::AAAA), &dir));
    let p = Packet::parse(&bytes).unwrap();
    let got: Vec<Ipv6Addr> = p
        .answers
        .iter()
        .filter_map(|rr| match &rr.rdata {
            RData::AAAA(a) => Some(Ipv6Addr::from(a.address)),
            _ => None,
        })
        .collect();
    assert_eq!((p.rcode(), got), (RCODE::NoError, vec![db6]));
    let (rcode, ips) = decode(4, &reply_of(answer(&query(4, "db", TYPE::A), &dir)));
    assert_eq!((rcode, ips), (RCODE::NoError, vec![db]), "A still answered");
}

/// A fake upstream on `addr` answering every query with one A record (198.51.100.7).
fn fake_upstream(sock: UdpSocket) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = Packet::parse(&buf[..n]).unwrap();
            let mut r = Packet::new_reply(q.id());
            r.questions = q.questions.clone();
            r.answers.push(ResourceRecord::new(
                q.questions[0].qname.clone(),
                CLASS::IN,
                60,
                RData::A(A {
                    address: Ipv4Addr::new(198, 51, 100, 7).into(),
                }),
            ));
            let _ = sock.send_to(&r.build_bytes_vec().unwrap(), peer);
        }
    });
}

#[test]
fn server_in_a_namespace_answers_locally_and_forwards_from_the_host() {
    if !require_root() {
        return;
    }
    PrivateNetns::run(|| {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let ns = crate::paths::netns_path(root, "c1");
        crate::netns::create_netns(&ns).unwrap();
        let _g = NetnsGuard(ns.clone());
        record(root, "c2", "appnet", Ipv4Addr::new(10, 123, 0, 3), &["web"]);
        // The upstream listens on the "host's" loopback, which the container cannot reach:
        // only forwarding from the host side gets there.
        let up = UdpSocket::bind("127.0.0.1:0").unwrap();
        let up_addr = up.local_addr().unwrap();
        fake_upstream(up);
        // A second upstream that never answers comes first: the next one is tried.
        let dead = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = DnsServer::bind(
            &ns,
            Directory::new(root, "appnet"),
            vec![dead.local_addr().unwrap(), up_addr],
        )
        .unwrap();
        server.spawn();

        let (local, forwarded, tcp) = crate::netns::in_netns(&ns, move || {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            c.connect((DNS_IP, 53)).unwrap();
            let mut buf = [0u8; 512];
            c.send(&query(1, "web", TYPE::A)).unwrap();
            let n = c.recv(&mut buf).unwrap();
            let local = decode(1, &buf[..n]);
            c.send(&query(2, "example.test", TYPE::A)).unwrap();
            let n = c.recv(&mut buf).unwrap();
            let forwarded = decode(2, &buf[..n]);
            let mut t = TcpStream::connect((DNS_IP, 53)).unwrap();
            t.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
            write_framed(&mut t, &query(3, "WEB", TYPE::A)).unwrap();
            let tcp = decode(3, &read_framed(&mut t).unwrap());
            (local, forwarded, tcp)
        })
        .unwrap();
        assert_eq!(local, (RCODE::NoError, vec![Ipv4Addr::new(10, 123, 0, 3)]));
        assert_eq!(forwarded, (RCODE::NoError, vec![Ipv4Addr::new(198, 51, 100, 7)]));
        assert_eq!(tcp, (RCODE::NoError, vec![Ipv4Addr::new(10, 123, 0, 3)]));
        drop(dead);
    });
}

#[test]
fn a_containers_directory_spans_every_network_it_is_connected_to() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    record(root, "c1", "front", Ipv4Addr::new(10, 1, 0, 2), &["web"]);
    record(root, "p1", "front", Ipv4Addr::new(10, 1, 0, 3), &["peer1"]);
    record(root, "p2", "back", Ipv4Addr::new(10, 2, 0, 3), &["peer2"]);
    record(root, "p3", "bridge", Ipv4Addr::new(172, 17, 0, 3), &["peer3"]);
    let dir = Directory::for_container(root, "front", "c1");
    assert_eq!(dir.lookup("peer1"), Some(Ipv4Addr::new(10, 1, 0, 3)));
    assert_eq!(dir.lookup("peer2"), None, "not connected to back yet");
    // `network connect back c1`: a second record of c1's, read at the next query.
    let mut extra: Attachment = crate::lock::read_json(&record_path(root, "c1"), "r").unwrap().unwrap();
    extra.network = Some("back".into());
    extra.ifname = Some("eth1".into());
    extra.netns_owned = false;
    extra.ip = Some(Ipv4Addr::new(10, 2, 0, 2));
    write_json(&extra.record_file(), &extra, "attachment record").unwrap();
    assert_eq!(dir.lookup("peer2"), Some(Ipv4Addr::new(10, 2, 0, 3)));
    // the default network's peers are never named, even if c1 were on it
    let mut on_default = extra.clone();
    on_default.network = Some("bridge".into());
    on_default.ifname = Some("eth2".into());
    write_json(&on_default.record_file(), &on_default, "attachment record").unwrap();
    assert_eq!(dir.lookup("peer3"), None);
    // disconnected: gone at once
    std::fs::remove_file(extra.record_file()).unwrap();
    assert_eq!(dir.lookup("peer2"), None);
    assert_eq!(
        Directory::new(root, "back").lookup("peer2"),
        Some(Ipv4Addr::new(10, 2, 0, 3))
    );
}
