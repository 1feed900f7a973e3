use super::*;
use std::path::Path;

fn parse(args: &[&str]) -> Cli {
    Cli::try_parse_from(std::iter::once("minirun").chain(args.iter().copied())).unwrap()
}

#[test]
fn create_accepts_options_after_the_id() {
    let cli = parse(&["create", "myid", "--bundle", "/b", "--pid-file", "/p"]);
    let Some(Command::Create(c)) = cli.command else {
        panic!("not create")
    };
    assert_eq!(c.id, "myid");
    assert_eq!(c.bundle.bundle, PathBuf::from("/b"));
    assert_eq!(c.bundle.runc.pid_file, Some(PathBuf::from("/p")));
}

#[test]
fn global_flags_go_before_or_after_the_verb() {
    let cli = parse(&["--root", "/r", "state", "x", "--log-format", "json"]);
    assert_eq!(cli.global.root, PathBuf::from("/r"));
    assert_eq!(cli.global.log_format, LogFormat::Json);
}

#[test]
fn engine_calls_parse() {
    // containerd's shim
    let cli = parse(&[
        "--root",
        "/r",
        "--log",
        "/l.json",
        "--log-format",
        "json",
        "update",
        "--resources",
        "-",
        "c",
    ]);
    let Some(Command::Update(u)) = cli.command else {
        panic!()
    };
    assert_eq!((u.resources.as_deref(), u.id.as_str()), (Some(Path::new("-")), "c"));
    // podman
    let Some(Command::Update(u)) = parse(&["update", "--resources=/tmp/r", "c"]).command else {
        panic!()
    };
    assert_eq!(u.resources, Some(PathBuf::from("/tmp/r")));
    // runc's options instead of --resources
    let Some(Command::Update(u)) = parse(&[
        "update",
        "--memory",
        "64m",
        "--cpu-quota",
        "-1",
        "--pids-limit",
        "5",
        "c",
    ])
    .command
    else {
        panic!()
    };
    assert_eq!(
        (
            u.resources,
            u.flags.memory.as_deref(),
            u.flags.cpu_quota,
            u.flags.pids_limit
        ),
        (None, Some("64m"), Some(-1), Some(5))
    );
    assert!(matches!(parse(&["pause", "c"]).command, Some(Command::Pause(_))));
    assert!(matches!(parse(&["resume", "c"]).command, Some(Command::Resume(_))));
    let v = parse(&["--version"]);
    assert!(v.version && v.command.is_none());
    let cli = parse(&[
        "--criu",
        "/usr/sbin/criu",
        "--rootless",
        "auto",
        "--systemd-cgroup",
        "state",
        "c",
    ]);
    assert_eq!(cli.global.rootless.as_deref(), Some("auto"));
    assert!(cli.global.systemd_cgroup);
    let Some(Command::Exec(e)) = parse(&[
        "exec",
        "--pid-file",
        "/p",
        "--process",
        "/f",
        "--detach",
        "--tty",
        "--console-socket",
        "/s",
        "c",
    ])
    .command
    else {
        panic!()
    };
    assert!(e.detach && e.tty && e.console_socket.is_some() && e.command.is_empty());
}

#[test]
fn kill_takes_runcs_positional_signal_and_dockers_s_flag() {
    let Some(Command::Kill(k)) = parse(&["kill", "c"]).command else {
        panic!()
    };
    assert_eq!(
        (k.id.as_str(), k.signal.as_deref(), k.signal_flag.as_deref(), k.all),
        ("c", None, None, false)
    );
    let Some(Command::Kill(k)) = parse(&["kill", "--all", "c", "9"]).command else {
        panic!()
    };
    assert_eq!((k.signal.as_deref(), k.all), (Some("9"), true));
    let Some(Command::Kill(k)) = parse(&["kill", "-s", "HUP", "web"]).command else {
        panic!()
    };
    assert_eq!((k.signal_flag.as_deref(), k.signal.as_deref()), (Some("HUP"), None));
}

#[test]
fn run_keeps_the_command_verbatim() {
    let Some(Command::Run(r)) = parse(&["run", "--bundle", "b", "id"]).command else {
        panic!()
    };
    assert_eq!(r.args, ["id"]);
    assert!(r.bundle_opts().is_some());
    let Some(Command::Run(r)) = parse(&["run", "busybox", "ls", "-l", "--bundle"]).command else {
        panic!()
    };
    assert_eq!(r.args, ["busybox", "ls", "-l", "--bundle"]);
    assert!(r.bundle.is_none());
}

#[test]
fn network_create_flags() {
    let Some(Command::Network(NetworkCmd::Create(a))) =
        parse(&["network", "create", "--subnet", "10.1.0.0/24", "--icc=false", "n"]).command
    else {
        panic!("not network create")
    };
    assert_eq!(
        (a.subnet.as_slice(), a.icc, a.name.as_str(), a.ipv6),
        (&["10.1.0.0/24".to_string()][..], Some(false), "n", false)
    );
    let Some(Command::Network(NetworkCmd::Create(a))) = parse(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.2.0.0/24",
        "--subnet",
        "fd00:2::/64",
        "--gateway",
        "fd00:2::fe",
        "v6",
    ])
    .command
    else {
        panic!("not network create")
    };
    assert!(a.ipv6);
    assert_eq!(a.subnet, vec!["10.2.0.0/24", "fd00:2::/64"]);
    assert_eq!(a.gateway, vec!["fd00:2::fe"]);
    let Some(Command::Network(NetworkCmd::Create(a))) = parse(&["network", "create", "--icc", "n"]).command else {
        panic!()
    };
    assert_eq!(a.icc, Some(true));
    let Some(Command::Network(NetworkCmd::Create(a))) = parse(&["network", "create", "n"]).command else {
        panic!()
    };
    assert_eq!(a.icc, None);
    assert!(Cli::try_parse_from(["minirun", "network", "create", "--icc=maybe", "n"]).is_err());
    let Some(Command::Run(r)) = parse(&["run", "--net", "appnet", "--dns", "198.18.0.2", "busybox"]).command else {
        panic!()
    };
    assert_eq!((r.net.as_slice(), r.dns.len()), (&["appnet".to_string()][..], 1));
    let Some(Command::Run(r)) = parse(&["run", "--network", "a", "--net", "b", "busybox"]).command else {
        panic!()
    };
    assert_eq!(r.net, ["a", "b"]);
    let Some(Command::Network(crate::cli::NetworkCmd::Connect(c))) =
        parse(&["network", "connect", "--ip", "10.1.0.9", "--alias", "x", "n", "c"]).command
    else {
        panic!()
    };
    assert_eq!((c.network.as_str(), c.container.as_str(), c.alias.len()), ("n", "c", 1));
    assert_eq!(c.ip, Some("10.1.0.9".parse().unwrap()));
    let Some(Command::Network(crate::cli::NetworkCmd::Disconnect(d))) =
        parse(&["network", "disconnect", "-f", "n", "c"]).command
    else {
        panic!()
    };
    assert!(d.force);
}

#[test]
fn runc_exec_options() {
    let Some(Command::Exec(e)) = parse(&[
        "exec",
        "--cap",
        "CAP_NET_ADMIN",
        "-c",
        "SYS_PTRACE",
        "-g",
        "10",
        "--additional-gids",
        "20",
        "--cwd",
        "/tmp",
        "--no-new-privs",
        "--ignore-paused",
        "--cgroup",
        "sub",
        "--apparmor",
        "p",
        "--process-label",
        "l",
        "-u",
        "1000:1000",
        "c",
        "id",
        "-a",
    ])
    .command
    else {
        panic!()
    };
    assert_eq!(e.runc.cap, ["CAP_NET_ADMIN", "SYS_PTRACE"]);
    assert_eq!(e.runc.additional_gids, [10, 20]);
    assert_eq!(
        (e.workdir.as_deref(), e.user.as_deref()),
        (Some("/tmp"), Some("1000:1000"))
    );
    assert!(e.runc.no_new_privs && e.runc.ignore_paused && e.runc.changes_process());
    assert_eq!(e.runc.cgroup, ["sub"]);
    assert_eq!(
        (e.container.as_str(), e.command.as_slice()),
        ("c", &["id".to_string(), "-a".into()][..])
    );
}

#[test]
fn attach_and_detach_keys_flags() {
    let Some(Command::Attach(a)) = parse(&["attach", "--detach-keys", "ctrl-a,x", "--no-stdin", "web"]).command else {
        panic!("not attach")
    };
    assert_eq!(
        (a.detach_keys.as_deref(), a.no_stdin, a.container.as_str()),
        (Some("ctrl-a,x"), true, "web")
    );
    let Some(Command::Run(r)) = parse(&["run", "-it", "--detach-keys", "ctrl-@", "busybox", "sh"]).command else {
        panic!()
    };
    assert_eq!(
        (r.interactive, r.tty, r.detach_keys.as_deref()),
        (true, true, Some("ctrl-@"))
    );
}

#[test]
fn run_takes_docker_device_namespace_and_mount_flags() {
    let cli = parse(&[
        "run",
        "--device",
        "/dev/fuse",
        "--device-cgroup-rule",
        "c 1:3 rwm",
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--ipc",
        "shareable",
        "--pid",
        "host",
        "--uts",
        "host",
        "--tmpfs",
        "/run:size=1m",
        "--mount",
        "type=tmpfs,target=/t",
        "--shm-size",
        "128m",
        "busybox",
        "sh",
    ]);
    let Some(Command::Run(r)) = cli.command else {
        panic!("not run")
    };
    assert_eq!(r.host.device, ["/dev/fuse"]);
    assert_eq!(r.host.device_cgroup_rule, ["c 1:3 rwm"]);
    assert_eq!(r.host.sysctl, ["net.ipv4.ip_forward=1"]);
    assert_eq!(
        (r.host.ipc.as_deref(), r.host.pid.as_deref(), r.host.uts.as_deref()),
        (Some("shareable"), Some("host"), Some("host"))
    );
    assert_eq!(r.mounts.tmpfs, ["/run:size=1m"]);
    assert_eq!(r.mounts.mount, ["type=tmpfs,target=/t"]);
    assert_eq!(r.mounts.shm_size.as_deref(), Some("128m"));
    assert_eq!(r.args, ["busybox", "sh"]);
}

#[test]
fn docker_run_flags_of_issue_15_parse() {
    let cli = parse(&[
        "run",
        "-m",
        "1g",
        "--memory-swap",
        "-1",
        "--cpus",
        "1.5",
        "-c",
        "512",
        "--ulimit",
        "nofile=1:2",
        "--restart",
        "on-failure:3",
        "--init",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "-1",
        "--health-cmd",
        "true",
        "--no-healthcheck",
        "--add-host",
        "a:1.2.3.4",
        "--ip",
        "10.0.0.9",
        "-l",
        "k=v",
        "-a",
        "stdout",
        "--sig-proxy=false",
        "busybox",
        "sh",
    ]);
    let Some(Command::Run(r)) = cli.command else {
        panic!("not run")
    };
    let d = &r.docker;
    assert_eq!(d.resources.memory.as_deref(), Some("1g"));
    assert_eq!(d.resources.memory_swap.as_deref(), Some("-1"));
    assert_eq!(d.resources.cpu_shares, Some(512));
    assert_eq!(d.stop_timeout, Some(-1));
    assert_eq!(d.sig_proxy, Some(false));
    assert!(d.init && d.no_healthcheck);
    assert_eq!(d.attach, ["stdout"]);
    assert_eq!(r.args, ["busybox", "sh"]);
    // docker update's spellings
    let cli = parse(&["update", "-m", "64m", "--cpu-shares", "2", "--cpus", "0.5", "web"]);
    let Some(Command::Update(u)) = cli.command else {
        panic!("not update")
    };
    assert_eq!(
        (u.flags.memory.as_deref(), u.flags.cpu_share, u.flags.cpus.as_deref()),
        (Some("64m"), Some(2), Some("0.5"))
    );
}
