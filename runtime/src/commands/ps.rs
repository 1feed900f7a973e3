//! `ps [-a] [-q]`: containers made from images (docker); `ps [--format
//! table|json] ID`: the processes of one container (runc).

use anyhow::{Context, Result};
use libcgroups::common::CgroupManager;
use minirun_net::PortMapping;

use super::Env;
use crate::cli::{ListFormat, PsArgs};
use crate::container::Status;
use crate::oci::{cgroup_manager, libcontainer_message};

pub fn run(env: &Env, a: &PsArgs) -> Result<u8> {
    match &a.id {
        Some(id) => processes(env, id, a.format)?,
        None => containers(env, a.all, a.quiet)?,
    }
    Ok(0)
}

/// runc ps: the pids in the container's cgroup.
fn processes(env: &Env, id: &str, format: ListFormat) -> Result<()> {
    let c = env.state.load(id)?;
    let cgroup = c
        .spec()
        .map_err(|e| anyhow::anyhow!(libcontainer_message(&e)))?
        .cgroup_path;
    let manager =
        cgroup_manager(c.id(), cgroup, c.systemd()).with_context(|| format!("cannot open the cgroup of \"{id}\""))?;
    let pids: Vec<i32> = manager
        .get_all_pids()
        .with_context(|| format!("cannot list the processes of \"{id}\""))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        ListFormat::Table => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
        }
    }
    Ok(())
}

/// docker ps.
fn containers(env: &Env, all: bool, quiet: bool) -> Result<()> {
    let ctx = env.ctx();
    let mut rows = Vec::new();
    for r in ctx.all()? {
        let status = ctx.status(&r);
        if all || status == Status::Running || r.run_flags.restarting {
            rows.push((r, status));
        }
    }
    if quiet {
        for (r, _) in &rows {
            println!("{}", &r.id[..12]);
        }
        return Ok(());
    }
    println!(
        "{:<12}  {:<16}  {:<24}  {:<20}  {:<24}  {:<28}  NAMES",
        "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS"
    );
    for (r, status) in rows {
        let cmd = format!("\"{}\"", r.args.join(" "));
        let cmd = if cmd.len() > 24 {
            format!("{}…\"", &cmd[..21])
        } else {
            cmd
        };
        let status = match status {
            // issue 15: --restart and health checks
            Status::Exited(c) if r.run_flags.restarting => crate::container::health::restarting_status(&r, c),
            Status::Running => format!(
                "Up since {}{}",
                short_time(r.started_at.as_deref()),
                crate::container::health::ps_suffix(&r)
            ),
            Status::Created => "Created".into(),
            Status::Exited(c) => format!("Exited ({c}) {}", short_time(r.finished_at.as_deref())),
            Status::Dead => "Dead".into(),
        };
        let ports = r
            .network
            .as_ref()
            .map(|a| match a.ipv6 {
                None => a.ports.iter().map(format_port).collect::<Vec<_>>().join(", "),
                Some(_) => a
                    .published_elements()
                    .iter()
                    .map(|(p, _)| format_port(p))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
            .unwrap_or_default();
        println!(
            "{:<12}  {:<16}  {:<24}  {:<20}  {:<24}  {:<28}  {}",
            &r.id[..12],
            r.image,
            cmd,
            short_time(Some(&r.created)),
            status,
            ports,
            r.name
        );
    }
    Ok(())
}

fn format_port(p: &PortMapping) -> String {
    format!("{}->{}/{}", super::port::host_side(p), p.container_port, p.proto)
}

fn short_time(t: Option<&str>) -> String {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}
