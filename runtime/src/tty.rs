//! Pseudo-terminals for `run -t` and `exec -t`: libcontainer creates the pty
//! inside the container and sends its master over a console socket; minirun
//! receives it and relays it (the monitor of an image container, see
//! `container/attach.rs`; `exec -t` itself). Also: raw mode, window sizes
//! (copied again on every SIGWINCH), the "input is a terminal" check of
//! `-it`, and docker's detach keys.

use std::fs::File;
use std::io::{self, IoSliceMut, IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};
use signal_hook::consts::SIGWINCH;
use signal_hook::iterator::{Handle, Signals};

/// docker's error for `-it` whose stdin is not a terminal.
pub const NOT_A_TTY: &str = "the input device is not a TTY";

/// `-i -t` needs our stdin to be a terminal, as docker's CLI checks before
/// anything is made: a pipe would reach the container's terminal, whose end
/// of input never comes (`echo hi | run -it cat` would never return). `-t`
/// alone reads no input and is fine, as in docker.
pub fn check_input_is_terminal(interactive: bool, tty: bool) -> Result<()> {
    if interactive && tty && !io::stdin().is_terminal() {
        // docker's CLI exits 1 here, not run's 125
        return Err(crate::commands::ExitCodeError {
            code: 1,
            error: anyhow::anyhow!(NOT_A_TTY),
        }
        .into());
    }
    Ok(())
}

/// A console socket waiting for the container's pty master.
pub struct ConsoleSocket {
    path: PathBuf,
    thread: JoinHandle<io::Result<OwnedFd>>,
}

impl ConsoleSocket {
    /// Listens at `path`; a thread (idle in accept while libcontainer clones)
    /// receives the master.
    pub fn listen(path: &Path) -> Result<Self> {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).with_context(|| format!("cannot create console socket {}", path.display()))?;
        let thread = std::thread::spawn(move || {
            let (stream, _) = listener.accept()?;
            receive_fd(stream.as_fd())
        });
        Ok(Self {
            path: path.to_path_buf(),
            thread,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master, once the container has sent it.
    pub fn master(self) -> Result<File> {
        let fd = self
            .thread
            .join()
            .map_err(|_| anyhow!("console socket thread panicked"))?
            .context("did not receive the container's terminal")?;
        let _ = std::fs::remove_file(&self.path);
        Ok(File::from(fd))
    }
}

fn receive_fd(sock: BorrowedFd) -> io::Result<OwnedFd> {
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)
        .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: SCM_RIGHTS just installed this descriptor in our table.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "no file descriptor on the console socket",
    ))
}

/// Puts the terminal on `fd` in raw mode until dropped.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: BorrowedFd) -> Option<Self> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self {
            fd: fd.try_clone_to_owned().ok()?,
            saved,
        })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd.as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// A terminal's size: rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSize {
    pub rows: u16,
    pub cols: u16,
}

impl WindowSize {
    /// The size of the terminal on `fd`; None when it is not a terminal.
    pub fn of(fd: BorrowedFd) -> Option<Self> {
        // SAFETY: an all-zero winsize is valid; TIOCGWINSZ writes one winsize.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        (rc == 0).then_some(Self {
            rows: ws.ws_row,
            cols: ws.ws_col,
        })
    }

    /// Gives the terminal on `fd` (a pty master) this size; the kernel sends
    /// SIGWINCH to its foreground process group when it changes.
    pub fn apply(self, fd: BorrowedFd) {
        let ws = libc::winsize {
            ws_row: self.rows,
            ws_col: self.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// Gives the pty the size of our own terminal, if we have one.
pub fn copy_window_size(from: BorrowedFd, to: BorrowedFd) {
    if let Some(ws) = WindowSize::of(from) {
        ws.apply(to);
    }
}

/// Runs `on_change` on a thread each time this process gets SIGWINCH (our
/// terminal's size changed), until dropped.
pub struct ResizeWatch {
    handle: Handle,
    thread: Option<JoinHandle<()>>,
}

impl ResizeWatch {
    pub fn start(mut on_change: impl FnMut() + Send + 'static) -> Result<Self> {
        let mut signals = Signals::new([SIGWINCH]).context("cannot install the SIGWINCH handler")?;
        let handle = signals.handle();
        let thread = std::thread::spawn(move || {
            for _ in signals.forever() {
                on_change();
            }
        });
        Ok(Self {
            handle,
            thread: Some(thread),
        })
    }
}

impl Drop for ResizeWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies the pty's output to `out` until the container side closes (EIO).
pub fn pump_output(master: &mut File, out: &mut dyn Write) {
    pump(master, |chunk| {
        let ok = out.write_all(chunk).is_ok();
        let _ = out.flush();
        ok
    })
}

/// Hands each chunk of the pty's output to `sink` until the container side
/// closes (EIO) or `sink` returns false.
pub fn pump(master: &mut File, mut sink: impl FnMut(&[u8]) -> bool) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if !sink(&buf[..n]) {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break, // EIO: every slave end is closed
        }
    }
}

/// Relays our stdin into the pty on a detached thread (it may block in read
/// forever; it ends with the process).
pub fn pump_input(master: &File) -> Result<()> {
    let mut to = master.try_clone()?;
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    Ok(())
}

/// docker's default detach keys: Ctrl-P Ctrl-Q.
pub const DEFAULT_DETACH_KEYS: &str = "ctrl-p,ctrl-q";

/// Parses docker's `--detach-keys` syntax: comma-separated keys, each a
/// single character, `ctrl-a`..`ctrl-z`, `ctrl-@`, `ctrl-[`, `ctrl-\`,
/// `ctrl-]`, `ctrl-^`, `ctrl-_` or `DEL`.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>> {
    let mut keys = Vec::new();
    for key in spec.split(',') {
        let code = match key.as_bytes() {
            [c] if c.is_ascii() => Some(*c),
            _ if key == "DEL" => Some(127),
            _ => key.strip_prefix("ctrl-").and_then(|k| match k.as_bytes() {
                [c @ b'a'..=b'z'] => Some(c - b'a' + 1),
                [c @ (b'@' | b'[' | b'\\' | b']' | b'^' | b'_')] => Some(c - b'@'),
                _ => None,
            }),
        };
        match code {
            Some(c) => keys.push(c),
            None => bail!(
                "invalid --detach-keys \"{spec}\": unknown key \"{key}\" (use a character, ctrl-a..ctrl-z, \
                 ctrl-@, ctrl-[, ctrl-\\, ctrl-], ctrl-^, ctrl-_ or DEL, separated by commas)"
            ),
        }
    }
    Ok(keys)
}

/// Finds the detach keys in what the user types, as docker does: the bytes
/// of a partial match are held back until the sequence is complete (then
/// they are dropped and the user detaches) or broken (then they are passed on).
pub struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, matched: 0 }
    }

    /// Appends to `out` what goes on to the container; true when the keys
    /// were typed (the rest of `input` is dropped).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        for &b in input {
            if self.keys.is_empty() {
                out.push(b);
                continue;
            }
            if b != self.keys[self.matched] && self.matched > 0 {
                out.extend_from_slice(&self.keys[..self.matched]);
                self.matched = 0;
            }
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return true;
                }
            } else {
                out.push(b);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn receives_a_descriptor_over_the_console_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let console = ConsoleSocket::listen(&path).unwrap();
        let (mut r, w) = nix::unistd::pipe()
            .map(|(r, w)| (File::from(r), File::from(w)))
            .unwrap();
        let stream = UnixStream::connect(&path).unwrap();
        let fds = [w.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        nix::sys::socket::sendmsg::<()>(
            stream.as_raw_fd(),
            &[io::IoSlice::new(b"x")],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        drop(w);
        let mut received = console.master().unwrap();
        received.write_all(b"through the socket").unwrap();
        drop(received);
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(s, "through the socket");
        assert!(!path.exists(), "socket file is removed");
    }

    #[test]
    fn detach_keys_in_dockers_syntax() {
        assert_eq!(parse_detach_keys(DEFAULT_DETACH_KEYS).unwrap(), vec![0x10, 0x11]);
        assert_eq!(parse_detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(parse_detach_keys("ctrl-@").unwrap(), vec![0]);
        assert_eq!(
            parse_detach_keys("ctrl-\\,ctrl-_,DEL,q").unwrap(),
            vec![0x1c, 0x1f, 127, b'q']
        );
        for bad in ["", "ctrl-", "ctrl-A", "ctrl-1", "ab", "a,,b", "é"] {
            let e = parse_detach_keys(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("\"{bad}\"")), "{e}");
        }
    }

    #[test]
    fn detach_keys_are_held_back_until_complete_or_broken() {
        let mut m = DetachKeys::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(!m.feed(b"ab\x10", &mut out));
        assert_eq!(out, b"ab", "a partial match is held back");
        assert!(!m.feed(b"c", &mut out));
        assert_eq!(out, b"ab\x10c", "a broken match is passed on");
        out.clear();
        assert!(!m.feed(b"\x10\x10", &mut out));
        assert_eq!(out, b"\x10", "the second ctrl-p may start the sequence");
        assert!(m.feed(b"\x11rest", &mut out));
        assert_eq!(out, b"\x10", "the keys and what follows are dropped");
        let mut none = DetachKeys::new(vec![]);
        out.clear();
        assert!(!none.feed(b"\x10\x11", &mut out));
        assert_eq!(out, b"\x10\x11");
    }
}
