//! Docker's everyday verbs (issue 15), end to end through the binary:
//! inspect in docker's shape and through Go templates, ps and images with
//! --format/--filter, restart/start/rename/top. Each checks the effect (a
//! template rendered, a restarted pid), not only the exit code.

use std::fs;
use std::time::Duration;

use minirun_integration::sandbox::Sandbox;
use minirun_integration::{wait_until, Env};
use serde_json::Value;

const SECOND: Duration = Duration::from_secs(1);

/// `run -d --net none --name NAME busybox ARGS...`; returns the id.
fn run_d(env: &Env, name: &str, extra: &[&str], args: &[&str]) -> String {
    let mut all = vec!["run", "-d", "--net", "none", "--name", name];
    all.extend_from_slice(extra);
    all.push("busybox");
    all.extend_from_slice(args);
    let id = env.run(all).ok().stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{id:?}");
    id
}

fn inspect(env: &Env, name: &str) -> Value {
    let r = env.run(["inspect", name]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    v[0].clone()
}

fn format(env: &Env, name: &str, template: &str) -> String {
    env.run(["inspect", "-f", template, name])
        .ok()
        .stdout
        .trim_end()
        .to_string()
}

fn pid_alive(pid: i64) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

#[test]
fn inspect_is_dockers_shape_and_templates_render() {
    let env = Env::with_busybox();
    let vol = env.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    let v = format!("{}:/data:ro", vol.display());
    let id = run_d(
        &env,
        "shape",
        &["-e", "COLOR=blue", "-w", "/tmp", "-v", &v],
        &["sleep", "60"],
    );
    let i = inspect(&env, "shape");
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["Name"], "/shape");
    assert_eq!(i["Path"], "sleep");
    assert_eq!(i["Args"], serde_json::json!(["60"]));
    for key in [
        "Status",
        "Running",
        "Paused",
        "Restarting",
        "OOMKilled",
        "Dead",
        "Pid",
        "ExitCode",
        "Error",
        "StartedAt",
        "FinishedAt",
    ] {
        assert!(i["State"].get(key).is_some(), "State.{key} missing: {i:#}");
    }
    assert_eq!(i["State"]["Status"], "running");
    assert_eq!(i["State"]["ExitCode"], 0);
    assert!(i["Image"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(i["Config"]["Image"], "busybox");
    assert_eq!(i["Config"]["Cmd"], serde_json::json!(["sleep", "60"]));
    assert_eq!(i["Config"]["WorkingDir"], "/tmp");
    assert!(
        i["Config"]["Env"].as_array().unwrap().iter().any(|e| e == "COLOR=blue"),
        "{i:#}"
    );
    assert_eq!(i["HostConfig"]["NetworkMode"], "none");
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], "no");
    assert_eq!(i["HostConfig"]["Binds"], serde_json::json!([v]));
    assert_eq!(i["Mounts"][0]["Destination"], "/data");
    assert_eq!(i["Mounts"][0]["RW"], false);
    assert!(i["NetworkSettings"]["Networks"].is_object(), "{i:#}");

    // templates, as docker users write them
    let pid: i64 = format(&env, "shape", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 1 && pid_alive(pid));
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap(),
        "sleep\u{0}60\u{0}"
    );
    let config: Value = serde_json::from_str(&format(&env, "shape", "{{json .Config}}")).unwrap();
    assert_eq!(config["WorkingDir"], "/tmp");
    assert_eq!(
        format(&env, "shape", "{{range .Mounts}}{{.Source}}->{{.Destination}} {{end}}"),
        format!("{}->/data", vol.display())
    );
    assert_eq!(
        format(&env, "shape", "{{.Name}} {{upper .State.Status}}"),
        "/shape RUNNING"
    );
    assert_eq!(format(&env, "shape", "{{join .Config.Cmd \",\"}}"), "sleep,60");
    assert_eq!(
        format(
            &env,
            "shape",
            "{{range .Config.Env}}{{if eq (index (split . \"=\") 0) \"COLOR\"}}{{.}}{{end}}{{end}}"
        ),
        "COLOR=blue"
    );
    // one line per object; a bad template is an error
    let two = env.run(["inspect", "-f", "{{.Id}}", "shape", &id[..8]]).ok().stdout;
    assert_eq!(two, format!("{id}\n{id}\n"));
    env.run(["inspect", "-f", "{{.State.Pid", "shape"])
        .fails_with("template");

    // images and networks: by `image inspect`, and by `inspect` falling through
    let img: Value = serde_json::from_str(&env.run(["image", "inspect", "busybox"]).ok().stdout).unwrap();
    assert_eq!(img[0]["Id"], i["Image"]);
    assert!(img[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t.as_str().unwrap().starts_with("busybox")));
    assert_eq!(img[0]["RootFS"]["Type"], "layers");
    assert_eq!(
        env.run(["inspect", "-f", "{{.Os}}/{{.Architecture}}", "busybox"])
            .ok()
            .stdout
            .trim(),
        format!("linux/{}", img[0]["Architecture"].as_str().unwrap())
    );
    env.run(["image", "inspect", "nosuch"])
        .fails_with("No such image: nosuch");
    env.run(["inspect", "nosuch"]).fails_with("No such object: nosuch");
    env.run(["rm", "-f", "shape"]).ok();
}

#[test]
fn inspect_shows_the_bridge_network_and_network_inspect_is_dockers() {
    let sb = Sandbox::new();
    sb.run([
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80",
    ])
    .ok();
    let i = sb.inspect("web");
    let ns = &i["NetworkSettings"];
    let ip = ns["IPAddress"].as_str().unwrap().to_string();
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ns:#}");
    assert_eq!(ns["Networks"]["bridge"]["IPAddress"], ip.as_str());
    assert_eq!(ns["Ports"]["80/tcp"][0]["HostPort"], "8080", "{ns:#}");
    assert_eq!(i["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], "8080");
    let r = sb
        .run([
            "inspect",
            "-f",
            "{{(index .NetworkSettings.Networks \"bridge\").IPAddress}}",
            "web",
        ])
        .ok();
    assert_eq!(r.stdout.trim(), ip);
    let r = sb
        .run(["inspect", "-f", "{{index .NetworkSettings.Networks \"bridge\"}}", "web"])
        .ok();
    assert!(r.stdout.contains(&ip), "{r:#?}");
    let gw = sb
        .run(["inspect", "-f", "{{.NetworkSettings.Gateway}}", "web"])
        .ok()
        .stdout;
    assert_eq!(gw.trim(), ns["Networks"]["bridge"]["Gateway"].as_str().unwrap());

    let n: Value = serde_json::from_str(&sb.run(["network", "inspect", "bridge"]).ok().stdout).unwrap();
    assert_eq!(n[0]["Name"], "bridge");
    assert_eq!(n[0]["Driver"], "bridge");
    assert_eq!(n[0]["Scope"], "local");
    assert_eq!(n[0]["IPAM"]["Config"][0]["Gateway"], gw.trim());
    assert_eq!(n[0]["Containers"][i["Id"].as_str().unwrap()]["Name"], "web");
    assert_eq!(
        n[0]["Id"], ns["Networks"]["bridge"]["NetworkID"],
        "a network's id is the one its containers show"
    );
    let r = sb
        .run([
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            "bridge",
        ])
        .ok();
    assert!(r.stdout.trim().ends_with("/24"), "{r:#?}");
    sb.run(["rm", "-f", "web"]).ok();

    // network prune: the networks no container (running or stopped) uses
    sb.run(["network", "create", "unused"]).ok();
    sb.run(["network", "create", "kept"]).ok();
    sb.run(["run", "--net", "kept", "--name", "user", "busybox", "true"])
        .ok();
    let r = sb.run(["network", "prune", "-f"]).ok().stdout;
    assert_eq!(r, "Deleted Networks:\nunused\n");
    sb.run(["rm", "user"]).ok();
    let r = sb.run(["network", "prune", "-f"]).ok().stdout;
    assert_eq!(r, "Deleted Networks:\nkept\n");
    let r = sb.run(["network", "ls"]).ok().stdout;
    assert!(
        !r.contains("kept") && !r.contains("unused") && r.contains("bridge"),
        "{r}"
    );
}

#[test]
fn ps_formats_filters_and_counts_as_docker() {
    let env = Env::with_busybox();
    let long = "a-container-with-a-rather-long-name";
    let a = run_d(&env, long, &[], &["sleep", "60"]);
    let b = run_d(&env, "short", &[], &["sleep", "60"]);
    let r = env.run([
        "run", "--net", "none", "--name", "done", "busybox", "sh", "-c", "exit 3",
    ]);
    assert_eq!(r.code, 3);

    // the default table: docker's header, columns aligned past a long name
    let out = env.run(["ps", "-a"]).ok().stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    let header = lines[0];
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let at = header.find("STATUS").unwrap();
    for l in &lines[1..] {
        let status = &l[at..];
        assert!(
            status.starts_with("Up ") || status.starts_with("Exited (3) "),
            "STATUS column misaligned in {l:?}\n{out}"
        );
    }
    assert!(
        out.contains("Up Less than a second") || out.contains("Up 1 second") || out.contains("seconds"),
        "{out}"
    );
    assert!(out.contains("Exited (3) "), "{out}");
    // newest first
    assert!(lines[1].contains("done") && lines[3].contains(long), "{out}");

    // Go templates and tables
    let names = env.run(["ps", "--format", "{{.Names}}"]).ok().stdout;
    assert_eq!(names, format!("short\n{long}\n"));
    let t = env
        .run(["ps", "-a", "--format", "table {{.Names}}\\t{{.Status}}"])
        .ok()
        .stdout;
    let tl: Vec<&str> = t.lines().collect();
    assert!(tl[0].starts_with("NAMES") && tl[0].contains("STATUS"), "{t}");
    let col = tl[0].find("STATUS").unwrap();
    assert_eq!(col, long.len() + 3, "{t}");
    assert!(
        tl.iter().skip(1).all(|l| l.len() > col && !l[col..].starts_with(' ')),
        "{t}"
    );
    let json = env
        .run(["ps", "--format", "{{json .}}", "--filter", "name=short"])
        .ok()
        .stdout;
    let row: Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(row["ID"], &b[..12]);
    assert_eq!(row["Command"], "\"sleep 60\"");

    // filters, -n, -l, -q
    let q = |args: &[&str]| {
        let mut all = vec!["ps", "-q"];
        all.extend_from_slice(args);
        env.run(all).ok().stdout.lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(q(&["--filter", "name=short"]), [&b[..12]]);
    assert_eq!(q(&["--filter", "status=exited"]).len(), 1);
    assert_eq!(q(&["-a", "--filter", "status=running"]).len(), 2);
    assert_eq!(q(&["--filter", "id=", "--filter", &format!("id={}", &a[..6])]).len(), 2);
    assert_eq!(q(&["--filter", &format!("id={}", &a[..6])]), [&a[..12]]);
    assert_eq!(q(&["-a", "--filter", "ancestor=busybox"]).len(), 3);
    assert_eq!(q(&["-a", "--filter", "ancestor=nosuch"]).len(), 0);
    assert_eq!(
        q(&["-a", "--filter", "name=short", "--filter", "status=exited"]).len(),
        0
    );
    assert_eq!(q(&["-n", "2"]).len(), 2);
    assert_eq!(q(&["-l"]).len(), 1);
    env.run(["ps", "--filter", "color=red"])
        .fails_with("invalid filter 'color'");
    let sized = env
        .run(["ps", "-s", "--format", "{{.Names}} {{.Size}}", "--filter", "name=short"])
        .ok()
        .stdout;
    assert!(sized.starts_with("short ") && sized.contains("(virtual "), "{sized}");

    // images the same way
    let im = env.run(["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok().stdout;
    assert_eq!(im.trim(), "busybox:latest");
    let ids = env.run(["images", "-q"]).ok().stdout;
    assert_eq!(ids.trim().len(), 12, "{ids}");
    let none = env.run(["images", "--filter", "dangling=true", "-q"]).ok().stdout;
    assert_eq!(none, "");
    let busy = env.run(["images", "-q", "--filter", "reference=busy*"]).ok().stdout;
    assert_eq!(busy, ids);
    let table = env.run(["images"]).ok().stdout;
    assert!(
        table.starts_with("REPOSITORY   TAG ") && table.contains("IMAGE ID") && table.contains("CREATED"),
        "{table}"
    );
    env.run(["rm", "-f", long, "short", "done"]).ok();
}

/// `inspect -f '{{.State.Pid}}'` as a number (0 when not running).
fn pid_of(env: &Env, name: &str) -> i64 {
    format(env, name, "{{.State.Pid}}").parse().unwrap()
}

#[test]
fn start_restart_rename_of_the_same_container() {
    let env = Env::with_busybox();
    // it writes into its own layer, then exits
    let id = run_d(&env, "again", &[], &["sh", "-c", "echo run >> /runs; sleep 60"]);
    let first = pid_of(&env, "again");
    assert!(first > 1);
    env.run(["stop", "-t", "1", "again"]).ok();
    assert_eq!(format(&env, "again", "{{.State.Status}}"), "exited");
    assert!(!pid_alive(first));

    // start: the same id and name, the same root filesystem (its file kept)
    assert_eq!(env.run(["start", "again"]).ok().stdout, "again\n");
    let second = pid_of(&env, "again");
    assert!(second > 1 && second != first && pid_alive(second));
    let i = inspect(&env, "again");
    assert_eq!(
        (i["Id"].as_str(), i["State"]["Status"].as_str()),
        (Some(id.as_str()), Some("running"))
    );
    let runs = env.run(["exec", "again", "cat", "/runs"]).ok().stdout;
    assert_eq!(runs, "run\nrun\n", "the container's layer was kept across the stop");

    // restart: stopped, then a new process of the same container
    assert_eq!(env.run(["restart", "-t", "1", "again"]).ok().stdout, "again\n");
    let third = pid_of(&env, "again");
    assert!(third > 1 && third != second && pid_alive(third) && !pid_alive(second));
    assert_eq!(
        env.run(["exec", "again", "cat", "/runs"]).ok().stdout,
        "run\nrun\nrun\n"
    );

    // rename: the new name finds it, the old one is free, the exit keeps it
    env.run(["rename", "again", "renamed"]).ok();
    assert_eq!(format(&env, "renamed", "{{.Name}} {{.Id}}"), format!("/renamed {id}"));
    env.run(["inspect", "again"]).fails_with("again");
    let other = run_d(&env, "other", &[], &["sleep", "60"]);
    env.run(["rename", "renamed", "other"]).fails_with("already in use");
    env.run(["kill", "renamed"]).ok();
    wait_until("renamed to exit", 20 * SECOND, || {
        format(&env, "renamed", "{{.State.Status}}") == "exited"
    });
    assert_eq!(format(&env, "renamed", "{{.Name}}"), "/renamed");
    // an exited container starts again after a rename too
    env.run(["start", "renamed"]).ok();
    assert_eq!(format(&env, "renamed", "{{.State.Running}}"), "true");
    env.run(["rm", "-f", "renamed", &other]).ok();
    assert!(!env.data_root.join("containers").join(&id).exists());
}

#[test]
fn start_attach_shows_this_runs_output_and_exits_with_its_code() {
    let env = Env::with_busybox();
    let cmd = "echo out-$(cat /n 2>/dev/null || echo 0); echo err >&2; echo $(( $(cat /n 2>/dev/null || echo 0) + 1 )) > /n; exit 3";
    let r = env.run(["run", "--name", "sa", "--net", "none", "busybox", "sh", "-c", cmd]);
    assert_eq!((r.code, r.stdout.as_str()), (3, "out-0\n"), "{r:#?}");
    // -a: only this run's output (stdout and stderr, as the log keeps them), and its code
    let r = env.run(["start", "-a", "sa"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.stdout, "out-1\nerr\n", "{r:#?}");
    let r = env.run(["start", "--attach", "sa"]);
    assert_eq!((r.code, r.stdout.as_str()), (3, "out-2\nerr\n"), "{r:#?}");
    // without -a: the name, at once
    assert_eq!(env.run(["start", "sa"]).ok().stdout, "sa\n");
    wait_until("sa to exit", 20 * SECOND, || {
        format(&env, "sa", "{{.State.Status}}") == "exited"
    });
    // bad detach keys are refused before anything starts
    // (StartedAt: a start would change it; FinishedAt may still be written by the teardown)
    let started = format(&env, "sa", "{{.State.StartedAt}}");
    env.run(["start", "-a", "--detach-keys", "ctrl-", "sa"])
        .fails_with("ctrl-");
    assert_eq!(format(&env, "sa", "{{.State.StartedAt}}"), started);
    env.run(["start", "-a", "nosuch"]).fails_with("nosuch");
    env.run(["rm", "sa"]).ok();
}

#[test]
fn top_and_stats_show_the_containers_processes() {
    let env = Env::with_busybox();
    run_d(&env, "busy", &[], &["sh", "-c", "sleep 61 & sleep 62; true"]);
    let pid = pid_of(&env, "busy");
    wait_until("both sleeps", 10 * SECOND, || {
        env.run(["top", "busy"]).ok().stdout.contains("sleep 62")
    });
    let top = env.run(["top", "busy"]).ok().stdout;
    let lines: Vec<&str> = top.lines().collect();
    assert!(lines[0].contains("PID") && lines[0].contains("CMD"), "{top}");
    assert_eq!(lines.len(), 4, "sh and two sleeps only: {top}");
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().nth(1) == Some(&pid.to_string())),
        "{top}"
    );
    assert!(top.contains("sleep 61") && top.contains("sleep 62"), "{top}");
    // ps options are passed through
    let top = env.run(["top", "busy", "-o", "pid,comm"]).ok().stdout;
    assert_eq!(
        top.lines().next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(top.lines().filter(|l| l.contains("sleep")).count(), 2, "{top}");

    let stats = env.run(["stats", "--no-stream"]).ok().stdout;
    let header = stats.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{stats}");
    }
    let row = stats.lines().nth(1).unwrap();
    assert!(
        row.contains("busy") && row.contains('%') && row.contains("iB / "),
        "{stats}"
    );
    let pids = env
        .run([
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemUsage}}",
            "busy",
        ])
        .ok()
        .stdout;
    let f: Vec<&str> = pids.split_whitespace().collect();
    assert_eq!((f[0], f[1]), ("busy", "3"), "{pids}");
    assert!(f[2].ends_with("iB") || f[2].ends_with('B'), "{pids}");
    env.run(["top", "nosuch"]).fails_with("nosuch");
    env.run(["rm", "-f", "busy"]).ok();
}

/// Entry names of a tar stream, with `tar -t`.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut child = std::process::Command::new("tar")
        .arg("-t")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(tar).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn cp_both_ways_stays_inside_the_container() {
    let env = Env::with_busybox();
    run_d(
        &env,
        "files",
        &[],
        &["sh", "-c", "mkdir -p /data/sub && echo inside > /data/sub/f && ln -s /etc /data/etc-link && ln -s ../../../../../tmp /data/up && sleep 60"],
    );
    wait_until("the files", 10 * SECOND, || {
        env.run(["exec", "files", "ls", "/data/up"]).code == 0
    });
    let host = env.path().join("host");
    fs::create_dir_all(&host).unwrap();

    // out: a file to a new name, a directory into an existing one
    env.run(["cp", "files:/data/sub/f", host.join("copy").to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(host.join("copy")).unwrap(), "inside\n");
    env.run(["cp", "files:/data", host.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(host.join("data/sub/f")).unwrap(), "inside\n");
    // links come out as links, not what they point to on the host
    assert_eq!(
        fs::read_link(host.join("data/etc-link")).unwrap().to_str(),
        Some("/etc")
    );
    // a path through a link is resolved inside the container: /data/up/.. is not the host's
    env.run(["exec", "files", "sh", "-c", "echo mine > /tmp/marker"]).ok();
    env.run(["cp", "files:/data/up/marker", host.join("m").to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(host.join("m")).unwrap(), "mine\n");
    env.run(["cp", "files:/data/etc-link/hostname", host.join("hn").to_str().unwrap()])
        .ok();
    let container_hostname = env.run(["exec", "files", "cat", "/etc/hostname"]).ok().stdout;
    assert_eq!(fs::read_to_string(host.join("hn")).unwrap(), container_hostname);
    env.run(["cp", "files:/nosuch", host.to_str().unwrap()])
        .fails_with("Could not find the file /nosuch");

    // in: a file, a directory, and through a link that points out of the root
    fs::write(host.join("new.txt"), "from host\n").unwrap();
    env.run(["cp", host.join("new.txt").to_str().unwrap(), "files:/data/"])
        .ok();
    assert_eq!(
        env.run(["exec", "files", "cat", "/data/new.txt"]).ok().stdout,
        "from host\n"
    );
    env.run(["cp", host.join("data/sub").to_str().unwrap(), "files:/data/sub2"])
        .ok();
    assert_eq!(
        env.run(["exec", "files", "cat", "/data/sub2/f"]).ok().stdout,
        "inside\n"
    );
    let before = fs::read_dir("/tmp").unwrap().count();
    env.run(["cp", host.join("new.txt").to_str().unwrap(), "files:/data/up/"])
        .ok();
    assert_eq!(
        env.run(["exec", "files", "cat", "/tmp/new.txt"]).ok().stdout,
        "from host\n"
    );
    assert!(!std::path::Path::new("/tmp/new.txt").exists() || fs::read_dir("/tmp").unwrap().count() == before);

    // tar streams on - both ways
    let out = env.cmd(["cp", "files:/data/sub", "-"]).output().unwrap();
    assert!(out.status.success());
    let names = tar_names(&out.stdout);
    assert!(names.iter().any(|n| n.trim_end_matches('/') == "sub/f"), "{names:?}");
    let r = env.run_with_stdin(&["cp", "-", "files:/tmp"], &out.stdout);
    assert_eq!(r.code, 0, "{r:#?}");
    assert_eq!(env.run(["exec", "files", "cat", "/tmp/sub/f"]).ok().stdout, "inside\n");

    // a directory whose name is a link to the host's /etc in the container:
    // nothing lands outside the container's root, whatever happens to the copy
    let probe = format!("minirun-cp-escape-{}", std::process::id());
    fs::create_dir_all(host.join("evil")).unwrap();
    fs::write(host.join("evil").join(&probe), "x").unwrap();
    env.run(["exec", "files", "ln", "-s", "/etc", "/data/evil"]).ok();
    let r = env.run(["cp", host.join("evil").to_str().unwrap(), "files:/data/"]);
    assert!(r.code == 0 || r.code == 1, "an error, not a signal: {r:#?}");
    assert!(
        !std::path::Path::new("/etc").join(&probe).exists(),
        "cp wrote to the host's /etc"
    );
    let _ = env.run([
        "cp",
        host.join("evil").join(&probe).to_str().unwrap(),
        "files:/data/evil/",
    ]);
    assert!(
        !std::path::Path::new("/etc").join(&probe).exists(),
        "cp wrote to the host's /etc"
    );
    // cp froze the container while it worked, and thawed it
    assert_eq!(format(&env, "files", "{{.State.Status}}"), "running");

    // an exited container: its files are still there (its layer kept)
    env.run(["stop", "-t", "0", "files"]).ok();
    env.run(["cp", "files:/data/new.txt", host.join("after").to_str().unwrap()])
        .ok();
    assert_eq!(fs::read_to_string(host.join("after")).unwrap(), "from host\n");
    env.run(["rm", "files"]).ok();
}

#[test]
fn diff_export_and_commit_of_a_containers_changes() {
    let env = Env::with_busybox();
    let r = env.run([
        "run",
        "--net",
        "none",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "echo new > /added && echo x >> /etc/passwd && rm /bin/vi && mkdir /newdir && echo y > /newdir/f",
    ]);
    assert_eq!(r.code, 0, "{r:#?}");
    let diff = env.run(["diff", "changed"]).ok().stdout;
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /added",
        "C /etc",
        "C /etc/passwd",
        "D /bin/vi",
        "A /newdir",
        "A /newdir/f",
    ] {
        assert!(lines.contains(&want), "{want} missing from diff:\n{diff}");
    }
    assert!(!diff.contains("/proc") && !diff.contains("/etc/hosts"), "{diff}");

    // export: the merged filesystem
    let out = env.cmd(["export", "changed"]).output().unwrap();
    assert!(out.status.success());
    let names = tar_names(&out.stdout);
    let has = |n: &str| names.iter().any(|x| x.trim_end_matches('/') == n);
    assert!(
        has("added") && has("newdir/f") && has("bin/sh") && !has("bin/vi"),
        "{names:?}"
    );
    let file = env.path().join("exp.tar");
    env.run(["export", "-o", file.to_str().unwrap(), "changed"]).ok();
    assert_eq!(fs::read(&file).unwrap().len(), out.stdout.len());

    // commit: a new image whose containers see the changes (the deletion too)
    let r = env
        .run([
            "commit",
            "-m",
            "my change",
            "-c",
            "CMD [\"cat\", \"/added\"]",
            "-c",
            "ENV COLOR=red",
            "changed",
            "mine:v1",
        ])
        .ok();
    let id = r.stdout.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{r:#?}");
    let img: Value = serde_json::from_str(&env.run(["image", "inspect", "mine:v1"]).ok().stdout).unwrap();
    assert_eq!(img[0]["Id"], id.as_str());
    assert_eq!(img[0]["Config"]["Cmd"], serde_json::json!(["cat", "/added"]));
    let base: Value = serde_json::from_str(&env.run(["image", "inspect", "busybox"]).ok().stdout).unwrap();
    assert_eq!(
        img[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        base[0]["RootFS"]["Layers"].as_array().unwrap().len() + 1
    );
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--rm", "--net", "none", "mine:v1"];
        all.extend_from_slice(args);
        env.run(all).ok().stdout
    };
    assert_eq!(run(&[]), "new\n");
    assert_eq!(
        run(&[
            "sh",
            "-c",
            "echo $COLOR; tail -n1 /etc/passwd; cat /newdir/f; test -e /bin/vi || echo gone"
        ]),
        "red\nx\ny\ngone\n"
    );
    let im = env.run(["images", "--format", "{{.Repository}}:{{.Tag}}"]).ok().stdout;
    assert!(im.lines().any(|l| l == "mine:v1"), "{im}");
    env.run(["rm", "changed"]).ok();
}

#[test]
fn events_logs_tail_prunes_and_system_verbs() {
    let env = Env::with_busybox();
    let since = env.run(["version", "--format", "{{.Client.Version}}"]).ok().stdout;
    assert_eq!(since.trim(), env!("CARGO_PKG_VERSION"));
    let r = env.run([
        "run",
        "--net",
        "none",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "seq 1 10; exit 4",
    ]);
    assert_eq!(r.code, 4);
    let id = run_d(&env, "logger", &[], &["sh", "-c", "seq 1 5; sleep 60"]);
    wait_until("the log", 10 * SECOND, || {
        env.run(["logs", "logger"]).ok().stdout == "1\n2\n3\n4\n5\n"
    });
    assert_eq!(env.run(["logs", "--tail", "2", "logger"]).ok().stdout, "4\n5\n");
    assert_eq!(env.run(["logs", "-n", "0", "logger"]).ok().stdout, "");
    assert_eq!(
        env.run(["logs", "--tail", "all", "logger"]).ok().stdout.lines().count(),
        5
    );
    env.run(["rm", "-f", "logger"]).ok();

    // events: what happened, from the local log, filtered and formatted
    let ev = env
        .run([
            "events",
            "--since",
            "10m",
            "--until",
            "0s",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .ok()
        .stdout;
    let lines: Vec<&str> = ev.lines().collect();
    for want in [
        "container create once",
        "container start once",
        "container die once",
        "container create logger",
        "container start logger",
        "container die logger",
        "container destroy logger",
    ] {
        assert!(lines.contains(&want), "{want} missing:\n{ev}");
    }
    let die = env
        .run([
            "events",
            "--since",
            "10m",
            "--until",
            "0s",
            "--filter",
            "event=die",
            "--filter",
            "container=once",
            "--format",
            "{{json .}}",
        ])
        .ok()
        .stdout;
    let v: Value = serde_json::from_str(die.trim()).unwrap();
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "4");
    assert_eq!(v["Actor"]["Attributes"]["image"], "busybox");
    assert_eq!(v["id"].as_str().unwrap().len(), 64);
    let plain = env
        .run([
            "events",
            "--since",
            "10m",
            "--until",
            "0s",
            "--filter",
            &format!("container={id}"),
        ])
        .ok()
        .stdout;
    assert!(
        plain.lines().all(|l| l.contains(" container ") && l.contains(&id)),
        "{plain}"
    );
    // without --until it streams what comes next
    let mut follow = env.spawn(&[
        "events",
        "--filter",
        "event=start",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    run_d(&env, "later", &[], &["true"]);
    std::thread::sleep(Duration::from_millis(1500));
    let _ = follow.kill();
    let out = follow.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "later\n");

    // system df, info
    let df = env.run(["system", "df"]).ok().stdout;
    assert!(df.starts_with("TYPE") && df.contains("RECLAIMABLE"), "{df}");
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.split_whitespace().nth(1) == Some("1")),
        "{df}"
    );
    let info = env
        .run(["info", "--format", "{{.Containers}} {{.Images}} {{.OSType}}"])
        .ok()
        .stdout;
    assert_eq!(info.trim(), "2 1 linux");
    let info = env.run(["info"]).ok().stdout;
    assert!(
        info.contains("Server:") && info.contains(" Containers: 2") && info.contains("Storage Driver: overlay2"),
        "{info}"
    );

    // prunes: stopped containers, then images nothing uses
    run_d(&env, "user", &[], &["sleep", "60"]);
    let r = env.run(["container", "prune", "-f"]).ok().stdout;
    assert!(
        r.starts_with("Deleted Containers:\n") && r.contains("Total reclaimed space: "),
        "{r}"
    );
    assert_eq!(r.lines().filter(|l| l.len() == 64).count(), 2, "once and later: {r}");
    assert_eq!(
        env.run(["ps", "-aq"]).ok().stdout.lines().count(),
        1,
        "the running one stays"
    );
    let r = env.run_with_stdin(&["image", "prune", "-a"], b"n\n");
    assert!(r.stdout.contains("WARNING!"), "{r:#?}");
    assert_eq!(env.run(["images", "-q"]).ok().stdout.lines().count(), 1);
    env.run(["image", "prune", "-a", "-f"]).ok();
    assert_eq!(
        env.run(["images", "-q"]).ok().stdout.lines().count(),
        1,
        "busybox is in use"
    );
    env.run(["rm", "-f", "user"]).ok();
    let r = env.run(["system", "prune", "-a", "-f"]).ok().stdout;
    assert!(
        r.contains("Deleted Images:\nuntagged: busybox:latest\ndeleted: sha256:"),
        "{r}"
    );
    assert_eq!(env.run(["images", "-q"]).ok().stdout, "");
}

#[test]
fn help_reads_like_dockers() {
    let env = Env::new();
    let r = env.run(["run", "--help"]).ok();
    assert!(
        r.stdout
            .trim_start()
            .starts_with("Usage:  minirun run [OPTIONS] IMAGE [COMMAND] [ARG...]"),
        "{r:#?}"
    );
    // docker's flags first, then the global and the runc groups (in the
    // order clap builds them: a verb's own flags are built when it is the
    // one given, after the global ones reach it)
    let heading = |h: &str| {
        r.stdout
            .find(&format!("\n{h}:"))
            .unwrap_or_else(|| panic!("no {h}: {}", r.stdout))
    };
    let headings = [heading("Options"), heading("runc Options"), heading("Global Options")];
    let group_of = |flag: &str| {
        let at = r.stdout.find(flag).unwrap();
        headings.iter().filter(|h| **h < at).max().copied()
    };
    assert!(headings[0] < headings[1] && headings[0] < headings[2], "{}", r.stdout);
    assert_eq!(group_of("--publish <"), Some(headings[0]), "{}", r.stdout);
    assert_eq!(group_of("--pid-file <"), Some(headings[1]), "{}", r.stdout);
    assert_eq!(group_of("--root <"), Some(headings[2]), "{}", r.stdout);
    // -h is help wherever it means nothing else
    let h = env.run(["ps", "-h"]).ok();
    assert!(
        h.stdout.contains("Usage:  minirun ps") && h.stdout.contains("--filter"),
        "{h:#?}"
    );
    // an unknown flag, in docker's words, without a guess
    let r = env.run(["run", "--frobnicate", "busybox"]);
    assert_eq!(r.code, 125);
    assert_eq!(r.stderr, "unknown flag: --frobnicate\nSee 'minirun run --help'.\n");
    let r = env.run(["ps", "--bogus"]);
    assert_eq!(
        (r.code, r.stderr.as_str()),
        (2, "unknown flag: --bogus\nSee 'minirun ps --help'.\n")
    );
}

#[test]
fn logs_with_timestamps_since_and_until() {
    let env = Env::with_busybox();
    run_d(&env, "timed", &[], &["sh", "-c", "echo a; sleep 2; echo b; sleep 60"]);
    wait_until("both lines", 20 * SECOND, || {
        env.run(["logs", "timed"]).ok().stdout == "a\nb\n"
    });
    let t = env.run(["logs", "-t", "timed"]).ok().stdout;
    let stamps: Vec<(f64, &str)> = t
        .lines()
        .map(|l| {
            let (ts, text) = l.split_once(' ').unwrap();
            assert!(ts.ends_with('Z') && ts.len() == 30, "docker's fixed nanoseconds: {ts}");
            let secs = chrono_secs(ts);
            (secs, text)
        })
        .collect();
    assert_eq!(stamps.iter().map(|s| s.1).collect::<Vec<_>>(), ["a", "b"], "{t}");
    let gap = stamps[1].0 - stamps[0].0;
    assert!((1.5..10.0).contains(&gap), "b came 2 s after a, not {gap}: {t}");
    let mid = format!("{:.3}", stamps[0].0 + 1.0);
    assert_eq!(env.run(["logs", "--since", &mid, "timed"]).ok().stdout, "b\n");
    assert_eq!(env.run(["logs", "--until", &mid, "timed"]).ok().stdout, "a\n");
    assert_eq!(
        env.run(["logs", "--since", "10m", "--tail", "1", "timed"]).ok().stdout,
        "b\n"
    );
    assert_eq!(env.run(["logs", "--since", "0s", "timed"]).ok().stdout, "");
    env.run(["rm", "-f", "timed"]).ok();
}

/// Seconds since the epoch of `2026-12-01T11:25:49.123456789Z`.
fn chrono_secs(ts: &str) -> f64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", ts, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
}

#[test]
fn inspect_and_ps_show_the_run_flags() {
    let env = Env::with_busybox();
    run_d(
        &env,
        "flagged",
        &[
            "--label",
            "tier=web",
            "--restart",
            "on-failure:2",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
        ],
        &["sleep", "60"],
    );
    let i = inspect(&env, "flagged");
    assert_eq!(i["Config"]["Labels"]["tier"], "web", "{i:#}");
    assert_eq!(i["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(i["HostConfig"]["RestartPolicy"]["MaximumRetryCount"], 2);
    wait_until("healthy", 30 * SECOND, || {
        format(&env, "flagged", "{{.State.Health.Status}}") == "healthy"
    });
    let ps = env
        .run([
            "ps",
            "--filter",
            "label=tier=web",
            "--format",
            "{{.Names}} {{.Status}} {{.Labels}}",
        ])
        .ok()
        .stdout;
    assert!(
        ps.starts_with("flagged Up ") && ps.contains("(healthy)") && ps.trim_end().ends_with("tier=web"),
        "{ps}"
    );
    assert_eq!(env.run(["ps", "-q", "--filter", "label=tier=db"]).ok().stdout, "");
    env.run(["rm", "-f", "flagged"]).ok();
}
