//! Memory a long-lived process no longer needs: the detached monitor is a
//! fork of the `run` that set the container up, and inherits every page of
//! the binary that `run` touched (8 MB of a 28 MB binary) and its heap.

use procfs::process::{MMPermissions, MMapPath, Process};
use rustix::mm::Advice;

/// Returns the heap's free memory to the kernel and drops this process's
/// mappings of program and library pages that were only ever read: the
/// kernel maps them again from the page cache when they are used, so a
/// process waiting for its child keeps only what it touches from then on
/// (`MADV_RANDOM`: without read-ahead around each of those faults), and
/// the part of its stack below the caller's frame. The monitor of an idle
/// container goes from 9.8 MB to about 1.6 MB resident (of which 676 kB is
/// the relocated `.data.rel.ro` of the PIE binary).
///
/// Only read-only private mappings of files that hold no private copy of a
/// page (`Anonymous: 0`) are dropped: a page the dynamic linker wrote (the
/// relocated `.data.rel.ro`) must stay, since the file holds the unrelocated
/// bytes.
pub fn shed_startup_pages() {
    let Ok(maps) = Process::myself().and_then(|p| p.smaps()) else {
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        return;
    };
    // Every range is found first and every allocation freed before any page
    // goes: code run after the drop faults its page back in (and, with the
    // kernel's fault-around, up to 15 neighbours), so what runs then is a
    // loop of raw system calls over a list on the stack.
    let stack = stack_below(&maps.0, here());
    let mut files = [(0u64, 0u64); MAX_SHED];
    let mut n = 0;
    for m in &maps {
        let read_only_private = !m.perms.contains(MMPermissions::WRITE) && m.perms.contains(MMPermissions::PRIVATE);
        let from_file = matches!(m.pathname, MMapPath::Path(_)) && m.inode != 0;
        let clean = m.extension.map.get("Anonymous") == Some(&0);
        if read_only_private && from_file && clean && n < MAX_SHED {
            files[n] = m.address;
            n += 1;
        }
    }
    drop(maps);
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    let span = |(start, end): (u64, u64)| (start as *mut std::ffi::c_void, (end - start) as usize);
    if let Some((addr, len)) = stack.map(span) {
        // SAFETY: no live frame is there (see `stack_below`).
        let _ = unsafe { rustix::mm::madvise(addr, len, Advice::LinuxDontNeed) };
    }
    for (addr, len) in files[..n].iter().copied().map(span) {
        // SAFETY: a whole read-only mapping whose pages equal the file's:
        // dropping them only makes the next access fault them in again.
        unsafe {
            let _ = rustix::mm::madvise(addr, len, Advice::LinuxDontNeed);
            let _ = rustix::mm::madvise(addr, len, Advice::Random);
        }
    }
}

/// Mappings dropped at most (a process maps a few dozen).
const MAX_SHED: usize = 256;

/// An address in the caller's frame.
#[inline(always)]
fn here() -> u64 {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as u64
}

/// The part of this thread's stack below the frame at `sp`, less 16 kB (the
/// red zone, and the calls still to be made from there): the set-up went deep
/// (image store, spec, netlink) and left those pages resident; whatever runs
/// below later writes before it reads, so it only faults in zeroed pages.
/// The main thread's `[stack]`, or a thread's anonymous stack mapping (whose
/// thread control block lies above its frames, not below).
fn stack_below(maps: &[procfs::process::MemoryMap], sp: u64) -> Option<(u64, u64)> {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let (start, _) = maps
        .iter()
        .map(|m| m.address)
        .find(|(start, end)| (*start..*end).contains(&sp))?;
    let keep_from = sp.saturating_sub(16 * 1024) & !(page - 1);
    (keep_from > start).then_some((start, keep_from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_file_kb() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Resident kB of the mapping that holds this thread's stack.
    #[inline(never)]
    fn stack_rss_kb() -> u64 {
        let here = here();
        let maps = Process::myself().unwrap().smaps().unwrap();
        let m = maps
            .iter()
            .find(|m| (m.address.0..m.address.1).contains(&here))
            .unwrap();
        m.extension.map.get("Rss").copied().unwrap_or(0) / 1024
    }

    #[inline(never)]
    fn dirty_deep_stack() -> u64 {
        let mut deep = [0u8; 512 * 1024];
        for (i, b) in deep.iter_mut().enumerate().step_by(4096) {
            *b = (i / 4096) as u8 + 1;
        }
        std::hint::black_box(&mut deep)
            .iter()
            .step_by(4096)
            .map(|b| u64::from(*b))
            .sum()
    }

    /// Runs `check` in a child of this thread alone (the test harness's other
    /// threads must not race the numbers) and asserts it held there.
    fn in_a_child(what: &str, check: impl FnOnce() -> bool) {
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = check();
                unsafe { libc::_exit(if ok { 0 } else { 1 }) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "{what}");
            }
        }
    }

    #[test]
    fn shedding_drops_the_stack_left_by_deep_set_up() {
        // a thread with room for the deep frames
        let thread = std::thread::Builder::new().stack_size(4 << 20).spawn(|| {
            in_a_child("the stack's Rss did not drop, or the child broke", || {
                std::hint::black_box(dirty_deep_stack());
                let before = stack_rss_kb();
                shed_startup_pages();
                let after = stack_rss_kb();
                eprintln!("stack Rss {before} kB -> {after} kB");
                // and the stack still works below the shed frames
                after + 256 < before && std::hint::black_box(dirty_deep_stack()) > 0
            })
        });
        thread.unwrap().join().unwrap();
    }

    #[test]
    fn shedding_drops_file_pages_and_the_process_goes_on() {
        in_a_child("RssFile did not drop, or the child broke", || {
            // a fork maps the parent's file pages again on use: touch some
            let _ = std::hint::black_box(std::fs::read_to_string("/proc/self/status"));
            let _ = std::hint::black_box(serde_json::to_string(&serde_json::json!({"a": [1, 2]})));
            let before = rss_file_kb();
            shed_startup_pages();
            let after = rss_file_kb();
            eprintln!("RssFile {before} kB -> {after} kB");
            // code and data of the binary still work after the drop
            let text = format!("{:?}", std::collections::BTreeMap::from([(1, "one")]));
            after < before && text == r#"{1: "one"}"#
        });
    }
}
