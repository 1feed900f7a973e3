//! Name resolution on user-defined networks: a small DNS responder at 127.0.0.11 inside
//! each container's network namespace, as docker's embedded DNS.
//!
//! Why a responder and not `/etc/hosts` files kept up to date:
//! * answers are read from the attachment records at query time, so a container resolves
//!   every peer from the moment the peer's network exists until its teardown removes the
//!   record - also peers started later - with no file of every running container to
//!   rewrite on each start and stop (and no reader ever sees a half-written hosts file);
//! * resolvers that speak DNS only (`nslookup`, nginx's `resolver`, Go's pure resolver)
//!   see the names too;
//! * queries for other names are forwarded from the *host's* namespace, so the host's
//!   resolvers keep working even when they listen on the host's loopback
//!   (systemd-resolved's 127.0.0.53), which a container cannot reach itself.
//!
//! No daemon: the sockets are bound inside the container's namespace by a short-lived
//! thread, and served by threads of the process that already waits for the container
//! (the foreground `run` or the detached monitor); they end with it.
//!
//! Local names are answered with TTL 0 so nothing caches a container that has stopped.
//! A container on a dual-stack network also has an AAAA record (its IPv6 address).
//! A local name asked for a type it has no record of gets an empty NOERROR answer (the name
//! exists, it has no such record), so resolvers asking AAAA first do not wait. Every other
//! query goes to the upstream servers in turn (UDP for UDP clients, TCP for TCP clients);
//! when none answers the client gets SERVFAIL at once instead of a timeout of its own.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use simple_dns::rdata::{RData, A, AAAA};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};

use crate::attach::list_attachments;
use crate::error::{Error, Result};

/// Where the responder listens inside the container (docker's address).
pub const DNS_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// How long one upstream server gets to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded queries in flight at once; more get SERVFAIL.
const MAX_FORWARDS: usize = 64;
/// TCP connections served at once; more are closed at once.
const MAX_TCP_CONNECTIONS: usize = 16;

/// The containers a responder knows: those attached to `network` under `runtime_root`,
/// or (for a container's responder) to any network that container is on now.
#[derive(Clone, Debug)]
pub struct Directory {
    runtime_root: PathBuf,
    network: String,
    /// The container whose networks are looked at, at each query (`network connect`
    /// and `disconnect` change them while the responder runs).
    container: Option<String>,
}

impl Directory {
    pub fn new(runtime_root: &Path, network: &str) -> Directory {
        Directory {
            runtime_root: runtime_root.to_path_buf(),
            network: network.to_string(),
            container: None,
        }
    }

    /// The directory of container `id`'s responder: peers on every network `id` is
    /// connected to at the time of each query (`network` names it in messages).
    pub fn for_container(runtime_root: &Path, network: &str, id: &str) -> Directory {
        Directory {
            container: Some(id.to_string()),
            ..Directory::new(runtime_root, network)
        }
    }

    /// The address of the container called `name` (its name, another alias, or its id) on
    /// this network, if one is attached to it now.
    pub fn lookup(&self, name: &str) -> Option<Ipv4Addr> {
        self.lookup_dual(name).and_then(|(a, _)| a)
    }

    /// [`Directory::lookup`] for both families: (IPv4, IPv6) of a container attached now.
    pub fn lookup_dual(&self, name: &str) -> Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        let name = name.trim_end_matches('.');
        if name.is_empty() || name.contains('.') {
            return None;
        }
        let name = name.to_ascii_lowercase();
        let records = list_attachments(&self.runtime_root).ok()?;
        let networks: Vec<&str> = match &self.container {
            None => vec![self.network.as_str()],
            Some(id) => records
                .iter()
                .filter(|a| &a.container_id == id)
                .filter_map(|a| a.network.as_deref())
                // as docker: no names on the default network
                .filter(|n| *n != crate::mode::DEFAULT_NETWORK)
                .collect(),
        };
        records
            .iter()
            .filter(|a| a.network.as_deref().is_some_and(|n| networks.contains(&n)))
            .find(|a| a.container_id == name || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(&name)))
            .filter(|a| a.ip.is_some() || a.ipv6.is_some())
            .map(|a| (a.ip, a.ipv6))
    }
}

/// What to do with one query.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Send these bytes back.
    Reply(Vec<u8>),
    /// Not a local name: ask the upstream servers.
    Forward,
    /// Not a DNS query at all: drop it.
    Drop,
}

/// Answers `query` from `dir` when it asks for a local name.
pub fn answer(query: &[u8], dir: &Directory) -> Answer {
    let Ok(q) = Packet::parse(query) else {
        return Answer::Drop;
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return Answer::Drop;
    }
    let [question] = q.questions.as_slice() else {
        return Answer::Forward;
    };
    let Some((ip, ip6)) = dir.lookup_dual(&question.qname.to_string()) else {
        return Answer::Forward;
    };
    let mut reply = Packet::new_reply(q.id());
    reply.set_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RECURSION_AVAILABLE);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        reply.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    reply.questions.push(question.clone());
    if let (QTYPE::TYPE(TYPE::A) | QTYPE::ANY, Some(ip)) = (question.qtype, ip) {
        reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            0,
            RData::A(A { address: ip.into() }),
        ));
    }
    if let (QTYPE::TYPE(TYPE::AAAA) | QTYPE::ANY, Some(ip6)) = (question.qtype, ip6) {
        reply.answers.push(ResourceRecord::new(
            question.qname.clone(),
            CLASS::IN,
            0,
            RData::AAAA(AAAA { address: ip6.into() }),
        ));
    }
    match reply.build_bytes_vec() {
        Ok(b) => Answer::Reply(b),
        Err(_) => failure(query),
    }
}

/// SERVFAIL for `query` (its id and question kept).
fn failure(query: &[u8]) -> Answer {
    let Ok(q) = Packet::parse(query) else {
        return Answer::Drop;
    };
    let mut reply = Packet::new_reply(q.id());
    *reply.rcode_mut() = RCODE::ServerFailure;
    reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
    reply.questions = q.questions.clone();
    reply.build_bytes_vec().map(Answer::Reply).unwrap_or(Answer::Drop)
}

/// The nameservers of the host's `/etc/resolv.conf` (of the caller's mount namespace),
/// port 53: where forwarded queries go unless the user named others.
pub fn host_upstreams() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(crate::etc::HOST_RESOLV_CONF).unwrap_or_default();
    crate::etc::nameservers(&text)
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn reply_id_matches(query: &[u8], reply: &[u8]) -> bool {
    query.len() >= 2 && reply.len() >= 12 && query[..2] == reply[..2]
}

/// Asks each upstream over UDP in turn; the first answer wins.
fn forward_udp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 65535];
    for up in upstreams {
        let local: SocketAddr = match up.ip() {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let Ok(sock) = UdpSocket::bind(local) else {
            continue;
        };
        if sock.connect(up).is_err()
            || sock.set_read_timeout(Some(UPSTREAM_TIMEOUT)).is_err()
            || sock.send(query).is_err()
        {
            continue;
        }
        // Skip stray datagrams with another id until the timeout.
        while let Ok(n) = sock.recv(&mut buf) {
            if reply_id_matches(query, &buf[..n]) {
                return Some(buf[..n].to_vec());
            }
        }
    }
    None
}

fn read_framed(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

fn write_framed(s: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| std::io::Error::other("DNS message too long"))?;
    let mut out = Vec::with_capacity(msg.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
    s.write_all(&out)
}

/// Asks each upstream over TCP in turn.
fn forward_tcp(query: &[u8], upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(mut s) = TcpStream::connect_timeout(up, UPSTREAM_TIMEOUT) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(UPSTREAM_TIMEOUT));
        let _ = s.set_write_timeout(Some(UPSTREAM_TIMEOUT));
        if write_framed(&mut s, query).is_err() {
            continue;
        }
        if let Ok(r) = read_framed(&mut s) {
            if reply_id_matches(query, &r) {
                return Some(r);
            }
        }
    }
    None
}

/// A responder bound at [`DNS_IP`]:53 (UDP and TCP) in a container's network namespace.
pub struct DnsServer {
    udp: UdpSocket,
    tcp: TcpListener,
    dir: Directory,
    upstreams: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds the sockets inside `netns` (a short-lived thread enters it; the sockets stay
    /// in that namespace). Nothing runs yet: see [`DnsServer::spawn`].
    pub fn bind(netns: &Path, dir: Directory, upstreams: Vec<SocketAddr>) -> Result<DnsServer> {
        let addr = SocketAddr::from((DNS_IP, 53));
        let bind_err = |e: std::io::Error| Error::Network {
            network: dir.network.clone(),
            reason: format!("cannot listen for DNS on {addr} in {}: {e}", netns.display()),
        };
        let (udp, tcp) = crate::netns::in_netns(netns, || -> std::io::Result<(UdpSocket, TcpListener)> {
            Ok((UdpSocket::bind(addr)?, TcpListener::bind(addr)?))
        })?
        .map_err(bind_err)?;
        Ok(DnsServer {
            udp,
            tcp,
            dir,
            upstreams,
        })
    }

    /// Serves on background threads for the rest of the process's life.
    pub fn spawn(self) {
        let DnsServer {
            udp,
            tcp,
            dir,
            upstreams,
        } = self;
        let dir = Arc::new(dir);
        let upstreams: Arc<[SocketAddr]> = upstreams.into();
        let in_flight = Arc::new(AtomicUsize::new(0));
        {
            let (dir, upstreams) = (dir.clone(), upstreams.clone());
            std::thread::spawn(move || serve_udp(udp, &dir, &upstreams, &in_flight));
        }
        let connections = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in tcp.incoming().flatten() {
                // A container cannot make its waiting process spawn threads without bound.
                if connections.fetch_add(1, Ordering::SeqCst) >= MAX_TCP_CONNECTIONS {
                    connections.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let (dir, upstreams, connections) = (dir.clone(), upstreams.clone(), connections.clone());
                std::thread::spawn(move || {
                    serve_tcp(conn, &dir, &upstreams);
                    connections.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
    }
}

fn serve_udp(sock: UdpSocket, dir: &Directory, upstreams: &Arc<[SocketAddr]>, in_flight: &Arc<AtomicUsize>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let query = buf[..n].to_vec();
        match answer(&query, dir) {
            Answer::Reply(r) => {
                let _ = sock.send_to(&r, peer);
            }
            Answer::Drop => {}
            Answer::Forward => {
                // One thread per forwarded query, so a slow upstream never delays
                // local answers.
                let busy = in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS;
                let (Ok(sock), false) = (sock.try_clone(), busy) else {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    if let Answer::Reply(r) = failure(&query) {
                        let _ = sock.send_to(&r, peer);
                    }
                    continue;
                };
                let (upstreams, in_flight) = (upstreams.clone(), in_flight.clone());
                std::thread::spawn(move || {
                    let reply = forward_udp(&query, &upstreams)
                        .map(Answer::Reply)
                        .unwrap_or_else(|| failure(&query));
                    if let Answer::Reply(r) = reply {
                        let _ = sock.send_to(&r, peer);
                    }
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
    }
}

fn serve_tcp(mut conn: TcpStream, dir: &Directory, upstreams: &[SocketAddr]) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    while let Ok(query) = read_framed(&mut conn) {
        let reply = match answer(&query, dir) {
            Answer::Reply(r) => r,
            Answer::Drop => return,
            Answer::Forward => match forward_tcp(&query, upstreams) {
                Some(r) => r,
                None => match failure(&query) {
                    Answer::Reply(r) => r,
                    _ => return,
                },
            },
        };
        if write_framed(&mut conn, &reply).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
