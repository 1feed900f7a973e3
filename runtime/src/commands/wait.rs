//! `wait NAME...` (docker): blocks until each container has stopped and
//! prints its exit code, one per line.

use std::time::Duration;

use anyhow::Result;

use super::Env;
use crate::container::Status;
use crate::util::poll;

pub fn run(env: &Env, a: &crate::cli::WaitArgs) -> Result<u8> {
    let ctx = env.ctx();
    for wanted in &a.containers {
        let r = ctx.resolve(wanted)?;
        let mut code = None;
        // as long as it takes, as docker's wait
        while code.is_none() {
            poll::until(Duration::from_secs(3600), || {
                // an --rm container is gone once it exited: its code went with it
                let Ok(now) = ctx.load(&r.id) else {
                    code = Some(None);
                    return true;
                };
                match ctx.status(&now) {
                    Status::Exited(c) => {
                        code = Some(Some(c));
                        true
                    }
                    _ => false,
                }
            });
        }
        match code.flatten() {
            Some(c) => println!("{c}"),
            None => anyhow::bail!("container \"{wanted}\" was removed before its exit code could be read"),
        }
    }
    Ok(0)
}
