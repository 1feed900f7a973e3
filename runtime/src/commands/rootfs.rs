//! A container's root filesystem for the verbs that read or write it from
//! the host (`cp`, `diff`, `export`, `commit`): the mounted one of a running
//! container, or its kept layer mounted for the moment (under its lock) of
//! one that exited.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libcontainer::oci_spec::runtime::Spec;

use crate::container::{lock_stopped, Ctx, Record, Status};
use crate::imagespec::paths::resolve_in_rootfs;
use crate::oci::StateRoot;
use crate::util::lock::FileLock;
use libcontainer::container::ContainerStatus;

pub struct Rootfs {
    /// The merged root filesystem on the host.
    pub path: PathBuf,
    /// The container's directory (upper/ holds its changes).
    pub dir: PathBuf,
    /// Host sources of its bind mounts: (destination inside, source on the host).
    volumes: Vec<(PathBuf, PathBuf)>,
    mounted_here: bool,
    _lock: Option<FileLock>,
    /// Frozen by us while we work in it: thawed when done.
    frozen: Option<(StateRoot, String)>,
}

impl Drop for Rootfs {
    fn drop(&mut self) {
        if let Some((state, id)) = &self.frozen {
            if let Err(e) = state.resume(id) {
                tracing::warn!("thaw container {id}: {e:#}");
            }
        }
        if self.mounted_here {
            let _ = minirun_images::unmount_rootfs(&self.dir);
        }
    }
}

impl Rootfs {
    /// With `freeze`, a running container is frozen until this is dropped,
    /// so that its processes cannot swap a directory for a symlink while
    /// paths in it are walked (as docker's fix for CVE-2018-15664).
    pub fn open(ctx: &Ctx, r: &Record, freeze: Option<&StateRoot>) -> Result<Rootfs> {
        let dir = ctx.dir(&r.id);
        // the bind mounts of its spec: volumes and the /etc files
        let volumes = Spec::load(dir.join("config.json"))
            .ok()
            .and_then(|s| s.mounts().clone())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| {
                m.typ().as_deref() == Some("bind")
                    || m.options()
                        .as_ref()
                        .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"))
            })
            .filter_map(|m| Some((m.destination().clone(), m.source().clone()?)))
            .rev()
            .collect();
        let lock = match ctx.status(r) {
            Status::Running => None,
            _ => lock_stopped(ctx, &r.id)?,
        };
        let Some(lock) = lock else {
            let frozen = match freeze {
                Some(state) if ctx.engine.status(&r.id) == Some(ContainerStatus::Running) => {
                    state.pause(&r.id)?;
                    Some((state.clone(), r.id.clone()))
                }
                _ => None,
            };
            return Ok(Rootfs {
                path: dir.join("rootfs"),
                dir,
                volumes,
                mounted_here: false,
                _lock: None,
                frozen,
            });
        };
        let store = ctx.store()?;
        let image = store
            .resolve(&r.image_id)
            .with_context(|| format!("the image of container {} is gone", r.name))?;
        let path = store.prepare_rootfs(&image, &dir, Default::default())?;
        Ok(Rootfs {
            path,
            dir,
            volumes,
            mounted_here: true,
            _lock: Some(lock),
            frozen: None,
        })
    }

    /// Where `inside` (a path in the container) is on the host: every
    /// symlink on the way resolved inside the root filesystem; the last
    /// component too only with `follow`. Paths under a bind mount go to its
    /// source.
    pub fn host_path(&self, inside: &str, follow: bool) -> Result<PathBuf> {
        let p = Path::new("/").join(inside);
        let resolved = match (follow, p.file_name()) {
            (false, Some(name)) if !inside.ends_with('/') && !inside.ends_with("/.") => {
                resolve_in_rootfs(&self.path, p.parent().unwrap_or(Path::new("/")))?.join(name)
            }
            _ => resolve_in_rootfs(&self.path, &p)?,
        };
        for (dest, source) in &self.volumes {
            if let Ok(rest) = resolved.strip_prefix(dest) {
                return Ok(if rest.as_os_str().is_empty() {
                    source.clone()
                } else {
                    source.join(rest)
                });
            }
        }
        Ok(self.path.join(resolved.strip_prefix("/").unwrap_or(&resolved)))
    }
}
