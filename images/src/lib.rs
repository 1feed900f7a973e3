//! minirun image store.

mod archive;
mod digest;
mod error;
mod fsutil;
mod reference;
mod rootfs;
mod store;
#[cfg(test)]
mod testutil;
mod unpack;

pub use error::{Error, Result};
pub use rootfs::release_rootfs;
pub use store::{Image, ImageSummary, Store};
pub use unpack::{unpack_layer, Compression, UnpackStats};
