use super::*;

#[test]
fn ids_follow_runc_rules() {
    for ok in ["a", "my-id_1.2+x", &"f".repeat(64)] {
        valid_id(ok).unwrap();
    }
    for bad in ["", ".", "..", ".hidden", "a/b", "a b", "x\0"] {
        let err = valid_id(bad).unwrap_err().to_string();
        assert!(err.contains("invalid container id"), "{bad}: {err}");
    }
}

#[test]
fn signals_by_name_and_number() {
    use nix::sys::signal::Signal as S;
    let raw = |s| format!("{:?}", parse_signal(s).unwrap());
    assert_eq!(raw("TERM"), format!("{:?}", Signal::from(S::SIGTERM)));
    assert_eq!(raw("sigkill"), format!("{:?}", Signal::from(S::SIGKILL)));
    assert_eq!(raw("15"), format!("{:?}", Signal::from(S::SIGTERM)));
    for bad in ["NOPE", "0", "99", "-1", ""] {
        let err = parse_signal(bad).unwrap_err().to_string();
        assert!(err.contains(&format!("\"{bad}\"")), "{err}");
    }
}

#[test]
fn runc_verbs_take_exact_ids_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    fs::create_dir(dir.path().join("t10")).unwrap();
    fs::write(dir.path().join("t10").join("state.json"), "{}").unwrap();
    assert_eq!(root.exact("t10").unwrap(), "t10");
    assert!(root
        .exact("t1")
        .unwrap_err()
        .to_string()
        .contains("\"t1\" does not exist"));
    // deleting a gone "t1" with --force is done, and leaves "t10" alone
    root.delete("t1", true).unwrap();
    assert!(root.exists("t10"));
    assert!(root
        .delete("t1", false)
        .unwrap_err()
        .to_string()
        .contains("does not exist"));
}

#[test]
fn resolve_by_exact_id_and_unique_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    for id in ["abc123", "abd456"] {
        fs::create_dir(dir.path().join(id)).unwrap();
        fs::write(dir.path().join(id).join("state.json"), "{}").unwrap();
    }
    assert_eq!(root.resolve("abc123").unwrap(), "abc123");
    assert_eq!(root.resolve("abd").unwrap(), "abd456");
    assert!(root.resolve("ab").unwrap_err().to_string().contains("ambiguous"));
    assert!(root
        .resolve("zz")
        .unwrap_err()
        .to_string()
        .contains("\"zz\" does not exist"));
    assert_eq!(root.ids().unwrap(), ["abc123", "abd456"]);
}

/// A container whose owner removed it right after the signal killed it
/// (run --bundle's own delete): the signal went out, so kill succeeded,
/// though libcontainer could not record "stopped" any more.
#[test]
fn kill_succeeds_when_the_owner_removed_the_container_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c");
    fs::create_dir(&root).unwrap();
    let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let pid = child.id() as i32;
    let mut c = Container::new("c", ContainerStatus::Running, Some(pid), dir.path(), &root).unwrap();
    fs::remove_dir_all(&root).unwrap();
    let result = signal_loaded(&mut c, parse_signal("TERM").unwrap(), false);
    let status = child.wait().unwrap();
    result.unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "the signal was not sent");
}
