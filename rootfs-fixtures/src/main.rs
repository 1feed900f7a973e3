//! `minirun-fixtures`: build busybox test fixtures offline.
//!
//! ```text
//! minirun-fixtures rootfs DIR
//! minirun-fixtures bundle DIR [-- ARGS...]
//! minirun-fixtures image OUT [--name busybox:latest] [--format docker|oci-dir|oci-tar]
//! minirun-fixtures busybox-path
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use rootfs_fixtures::{build_bundle, build_image, build_rootfs, busybox_path, ImageFormat};

const USAGE: &str = "usage:
  minirun-fixtures rootfs DIR
  minirun-fixtures bundle DIR [-- ARGS...]        (default ARGS: sh)
  minirun-fixtures image OUT [--name REF] [--format docker|oci-dir|oci-tar]
                                                  (defaults: busybox:latest, docker)
  minirun-fixtures busybox-path";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("minirun-fixtures: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<()> {
    let Some((cmd, rest)) = args.split_first() else {
        bail!("missing command\n{USAGE}");
    };
    match cmd.as_str() {
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        "rootfs" => {
            let [dir] = rest else {
                bail!("rootfs takes exactly one DIR\n{USAGE}")
            };
            build_rootfs(dir.as_ref()).with_context(|| format!("building rootfs in {dir}"))?;
            println!("rootfs written to {dir}");
            Ok(())
        }
        "bundle" => {
            let Some((dir, mut cargs)) = rest.split_first() else {
                bail!("bundle needs a DIR\n{USAGE}");
            };
            if cargs.first().map(String::as_str) == Some("--") {
                cargs = &cargs[1..];
            }
            let cargs: Vec<&str> = if cargs.is_empty() {
                vec!["sh"]
            } else {
                cargs.iter().map(String::as_str).collect()
            };
            build_bundle(dir.as_ref(), &cargs).with_context(|| format!("building bundle in {dir}"))?;
            println!("bundle written to {dir} (args: {cargs:?})");
            Ok(())
        }
        "image" => {
            let mut out: Option<PathBuf> = None;
            let mut name = "busybox:latest".to_string();
            let mut format = ImageFormat::DockerArchive;
            let mut it = rest.iter();
            while let Some(a) = it.next() {
                let mut value = |flag: &str| {
                    it.next()
                        .cloned()
                        .with_context(|| format!("{flag} needs a value\n{USAGE}"))
                };
                match a.as_str() {
                    "--name" => name = value("--name")?,
                    "--format" => format = value("--format")?.parse()?,
                    s if s.starts_with("--name=") => name = s["--name=".len()..].to_string(),
                    s if s.starts_with("--format=") => format = s["--format=".len()..].parse()?,
                    s if s.starts_with('-') => bail!("unknown option {s}\n{USAGE}"),
                    s if out.is_none() => out = Some(PathBuf::from(s)),
                    s => bail!("unexpected argument {s}\n{USAGE}"),
                }
            }
            let Some(out) = out else {
                bail!("image needs OUT\n{USAGE}")
            };
            build_image(&out, &name, format).with_context(|| format!("building image {name} at {}", out.display()))?;
            println!("{format:?} image {name} written to {}", out.display());
            Ok(())
        }
        "busybox-path" => {
            println!("{}", busybox_path()?.display());
            Ok(())
        }
        other => bail!("unknown command {other}\n{USAGE}"),
    }
}
