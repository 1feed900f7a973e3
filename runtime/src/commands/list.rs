//! `list [--format table|json] [-q]` (runc): every container under the root.

use anyhow::Result;

use super::Env;
use crate::cli::{ListArgs, ListFormat};

pub fn run(env: &Env, a: &ListArgs) -> Result<u8> {
    let all = env.state.list()?;
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match a.format {
        ListFormat::Json => println!("{}", serde_json::to_string(&all)?),
        ListFormat::Table => {
            println!(
                "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &all {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created.as_deref().unwrap_or(""),
                    s.owner
                );
            }
        }
    }
    Ok(0)
}
