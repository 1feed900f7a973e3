//! Terminals and signals end to end (issue 13): `-it` needs a terminal,
//! `-i` passes the end of input, window size changes reach `run -t` and
//! `exec -t`, the detach keys leave a container running under its monitor,
//! and `attach` comes back to it.
//!
//! A real terminal is a pty pair made here: minirun runs on its slave (as
//! its controlling terminal), the test types into and reads from the master.
//! Every container uses `--net none`.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minirun_integration::{wait_until, Env, Run};

const SECOND: Duration = Duration::from_secs(1);

/// A child process killed (and reaped) if the test ends before it does.
struct Proc(Child);

impl Proc {
    /// Its exit code, waiting at most `timeout`.
    #[track_caller]
    fn exit_within(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < timeout, "minirun did not exit within {timeout:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }

    fn pid(&self) -> i32 {
        self.0.id() as i32
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `minirun ARGS` with `input` on a pipe as its stdin, within `timeout`
/// (a minirun that never returns fails the test instead of hanging it).
fn run_piped(env: &Env, args: &[&str], input: &[u8], timeout: Duration) -> Run {
    let out = tempfile::NamedTempFile::new_in(env.path()).unwrap();
    let err = tempfile::NamedTempFile::new_in(env.path()).unwrap();
    let mut cmd = env.cmd(args);
    cmd.stdin(Stdio::piped())
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap());
    let mut p = Proc(cmd.spawn().unwrap());
    // a container that does not read its input may close the pipe early
    let _ = p.0.stdin.take().unwrap().write_all(input);
    let code = p.exit_within(timeout);
    Run {
        code,
        stdout: fs::read_to_string(out.path()).unwrap(),
        stderr: fs::read_to_string(err.path()).unwrap(),
    }
}

/// The master of a pty pair, its output collected by a thread.
struct Pty {
    master: File,
    slave: Option<OwnedFd>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Pty {
    fn new(rows: u16, cols: u16) -> Self {
        let (mut m, mut s) = (-1, -1);
        // SAFETY: openpty writes two descriptors; no name, termios or size given.
        let rc = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both were just opened and are ours alone.
        let (master, slave) = unsafe { (File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().unwrap();
        let out = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once no slave end is open any more
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let pty = Self {
            master,
            slave: Some(slave),
            output,
        };
        pty.set_size(rows, cols);
        pty
    }

    /// Sets the terminal's size; the kernel sends SIGWINCH to the process
    /// group in the foreground on it.
    fn set_size(&self, rows: u16, cols: u16) {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        assert_eq!(rc, 0);
    }

    /// Runs `cmd` with the slave as its stdin, stdout, stderr and
    /// controlling terminal, in a session of its own.
    fn spawn(&mut self, mut cmd: Command) -> Proc {
        let slave = self.slave.take().expect("one process per pty");
        cmd.stdin(slave.try_clone().unwrap())
            .stdout(slave.try_clone().unwrap())
            .stderr(slave);
        // SAFETY: setsid and ioctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Proc(cmd.spawn().unwrap())
    }

    fn send(&self, bytes: &[u8]) {
        (&self.master).write_all(bytes).unwrap();
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    #[track_caller]
    fn wait_for(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.text().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "{needle:?} never appeared on the terminal; it shows:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `ps` (or `ps -a`) rows that mention `needle`.
fn ps_rows(env: &Env, all: bool, needle: &str) -> Vec<String> {
    let r = if all { env.run(["ps", "-a"]) } else { env.run(["ps"]) }.ok();
    r.stdout
        .lines()
        .skip(1)
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// No container record, name, libcontainer state or network record exists.
#[track_caller]
fn assert_nothing_made(env: &Env) {
    assert_eq!(entries(&env.data_root.join("containers")), Vec::<String>::new());
    assert_eq!(entries(&env.data_root.join("names")), Vec::<String>::new());
    let state: Vec<String> = env.state_entries().into_iter().filter(|e| e != ".net").collect();
    assert_eq!(state, Vec::<String>::new());
    let net = env.root.join(".net");
    for sub in entries(&net) {
        assert_eq!(entries(&net.join(&sub)), Vec::<String>::new(), "left in .net/{sub}");
    }
}

/// A line the shell prints but its echoed command line does not contain.
fn marker(word: &str, n: u32) -> (String, String) {
    (format!("echo {word}-$((1000+{n}))\r"), format!("{word}-{}", 1000 + n))
}

#[test]
fn it_needs_a_terminal_and_i_alone_passes_the_end_of_input() {
    let env = Env::with_busybox();
    // docker's refusal, before anything is made (it used to never return)
    let r = run_piped(
        &env,
        &["run", "--net", "none", "-it", "busybox", "cat"],
        b"hi\n",
        60 * SECOND,
    );
    assert_eq!(r.code, 1, "{r:#?}");
    r.fails_with("the input device is not a TTY");
    assert_nothing_made(&env);
    let r = run_piped(
        &env,
        &[
            "run", "--net", "none", "--name", "x", "-i", "-t", "--rm", "busybox", "cat",
        ],
        b"",
        60 * SECOND,
    );
    r.fails_with("the input device is not a TTY");
    assert_nothing_made(&env);
    // -i alone: the end of input reaches the container
    let r = run_piped(
        &env,
        &["run", "--rm", "--net", "none", "-i", "busybox", "cat"],
        b"hi\n",
        60 * SECOND,
    )
    .ok();
    assert_eq!(r.stdout, "hi\n");
    assert_nothing_made(&env);

    // the same for exec
    env.run(["run", "-d", "--net", "none", "--name", "w", "busybox", "sleep", "300"])
        .ok();
    let r = run_piped(&env, &["exec", "-it", "w", "cat"], b"hi\n", 60 * SECOND);
    assert_eq!(r.code, 1, "{r:#?}");
    r.fails_with("the input device is not a TTY");
    let r = run_piped(&env, &["exec", "-i", "w", "cat"], b"hi\n", 60 * SECOND).ok();
    assert_eq!(r.stdout, "hi\n");
    // -t alone reads no input and is allowed, as in docker
    let r = run_piped(&env, &["exec", "-t", "w", "echo", "t-alone"], b"", 60 * SECOND).ok();
    assert_eq!(r.stdout.replace('\r', ""), "t-alone\n");
    env.run(["rm", "-f", "w"]).ok();
}

#[test]
fn window_size_changes_reach_run_t_and_exec_t() {
    let env = Env::with_busybox();
    let mut t = Pty::new(24, 80);
    let mut cli = t.spawn(env.cmd(["run", "--rm", "--net", "none", "-it", "busybox", "sh"]));
    t.send(b"stty size\r");
    t.wait_for("24 80", 60 * SECOND);
    t.set_size(40, 120);
    // the kernel sent SIGWINCH to minirun (its terminal's foreground); once more to be sure
    // SAFETY: plain kill(2).
    unsafe { libc::kill(cli.pid(), libc::SIGWINCH) };
    t.send(b"stty size\r");
    t.wait_for("40 120", 20 * SECOND);
    // the container's exit code is minirun's
    t.send(b"exit 3\r");
    assert_eq!(cli.exit_within(30 * SECOND), 3, "{}", t.text());

    env.run(["run", "-d", "--net", "none", "--name", "w", "busybox", "sleep", "300"])
        .ok();
    let mut t = Pty::new(24, 80);
    let mut cli = t.spawn(env.cmd(["exec", "-it", "w", "sh"]));
    t.send(b"stty size\r");
    t.wait_for("24 80", 60 * SECOND);
    t.set_size(50, 132);
    // SAFETY: plain kill(2).
    unsafe { libc::kill(cli.pid(), libc::SIGWINCH) };
    t.send(b"stty size\r");
    t.wait_for("50 132", 20 * SECOND);
    t.send(b"exit 4\r");
    assert_eq!(cli.exit_within(30 * SECOND), 4, "{}", t.text());
    env.run(["rm", "-f", "w"]).ok();
}

#[test]
fn detach_keys_leave_the_container_running_and_attach_comes_back() {
    let env = Env::with_busybox();
    let mut t = Pty::new(24, 80);
    let mut cli = t.spawn(env.cmd(["run", "--net", "none", "-it", "--name", "dk", "busybox", "sh"]));
    let (cmd, out) = marker("one", 1);
    t.send(cmd.as_bytes());
    t.wait_for(&out, 60 * SECOND);
    // Ctrl-P Ctrl-Q: the CLI returns 0, the container runs on
    t.send(b"\x10\x11");
    assert_eq!(cli.exit_within(20 * SECOND), 0, "{}", t.text());
    let rows = ps_rows(&env, false, "dk");
    assert!(rows.len() == 1 && rows[0].contains("Up"), "{rows:?}");
    let logs = env.run(["logs", "dk"]).ok().stdout;
    assert!(logs.contains(&out), "the log lacks the output: {logs:?}");

    // attach again, detach with keys of our own
    let mut t = Pty::new(24, 80);
    let mut cli = t.spawn(env.cmd(["attach", "--detach-keys", "ctrl-a,x", "dk"]));
    let (cmd, out) = marker("two", 2);
    t.send(cmd.as_bytes());
    t.wait_for(&out, 30 * SECOND);
    t.send(b"\x01x");
    assert_eq!(cli.exit_within(20 * SECOND), 0, "{}", t.text());
    assert_eq!(ps_rows(&env, false, "dk").len(), 1);

    // attach once more; the container's exit ends it with its code
    let mut t = Pty::new(24, 80);
    let mut cli = t.spawn(env.cmd(["attach", "dk"]));
    let (cmd, out) = marker("three", 3);
    t.send(cmd.as_bytes());
    t.wait_for(&out, 30 * SECOND);
    t.send(b"exit 7\r");
    assert_eq!(cli.exit_within(30 * SECOND), 7, "{}", t.text());
    wait_until("ps -a to show Exited (7)", 20 * SECOND, || {
        ps_rows(&env, true, "dk").iter().any(|r| r.contains("Exited (7)"))
    });
    env.run(["attach", "dk"]).fails_with("not running");
    env.run(["rm", "dk"]).ok();

    // detached, it ends with stop and rm -f as any other
    for (name, end) in [
        ("dk-stop", ["stop", "-t", "1"].as_slice()),
        ("dk-rm", ["rm", "-f"].as_slice()),
    ] {
        let mut t = Pty::new(24, 80);
        let mut cli = t.spawn(env.cmd(["run", "--net", "none", "-it", "--name", name, "busybox", "sh"]));
        let (cmd, out) = marker(name, 4);
        t.send(cmd.as_bytes());
        t.wait_for(&out, 60 * SECOND);
        t.send(b"\x10\x11");
        assert_eq!(cli.exit_within(20 * SECOND), 0, "{}", t.text());
        let mut args = end.to_vec();
        args.push(name);
        env.run(args).ok();
        assert_eq!(ps_rows(&env, false, name), Vec::<String>::new());
    }
    env.run(["rm", "dk-stop"]).ok();
    assert_nothing_made(&env);

    // a bad spec is refused before anything is made, naming it
    let r = run_piped(
        &env,
        &["run", "--net", "none", "--detach-keys", "ctrl-1", "busybox", "true"],
        b"",
        60 * SECOND,
    );
    r.fails_with("\"ctrl-1\"");
    assert_nothing_made(&env);
    env.run(["attach", "--detach-keys", "bogus", "dk"])
        .fails_with("\"bogus\"");
}

#[test]
fn signals_to_an_attached_cli_reach_the_container() {
    let env = Env::with_busybox();
    let mut t = Pty::new(24, 80);
    let script = "trap 'echo got-term; exit 9' TERM; echo ready-$((1+1)); while true; do sleep 0.1; done";
    let mut cli = t.spawn(env.cmd(["run", "--rm", "--net", "none", "-it", "busybox", "sh", "-c", script]));
    t.wait_for("ready-2", 60 * SECOND);
    // SAFETY: plain kill(2).
    unsafe { libc::kill(cli.pid(), libc::SIGTERM) };
    assert_eq!(cli.exit_within(30 * SECOND), 9, "{}", t.text());
    t.wait_for("got-term", SECOND);
    assert!(!cli.running());
    assert_nothing_made(&env);
}

/// Starts `run -d NAME` of a script that ticks until /tmp/go exists, then
/// prints "after" and exits 4; attaches to it, releases it once attach shows
/// a tick, and returns what attach printed once it ended with the code 4.
fn attach_to_ticking(env: &Env, name: &str, rm: bool) -> String {
    let script = "i=0; while [ ! -e /tmp/go ]; do echo tick-$i; i=$((i+1)); sleep 0.1; done; echo after; exit 4";
    let mut args = vec!["run", "-d", "--net", "none", "--name", name];
    if rm {
        args.push("--rm");
    }
    args.extend(["busybox", "sh", "-c", script]);
    env.run(args).ok();
    let out = tempfile::NamedTempFile::new_in(env.path()).unwrap();
    let mut cli = Proc(
        env.cmd(["attach", name])
            .stdin(Stdio::null())
            .stdout(out.reopen().unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_until("attach to print a tick", 30 * SECOND, || {
        fs::read_to_string(out.path()).unwrap().contains("tick-")
    });
    env.run(["exec", name, "touch", "/tmp/go"]).ok();
    assert_eq!(cli.exit_within(30 * SECOND), 4);
    let text = fs::read_to_string(out.path()).unwrap();
    assert!(text.ends_with("after\n"), "{text:?}");
    text
}

#[test]
fn attach_to_a_container_without_a_terminal_follows_its_output() {
    let env = Env::with_busybox();
    let text = attach_to_ticking(&env, "nt", false);
    let log = env.run(["logs", "nt"]).ok().stdout;
    assert!(
        log.ends_with(&text) && log.len() > text.len(),
        "not the log's end: {text:?} of {log:?}"
    );
    env.run(["rm", "nt"]).ok();
    // with --rm the record is gone at the end: the monitor reports the code
    attach_to_ticking(&env, "nt-rm", true);
    assert_nothing_made(&env);
}
