//! `port NAME...`: the container's published ports.

use anyhow::Result;

use super::Env;
use crate::cli::NamesArg;

pub fn run(env: &Env, a: &NamesArg) -> Result<u8> {
    let ctx = env.ctx();
    for c in &a.containers {
        let r = ctx.resolve(c)?;
        // As docker: one line per family a port is published on (`[::]:P` as well
        // when the container has IPv6 too).
        for att in r.network.iter() {
            for (p, _) in att.published_elements() {
                println!("{}/{} -> {}", p.container_port, p.proto, host_side(&p));
            }
        }
    }
    Ok(0)
}

/// `0.0.0.0:8080`, `127.0.0.1:8080`, `[::]:8080`, `[2001:db8::1]:8080`.
pub fn host_side(p: &minirun_net::PortMapping) -> String {
    match p.host_ip {
        None => format!("0.0.0.0:{}", p.host_port),
        Some(std::net::IpAddr::V6(a)) => format!("[{a}]:{}", p.host_port),
        Some(a) => format!("{a}:{}", p.host_port),
    }
}
