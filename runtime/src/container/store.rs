//! Where containers live on disk, and how one is found, locked and judged
//! alive.
//!
//! Per container:
//! - `<data-root>/containers/<id>/`: `meta.json` (the [`Record`]),
//!   `config.json` + `rootfs/` (the bundle libcontainer runs), the overlay's
//!   upper and work dirs, `container.log`, the `/etc` files, and `lock` (held
//!   by whoever is setting the container up or supervising it).
//! - `<data-root>/names/<name>`: the name's reservation (a hard link to the
//!   container's `id` file).
//! - `<root>/<id>/`: libcontainer's state, while the container exists there.
//! - minirun-net's records under `<root>/.net/`.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::ContainerStatus;
use minirun_images::Store;

use super::engine::Engine;
use super::network::Network;
use super::record::{Phase, Record, Status, UNKNOWN_EXIT};
use crate::util::json;
use crate::util::lock::{self, FileLock, TryLock};

/// Under the runtime root: one lock file per container (see [`Ctx::lock_path`];
/// `.locks` holds the runc verbs' id locks).
const LOCKS_DIR: &str = ".container-locks";

/// The fields of a [`Record`] that tell whether its container is alive or
/// abandoned (serde skips the rest of `meta.json` without building it).
#[derive(Debug, serde::Deserialize)]
pub struct Vitals {
    pub phase: Phase,
    #[serde(default)]
    pub creator: Option<crate::util::proc::ProcessIdentity>,
}

/// Everything the container verbs work on: the two seams and the two roots.
pub struct Ctx {
    pub engine: Box<dyn Engine>,
    pub net: Box<dyn Network>,
    /// `--root`
    pub root: PathBuf,
    /// `--data-root`
    pub data_root: PathBuf,
}

impl Ctx {
    pub fn containers_dir(&self) -> PathBuf {
        self.data_root.join("containers")
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Where containers' mounts are made (root filesystems below the data
    /// root, netns files): libcontainer's processes start without the
    /// others' (see [`crate::oci::trim`]). The data root as a whole, not
    /// its `containers`: a name is a hard link into a container's
    /// directory, which cannot cross a mount point.
    pub fn mount_dirs(&self) -> [PathBuf; 2] {
        [self.data_root.clone(), minirun_net::paths::netns_dir(&self.root)]
    }

    /// Makes [`Self::mount_dirs`] mount points of their own before a
    /// container's mounts are made in them. Best effort: without it a
    /// launch only takes longer.
    pub fn prepare_mount_dirs(&self) {
        for d in self.mount_dirs() {
            if let Err(e) = crate::oci::trim::ensure_private_mount_root(&d) {
                tracing::debug!("{}: not a mount point of its own: {e}", d.display());
            }
        }
    }

    pub fn names_dir(&self) -> PathBuf {
        self.data_root.join("names")
    }

    /// The container's lock file: on the runtime root (a tmpfs), beside
    /// libcontainer's state, so that a look at every container's lock (each
    /// `run` takes one) never waits for the disk. After a reboot it is made
    /// again on first use.
    pub(crate) fn lock_path(&self, id: &str) -> PathBuf {
        self.root.join(LOCKS_DIR).join(id)
    }

    /// Removes the lock file of a container whose directory is gone (its
    /// remover holds the lock while it does).
    pub fn forget_lock(&self, id: &str) {
        let _ = fs::remove_file(self.lock_path(id));
    }

    /// Lock files whose container directory is gone and that nobody holds
    /// (a remover cut short between the two): removed by gc.
    pub fn gc_lock_files(&self) {
        let Ok(rd) = fs::read_dir(self.root.join(LOCKS_DIR)) else {
            return;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if !self.dir(&id).exists() {
                if let Ok(TryLock::Locked(_l)) = FileLock::try_existing(&e.path()) {
                    if !self.dir(&id).exists() {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
    }

    fn lock_dir_made(&self) -> Result<()> {
        let d = self.root.join(LOCKS_DIR);
        fs::create_dir_all(&d).with_context(|| format!("cannot create {}", d.display()))
    }

    pub fn store(&self) -> Result<Store> {
        Store::open(&self.data_root)
            .with_context(|| format!("cannot open the image store under {}", self.data_root.display()))
    }

    fn meta_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("meta.json")
    }

    pub fn load(&self, id: &str) -> Result<Record> {
        let path = self.meta_path(id);
        if !path.exists() {
            bail!("container \"{id}\" does not exist");
        }
        json::read(&path)
    }

    /// Writes the record atomically; durably unless the container goes with
    /// its end (`--rm`, or an `rm -f` under way: after a crash gc removes it
    /// anyway, and the ~10 syncs of its life cost `run --rm` 4.7 ms here).
    pub fn save(&self, record: &Record) -> Result<()> {
        let path = self.meta_path(&record.id);
        if record.auto_remove || self.removal_requested(&record.id) {
            json::write_atomic_volatile(&path, record)
        } else {
            json::write_atomic(&path, record)
        }
    }

    /// Every container made from an image, oldest first.
    pub fn all(&self) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = self
            .container_ids()
            .iter()
            .filter_map(|id| json::read(&self.meta_path(id)).ok())
            .collect();
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// A container by full id, name, or unique id prefix.
    pub fn resolve(&self, wanted: &str) -> Result<Record> {
        if wanted.is_empty() {
            bail!("container \"\" does not exist");
        }
        if let Ok(id) = fs::read_to_string(self.names_dir().join(wanted)) {
            if let Ok(r) = self.load(id.trim()) {
                return Ok(r);
            }
        }
        if crate::oci::valid_id(wanted).is_ok() {
            if let Ok(r) = self.load(wanted) {
                return Ok(r);
            }
        }
        let all = self.all()?;
        let found: Vec<&Record> = all.iter().filter(|r| r.id.starts_with(wanted)).collect();
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => bail!("container \"{wanted}\" does not exist"),
            _ => bail!(
                "container id prefix \"{wanted}\" is ambiguous ({} matches)",
                found.len()
            ),
        }
    }

    /// The container's lock, waiting as long as it takes: held during setup
    /// and teardown, and by the monitor for the container's life.
    pub fn lock(&self, id: &str) -> Result<FileLock> {
        self.lock_dir_made()?;
        FileLock::exclusive(&self.lock_path(id))
    }

    /// The container's lock if nobody holds it; Missing once its directory
    /// is gone (never a lock on a container being removed: its remover
    /// deletes the directory, then the lock file).
    pub fn try_lock_existing(&self, id: &str) -> Result<TryLock> {
        if !self.dir(id).exists() {
            return Ok(TryLock::Missing);
        }
        match self.try_lock(id)? {
            Some(l) if self.dir(id).exists() => Ok(TryLock::Locked(l)),
            // removed meanwhile: this made a lock file nobody else will see
            Some(_l) => {
                self.forget_lock(id);
                Ok(TryLock::Missing)
            }
            None => Ok(TryLock::Held),
        }
    }

    /// The container's lock if nobody holds it.
    pub fn try_lock(&self, id: &str) -> Result<Option<FileLock>> {
        self.lock_dir_made()?;
        FileLock::try_exclusive(&self.lock_path(id))
    }

    fn removal_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("removing")
    }

    /// `rm -f` tells whoever sets the container up or supervises it that it
    /// is to go: a creator gives up before starting it, a monitor removes it
    /// after its process ended. (A file beside the record: the record's
    /// writers hold the lock `rm` waits for.)
    pub fn request_removal(&self, id: &str) -> Result<()> {
        match File::create(self.removal_path(id)) {
            Ok(_) => Ok(()),
            // removed meanwhile
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).with_context(|| format!("cannot mark container {id} for removal")),
        }
    }

    pub fn removal_requested(&self, id: &str) -> bool {
        self.removal_path(id).exists()
    }

    /// Whether anything still sets up, runs or supervises this container.
    ///
    /// While it is being created, that is its creator process (the lock
    /// cannot tell: libcontainer's init, a clone of the creator, inherits it
    /// and keeps it until the container starts). Afterwards: its process
    /// runs, or someone holds its lock (a monitor, a teardown).
    pub fn is_alive(&self, id: &str) -> bool {
        self.alive_as(id, self.vitals(id).as_ref())
    }

    /// [`Ctx::is_alive`] with the record's [`Vitals`] already read. The lock
    /// (three syscalls) is looked at before the process (libcontainer's state
    /// and `/proc`): a running container's lock is held by its monitor or its
    /// attached `run`.
    pub fn alive_as(&self, id: &str, vitals: Option<&Vitals>) -> bool {
        if let Some(v) = vitals {
            if v.phase == Phase::Creating {
                return v.creator.as_ref().is_some_and(|c| c.is_running());
            }
        }
        lock::is_held(&self.lock_path(id))
            || matches!(
                self.engine.status(id),
                Some(ContainerStatus::Running | ContainerStatus::Paused)
            )
    }

    /// What liveness needs of a container's record, read without the rest.
    pub fn vitals(&self, id: &str) -> Option<Vitals> {
        json::read(&self.meta_path(id)).ok()
    }

    /// Every container's id (a directory under `containers`), unsorted.
    pub fn container_ids(&self) -> Vec<String> {
        let Ok(rd) = fs::read_dir(self.containers_dir()) else {
            return Vec::new();
        };
        rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()
    }

    /// Whether someone holds the container's lock right now.
    pub fn lock_held(&self, id: &str) -> bool {
        lock::is_held(&self.lock_path(id))
    }

    /// What the container is doing right now.
    pub fn status(&self, r: &Record) -> Status {
        if r.phase == Phase::Creating {
            return if self.is_alive(&r.id) {
                Status::Created
            } else {
                Status::Dead
            };
        }
        match self.engine.status(&r.id) {
            Some(ContainerStatus::Running | ContainerStatus::Paused) => Status::Running,
            Some(ContainerStatus::Created | ContainerStatus::Creating) => Status::Created,
            Some(ContainerStatus::Stopped) | None => match r.exit_code {
                Some(code) => Status::Exited(code),
                // ended a moment ago: its monitor (or attached CLI) holds the
                // lock and is about to record the real code; until it has,
                // it counts as running rather than showing a code it never had
                None if r.phase != Phase::Exited && lock::is_held(&self.lock_path(&r.id)) => Status::Running,
                None => Status::Exited(UNKNOWN_EXIT),
            },
        }
    }

    /// Reserves a name: a hard link to a file holding the id, made in the
    /// container's directory first, so a name never exists without its id (a
    /// create_new + write could be killed in between, leaving an empty name).
    pub fn reserve_name(&self, wanted: Option<&str>, id: &str) -> Result<String> {
        fs::create_dir_all(self.names_dir())?;
        let id_file = self.dir(id).join("id");
        fs::write(&id_file, id)?;
        let mut attempt = 0;
        loop {
            let name = match wanted {
                Some(n) => n.to_string(),
                None => generated_name(id, attempt),
            };
            match fs::hard_link(&id_file, self.names_dir().join(&name)) {
                Ok(()) => return Ok(name),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && wanted.is_some() => {
                    bail!("the container name \"{name}\" is already in use")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => attempt += 1,
                Err(e) => return Err(e).context("cannot reserve a container name"),
            }
        }
    }

    /// The name reserved for `id` when its record is gone: the entry of the
    /// names directory that is a hard link to the container's `id` file.
    pub fn name_of(&self, id: &str) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let target = fs::metadata(self.dir(id).join("id")).ok()?;
        fs::read_dir(self.names_dir()).ok()?.flatten().find_map(|e| {
            let m = e.metadata().ok()?;
            (m.ino() == target.ino() && m.dev() == target.dev()).then(|| e.file_name().to_string_lossy().into_owned())
        })
    }

    /// Whether a name is taken (checked before anything is made).
    pub fn name_taken(&self, name: &str) -> bool {
        self.names_dir().join(name).exists()
    }

    /// Marks a bundle container as alive for gc while `run --bundle --net`
    /// sets it up and waits for it: a directory with its lock held.
    pub fn hold(&self, id: &str) -> Result<Hold> {
        let dir = self.dir(id);
        if dir.exists() {
            bail!("container \"{id}\" already exists");
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let lock = self.lock(id)?;
        Ok(Hold {
            dir,
            lock_file: self.lock_path(id),
            _lock: lock,
        })
    }
}

impl minirun_net::Liveness for Ctx {
    fn is_alive(&self, container_id: &str) -> bool {
        Ctx::is_alive(self, container_id)
    }
}

/// See [`Ctx::hold`]; the directory goes when this is dropped.
pub struct Hold {
    dir: PathBuf,
    lock_file: PathBuf,
    _lock: FileLock,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(&self.lock_file);
    }
}

/// 64 random hex digits.
pub fn random_id() -> Result<String> {
    let mut buf = [0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 16] = [
    "brave", "calm", "eager", "fond", "gentle", "happy", "jolly", "keen", "lucid", "merry", "nimble", "proud", "quiet",
    "sharp", "tender", "witty",
];
const NOUNS: [&str; 16] = [
    "bell", "curie", "darwin", "euler", "gauss", "hopper", "kepler", "lamport", "lovelace", "noether", "pascal",
    "ritchie", "shannon", "thompson", "turing", "wozniak",
];

fn generated_name(id: &str, attempt: usize) -> String {
    let b = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as usize + attempt;
    let base = format!("{}_{}", ADJECTIVES[b % 16], NOUNS[(b / 16 + attempt) % 16]);
    if attempt < 8 {
        base
    } else {
        format!("{base}_{}", &id[..6])
    }
}

pub fn valid_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        bail!("invalid container name \"{name}\": use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    }
}

/// Whether `path` is inside the containers' directory of `ctx` (a guard
/// before removing anything recursively).
pub fn is_container_dir(ctx: &Ctx, path: &Path) -> bool {
    path.parent() == Some(ctx.containers_dir().as_path()) && path.file_name().is_some_and(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated_and_generated_names_are_valid() {
        valid_name("web-1.a_b").unwrap();
        for bad in ["", "-x", "a/b", "a b", ".x"] {
            assert!(valid_name(bad).unwrap_err().to_string().contains(&format!("\"{bad}\"")));
        }
        let id = "ab".repeat(32);
        for attempt in 0..12 {
            valid_name(&generated_name(&id, attempt)).unwrap();
        }
        assert_ne!(generated_name(&id, 0), generated_name(&id, 1));
    }

    #[test]
    fn ids_are_64_hex() {
        let id = random_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, random_id().unwrap());
    }
}
