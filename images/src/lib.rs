//! minirun's image store: load images from `docker save` archives and OCI
//! image layouts into a sha256-verified, content-addressed store, unpack
//! their layers safely (once each), and give containers a root filesystem
//! (overlayfs of the layers, or a private copy where overlayfs is missing).
//!
//! ```no_run
//! # fn main() -> Result<(), minirun_images::Error> {
//! use minirun_images::{release_rootfs, Store};
//! use std::path::Path;
//!
//! let store = Store::open(Path::new("/var/lib/minirun"))?;
//! store.load(Path::new("busybox.tar"))?;              // ["busybox:latest"]
//! let image = store.resolve("busybox")?;
//! let dir = Path::new("/var/lib/minirun/containers/web");
//! let rootfs = store.prepare_rootfs(&image, dir, Default::default())?; // dir/rootfs
//! // ... run the container on `rootfs` ...
//! release_rootfs(dir)?;
//! # Ok(()) }
//! ```
//!
//! # On disk
//!
//! Under `<data_root>/images` (see [`Store`]): `index.json` (references,
//! images, layer sizes; replaced atomically), `blobs/sha256/` (configs and OCI
//! manifests), `layers/<diff_id hex>/` (unpacked layers in overlayfs form,
//! shared by all images and containers), `tmp/` (staging), and two lock files.
//! Per container, [`Store::prepare_rootfs`] makes `rootfs/`, `upper/` and
//! `work/` in the directory it is given.
//!
//! # Concurrency
//!
//! Loads run in parallel and commit one at a time under a file lock; removal
//! waits for running loads and `prepare_rootfs` calls, and they for it.
//! Nothing relies on a single minirun process.

mod archive;
pub mod auth;
mod chunks;
mod commit;
mod digest;
mod error;
mod fsutil;
mod pull;
mod reference;
mod rootfs;
mod save;
mod store;
#[cfg(test)]
mod testutil;
mod unpack;

pub use error::{Error, Result};
pub use pull::{
    check_login, NoProgress, Platform, PullEvent, PullOptions, PullProgress, Pulled, DEFAULT_CONCURRENT_DOWNLOADS,
};
pub use reference::{registry_domain, registry_of};
pub use rootfs::{ensure_dir_in_rootfs, release_rootfs, unmount_rootfs, RootfsOptions};
pub use store::{Image, ImageSummary, Store};
pub use unpack::{unpack_layer, Compression, UnpackStats};
