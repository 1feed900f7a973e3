//! Paths inside an image's root filesystem, resolved as the container will
//! see them: symlinks followed inside the root (an absolute target starts
//! again at the root, `..` stops there), never outside it.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

/// How many symlinks one path may go through (as Linux's 40, rounded up).
const MAX_LINKS: usize = 64;

/// `path` (absolute, inside the container) with every symlink of the image
/// on the way followed inside `rootfs`; parts that do not exist yet are kept
/// as given. The result is absolute, inside the container.
pub fn resolve_in_rootfs(rootfs: &Path, path: &Path) -> Result<PathBuf> {
    let mut resolved = PathBuf::from("/");
    // the components still to walk, last first
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    push_components(&mut todo, path);
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let on_host = rootfs.join(candidate.strip_prefix("/").unwrap_or(&candidate));
        match std::fs::symlink_metadata(&on_host) {
            Ok(md) if md.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    bail!("{}: too many levels of symbolic links in the image", path.display());
                }
                let target = std::fs::read_link(&on_host)?;
                if target.is_absolute() {
                    resolved = PathBuf::from("/");
                }
                push_components(&mut todo, &target);
            }
            _ => resolved = candidate,
        }
    }
    Ok(resolved)
}

/// Pushes the normal and `..` components of `p` so that the first is popped first.
fn push_components(todo: &mut Vec<std::ffi::OsString>, p: &Path) {
    let parts: Vec<std::ffi::OsString> = p
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_stay_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("srv/data")).unwrap();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        symlink("/srv/data", r.join("data")).unwrap();
        symlink("srv", r.join("rel")).unwrap();
        symlink("../../../../run/hosts", r.join("etc/hosts")).unwrap();
        symlink("/", r.join("etc/root")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let res = |p: &str| resolve_in_rootfs(r, Path::new(p)).unwrap();
        assert_eq!(res("/data"), Path::new("/srv/data"));
        assert_eq!(res("/data/new/x"), Path::new("/srv/data/new/x"));
        assert_eq!(res("/rel/data"), Path::new("/srv/data"));
        assert_eq!(res("/etc/hosts"), Path::new("/run/hosts"), ".. stops at the root");
        assert_eq!(res("/etc/root/etc/hosts"), Path::new("/run/hosts"));
        assert_eq!(res("/missing/../srv"), Path::new("/srv"));
        assert_eq!(res("/plain/path"), Path::new("/plain/path"));
        let err = resolve_in_rootfs(r, Path::new("/loop1/x")).unwrap_err().to_string();
        assert!(err.contains("too many levels"), "{err}");
    }
}
