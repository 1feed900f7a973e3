//! Containers made from images (and bundles run with minirun's network):
//! the typed [`Record`] of each, found and locked through [`Ctx`], launched
//! through one pipeline, supervised by a monitor when detached, and torn
//! down however they end. libcontainer and minirun-net are reached only
//! through the [`engine::Engine`] and [`network::Network`] seams, which unit tests fake.

pub mod attach;
pub mod connect;
pub mod engine;
pub mod health;
pub mod launch;
pub mod logtimes;
mod monitor;
pub mod network;
mod record;
pub mod restart;
pub mod run;
mod run_extras;
pub mod run_flags;
mod start_again;
mod stop_opts;
mod store;
pub mod teardown;
pub mod volumes;

#[cfg(test)]
mod fakes;
#[cfg(test)]
mod tests;

pub use record::{Record, RunSummary, Status};
pub use start_again::{lock_stopped, start_exited};
pub use store::{valid_name, Ctx};
