//! The container state machine on fakes (no root): launch, attached wait,
//! stop, rm, and gc of crashed creators and killed monitors.

use std::fs;
use std::time::Duration;

use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::Spec;
use minirun_net::NetMode;

use super::fakes::Fixture;
use super::launch::{self, NetRequest};
use super::record::{now, Phase, Record, Status, UNKNOWN_EXIT};
use super::store::random_id;
use super::{run, teardown};
use crate::oci::Stdio;
use crate::util::lock::FileLock;
use crate::util::proc::ProcessIdentity;

/// A container record named `name` in `phase`, with a network held in the fake net.
fn record(fx: &Fixture, name: &str, phase: Phase) -> Record {
    let ctx = &fx.ctx;
    let id = random_id().unwrap();
    fs::create_dir_all(ctx.dir(&id)).unwrap();
    // as run makes it: the lock file right after the directory
    drop(ctx.lock(&id).unwrap());
    let name = ctx.reserve_name(Some(name), &id).unwrap();
    let net = NetRequest {
        mode: NetMode::None,
        ports: vec![],
        hostname: None,
        aliases: vec![],
        join_netns: None,
        ip: None,
        mac: None,
        connect: Vec::new(),
    };
    let network = Some(launch::attach_network(ctx, &id, net).unwrap());
    let r = Record {
        id,
        name,
        image: "busybox".into(),
        image_id: "0".repeat(64),
        created: now(),
        args: vec!["sh".into()],
        hostname: "h".into(),
        auto_remove: false,
        detached: true,
        tty: false,
        interactive: false,
        net: "none".into(),
        volumes: vec![],
        phase,
        pid: None,
        monitor_pid: None,
        creator: ProcessIdentity::current(),
        started_at: None,
        finished_at: None,
        exit_code: None,
        dns: vec![],
        network,
        extra_networks: Vec::new(),
        first_network_disconnected: false,
        config: None,
        run_flags: Default::default(),
    };
    ctx.save(&r).unwrap();
    r
}

/// Starts `r` through the launch pipeline with the fake engine running `script`.
fn start(fx: &Fixture, r: &mut Record, script: &str) -> super::launch::Started {
    *fx.engine.script.borrow_mut() = script.into();
    let spec = Spec::default();
    let dir = fx.ctx.dir(&r.id);
    let started = launch::create_and_start(&fx.ctx, &run::image_launch(r, &dir, &spec), Stdio::default()).unwrap();
    r.mark_running(started.pid.as_raw());
    fx.ctx.save(r).unwrap();
    started
}

fn assert_gone(fx: &Fixture, r: &Record) {
    assert!(!fx.ctx.dir(&r.id).exists(), "directory of {} left", r.name);
    assert!(!fx.ctx.lock_path(&r.id).exists(), "lock file of {} left", r.name);
    assert!(!fx.ctx.names_dir().join(&r.name).exists(), "name {} left", r.name);
    assert_eq!(
        fx.ctx.engine.status(&r.id),
        None,
        "libcontainer state of {} left",
        r.name
    );
    assert!(fx.net.held.borrow().is_empty(), "network of {} left", r.name);
    let err = fx.ctx.resolve(&r.name).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn an_attached_run_records_its_exit_code_and_releases_everything() {
    let fx = Fixture::new();
    let mut r = record(&fx, "web", Phase::Creating);
    assert_eq!(fx.ctx.status(&r), Status::Created, "its creator (this process) runs");
    let started = start(&fx, &mut r, "exit 7");
    assert_eq!(launch::wait_attached(started, false).unwrap(), 7);

    teardown::teardown(&fx.ctx, &r.id, Some(7)).unwrap();
    let after = fx.ctx.resolve("web").unwrap();
    assert_eq!((after.phase, after.exit_code), (Phase::Exited, Some(7)));
    assert!(after.network.is_none(), "a released network stays in the record");
    assert_eq!(fx.ctx.status(&after), Status::Exited(7));
    assert!(fx.net.held.borrow().is_empty());
    // idempotent, and the first exit code recorded stays
    teardown::teardown(&fx.ctx, &r.id, Some(1)).unwrap();
    assert_eq!(fx.ctx.load(&r.id).unwrap().exit_code, Some(7));

    teardown::remove(&fx.ctx, &r.id).unwrap();
    assert_gone(&fx, &r);
}

#[test]
fn a_teardown_for_removal_skips_the_exited_record_and_gc_finishes_a_cut_short_one() {
    let fx = Fixture::new();
    let mut r = record(&fx, "rmme", Phase::Creating);
    let started = start(&fx, &mut r, "exit 3");
    assert_eq!(launch::wait_attached(started, false).unwrap(), 3);
    let before = fs::read(fx.ctx.dir(&r.id).join("meta.json")).unwrap();
    teardown::teardown_for_removal(&fx.ctx, &r.id, Some(3)).unwrap();
    // everything released, the record not rewritten (remove deletes it next)
    assert!(fx.net.held.borrow().is_empty());
    assert_eq!(fx.ctx.engine.status(&r.id), None);
    assert_eq!(fs::read(fx.ctx.dir(&r.id).join("meta.json")).unwrap(), before);
    // cut short before remove: the record says running, nobody holds it
    r = fx.ctx.load(&r.id).unwrap();
    assert_ne!(r.phase, Phase::Exited);
    r.auto_remove = true;
    fx.ctx.save(&r).unwrap();
    assert_eq!(teardown::gc(&fx.ctx).unwrap(), [r.id.clone()]);
    assert_gone(&fx, &r);
}

#[test]
fn a_failed_start_leaves_no_libcontainer_state() {
    let fx = Fixture::new();
    let r = record(&fx, "bad", Phase::Creating);
    *fx.engine.fail_start.borrow_mut() = Some("exec: \"nope\": executable file not found in $PATH".into());
    let spec = Spec::default();
    let dir = fx.ctx.dir(&r.id);
    let err = launch::create_and_start(&fx.ctx, &run::image_launch(&r, &dir, &spec), Stdio::default())
        .err()
        .unwrap();
    assert!(err.to_string().contains("executable file not found"), "{err:#}");
    assert_eq!(fx.ctx.engine.status(&r.id), None);
    assert_eq!(
        *fx.engine.calls.borrow(),
        [
            format!("create {}", r.id),
            format!("start {}", r.id),
            format!("delete {}", r.id)
        ]
    );

    *fx.engine.fail_create.borrow_mut() = Some("cannot create container".into());
    assert!(launch::create_and_start(&fx.ctx, &run::image_launch(&r, &dir, &spec), Stdio::default()).is_err());
    assert!(
        !fx.engine.calls.borrow().iter().skip(3).any(|c| c.starts_with("start")),
        "started after a failed create"
    );
}

#[test]
fn stop_signals_the_container_and_tears_it_down() {
    let fx = Fixture::new();
    let mut r = record(&fx, "sleeper", Phase::Creating);
    let _started = start(&fx, &mut r, "sleep 30");
    teardown::stop(&fx.ctx, "sleeper", Some(Duration::from_secs(5))).unwrap();
    assert!(fx.engine.calls.borrow().contains(&format!("kill {} SIGTERM", r.id)));
    let after = fx.ctx.load(&r.id).unwrap();
    assert_eq!(after.phase, Phase::Exited);
    assert_eq!(
        fx.ctx.status(&after),
        Status::Exited(UNKNOWN_EXIT),
        "nobody waited for it: docker's 255"
    );
    assert_eq!(fx.ctx.engine.status(&r.id), None);
    assert!(fx.net.held.borrow().is_empty());
    // a stopped container stays until rm
    assert!(fx.ctx.dir(&r.id).exists());
}

#[test]
fn rm_needs_force_for_a_running_container_and_then_removes_everything() {
    let fx = Fixture::new();
    let mut r = record(&fx, "busy", Phase::Creating);
    let _started = start(&fx, &mut r, "sleep 30");
    let err = teardown::rm(&fx.ctx, "busy", false).unwrap_err().to_string();
    assert!(err.contains("is running: stop it first or use rm --force"), "{err}");
    assert_eq!(fx.ctx.status(&r), Status::Running);

    assert_eq!(teardown::rm(&fx.ctx, "busy", true).unwrap(), r.id);
    assert!(fx.engine.calls.borrow().contains(&format!("terminate {}", r.id)));
    assert_gone(&fx, &r);
}

#[test]
fn a_start_after_rm_force_gives_up_and_leaves_nothing_of_libcontainer() {
    let fx = Fixture::new();
    let r = record(&fx, "doomed", Phase::Creating);
    fx.ctx.request_removal(&r.id).unwrap();
    *fx.engine.script.borrow_mut() = "sleep 30".into();
    let spec = Spec::default();
    let dir = fx.ctx.dir(&r.id);
    let err = launch::create_and_start(&fx.ctx, &run::image_launch(&r, &dir, &spec), Stdio::default())
        .err()
        .expect("a container marked for removal is not started");
    assert!(
        err.to_string().contains("removed while it was being started"),
        "{err:#}"
    );
    let calls = fx.engine.calls.borrow().clone();
    assert!(!calls.contains(&format!("start {}", r.id)), "{calls:?}");
    assert_eq!(fx.ctx.engine.status(&r.id), None);
}

#[test]
fn rm_force_waits_for_the_holder_instead_of_failing_busy() {
    let fx = Fixture::new();
    let mut r = record(&fx, "held", Phase::Creating);
    let _started = start(&fx, &mut r, "sleep 30");
    // a monitor holds the lock; it lets go once the process it waits for is killed
    let lock_path = fx.ctx.lock_path(&r.id);
    let monitor = FileLock::exclusive(&lock_path).unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(monitor);
    });
    assert_eq!(teardown::rm(&fx.ctx, "held", true).unwrap(), r.id);
    release.join().unwrap();
    assert_gone(&fx, &r);
}

#[test]
fn gc_reaps_a_creation_whose_creator_died() {
    let fx = Fixture::new();
    let mut r = record(&fx, "orphan", Phase::Creating);
    let me = ProcessIdentity::current().unwrap();
    r.creator = Some(ProcessIdentity {
        start_time: me.start_time + 1,
        ..me
    });
    fx.ctx.save(&r).unwrap();
    // libcontainer's init waits for a start that never comes
    fx.engine.insert(&r.id, ContainerStatus::Created);
    assert_eq!(fx.ctx.status(&r), Status::Dead);

    assert_eq!(teardown::gc(&fx.ctx).unwrap(), [r.id.clone()]);
    assert!(fx.engine.calls.borrow().contains(&format!("destroy {}", r.id)));
    assert_gone(&fx, &r);
}

#[test]
fn gc_tears_down_a_container_whose_monitor_died_and_keeps_it_for_ps() {
    let fx = Fixture::new();
    let mut kept = record(&fx, "kept", Phase::Running);
    let mut auto = record(&fx, "auto", Phase::Running);
    auto.auto_remove = true;
    for r in [&mut kept, &mut auto] {
        r.pid = Some(1);
        fx.ctx.save(r).unwrap();
        fx.engine.insert(&r.id, ContainerStatus::Stopped);
    }
    let mut cleaned = teardown::gc(&fx.ctx).unwrap();
    cleaned.sort();
    let mut want = vec![kept.id.clone(), auto.id.clone()];
    want.sort();
    assert_eq!(cleaned, want);

    let after = fx.ctx.resolve("kept").unwrap();
    assert_eq!((after.phase, after.exit_code), (Phase::Exited, Some(UNKNOWN_EXIT)));
    assert!(after.network.is_none());
    assert_eq!(fx.ctx.engine.status(&kept.id), None);
    assert_gone(&fx, &auto);
    // nothing is left to collect
    assert!(teardown::gc(&fx.ctx).unwrap().is_empty());
}

#[test]
fn gc_leaves_a_supervised_container_alone() {
    let fx = Fixture::new();
    let r = record(&fx, "watched", Phase::Running);
    fx.engine.insert(&r.id, ContainerStatus::Stopped);
    // its monitor holds the lock while it records the exit
    let _monitor = FileLock::exclusive(&fx.ctx.lock_path(&r.id)).unwrap();
    assert!(teardown::gc(&fx.ctx).unwrap().is_empty());
    assert_eq!(fx.ctx.load(&r.id).unwrap().phase, Phase::Running);
    assert!(fx.net.held.borrow().contains_key(&r.id));
}

#[test]
fn gc_removes_unfinished_directories_and_dangling_names() {
    let fx = Fixture::new();
    let ctx = &fx.ctx;
    let unfinished = ctx.dir("deadbeef");
    fs::create_dir_all(&unfinished).unwrap();
    fs::create_dir_all(ctx.names_dir()).unwrap();
    fs::write(ctx.names_dir().join("ghost"), "f00d").unwrap();
    let held = ctx.dir("cafe");
    fs::create_dir_all(&held).unwrap();
    let _setup = ctx.lock("cafe").unwrap();

    assert_eq!(teardown::gc(ctx).unwrap(), ["deadbeef"]);
    assert!(!unfinished.exists());
    assert!(!ctx.names_dir().join("ghost").exists());
    assert!(held.exists(), "a directory being set up was removed");
}

#[test]
fn run_collects_orphaned_networks_first() {
    let fx = Fixture::new();
    let net = NetRequest {
        mode: NetMode::None,
        ports: vec![],
        hostname: None,
        aliases: vec![],
        join_netns: None,
        ip: None,
        mac: None,
        connect: Vec::new(),
    };
    launch::attach_network(&fx.ctx, "gone", net).unwrap();
    teardown::gc_quick(&fx.ctx);
    assert!(fx.net.calls.borrow().contains(&"gc".to_string()));
    assert!(fx.net.held.borrow().is_empty());
}

#[test]
fn remove_frees_the_name_even_when_the_record_is_already_gone() {
    let fx = Fixture::new();
    let r = record(&fx, "half", Phase::Exited);
    // a remover that died after deleting meta.json
    fs::remove_file(fx.ctx.dir(&r.id).join("meta.json")).unwrap();
    assert_eq!(fx.ctx.name_of(&r.id).as_deref(), Some("half"));
    teardown::remove(&fx.ctx, &r.id).unwrap();
    assert!(!fx.ctx.names_dir().join("half").exists());
    assert!(!fx.ctx.dir(&r.id).exists());
}

#[test]
fn locks_live_on_the_runtime_root_and_go_with_their_container() {
    let fx = Fixture::new();
    let ctx = &fx.ctx;
    let held = record(&fx, "held", Phase::Running);
    let _monitor = ctx.lock(&held.id).unwrap();
    let r = record(&fx, "locked", Phase::Exited);
    let lock = ctx.lock_path(&r.id);
    assert!(lock.starts_with(&ctx.root) && lock.exists(), "{}", lock.display());
    // after a reboot the runtime root is empty: the lock is made again
    fs::remove_file(&lock).unwrap();
    assert!(matches!(
        ctx.try_lock_existing(&r.id).unwrap(),
        crate::util::lock::TryLock::Locked(_)
    ));
    assert!(lock.exists());

    teardown::remove(ctx, &r.id).unwrap();
    assert!(!lock.exists(), "rm leaves the lock file");
    assert!(matches!(
        ctx.try_lock_existing(&r.id).unwrap(),
        crate::util::lock::TryLock::Missing
    ));
    assert!(!lock.exists(), "a look at a removed container makes no lock file");

    // one left by a remover cut short: gc takes it away, not a held one
    fs::write(ctx.lock_path("f00d"), "").unwrap();
    teardown::gc(ctx).unwrap();
    assert!(!ctx.lock_path("f00d").exists());
    assert!(ctx.lock_path(&held.id).exists());
}
