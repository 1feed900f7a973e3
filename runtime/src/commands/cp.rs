//! `cp [-L] CONTAINER:SRC DEST|-` and `cp [-L] SRC|- CONTAINER:DEST`: files
//! in and out of a container's root filesystem, every path in it resolved
//! inside it (symlinks never lead out); a tar stream on `-`, as docker.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::rootfs::Rootfs;
use super::Env;
use crate::cli::CpArgs;

/// One side of a copy.
enum Side {
    Host(String),
    Container(String, String),
}

fn side(arg: &str) -> Side {
    match arg.split_once(':') {
        // a path with a slash before the colon is a host path, as docker reads it
        Some((c, p)) if !c.is_empty() && !c.contains('/') => Side::Container(c.to_string(), p.to_string()),
        _ => Side::Host(arg.to_string()),
    }
}

pub fn run(env: &Env, a: &CpArgs) -> Result<u8> {
    // SIGPIPE stays ignored (main.rs): a closed pipe (ours, or `cp NAME:/x -
    // | head`) is an error to report, not a death with the container frozen
    let ctx = env.ctx();
    match (side(&a.src), side(&a.dest)) {
        (Side::Container(c, p), Side::Host(dest)) => {
            let r = super::inspect::container(&ctx, &c)?;
            let root = Rootfs::open(&ctx, &r, Some(&env.state))?;
            let src = root.host_path(&p, a.follow_link)?;
            if fs::symlink_metadata(&src).is_err() {
                bail!("Could not find the file {p} in container {c}");
            }
            if dest == "-" {
                let out = io::stdout().lock();
                write_tar(&src, &name_of(&p), contents_only(&p), out)?;
                return Ok(0);
            }
            copy(&src, contents_only(&p), &PathBuf::from(&dest), dest.ends_with('/'))?;
        }
        (Side::Host(src), Side::Container(c, p)) => {
            let r = super::inspect::container(&ctx, &c)?;
            let root = Rootfs::open(&ctx, &r, Some(&env.state))?;
            let dest = root.host_path(&p, true)?;
            if src == "-" {
                if !dest.is_dir() {
                    bail!("destination \"{c}:{p}\" must be a directory");
                }
                unpack(io::stdin().lock(), &dest)?;
                return Ok(0);
            }
            let src_path = PathBuf::from(&src);
            let src_path = if a.follow_link {
                fs::canonicalize(&src_path).unwrap_or(src_path)
            } else {
                src_path
            };
            if fs::symlink_metadata(&src_path).is_err() {
                bail!("lstat {src}: no such file or directory");
            }
            // the destination resolved inside the container, its last part too
            // when it is a directory (a link to one included)
            let dest = if dest.is_dir() {
                dest
            } else {
                root.host_path(&p, false)?
            };
            copy(&src_path, contents_only(&src), &dest, p.ends_with('/'))?;
        }
        (Side::Container(..), Side::Container(..)) => bail!("copying between containers is not supported"),
        (Side::Host(_), Side::Host(_)) => bail!("must specify at least one container source"),
    }
    Ok(0)
}

/// `SRC/.`: the directory's contents rather than the directory.
fn contents_only(p: &str) -> bool {
    p.ends_with("/.")
}

fn name_of(p: &str) -> String {
    Path::new(p.trim_end_matches("/."))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".".into())
}

/// Copies `src` to `dest` by docker's rules: into an existing directory
/// under its own name; else as `dest` itself (whose parent must exist).
fn copy(src: &Path, contents: bool, dest: &Path, dest_is_dir_hint: bool) -> Result<()> {
    let src_is_dir = fs::symlink_metadata(src)?.is_dir();
    let (dir, name, contents) = match fs::metadata(dest) {
        Ok(m) if m.is_dir() => {
            let name = src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (dest.to_path_buf(), name, contents)
        }
        Ok(_) if src_is_dir => bail!("cannot copy a directory to a file: {}", dest.display()),
        Ok(_) => (parent(dest), file_name(dest)?, false),
        Err(_) if dest_is_dir_hint && !src_is_dir => {
            bail!("destination directory {} does not exist", dest.display())
        }
        Err(_) => {
            let dir = parent(dest);
            if !dir.is_dir() {
                bail!("destination directory {} does not exist", dir.display());
            }
            // a new directory takes the source's contents
            (dir, file_name(dest)?, false)
        }
    };
    let (reader, writer) = io::pipe()?;
    let src = src.to_path_buf();
    let writer_thread = std::thread::spawn(move || write_tar(&src, &name, contents, writer));
    let mut reader = reader;
    let unpacked = unpack(&mut reader, &dir);
    if unpacked.is_err() {
        // let the writer finish
        let _ = io::copy(&mut reader, &mut io::sink());
    }
    writer_thread.join().map_err(|_| anyhow!("the tar writer panicked"))??;
    unpacked
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| anyhow!("bad destination {}", p.display()))
}

/// `src` as a tar stream: under `name`, or its contents at the top.
fn write_tar(src: &Path, name: &str, contents: bool, out: impl Write) -> Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let meta = fs::symlink_metadata(src)?;
    if meta.is_dir() && contents {
        for e in fs::read_dir(src)? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                tar.append_dir_all(e.file_name(), &p)?;
            } else {
                tar.append_path_with_name(&p, e.file_name())?;
            }
        }
    } else if meta.is_dir() {
        tar.append_dir_all(name, src)?;
    } else {
        tar.append_path_with_name(src, name)?;
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

/// Unpacks a tar stream into `dir`; an entry that would land outside it
/// (`..`, or through a symlink) is refused by the tar crate.
fn unpack(input: impl Read, dir: &Path) -> Result<()> {
    let mut archive = tar::Archive::new(input);
    archive.set_preserve_permissions(true);
    archive.set_preserve_mtime(true);
    archive.set_overwrite(true);
    archive
        .unpack(dir)
        .with_context(|| format!("cannot copy into {}", dir.display()))
}
