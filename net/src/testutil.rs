//! Test helpers: private network namespaces so tests never touch the machine's real
//! interfaces, routes or firewall.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::sched::CloneFlags;

/// True when the test may do root networking; prints why it skips otherwise.
pub fn require_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (network namespaces)");
        return false;
    }
    let ok = can_unshare_net();
    if !ok {
        eprintln!("skipping: cannot unshare a network namespace here");
    }
    ok
}

/// Whether a thread of this process can enter a new network namespace (tried on a
/// throwaway thread, whose namespace dies with it).
fn can_unshare_net() -> bool {
    std::thread::spawn(|| nix::sched::unshare(CloneFlags::CLONE_NEWNET).is_ok())
        .join()
        .unwrap_or(false)
}

/// Inode of the calling thread's network namespace.
pub fn netns_ino() -> u64 {
    std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
}

pub struct PrivateNetns;

impl PrivateNetns {
    /// Runs `f` on a fresh thread inside a brand-new network namespace (with `lo` up) that
    /// stands for "the host". Everything the closure does (and every thread or process it
    /// starts) is confined to it; the namespace dies with the thread unless bind-mounted.
    /// Panics propagate after the thread ends.
    pub fn run<T: Send, F: FnOnce() -> T + Send>(f: F) -> T {
        let outer = std::fs::metadata("/proc/self/ns/net").unwrap().ino();
        let r = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
                assert_ne!(netns_ino(), outer, "must not run in the real network namespace");
                crate::link::set_lo_up().expect("lo up");
                f()
            })
            .join()
        });
        match r {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

/// Runs `f` in a [`PrivateNetns`] when this process may make one (root), else here: for
/// tests that only read the namespace (links, routes) and should not depend on what the
/// machine has (another minirun's bridges, say).
pub fn hermetic<T: Send, F: FnOnce() -> T + Send>(f: F) -> T {
    if nix::unistd::geteuid().is_root() && can_unshare_net() {
        PrivateNetns::run(f)
    } else {
        f()
    }
}

/// Removes a netns file on drop (also when the test fails).
pub struct NetnsGuard(pub PathBuf);

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = crate::netns::remove_netns(&self.0);
    }
}

/// Runs `nft -j list table ip minirun` in the caller's (private) namespace.
pub fn nft_json() -> serde_json::Value {
    let out = std::process::Command::new("nft")
        .args(["-j", "list", "table", "ip", "minirun"])
        .output()
        .expect("run nft");
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Elements of one set/map from `nft -j` output, as compact JSON strings.
pub fn nft_elems(set: &str) -> Vec<String> {
    let v = nft_json();
    let mut out = Vec::new();
    for item in v["nftables"].as_array().unwrap() {
        for kind in ["set", "map"] {
            if item[kind]["name"] == set {
                if let Some(elems) = item[kind]["elem"].as_array() {
                    out.extend(elems.iter().map(|e| e.to_string()));
                }
            }
        }
    }
    out
}

pub fn has_nft() -> bool {
    let ok = std::process::Command::new("nft")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping: nft (used only to verify) is not installed");
    }
    ok
}
