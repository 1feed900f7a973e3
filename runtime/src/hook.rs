//! OCI hooks as runc runs them. libcontainer hands a hook the state with the
//! bundle it was given, which for minirun is a private copy of the prepared
//! spec (`<root>/.spec-…` during create, `<root>/<id>` later); runc passes
//! the user's bundle. So every hook of a bundle's spec is run through this
//! small shim (`/proc/self/exe __hook BUNDLE PATH ARGS…`, the sealed minirun
//! itself): it reads the state, puts the real bundle in it, and runs the
//! hook with it. A hook that exits without reading its stdin is fine, as in
//! runc: the broken pipe is ignored, never fatal.

use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use libcontainer::oci_spec::runtime::{Hook, HookBuilder, Spec};

/// The shim's marker argument.
const SHIM_ARG: &str = "__hook";

/// Rewrites every hook of `spec` to run through the shim with `bundle`.
pub fn wrap_hooks(spec: &mut Spec, bundle: &Path) {
    let Some(mut hooks) = spec.hooks().clone() else { return };
    let wrap = |list: &Option<Vec<Hook>>| list.as_ref().map(|l| l.iter().map(|h| wrap(h, bundle)).collect());
    hooks.set_prestart(wrap(hooks.prestart()));
    hooks.set_create_runtime(wrap(hooks.create_runtime()));
    hooks.set_create_container(wrap(hooks.create_container()));
    hooks.set_start_container(wrap(hooks.start_container()));
    hooks.set_poststart(wrap(hooks.poststart()));
    hooks.set_poststop(wrap(hooks.poststop()));
    spec.set_hooks(Some(hooks));
}

fn wrap(hook: &Hook, bundle: &Path) -> Hook {
    let path = hook.path().to_string_lossy().into_owned();
    // the hook's own argv; without one its path is argv[0], as libcontainer does
    let argv = hook
        .args()
        .clone()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| vec![path.clone()]);
    let mut args = vec![
        "minirun-hook".to_string(),
        SHIM_ARG.to_string(),
        bundle.to_string_lossy().into_owned(),
        path,
    ];
    args.extend(argv);
    let mut b = HookBuilder::default().path("/proc/self/exe").args(args);
    if let Some(env) = hook.env() {
        b = b.env(env.clone());
    }
    if let Some(t) = hook.timeout() {
        b = b.timeout(t);
    }
    b.build().expect("a hook with a path is valid")
}

/// Runs the shim when this process was started as one (see the module
/// docs); None otherwise. Called first thing in `main`, before anything
/// touches files: it also runs inside the container's namespaces.
pub fn run_if_shim() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) != Some(SHIM_ARG) {
        return None;
    }
    Some(match shim(&args[2..]) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("minirun: error: hook: {e}");
            ExitCode::from(1)
        }
    })
}

/// `BUNDLE PATH ARGV0 ARGS…`
fn shim(args: &[String]) -> io::Result<ExitCode> {
    let [bundle, path, argv0, rest @ ..] = args else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: __hook BUNDLE PATH ARGV0 [ARG...]",
        ));
    };
    let mut state = String::new();
    io::stdin().read_to_string(&mut state)?;
    let state = with_bundle(&state, bundle);
    let mut cmd = Command::new(path);
    cmd.arg0(argv0).args(rest).stdin(Stdio::piped());
    // SAFETY: prctl is async-signal-safe. A hook outlives neither the shim
    // nor libcontainer's timeout, which kills the shim.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run hook {path}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // Rust ignores SIGPIPE in this process: a hook that did not read
        // its state gives EPIPE here, which is no error (as in runc)
        match stdin.write_all(state.as_bytes()) {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => return Err(e),
            _ => {}
        }
    }
    let status = child.wait()?;
    if let Some(sig) = status.signal() {
        // die of the same signal, so libcontainer reports a killed hook
        // SAFETY: restoring the default action and raising a signal.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

/// The state JSON with its `bundle` replaced; unchanged if it is not JSON.
fn with_bundle(state: &str, bundle: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state) {
        Ok(mut v) => {
            if let Some(obj) = v.as_object_mut() {
                obj.insert("bundle".into(), serde_json::Value::String(bundle.into()));
            }
            v.to_string()
        }
        Err(_) => state.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hooks_run_through_the_shim_with_their_argv_env_and_timeout() {
        let mut spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "hooks": {
                "prestart": [{"path": "/usr/bin/hook", "args": ["hook", "pre", "x"], "env": ["A=1"], "timeout": 5}],
                "poststop": [{"path": "/bin/true"}]
            }
        }))
        .unwrap();
        wrap_hooks(&mut spec, Path::new("/b/dir"));
        let hooks = spec.hooks().clone().unwrap();
        let pre = &hooks.prestart().clone().unwrap()[0];
        assert_eq!(pre.path(), Path::new("/proc/self/exe"));
        assert_eq!(
            pre.args().clone().unwrap(),
            ["minirun-hook", "__hook", "/b/dir", "/usr/bin/hook", "hook", "pre", "x"]
        );
        assert_eq!(pre.env().clone().unwrap(), ["A=1"]);
        assert_eq!(pre.timeout(), Some(5));
        let post = &hooks.poststop().clone().unwrap()[0];
        assert_eq!(
            post.args().clone().unwrap(),
            ["minirun-hook", "__hook", "/b/dir", "/bin/true", "/bin/true"]
        );
        assert!(hooks.create_runtime().is_none());
    }

    #[test]
    fn the_state_gets_the_real_bundle() {
        let out = with_bundle(
            r#"{"ociVersion":"1.0.2","id":"x","bundle":"/run/minirun/.spec-x-1","pid":3}"#,
            "/b",
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["bundle"], "/b");
        assert_eq!(v["id"], "x");
        assert_eq!(v["pid"], 3);
        assert_eq!(with_bundle("not json", "/b"), "not json");
    }
}
