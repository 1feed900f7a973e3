//! The attach socket of a container with a terminal (podman's conmon does
//! the same): its monitor holds the pty master, copies the output to
//! `container.log` and to every attached client, and serves `attach.sock` in
//! the container's directory. A foreground `run -t` and `attach NAME` are
//! clients: they relay the user's terminal and leave the container running
//! when the user types the detach keys.
//!
//! On the socket, both ways, frames: one kind byte, a big-endian u32
//! length, the payload. Client to monitor: [`STDIN`] bytes for the
//! terminal, [`RESIZE`] rows and columns (two big-endian u16). Monitor to
//! client: [`OUTPUT`] bytes, then [`EXIT`] with the container's exit code
//! (a big-endian i32) once it ended and was torn down (and removed with
//! `--rm`); the monitor then closes the connection.

use std::fs::File;
use std::io::{self, ErrorKind, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use super::store::Ctx;
use crate::tty::{self, WindowSize};
use crate::wait::SignalForwarder;

/// The socket's file name in the container's directory.
pub const SOCKET: &str = "attach.sock";

pub const STDIN: u8 = 0;
pub const RESIZE: u8 = 1;
pub const OUTPUT: u8 = 0;
pub const EXIT: u8 = 1;

/// Larger payloads are refused (a client's or monitor's bug).
const MAX_FRAME: usize = 1 << 20;

/// A client that stops reading for this long is dropped, so the container
/// never waits on it.
const CLIENT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

pub fn write_frame(w: &mut impl Write, kind: u8, payload: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(5 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    w.write_all(&frame)
}

/// The next frame; None at the end of the stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut head = [0u8; 5];
    match r.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(ErrorKind::InvalidData, "attach frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((head[0], payload)))
}

/// The socket's path through `/proc/self/fd`: a socket path holds at most
/// 107 bytes, fewer than a container's directory under a long data root
/// may need. `dir` must stay open while the path is used.
fn short_path(dir: &File) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}/{SOCKET}", dir.as_raw_fd()))
}

/// Binds the attach socket in the container's directory `dir`.
pub fn listen(dir: &Path) -> Result<UnixListener> {
    let _ = std::fs::remove_file(dir.join(SOCKET));
    let d = File::open(dir).with_context(|| format!("cannot open {}", dir.display()))?;
    UnixListener::bind(short_path(&d)).with_context(|| format!("cannot create the attach socket in {}", dir.display()))
}

/// Connects to the attach socket in the container's directory `dir`.
pub fn connect(dir: &Path) -> io::Result<UnixStream> {
    let d = File::open(dir)?;
    UnixStream::connect(short_path(&d))
}

/// The monitor's side: the attached clients.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Shared>,
}

struct Shared {
    clients: Mutex<Vec<(u64, UnixStream)>>,
    /// Whether a client ever attached.
    attached: Mutex<bool>,
    first: Condvar,
}

impl Server {
    /// Accepts clients on a thread; what they type and their window sizes
    /// go to `master`, the pty of a container with a terminal (without one,
    /// clients only learn the exit code).
    pub fn start(listener: UnixListener, master: Option<&File>) -> Result<Self> {
        let server = Self {
            inner: Arc::new(Shared {
                clients: Mutex::new(Vec::new()),
                attached: Mutex::new(false),
                first: Condvar::new(),
            }),
        };
        let master = master.map(File::try_clone).transpose()?;
        let s = server.clone();
        std::thread::spawn(move || {
            for (n, conn) in listener.incoming().enumerate() {
                let Ok(conn) = conn else { continue };
                let (Ok(reader), Ok(to_pty)) = (conn.try_clone(), master.as_ref().map(File::try_clone).transpose())
                else {
                    continue;
                };
                let _ = conn.set_write_timeout(Some(CLIENT_WRITE_TIMEOUT));
                s.inner.clients.lock().unwrap().push((n as u64, conn));
                *s.inner.attached.lock().unwrap() = true;
                s.inner.first.notify_all();
                let s = s.clone();
                std::thread::spawn(move || s.serve(n as u64, reader, to_pty));
            }
        });
        Ok(server)
    }

    /// What one client sends, until it detaches.
    fn serve(&self, n: u64, mut from: UnixStream, to_pty: Option<File>) {
        while let Ok(Some((kind, payload))) = read_frame(&mut from) {
            let Some(mut to_pty) = to_pty.as_ref() else {
                continue;
            };
            match kind {
                STDIN if to_pty.write_all(&payload).is_err() => break,
                RESIZE if payload.len() == 4 => WindowSize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                }
                .apply(to_pty.as_fd()),
                _ => {}
            }
        }
        self.inner.clients.lock().unwrap().retain(|(id, _)| *id != n);
    }

    /// Waits at most `timeout` for a first client (a foreground `run -t`
    /// attaches right after the start; its first output must not be missed).
    pub fn wait_first_client(&self, timeout: Duration) {
        let attached = self.inner.attached.lock().unwrap();
        let _ = self.inner.first.wait_timeout_while(attached, timeout, |a| !*a);
    }

    /// The terminal's output to every client; one that fails is dropped.
    pub fn output(&self, data: &[u8]) {
        self.send(OUTPUT, data);
    }

    /// The container ended with `code` and was torn down: told to every
    /// client, whose connections then close.
    pub fn finish(&self, code: i32) {
        self.send(EXIT, &code.to_be_bytes());
        for (_, c) in self.inner.clients.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn send(&self, kind: u8, payload: &[u8]) {
        self.inner
            .clients
            .lock()
            .unwrap()
            .retain_mut(|(_, c)| match write_frame(c, kind, payload) {
                Ok(()) => true,
                Err(_) => {
                    let _ = c.shutdown(std::net::Shutdown::Both);
                    false
                }
            });
    }
}

/// How an attached client ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The container exited with this code (128+N for signal N).
    Exited(u8),
    /// The user typed the detach keys; the container runs on.
    Detached,
}

/// What a client relays.
pub struct ClientOpts {
    /// Our stdin goes to the container's terminal (`-i`, not `--no-stdin`).
    pub stdin: bool,
    /// The detach keys, parsed ([`tty::parse_detach_keys`]).
    pub detach_keys: Vec<u8>,
}

/// Attaches our terminal to the container `id` (which has a terminal) until
/// it exits or the user detaches. SIGINT/SIGTERM/SIGHUP we receive go to
/// its process `pid`.
pub fn attach(ctx: &Ctx, id: &str, pid: Option<Pid>, opts: ClientOpts) -> Result<Ended> {
    let conn = connect(&ctx.dir(id)).with_context(|| format!("cannot attach to container {id}"))?;
    let writer = Arc::new(Mutex::new(conn.try_clone()?));
    let stdin = io::stdin();
    let terminal = stdin.is_terminal();
    let _raw = if opts.stdin {
        tty::RawMode::enter(stdin.as_fd())
    } else {
        None
    };
    let send_size = {
        let writer = writer.clone();
        move || {
            if let Some(ws) = WindowSize::of(io::stdin().as_fd()) {
                let mut size = [0u8; 4];
                size[..2].copy_from_slice(&ws.rows.to_be_bytes());
                size[2..].copy_from_slice(&ws.cols.to_be_bytes());
                let _ = write_frame(&mut *writer.lock().unwrap(), RESIZE, &size);
            }
        }
    };
    let _resize = if terminal {
        send_size();
        Some(tty::ResizeWatch::start(send_size)?)
    } else {
        None
    };
    let detached = Arc::new(AtomicBool::new(false));
    if opts.stdin {
        let (writer, detached) = (writer.clone(), detached.clone());
        let mut keys = tty::DetachKeys::new(opts.detach_keys);
        // blocks in read until the process ends; never joined
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            let mut buf = [0u8; 4096];
            let mut out = Vec::new();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break; // a terminal's end of input is only a key in raw mode
                }
                out.clear();
                let detach = keys.feed(&buf[..n], &mut out);
                let mut w = writer.lock().unwrap();
                if !out.is_empty() && write_frame(&mut *w, STDIN, &out).is_err() {
                    break;
                }
                if detach {
                    detached.store(true, Ordering::SeqCst);
                    let _ = w.shutdown(std::net::Shutdown::Both);
                    break;
                }
            }
        });
    }
    // none when the process is gone already (it ended before we attached)
    let forwarder = pid.and_then(|p| SignalForwarder::start_pidfd(p).ok());
    let ended = relay_output(conn, &detached);
    if let Some(f) = forwarder {
        f.stop();
    }
    match ended? {
        Some(code) => Ok(Ended::Exited(code)),
        None if detached.load(Ordering::SeqCst) => Ok(Ended::Detached),
        // the monitor died: the exit code is known only if it was recorded
        None => match ctx.load(id).ok().and_then(|r| r.exit_code) {
            Some(code) => Ok(Ended::Exited(code as u8)),
            None => bail!("lost the connection to the monitor of container {id} before it reported an exit code"),
        },
    }
}

/// Connects to the monitor of a container without a terminal, only to
/// learn its exit code with [`wait_exit`]; None when it has no attach socket.
pub fn watch_exit(ctx: &Ctx, id: &str) -> Option<UnixStream> {
    connect(&ctx.dir(id)).ok()
}

/// The exit code the monitor reports on `conn` once the container ended
/// and was torn down; None when the connection ends without one.
pub fn wait_exit(conn: UnixStream) -> Result<Option<u8>> {
    relay_output(conn, &AtomicBool::new(false))
}

/// Copies the container's output to our stdout; its exit code, None when
/// the connection ended without one.
fn relay_output(mut conn: UnixStream, detached: &AtomicBool) -> Result<Option<u8>> {
    let mut stdout = io::stdout().lock();
    loop {
        let frame = match read_frame(&mut conn) {
            Ok(f) => f,
            Err(_) if detached.load(Ordering::SeqCst) => return Ok(None),
            Err(e) => return Err(e).context("cannot read from the attach socket"),
        };
        match frame {
            Some((OUTPUT, data)) => {
                // our stdout gone (a closed pipe): keep draining to learn the exit
                let _ = stdout.write_all(&data).and_then(|_| stdout.flush());
            }
            Some((EXIT, code)) if code.len() == 4 => {
                let code = i32::from_be_bytes([code[0], code[1], code[2], code[3]]);
                return Ok(Some(code as u8));
            }
            Some(_) => {}
            None => return Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_end_cleanly() {
        let mut buf = Vec::new();
        write_frame(&mut buf, OUTPUT, b"hello").unwrap();
        write_frame(&mut buf, EXIT, &7i32.to_be_bytes()).unwrap();
        let mut r = buf.as_slice();
        assert_eq!(read_frame(&mut r).unwrap(), Some((OUTPUT, b"hello".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((EXIT, 7i32.to_be_bytes().to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut huge = vec![OUTPUT];
        huge.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(read_frame(&mut huge.as_slice()).is_err());
    }

    #[test]
    fn a_long_directory_is_reached_through_proc_self_fd() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d".repeat(120));
        std::fs::create_dir(&dir).unwrap();
        let listener = listen(&dir).unwrap();
        assert!(dir.join(SOCKET).exists());
        let mut c = connect(&dir).unwrap();
        let (mut s, _) = listener.accept().unwrap();
        write_frame(&mut c, STDIN, b"x").unwrap();
        assert_eq!(read_frame(&mut s).unwrap(), Some((STDIN, b"x".to_vec())));
    }
}
