//! `network create|ls|inspect|rm`: user-defined bridge networks.
//!
//! A network is a definition under the data root (name, bridge, subnet,
//! gateway, icc); its bridge and firewall elements appear with its first
//! container and stay until `network rm`. The default network `bridge` is
//! one of them and cannot be removed. minirun-net owns all of it; these
//! verbs print.

mod connect;
mod create;
mod inspect;
mod ls;
mod prune;
mod rm;

pub use inspect::inspect_one;
pub use prune::prune;

use anyhow::Result;
use minirun_net::network::{self, NetworkConfig};
use minirun_net::Attachment;

use super::Env;
use crate::cli::NetworkCmd;
use crate::container::Ctx;

pub fn run(env: &Env, cmd: NetworkCmd) -> Result<u8> {
    let ctx = env.ctx();
    match cmd {
        NetworkCmd::Create(a) => create::run(&ctx, &a),
        NetworkCmd::Ls => ls::run(&ctx),
        NetworkCmd::Inspect(a) => inspect::run(&ctx, &a.names, a.format.as_deref()),
        NetworkCmd::Rm(a) => rm::run(&ctx, &a.names),
        NetworkCmd::Prune(a) => super::prune::networks(env, &a),
        NetworkCmd::Connect(a) => connect::connect(&ctx, &a),
        NetworkCmd::Disconnect(a) => connect::disconnect(&ctx, &a),
    }
}

/// A live container on a network: its record there and its name.
pub struct Member {
    pub attachment: Attachment,
    pub name: String,
}

/// Every attachment record, read once per command.
fn records(ctx: &Ctx) -> Result<Vec<Attachment>> {
    Ok(minirun_net::attach::list_attachments(&ctx.root)?)
}

/// The live containers on network `name`, among `records`.
fn members(ctx: &Ctx, name: &str, records: &[Attachment]) -> Vec<Member> {
    minirun_net::members_among(name, records, ctx)
        .into_iter()
        .map(|attachment| {
            let name = ctx.load(&attachment.container_id).map(|r| r.name).unwrap_or_default();
            Member { attachment, name }
        })
        .collect()
}

/// Every network, the default one made first if missing.
fn all_networks(ctx: &Ctx) -> Result<Vec<NetworkConfig>> {
    network::ensure_default_network(&ctx.data_root)?;
    Ok(network::list_networks(&ctx.data_root)?)
}
