//! Short-lived current-thread tokio runtimes and rtnetlink connections.
//!
//! Every call builds a runtime, opens its netlink connection(s), runs, and drops both
//! before returning: no runtime or reactor thread outlives a public call (the caller forks
//! afterwards).

use std::future::Future;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::CloneFlags;
use rtnetlink::Handle;

use crate::error::{Error, Result};

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| Error::Runtime(format!("cannot create tokio runtime: {e}")))
}

fn connect() -> Result<Handle> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| Error::Runtime(format!("cannot open rtnetlink socket: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// Runs `f` with an rtnetlink handle in the calling thread's network namespace.
pub(crate) fn with_rtnl<T, F, Fut>(f: F) -> Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let rt = runtime()?;
    let out = rt.block_on(async {
        let h = connect()?;
        f(h).await
    });
    drop(rt);
    out
}

/// Runs `f` on a short-lived thread with two handles: one in the caller's network
/// namespace (opened before switching) and one inside the namespace at `netns` (the
/// thread `setns`es into it, then opens its connection there). The caller's thread never
/// changes namespace.
pub(crate) fn with_rtnl_pair<T, F, Fut>(netns: &Path, f: F) -> Result<T>
where
    T: Send,
    F: FnOnce(Handle, Handle) -> Fut + Send,
    Fut: Future<Output = Result<T>>,
{
    let file = std::fs::File::open(netns).map_err(|source| Error::Netns {
        path: netns.into(),
        op: "open",
        source,
    })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = runtime()?;
            let out = rt.block_on(async {
                let host = connect()?;
                nix::sched::setns(file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| Error::Netns {
                    path: netns.into(),
                    op: "setns",
                    source: e.into(),
                })?;
                let ns = connect()?;
                f(host, ns).await
            });
            drop(rt);
            out
        })
        .join()
        .unwrap_or_else(|_| Err(Error::Runtime("netlink thread panicked".into())))
    })
}
