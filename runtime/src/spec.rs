//! Loading and adjusting OCI runtime specs.
//!
//! libcontainer reads `config.json` itself, but its errors do not say which
//! field is wrong, and it gives a bundle without `linux.cgroupsPath` a cgroup
//! literally named `:youki:<id>`. So minirun reads the bundle's spec first
//! (naming the bad field), adjusts it, and hands libcontainer a private copy.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::Spec;

/// Parent cgroup of every container that brings no `linux.cgroupsPath`.
pub const CGROUP_PARENT: &str = "/minirun";

/// Reads `<bundle>/config.json`; a parse error names the JSON path of the field.
pub fn load_bundle_spec(bundle: &Path) -> Result<Spec> {
    if !bundle.is_dir() {
        bail!("bundle {} is not a directory", bundle.display());
    }
    let path = bundle.join("config.json");
    let text = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse_spec(&text).with_context(|| format!("invalid {}", path.display()))
}

pub fn parse_spec(text: &[u8]) -> Result<Spec> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    let spec: Spec = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        if field == "." {
            anyhow::anyhow!("{inner}")
        } else {
            anyhow::anyhow!("field `{field}`: {inner}")
        }
    })?;
    validate(&spec)?;
    Ok(spec)
}

/// The checks libcontainer would make later with less helpful messages.
fn validate(spec: &Spec) -> Result<()> {
    if !spec.version().starts_with("1.") {
        bail!(
            "field `ociVersion`: unsupported version {:?}, expected 1.x",
            spec.version()
        );
    }
    let Some(root) = spec.root() else {
        bail!("field `root`: missing")
    };
    if root.path().as_os_str().is_empty() {
        bail!("field `root.path`: empty");
    }
    let Some(process) = spec.process() else {
        bail!("field `process`: missing")
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("field `process.args`: at least one argument is required");
    }
    if !process.cwd().is_absolute() {
        bail!("field `process.cwd`: {:?} is not an absolute path", process.cwd());
    }
    if spec.linux().is_none() {
        bail!("field `linux`: missing (minirun runs Linux containers)");
    }
    Ok(())
}

/// The cgroup a container gets when its spec names none.
pub fn default_cgroup_path(id: &str) -> PathBuf {
    Path::new(CGROUP_PARENT).join(id)
}

/// Makes the spec independent of the bundle directory it came from and fills
/// in what minirun defaults: an absolute rootfs and the cgroup path.
pub fn prepare_for_create(spec: &mut Spec, bundle: &Path, id: &str) -> Result<()> {
    let root = spec.root().clone().expect("validated");
    let rootfs = bundle.join(root.path());
    let rootfs = fs::canonicalize(&rootfs)
        .with_context(|| format!("field `root.path`: rootfs {} not found", rootfs.display()))?;
    let mut root = root;
    root.set_path(rootfs);
    spec.set_root(Some(root));

    let mut linux = spec.linux().clone().expect("validated");
    if linux.cgroups_path().is_none() {
        linux.set_cgroups_path(Some(default_cgroup_path(id)));
    }
    // runc takes the recursive spellings too (containerd's CRI writes
    // "rslave" and "rshared"); libcontainer applies the root's propagation
    // recursively anyway but knows only the plain names.
    if let Some(p) = linux.rootfs_propagation().clone() {
        if let Some(plain) = p
            .strip_prefix('r')
            .filter(|p| ["shared", "private", "slave", "unbindable"].contains(p))
        {
            linux.set_rootfs_propagation(Some(plain.to_string()));
        }
    }
    spec.set_linux(Some(linux));
    drop_runc_only_mount_options(spec);
    // hooks get the user's bundle in their state, as from runc
    let bundle = fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    crate::hook::wrap_hooks(spec, &bundle);
    Ok(())
}

/// The most one argument or environment string may take, with its NUL
/// (the kernel's MAX_ARG_STRLEN: 32 pages).
const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Refuses a process the kernel would not exec (E2BIG), before anything is
/// made: libcontainer would only find out in the container's init, after
/// `start`, and the container would die with nothing said.
pub fn check_exec_size(spec: &Spec) -> Result<()> {
    let Some(p) = spec.process() else { return Ok(()) };
    let args = p.args().clone().unwrap_or_default();
    let env = p.env().clone().unwrap_or_default();
    for e in &env {
        if e.len() + 1 > MAX_ARG_STRLEN {
            let name = e.split('=').next().unwrap_or_default();
            bail!(
                "environment variable \"{name}\" is {} bytes long: the kernel passes at most {} bytes per variable",
                e.len(),
                MAX_ARG_STRLEN - 1
            );
        }
    }
    for (i, a) in args.iter().enumerate() {
        if a.len() + 1 > MAX_ARG_STRLEN {
            bail!(
                "argument {i} of the command is {} bytes long: the kernel passes at most {} bytes per argument",
                a.len(),
                MAX_ARG_STRLEN - 1
            );
        }
    }
    // strings, their NULs and the pointer to each
    let total: usize = args.iter().chain(&env).map(|s| s.len() + 1 + size_of::<usize>()).sum();
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    if max > 0 && total > max as usize {
        bail!("the command and its environment take {total} bytes: the kernel passes at most {max} bytes in all");
    }
    Ok(())
}

/// Mount options that runc understands but the kernel and libcontainer do
/// not; libcontainer would hand them to mount(2) as data, which fails.
/// `tmpcopyup` (podman puts it on every tmpfs: `--tmpfs`, `--read-only`)
/// asks runc to copy what the image has at the destination into the new
/// tmpfs; minirun mounts the tmpfs empty instead, as docker's `--tmpfs` does.
const RUNC_ONLY_MOUNT_OPTIONS: &[&str] = &["tmpcopyup"];

fn drop_runc_only_mount_options(spec: &mut Spec) {
    let Some(mounts) = spec.mounts().clone() else { return };
    let mounts = mounts
        .into_iter()
        .map(|mut m| {
            if let Some(options) = m.options().clone() {
                let (dropped, kept): (Vec<String>, Vec<String>) = options
                    .into_iter()
                    .partition(|o| RUNC_ONLY_MOUNT_OPTIONS.contains(&o.as_str()));
                if !dropped.is_empty() {
                    tracing::info!("mount {}: ignoring {}", m.destination().display(), dropped.join(","));
                }
                m.set_options(Some(kept));
            }
            m
        })
        .collect();
    spec.set_mounts(Some(mounts));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversized_environment_and_arguments_are_refused_by_name() {
        let with = |args: Vec<String>, env: Vec<String>| {
            let mut spec = Spec::default();
            let mut p = spec.process().clone().unwrap();
            p.set_args(Some(args));
            p.set_env(Some(env));
            spec.set_process(Some(p));
            check_exec_size(&spec)
        };
        with(vec!["sh".into()], vec![format!("OK={}", "a".repeat(100_000))]).unwrap();
        let err = with(
            vec!["sh".into()],
            vec!["A=1".into(), format!("BIG={}", "a".repeat(200_000))],
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"BIG\" is 200004 bytes"), "{err}");
        let err = with(vec!["echo".into(), "b".repeat(140_000)], vec![]).unwrap_err();
        assert!(err.to_string().contains("argument 1 "), "{err}");
        let many: Vec<String> = (0..40).map(|i| format!("V{i}={}", "c".repeat(100_000))).collect();
        let err = with(vec!["sh".into()], many).unwrap_err();
        assert!(err.to_string().contains("in all"), "{err}");
    }

    const MINIMAL: &str = r#"{
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "pid"}]}
    }"#;

    #[test]
    fn parses_a_minimal_spec() {
        let spec = parse_spec(MINIMAL.as_bytes()).unwrap();
        assert_eq!(spec.process().as_ref().unwrap().args().as_ref().unwrap(), &["sh"]);
    }

    #[test]
    fn a_wrongly_typed_field_is_named() {
        let text = MINIMAL.replace(r#""uid": 0"#, r#""uid": "zero""#);
        let err = parse_spec(text.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("process.user.uid"), "{err}");
    }

    #[test]
    fn missing_and_empty_fields_are_named() {
        let no_args = MINIMAL.replace(r#""args": ["sh"], "#, r#""args": [], "#);
        let err = parse_spec(no_args.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("process.args"), "{err}");

        let bad_version = MINIMAL.replace("1.0.2", "0.9");
        let err = parse_spec(bad_version.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("ociVersion"), "{err}");

        let relative_cwd = MINIMAL.replace(r#""cwd": "/""#, r#""cwd": "tmp""#);
        let err = parse_spec(relative_cwd.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("process.cwd"), "{err}");
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse_spec(b"{\"ociVersion\": ").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn prepare_sets_absolute_rootfs_and_default_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        let mut spec = parse_spec(MINIMAL.as_bytes()).unwrap();
        prepare_for_create(&mut spec, dir.path(), "abc").unwrap();
        let root = spec.root().as_ref().unwrap().path();
        assert!(root.is_absolute() && root.ends_with("rootfs"), "{root:?}");
        let cg = spec.linux().as_ref().unwrap().cgroups_path().clone();
        assert_eq!(cg, Some(PathBuf::from("/minirun/abc")));
    }

    #[test]
    fn prepare_takes_recursive_rootfs_propagation() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        for (given, want) in [
            ("rslave", "slave"),
            ("rshared", "shared"),
            ("rprivate", "private"),
            ("runbindable", "unbindable"),
            ("slave", "slave"),
        ] {
            let text = MINIMAL.replace(
                r#""namespaces""#,
                &format!(r#""rootfsPropagation": "{given}", "namespaces""#),
            );
            let mut spec = parse_spec(text.as_bytes()).unwrap();
            prepare_for_create(&mut spec, dir.path(), "abc").unwrap();
            assert_eq!(
                spec.linux().as_ref().unwrap().rootfs_propagation().as_deref(),
                Some(want),
                "{given}"
            );
        }
    }

    #[test]
    fn prepare_drops_runc_only_mount_options() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        let text = MINIMAL.replace(
            r#""linux""#,
            r#""mounts": [{"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                           "options": ["rw", "rprivate", "nosuid", "nodev", "tmpcopyup"]}],
               "linux""#,
        );
        let mut spec = parse_spec(text.as_bytes()).unwrap();
        prepare_for_create(&mut spec, dir.path(), "abc").unwrap();
        let options = spec.mounts().as_ref().unwrap()[0].options().clone().unwrap();
        assert_eq!(options, ["rw", "rprivate", "nosuid", "nodev"]);
    }

    #[test]
    fn prepare_keeps_a_given_cgroup_and_reports_a_missing_rootfs() {
        let dir = tempfile::tempdir().unwrap();
        let text = MINIMAL.replace(r#""namespaces""#, r#""cgroupsPath": "/custom/x", "namespaces""#);
        let mut spec = parse_spec(text.as_bytes()).unwrap();
        let err = prepare_for_create(&mut spec, dir.path(), "abc").unwrap_err();
        assert!(err.to_string().contains("root.path"), "{err}");
        fs::create_dir(dir.path().join("rootfs")).unwrap();
        prepare_for_create(&mut spec, dir.path(), "abc").unwrap();
        let cg = spec.linux().as_ref().unwrap().cgroups_path().clone();
        assert_eq!(cg, Some(PathBuf::from("/custom/x")));
    }
}
