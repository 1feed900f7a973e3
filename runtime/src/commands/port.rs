//! `port NAME...`: the container's published ports.

use anyhow::Result;

use super::Env;
use crate::cli::NamesArg;

pub fn run(env: &Env, a: &NamesArg) -> Result<u8> {
    let ctx = env.ctx();
    for c in &a.containers {
        let r = ctx.resolve(c)?;
        for p in r.network.iter().flat_map(|att| &att.ports) {
            let ip = p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into());
            println!("{}/{} -> {ip}:{}", p.container_port, p.proto, p.host_port);
        }
    }
    Ok(0)
}
