//! `top NAME [ps OPTIONS]`: the host's `ps` (default `-ef`), limited to the
//! container's processes, as docker does it.

use std::process::Command;

use anyhow::{bail, Context, Result};
use libcgroups::common::{AnyCgroupManager, CgroupManager};

use super::Env;
use crate::cli::TopArgs;
use crate::container::Status;
use crate::oci::{cgroup_manager, libcontainer_message};

pub fn run(env: &Env, a: &TopArgs) -> Result<u8> {
    let ctx = env.ctx();
    let r = super::inspect::container(&ctx, &a.container)?;
    if ctx.status(&r) != Status::Running {
        bail!("Container {} is not running", a.container);
    }
    let pids = pids(&cgroup(env, &r.id)?, &a.container)?;
    let args: Vec<String> = if a.ps_args.is_empty() {
        vec!["-ef".into()]
    } else {
        a.ps_args.clone()
    };
    let out = Command::new("ps").args(&args).output().context("cannot run ps")?;
    if !out.status.success() {
        bail!("ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    print!("{}", filter(&text, &pids)?);
    Ok(0)
}

/// The header and the lines of `ps` output whose PID is one of `pids`.
fn filter(text: &str, pids: &[i32]) -> Result<String> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("Couldn't find PID field in ps output");
    };
    let mut out = format!("{header}\n");
    for l in lines {
        let pid = l.split_whitespace().nth(col).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// The cgroup manager of container `id` (made from an image or a bundle).
pub fn cgroup(env: &Env, id: &str) -> Result<AnyCgroupManager> {
    let c = env.state.load(id)?;
    let path = c
        .spec()
        .map_err(|e| anyhow::anyhow!(libcontainer_message(&e)))?
        .cgroup_path;
    cgroup_manager(c.id(), path, c.systemd()).with_context(|| format!("cannot open the cgroup of \"{id}\""))
}

/// Every pid in the container's cgroup.
pub fn pids(manager: &AnyCgroupManager, wanted: &str) -> Result<Vec<i32>> {
    Ok(manager
        .get_all_pids()
        .with_context(|| format!("cannot list the processes of \"{wanted}\""))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_containers_rows() {
        let ps = "UID   PID  PPID  C CMD\nroot    1     0  0 init\nroot   42     1  0 sleep 60\n";
        assert_eq!(
            filter(ps, &[42]).unwrap(),
            "UID   PID  PPID  C CMD\nroot   42     1  0 sleep 60\n"
        );
        assert!(filter("USER COMMAND\n", &[1]).is_err());
    }
}
