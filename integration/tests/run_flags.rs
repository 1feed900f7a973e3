//! docker's run flags of issue 15, end to end through the real binary:
//! resources read back from the container's cgroup files and
//! /proc/PID/limits, `update` with docker's spellings, restart policies,
//! --init, stop signal and timeout, health checks, /etc files, labels,
//! --cidfile and -a. Containers use `--net none` unless a network is the
//! point.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minirun_integration::{wait_until, Env};
use serde_json::Value;

/// `run -d --net none FLAGS... busybox ARGS...`: the container's full id.
fn run_d(env: &Env, flags: &[&str], args: &[&str]) -> String {
    let mut a = vec!["run", "-d", "--net", "none"];
    a.extend_from_slice(flags);
    a.push("busybox");
    a.extend_from_slice(args);
    env.run(&a).ok().stdout.trim().to_string()
}

fn meta(env: &Env, id: &str) -> Value {
    let p = env.data_root.join("containers").join(id).join("meta.json");
    serde_json::from_slice(&fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A cgroup file of container `id`: `v1` in controller `ctrl` on cgroup
/// v1 (or hybrid), `v2` on the unified hierarchy.
fn cg(id: &str, ctrl: &str, v1: &str, v2_file: &str) -> String {
    let p: PathBuf = if v2() {
        Path::new("/sys/fs/cgroup/minirun").join(id).join(v2_file)
    } else {
        Path::new("/sys/fs/cgroup").join(ctrl).join("minirun").join(id).join(v1)
    };
    fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn pid_of(env: &Env, id: &str) -> i32 {
    meta(env, id)["pid"].as_i64().expect("no pid") as i32
}

/// `/proc/PID/limits`' soft and hard columns for a limit.
fn limit(pid: i32, name: &str) -> (String, String) {
    let text = fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in {text}"));
    let cols: Vec<&str> = line[name.len()..].split_whitespace().collect();
    (cols[0].to_string(), cols[1].to_string())
}

#[test]
fn resource_flags_reach_the_cgroup_and_rlimits() {
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &[
            "-m",
            "64m",
            "--memory-swap",
            "128m",
            "--memory-reservation",
            "32m",
            "--oom-kill-disable",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0",
            "--cpuset-mems",
            "0",
            "--pids-limit",
            "42",
            "--ulimit",
            "nofile=100:200",
            "--ulimit",
            "nproc=50",
            "--blkio-weight",
            "300",
        ],
        &["sleep", "300"],
    );
    if v2() {
        assert_eq!(cg(&id, "", "", "memory.max"), (64u64 << 20).to_string());
        assert_eq!(cg(&id, "", "", "memory.low"), (32u64 << 20).to_string());
        assert_eq!(cg(&id, "", "", "cpu.max"), "50000 100000");
        assert_eq!(cg(&id, "", "", "pids.max"), "42");
    } else {
        assert_eq!(
            cg(&id, "memory", "memory.limit_in_bytes", ""),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            cg(&id, "memory", "memory.memsw.limit_in_bytes", ""),
            (128u64 << 20).to_string()
        );
        assert_eq!(
            cg(&id, "memory", "memory.soft_limit_in_bytes", ""),
            (32u64 << 20).to_string()
        );
        assert!(cg(&id, "memory", "memory.oom_control", "").contains("oom_kill_disable 1"));
        assert_eq!(cg(&id, "cpu", "cpu.cfs_quota_us", ""), "50000");
        assert_eq!(cg(&id, "cpu", "cpu.cfs_period_us", ""), "100000");
        assert_eq!(cg(&id, "cpu", "cpu.shares", ""), "512");
        assert_eq!(cg(&id, "pids", "pids.max", ""), "42");
    }
    if !v2() {
        // CFQ's blkio.weight, or BFQ's where the kernel has that scheduler
        let dir = Path::new("/sys/fs/cgroup/blkio/minirun").join(&id);
        let file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| dir.join(f).exists());
        if let Some(f) = file {
            assert_eq!(cg(&id, "blkio", f, ""), "300");
        }
    }
    assert_eq!(cg(&id, "cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(cg(&id, "cpuset", "cpuset.mems", "cpuset.mems"), "0");
    let pid = pid_of(&env, &id);
    assert_eq!(limit(pid, "Max open files"), ("100".into(), "200".into()));
    assert_eq!(limit(pid, "Max processes"), ("50".into(), "50".into()));

    // docker update, by name prefix of the id, with docker's spellings
    env.run([
        "update",
        "-m",
        "96m",
        "--memory-swap",
        "192m",
        "--cpus",
        "1.5",
        "--cpu-shares",
        "256",
        "--pids-limit",
        "77",
        &id[..12],
    ])
    .ok();
    if v2() {
        assert_eq!(cg(&id, "", "", "memory.max"), (96u64 << 20).to_string());
        assert_eq!(cg(&id, "", "", "cpu.max"), "150000 100000");
        assert_eq!(cg(&id, "", "", "pids.max"), "77");
    } else {
        assert_eq!(
            cg(&id, "memory", "memory.limit_in_bytes", ""),
            (96u64 << 20).to_string()
        );
        assert_eq!(
            cg(&id, "memory", "memory.memsw.limit_in_bytes", ""),
            (192u64 << 20).to_string()
        );
        assert_eq!(cg(&id, "cpu", "cpu.cfs_quota_us", ""), "150000");
        assert_eq!(cg(&id, "cpu", "cpu.shares", ""), "256");
        assert_eq!(cg(&id, "pids", "pids.max", ""), "77");
    }
    env.run(["rm", "-f", &id]).ok();
}

#[test]
fn a_memory_limit_alone_gives_as_much_swap_and_named_containers_update() {
    let env = Env::with_busybox();
    let id = run_d(&env, &["--name", "capped", "-m", "50m"], &["sleep", "300"]);
    if !v2() {
        assert_eq!(
            cg(&id, "memory", "memory.memsw.limit_in_bytes", ""),
            (100u64 << 20).to_string()
        );
    }
    env.run(["update", "--cpus", "0.25", "capped"]).ok();
    if v2() {
        assert_eq!(cg(&id, "", "", "cpu.max"), "25000 100000");
    } else {
        assert_eq!(cg(&id, "cpu", "cpu.cfs_quota_us", ""), "25000");
    }
    env.run(["rm", "-f", "capped"]).ok();
}

#[test]
fn bad_resource_values_are_refused_by_name() {
    let env = Env::with_busybox();
    let bad: &[(&[&str], &str)] = &[
        (&["-m", "12zb"], "12zb"),
        (&["-m", "1m"], "Minimum memory limit allowed is 6MB"),
        (&["--memory-swap", "64m"], "always set the Memory limit"),
        (&["-m", "64m", "--memory-swap", "32m"], "larger than memory limit"),
        (&["--cpus", "abc"], "\"abc\""),
        (&["--cpus", "500"], "Range of CPUs is from 0.01"),
        (&["--cpuset-cpus", "0-x"], "0-x"),
        (&["--cpuset-cpus", "999"], "999"),
        (&["--blkio-weight", "5"], "Range of blkio weight is from 10 to 1000"),
        (&["--ulimit", "bogus=1"], "invalid ulimit type: bogus"),
        (&["--ulimit", "nofile=10:5"], "nofile=10:5"),
        (&["--restart", "sometimes"], "sometimes"),
        (
            &["--restart", "always", "--rm"],
            "Conflicting options: --restart and --rm",
        ),
        (&["--stop-signal", "SIGNOPE"], "SIGNOPE"),
        (&["--health-interval", "3x"], "3x"),
        (&["--add-host", "nohost"], "nohost"),
        (&["--mac-address", "zz:11"], "zz:11"),
        (&["-a", "stdfoo"], "stdfoo"),
    ];
    for (flags, needle) in bad {
        let mut a = vec!["run", "--net", "none"];
        if !flags.contains(&"--rm") {
            a.push("--rm");
        }
        a.extend_from_slice(flags);
        a.extend(["busybox", "true"]);
        env.run(&a).fails_with(needle);
    }
    assert!(fs::read_dir(env.data_root.join("containers"))
        .map(|d| d.count() == 0)
        .unwrap_or(true));
}

/// Polls `f` until it holds (or panics after `secs`).
fn eventually(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_until(what, Duration::from_secs(secs), f);
}

fn ps_line(env: &Env, name: &str) -> String {
    let out = env.run(["ps", "-a"]).ok().stdout;
    out.lines().find(|l| l.ends_with(name)).unwrap_or_default().to_string()
}

#[test]
fn on_failure_restarts_with_back_off_up_to_its_count() {
    let env = Env::with_busybox();
    let vol = env.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/out", vol.display());
    let id = run_d(
        &env,
        &["--name", "flaky", "--restart", "on-failure:2", "-v", &v],
        &["sh", "-c", "echo ran >> /out/runs; exit 3"],
    );
    eventually("three runs and an exit", 20, || meta(&env, &id)["phase"] == "exited");
    let runs = fs::read_to_string(vol.join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 3, "{runs}");
    let m = meta(&env, &id);
    assert_eq!(m["restart_count"], 2);
    assert_eq!(m["exit_code"], 3);
    assert_eq!(m["restart_policy"]["Name"], "on-failure");
    assert!(
        ps_line(&env, "flaky").contains("Exited (3)"),
        "{}",
        ps_line(&env, "flaky")
    );
    // a clean exit is not a failure
    let ok = run_d(
        &env,
        &["--restart", "on-failure", "-v", &v],
        &["sh", "-c", "echo ok >> /out/ok"],
    );
    eventually("the clean exit", 20, || meta(&env, &ok)["phase"] == "exited");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fs::read_to_string(vol.join("ok")).unwrap().lines().count(), 1);
    assert_eq!(meta(&env, &ok)["restart_count"], 0);
}

#[test]
fn always_shows_restarting_and_stop_and_rm_end_it() {
    let env = Env::with_busybox();
    let vol = env.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/out", vol.display());
    let id = run_d(
        &env,
        &["--name", "phoenix", "--restart", "always", "-v", &v],
        &["sh", "-c", "echo ran >> /out/runs; sleep 0.3; exit 1"],
    );
    // the back-off doubles from 100 ms: a wait between runs shows in ps
    eventually("ps showing Restarting after a restart", 30, || {
        meta(&env, &id)["restart_count"].as_u64().unwrap_or(0) >= 1
            && ps_line(&env, "phoenix").contains("Restarting (1)")
    });
    env.run(["stop", "-t", "1", "phoenix"]).ok();
    let m = meta(&env, &id);
    assert_eq!(m["phase"], "exited", "{m:#}");
    assert!(m["restart_count"].as_u64().unwrap() >= 1, "{m:#}");
    let runs = fs::read_to_string(vol.join("runs")).unwrap().lines().count();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fs::read_to_string(vol.join("runs")).unwrap().lines().count(),
        runs,
        "restarted after stop"
    );
    assert!(
        ps_line(&env, "phoenix").contains("Exited"),
        "{}",
        ps_line(&env, "phoenix")
    );

    let again = run_d(
        &env,
        &["--name", "phoenix2", "--restart", "unless-stopped"],
        &["sh", "-c", "sleep 0.2; exit 2"],
    );
    eventually("a restart", 20, || {
        meta(&env, &again)["restart_count"].as_u64().unwrap_or(0) >= 1
    });
    let start = Instant::now();
    env.run(["rm", "-f", "phoenix2"]).ok();
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "rm -f took {:?}",
        start.elapsed()
    );
    assert!(!env.data_root.join("containers").join(&again).exists());
}

#[test]
fn init_is_pid_1_reaps_forwards_and_exits_with_the_code() {
    let env = Env::with_busybox();
    // PID 1 is minirun's init; the command is its child
    let r = env
        .run([
            "run",
            "--rm",
            "--net",
            "none",
            "--init",
            "busybox",
            "sh",
            "-c",
            "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$",
        ])
        .ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].contains("__init -- sh -c"), "{r:?}");
    assert_ne!(lines[1], "1", "{r:?}");
    // exit codes pass through
    let r = env.run([
        "run", "--rm", "--net", "none", "--init", "busybox", "sh", "-c", "exit 5",
    ]);
    assert_eq!(r.code, 5, "{r:?}");
    // orphans are re-parented to the init (not to the shell) and reaped: no zombie is left
    let r = env
        .run([
            "run",
            "--rm",
            "--net",
            "none",
            "--init",
            "busybox",
            "sh",
            "-c",
            "(sleep 0.2 &); (sleep 0.2 &); sleep 1; cat /proc/[0-9]*/stat | grep -c ') Z' || true",
        ])
        .ok();
    assert_eq!(r.stdout.trim(), "0", "{r:?}");
    // signals are forwarded: stop's SIGTERM reaches the shell's trap
    let id = run_d(
        &env,
        &["--init"],
        &["sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.1; done"],
    );
    env.run(["stop", &id]).ok();
    assert_eq!(meta(&env, &id)["exit_code"], 7);
}

#[test]
fn stop_signal_and_stop_timeout() {
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &["--stop-signal", "USR1"],
        &["sh", "-c", "trap 'exit 9' USR1; while :; do sleep 0.1; done"],
    );
    env.run(["stop", &id]).ok();
    assert_eq!(meta(&env, &id)["exit_code"], 9);
    let id = run_d(
        &env,
        &["--stop-timeout", "1"],
        &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
    );
    let start = Instant::now();
    env.run(["stop", &id]).ok();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "stop took {took:?}"
    );
    assert_eq!(meta(&env, &id)["exit_code"], 137);
}

#[test]
fn health_checks_go_starting_healthy_unhealthy() {
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &[
            "--name",
            "doc",
            "--health-cmd",
            "test -e /tmp/ok",
            "--health-interval",
            "200ms",
            "--health-retries",
            "2",
            "--health-timeout",
            "5s",
        ],
        &["sh", "-c", "sleep 1; touch /tmp/ok; sleep 300"],
    );
    assert_eq!(meta(&env, &id)["health"]["Status"], "starting");
    assert!(
        ps_line(&env, "doc").contains("(health: starting)"),
        "{}",
        ps_line(&env, "doc")
    );
    eventually("healthy", 30, || meta(&env, &id)["health"]["Status"] == "healthy");
    assert!(ps_line(&env, "doc").contains("(healthy)"), "{}", ps_line(&env, "doc"));
    env.run(["exec", "doc", "rm", "/tmp/ok"]).ok();
    eventually("unhealthy", 30, || meta(&env, &id)["health"]["Status"] == "unhealthy");
    let m = meta(&env, &id);
    assert!(m["health"]["FailingStreak"].as_u64().unwrap() >= 2, "{m:#}");
    assert!(ps_line(&env, "doc").contains("(unhealthy)"));
    assert_eq!(
        m["healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -e /tmp/ok"])
    );
    env.run(["rm", "-f", "doc"]).ok();
    // --no-healthcheck: none
    let id = run_d(&env, &["--no-healthcheck"], &["sleep", "300"]);
    assert!(meta(&env, &id)["health"].is_null());
    env.run(["rm", "-f", &id]).ok();
}

mod network {
    use minirun_integration::sandbox::Sandbox;

    /// `run -d --net NET FLAGS... busybox sleep 300`.
    fn run_d(sb: &Sandbox, flags: &[&str]) -> String {
        let mut a = vec!["run", "-d"];
        a.extend_from_slice(flags);
        a.extend(["busybox", "sleep", "300"]);
        sb.run(a).ok().stdout.trim().to_string()
    }

    fn sh(sb: &Sandbox, name: &str, script: &str) -> String {
        sb.run(["exec", name, "sh", "-c", script]).ok().stdout
    }

    #[test]
    fn fixed_address_mac_hosts_and_resolv_conf() {
        let sb = Sandbox::new();
        sb.run(["network", "create", "--subnet", "10.77.0.0/24", "fixnet"]).ok();
        run_d(
            &sb,
            &[
                "--net",
                "fixnet",
                "--name",
                "a",
                "--ip",
                "10.77.0.50",
                "--mac-address",
                "02:42:0a:4d:00:99",
                "--add-host",
                "db.example:192.0.2.7",
                "--add-host",
                "gw:host-gateway",
                "--dns-search",
                "corp.example",
                "--dns-search",
                "lab.example",
                "--dns-option",
                "ndots:2",
            ],
        );
        let out = sh(
            &sb,
            "a",
            "ip -4 addr show eth0; cat /sys/class/net/eth0/address; cat /etc/hosts /etc/resolv.conf",
        );
        assert!(out.contains("inet 10.77.0.50/24"), "{out}");
        assert!(out.contains("02:42:0a:4d:00:99"), "{out}");
        assert!(out.contains("192.0.2.7\tdb.example"), "{out}");
        assert!(out.contains("10.77.0.1\tgw"), "{out}");
        assert!(out.contains("search corp.example lab.example"), "{out}");
        assert!(out.contains("options ndots:2"), "{out}");
        assert!(out.contains("nameserver 127.0.0.11"), "{out}");
        assert_eq!(sb.ip_of("a").to_string(), "10.77.0.50");

        // taken, outside the subnet, the gateway, or on the default network: refused
        let fails = |flags: &[&str], needle: &str| {
            let mut a = vec!["run", "--rm"];
            a.extend_from_slice(flags);
            a.extend(["busybox", "true"]);
            sb.run(a).fails_with(needle);
        };
        fails(&["--net", "fixnet", "--ip", "10.77.0.50"], "Address already in use");
        fails(&["--net", "fixnet", "--ip", "10.78.0.5"], "10.78.0.5");
        fails(&["--net", "fixnet", "--ip", "10.77.0.1"], "Address already in use");
        fails(&["--ip", "10.77.0.60"], "user defined networks only");
        fails(&["--net", "none", "--mac-address", "02:42:00:00:00:01"], "mac-address");

        // a restart keeps the network: same namespace, same fixed address
        let r = sb
            .run([
                "run",
                "-d",
                "--net",
                "fixnet",
                "--ip",
                "10.77.0.60",
                "--restart",
                "on-failure:1",
                "busybox",
                "sh",
                "-c",
                "ip -4 addr show eth0 | grep -q 10.77.0.60 && exit 1; exit 0",
            ])
            .ok();
        let rid = r.stdout.trim().to_string();
        let start = std::time::Instant::now();
        while sb.meta(&rid)["phase"] != "exited" {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "{:#}",
                sb.meta(&rid)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let m = sb.meta(&rid);
        assert_eq!(
            (m["restart_count"].as_u64(), m["exit_code"].as_i64()),
            (Some(1), Some(1)),
            "{m:#}"
        );
        sb.run(["rm", &rid]).ok();

        // the lease goes with the container
        sb.run(["rm", "-f", "a"]).ok();
        run_d(&sb, &["--net", "fixnet", "--name", "b", "--ip", "10.77.0.50"]);
        assert_eq!(sb.ip_of("b").to_string(), "10.77.0.50");
        sb.run(["rm", "-f", "b"]).ok();
    }

    #[test]
    fn expose_is_recorded_and_published_with_big_p() {
        let sb = Sandbox::new();
        let id = run_d(
            &sb,
            &["--name", "ex", "--expose", "7000", "--expose", "7100-7101/udp", "-P"],
        );
        let ports = sb.ports("ex");
        for p in ["7000/tcp", "7100/udp", "7101/udp", "80/tcp"] {
            assert!(
                ports.iter().any(|l| l.starts_with(&format!("{p} -> "))),
                "{p} not in {ports:?}"
            );
        }
        let m = sb.meta(&id);
        assert_eq!(
            m["exposed_ports"],
            serde_json::json!(["7000/tcp", "7100/udp", "7101/udp"])
        );
        sb.run(["rm", "-f", "ex"]).ok();
    }
}

#[test]
fn labels_cidfile_and_attached_streams() {
    let env = Env::with_busybox();
    let lf = env.path().join("labels");
    fs::write(&lf, "# team labels\nteam=core\ntier=back\n").unwrap();
    let cid = env.path().join("cid");
    let id = run_d(
        &env,
        &[
            "--label",
            "tier=front",
            "-l",
            "solo",
            "--label-file",
            lf.to_str().unwrap(),
            "--cidfile",
            cid.to_str().unwrap(),
        ],
        &["sleep", "300"],
    );
    assert_eq!(fs::read_to_string(&cid).unwrap(), id);
    let labels = &meta(&env, &id)["labels"];
    assert_eq!(labels["team"], "core");
    assert_eq!(labels["tier"], "front", "--label wins over --label-file");
    assert_eq!(labels["solo"], "");
    // a cidfile that exists is refused, and nothing is made
    let before = fs::read_dir(env.data_root.join("containers")).unwrap().count();
    env.run([
        "run",
        "-d",
        "--net",
        "none",
        "--cidfile",
        cid.to_str().unwrap(),
        "busybox",
        "true",
    ])
    .fails_with("Container ID file found");
    assert_eq!(fs::read_dir(env.data_root.join("containers")).unwrap().count(), before);
    env.run(["rm", "-f", &id]).ok();

    // -a: only the streams named
    let script = "echo to-out; echo to-err >&2";
    let r = env
        .run([
            "run", "--rm", "--net", "none", "-a", "stdout", "busybox", "sh", "-c", script,
        ])
        .ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("to-out\n", ""), "{r:?}");
    let r = env
        .run([
            "run", "--rm", "--net", "none", "-a", "STDERR", "busybox", "sh", "-c", script,
        ])
        .ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", "to-err\n"), "{r:?}");
    let r = env
        .run_with_stdin(
            &[
                "run", "--rm", "--net", "none", "-a", "stdin", "-a", "stdout", "busybox", "cat",
            ],
            b"piped\n",
        )
        .ok();
    assert_eq!(r.stdout, "piped\n");
    env.run(["run", "-d", "-a", "stdout", "busybox", "true"])
        .fails_with("Conflicting options: -a and -d");
}

#[test]
fn sig_proxy_false_keeps_signals_from_the_container() {
    use std::process::Stdio;
    let env = Env::with_busybox();
    let script =
        "trap 'echo got-term; exit 3' TERM; i=0; while [ $i -lt 30 ]; do sleep 0.1; i=$((i+1)); done; echo done";
    for (proxy, want) in [("--sig-proxy=true", "got-term"), ("--sig-proxy=false", "")] {
        let out = env.path().join(format!("out{proxy}"));
        let mut child = env
            .cmd(["run", "--rm", "--net", "none", proxy, "busybox", "sh", "-c", script])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let _ = nix_kill(child.id() as i32, 15);
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(300));
        let text = fs::read_to_string(&out).unwrap();
        if want.is_empty() {
            assert!(!text.contains("got-term"), "{proxy}: {text}");
        } else {
            assert!(text.contains(want), "{proxy}: {text}");
        }
    }
    // whatever minirun left running ends with the env
    let _ = env.run(["gc"]);
}

fn nix_kill(pid: i32, sig: i32) -> i32 {
    // SAFETY: plain syscall
    unsafe { libc::kill(pid, sig) }
}

#[test]
fn restarts_with_a_health_checker_running() {
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &[
            "--restart",
            "on-failure:2",
            "--health-cmd",
            "true",
            "--health-interval",
            "50ms",
        ],
        &["sh", "-c", "sleep 0.5; exit 1"],
    );
    eventually("two restarts and an exit", 30, || meta(&env, &id)["phase"] == "exited");
    let m = meta(&env, &id);
    assert_eq!(
        (m["restart_count"].as_u64(), m["exit_code"].as_i64()),
        (Some(2), Some(1)),
        "{m:#}"
    );
    assert!(!m["health"]["Log"].as_array().unwrap().is_empty(), "{m:#}");
}

#[test]
fn an_update_outlives_a_restart() {
    let env = Env::with_busybox();
    let id = run_d(
        &env,
        &["--name", "up", "--restart", "always", "--pids-limit", "30"],
        &["sh", "-c", "sleep 2; exit 1"],
    );
    env.run(["update", "--pids-limit", "55", "up"]).ok();
    assert_eq!(cg(&id, "pids", "pids.max", "pids.max"), "55");
    eventually("a restart", 30, || {
        meta(&env, &id)["restart_count"].as_u64().unwrap_or(0) >= 1 && meta(&env, &id)["restarting"] == false
    });
    eventually("the new cgroup", 10, || {
        let p = if v2() {
            Path::new("/sys/fs/cgroup/minirun").join(&id).join("pids.max")
        } else {
            Path::new("/sys/fs/cgroup/pids/minirun").join(&id).join("pids.max")
        };
        fs::read_to_string(p).is_ok_and(|v| v.trim() == "55")
    });
    env.run(["rm", "-f", "up"]).ok();
}
