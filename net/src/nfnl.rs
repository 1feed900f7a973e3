//! A minimal NETLINK_NETFILTER client for nf_tables: batches (BATCH_BEGIN, messages,
//! BATCH_END) with per-message ACKs, single requests and dumps. Only what minirun needs:
//! set elements, tables, chains, the generation id.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub(crate) const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;

pub(crate) const NFT_MSG_GETTABLE: u16 = 1;
pub(crate) const NFT_MSG_DELTABLE: u16 = 2;
pub(crate) const NFT_MSG_GETCHAIN: u16 = 4;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(crate) const NFT_MSG_GETSETELEM: u16 = 13;
pub(crate) const NFT_MSG_DELSETELEM: u16 = 14;
pub(crate) const NFT_MSG_GETGEN: u16 = 16;

pub(crate) const NFPROTO_UNSPEC: u8 = 0;
pub(crate) const NFPROTO_IPV4: u8 = 2;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLM_F_CAPPED: u16 = 0x100;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;
const SOL_NETLINK: i32 = 270;
const NETLINK_CAP_ACK: i32 = 10;
const NETLINK_EXT_ACK: i32 = 11;
const NLMSGERR_ATTR_MSG: u16 = 1;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Netlink attribute builder.
#[derive(Default, Clone, Debug)]
pub(crate) struct Attrs(pub(crate) Vec<u8>);

impl Attrs {
    pub(crate) fn new() -> Self {
        Attrs(Vec::new())
    }
    pub(crate) fn put(&mut self, ty: u16, val: &[u8]) -> &mut Self {
        let len = 4 + val.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(val);
        self.0.resize(align4(self.0.len()), 0);
        self
    }
    pub(crate) fn put_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v)
    }
    pub(crate) fn put_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }
    pub(crate) fn nest(&mut self, ty: u16, inner: &Attrs) -> &mut Self {
        self.put(ty | NLA_F_NESTED, &inner.0)
    }
}

/// Iterates (type, value) over a buffer of attributes.
pub(crate) fn parse_attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[align4(len).min(b.len())..];
    }
    out
}

pub(crate) fn attr<'a>(attrs: &[(u16, &'a [u8])], ty: u16) -> Option<&'a [u8]> {
    attrs.iter().find(|(t, _)| *t == ty).map(|(_, v)| *v)
}

pub(crate) fn attr_str(attrs: &[(u16, &[u8])], ty: u16) -> Option<String> {
    attr(attrs, ty).map(|v| String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(&[])).into_owned())
}

pub(crate) fn attr_be32(attrs: &[(u16, &[u8])], ty: u16) -> Option<u32> {
    attr(attrs, ty)
        .and_then(|v| v.get(..4))
        .map(|v| u32::from_be_bytes(v.try_into().unwrap()))
}

/// One nf_tables message (type without the subsystem, extra nlmsg flags, family, attrs).
#[derive(Clone, Debug)]
pub(crate) struct Msg {
    pub(crate) ty: u16,
    pub(crate) flags: u16,
    pub(crate) family: u8,
    pub(crate) attrs: Attrs,
}

/// A reply message: family and attributes payload.
#[derive(Clone, Debug)]
#[allow(dead_code)]
pub(crate) struct Reply {
    pub(crate) ty: u16,
    pub(crate) family: u8,
    pub(crate) payload: Vec<u8>,
}

/// A kernel error for one message.
#[derive(Clone, Debug)]
pub(crate) struct NlError {
    /// Index of the failing message in the batch (None: begin/end or unknown).
    pub(crate) index: Option<usize>,
    pub(crate) errno: i32,
    pub(crate) ext_msg: Option<String>,
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.ext_msg {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

impl From<io::Error> for NlError {
    fn from(e: io::Error) -> Self {
        NlError {
            index: None,
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            ext_msg: Some(e.to_string()),
        }
    }
}

pub(crate) struct NfSocket {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl NfSocket {
    pub(crate) fn raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

fn push_msg(out: &mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16, attrs: &[u8]) {
    let len = NLMSG_HDRLEN + NFGENMSG_LEN + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
}

impl NfSocket {
    /// Opens a NETLINK_NETFILTER socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<NfSocket> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        for opt in [NETLINK_CAP_ACK, NETLINK_EXT_ACK] {
            // SAFETY: valid fd, pointer to a c_int of the given size. Failure is harmless.
            unsafe {
                libc::setsockopt(fd.as_raw_fd(), SOL_NETLINK, opt, (&one as *const libc::c_int).cast(), 4);
            }
        }
        let tv = libc::timeval { tv_sec: 10, tv_usec: 0 };
        // SAFETY: valid fd and timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        // SAFETY: zeroed sockaddr_nl is valid; nl_family set; bind with pid 0 lets the kernel pick.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(NfSocket {
            fd,
            seq: seed & 0x7fff_ffff,
            buf: vec![0u8; 256 * 1024],
        })
    }

    /// Discards anything left queued by an earlier exchange on a reused socket.
    pub(crate) fn drain(&mut self) {
        if self.buf.is_empty() {
            self.buf = vec![0u8; 256 * 1024];
        }
        while let Ok(Some(_)) = self.recv(true) {}
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    fn send(&self, data: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_nl with AF_NETLINK addresses the kernel (pid 0).
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        // SAFETY: data is a valid buffer of data.len() bytes; sa is valid.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != data.len() {
            return Err(io::Error::other("short netlink send"));
        }
        Ok(())
    }

    /// Receives one datagram; `Ok(None)` when non-blocking and nothing is queued.
    fn recv(&mut self, nonblock: bool) -> io::Result<Option<Vec<u8>>> {
        loop {
            let flags = if nonblock { libc::MSG_DONTWAIT } else { 0 };
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe { libc::recv(self.fd.as_raw_fd(), self.buf.as_mut_ptr().cast(), self.buf.len(), flags) };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::EAGAIN) if nonblock => return Ok(None),
                    _ => return Err(e),
                }
            }
            return Ok(Some(self.buf[..n as usize].to_vec()));
        }
    }

    /// Splits a datagram into (type, flags, seq, payload-after-nlmsghdr).
    fn split(data: &[u8]) -> Vec<(u16, u16, u32, &[u8])> {
        let mut out = Vec::new();
        let mut b = data;
        while b.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize;
            if len < NLMSG_HDRLEN || len > b.len() {
                break;
            }
            let ty = u16::from_ne_bytes([b[4], b[5]]);
            let flags = u16::from_ne_bytes([b[6], b[7]]);
            let seq = u32::from_ne_bytes(b[8..12].try_into().unwrap());
            out.push((ty, flags, seq, &b[NLMSG_HDRLEN..len]));
            b = &b[align4(len).min(b.len())..];
        }
        out
    }

    /// Parses an NLMSG_ERROR payload: (errno as positive, extended ack message).
    fn parse_error(flags: u16, payload: &[u8]) -> (i32, Option<String>) {
        if payload.len() < 4 {
            return (libc::EIO, None);
        }
        let err = -i32::from_ne_bytes(payload[0..4].try_into().unwrap());
        let mut msg = None;
        if flags & NLM_F_ACK_TLVS != 0 && payload.len() >= 4 + NLMSG_HDRLEN {
            // With NETLINK_CAP_ACK the original message is only its header.
            let orig_len = u32::from_ne_bytes(payload[4..8].try_into().unwrap()) as usize;
            let capped = flags & NLM_F_CAPPED != 0 || err == 0;
            let off = if capped { 4 + NLMSG_HDRLEN } else { 4 + align4(orig_len) };
            if payload.len() > off {
                let attrs = parse_attrs(&payload[off..]);
                msg = attr_str(&attrs, NLMSGERR_ATTR_MSG);
            }
        }
        (err, msg)
    }

    /// Sends `msgs` as one nf_tables transaction and checks every ACK. On failure the
    /// kernel aborts the whole batch; the first error is returned.
    pub(crate) fn batch(&mut self, msgs: &[Msg]) -> Result<(), NlError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(256);
        let begin_seq = self.next_seq();
        push_msg(
            &mut out,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        for m in msgs {
            let seq = self.next_seq();
            push_msg(
                &mut out,
                (NFNL_SUBSYS_NFTABLES << 8) | m.ty,
                NLM_F_REQUEST | NLM_F_ACK | m.flags,
                seq,
                m.family,
                0,
                &m.attrs.0,
            );
        }
        let end_seq = self.next_seq();
        push_msg(
            &mut out,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end_seq,
            NFPROTO_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
            &[],
        );
        self.send(&out)?;

        let lo = begin_seq.wrapping_add(1);
        let n = msgs.len();
        let mut acked = vec![false; n];
        let mut first_err: Option<NlError> = None;
        loop {
            // nfnetlink handles the batch synchronously inside sendmsg, so every reply is
            // already queued; block only while ACKs are still owed and no error came yet.
            let all = acked.iter().all(|a| *a);
            if all {
                break;
            }
            let nonblock = first_err.is_some();
            let Some(d) = self.recv(nonblock)? else { break };
            for (ty, flags, seq, payload) in Self::split(&d) {
                if ty != NLMSG_ERROR {
                    continue;
                }
                let (errno, ext) = Self::parse_error(flags, payload);
                let idx = seq.wrapping_sub(lo) as usize;
                let index = if idx < n { Some(idx) } else { None };
                if let Some(i) = index {
                    acked[i] = true;
                } else if seq != begin_seq && seq != end_seq {
                    continue; // stale reply of an earlier request
                }
                if errno != 0 && first_err.is_none() {
                    first_err = Some(NlError {
                        index,
                        errno,
                        ext_msg: ext,
                    });
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// A single request with ACK: returns the data replies (e.g. NEWTABLE for GETTABLE).
    pub(crate) fn request(&mut self, ty: u16, family: u8, attrs: &Attrs) -> Result<Vec<Reply>, NlError> {
        self.exchange(ty, family, attrs, NLM_F_REQUEST | NLM_F_ACK)
    }

    /// A dump request: every reply until NLMSG_DONE.
    pub(crate) fn dump(&mut self, ty: u16, family: u8, attrs: &Attrs) -> Result<Vec<Reply>, NlError> {
        self.exchange(ty, family, attrs, NLM_F_REQUEST | NLM_F_DUMP)
    }

    fn exchange(&mut self, ty: u16, family: u8, attrs: &Attrs, flags: u16) -> Result<Vec<Reply>, NlError> {
        let seq = self.next_seq();
        let mut out = Vec::with_capacity(64);
        push_msg(
            &mut out,
            (NFNL_SUBSYS_NFTABLES << 8) | ty,
            flags,
            seq,
            family,
            0,
            &attrs.0,
        );
        self.send(&out)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let d = self.recv(false)?.unwrap_or_default();
            for (rty, rflags, rseq, payload) in Self::split(&d) {
                if rseq != seq {
                    continue;
                }
                match rty {
                    NLMSG_ERROR => {
                        let (errno, ext) = Self::parse_error(rflags, payload);
                        if errno != 0 {
                            return Err(NlError {
                                index: Some(0),
                                errno,
                                ext_msg: ext,
                            });
                        }
                        if !dump {
                            return Ok(replies);
                        }
                    }
                    NLMSG_DONE => return Ok(replies),
                    _ => {
                        if payload.len() >= NFGENMSG_LEN {
                            replies.push(Reply {
                                ty: rty & 0xff,
                                family: payload[0],
                                payload: payload[NFGENMSG_LEN..].to_vec(),
                            });
                        }
                        if !dump && rflags & NLM_F_MULTI == 0 && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                }
            }
        }
    }
}
