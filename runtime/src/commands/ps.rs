//! `ps [-a] [-q]`: containers made from images (docker); `ps [--format
//! table|json] ID`: the processes of one container (runc).

use anyhow::{Context, Result};
use libcgroups::common::CgroupManager;

use super::Env;
use crate::cli::{ListFormat, PsArgs};
use crate::oci::{cgroup_manager, libcontainer_message};

pub fn run(env: &Env, a: &PsArgs) -> Result<u8> {
    match &a.id {
        Some(id) => processes(
            env,
            id,
            if a.format.as_deref() == Some("json") {
                ListFormat::Json
            } else {
                ListFormat::Table
            },
        )?,
        None => super::ps_docker::containers(env, a)?,
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
