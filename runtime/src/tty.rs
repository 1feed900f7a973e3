//! Pseudo-terminals for `run -t`: libcontainer creates the pty inside the
//! container and sends its master over a console socket; minirun receives it
//! and relays it to the user's terminal (foreground) or to the log (detached).

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

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

/// Gives the pty the size of our own terminal, if we have one.
pub fn copy_window_size(from: BorrowedFd, to: BorrowedFd) {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write one winsize.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Copies the pty's output to `out` until the container side closes (EIO).
pub fn pump_output(master: &mut File, out: &mut dyn Write) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if out.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = out.flush();
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
}
