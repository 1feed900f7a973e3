//! minirun: a daemonless, OCI-compatible container runtime.

mod cli;
mod containers;
mod imagespec;
mod networks;
mod lifecycle;
mod seal;
mod spec;
mod tty;
mod wait;

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{BundleOpts, Cli, Command, GlobalOpts, ListFormat, LogFormat};
use lifecycle::{CreateRequest, StateRoot};

fn main() -> ExitCode {
    // Rust starts with SIGPIPE ignored; an ignored disposition survives exec,
    // so containers would inherit it (and `minirun ps | head` would panic).
    // SAFETY: restoring a default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    if cli.version {
        print!("{}", version_text());
        return ExitCode::SUCCESS;
    }
    let global = cli.global.clone();
    if let Err(e) = init_logging(&global) {
        eprintln!("minirun: {e:#}");
        return ExitCode::from(1);
    }
    let result = dispatch(cli);
    // nf_tables sockets used to delete elements make their last close wait
    // for the kernel; let a child pay that after we are gone
    minirun_net::Firewall::close_cached_after_exit();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            report_error(&global, &e);
            ExitCode::from(1)
        }
    }
}

/// Prints the error (with its causes) as one line on stderr; with
/// `--log-format json` it also goes to the log file the way runc writes it,
/// which is where containerd's shim looks for it.
fn report_error(global: &GlobalOpts, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    eprintln!("minirun: {msg}");
    if let (Some(path), LogFormat::Json) = (&global.log, global.log_format) {
        log_json_error(path, &msg);
    }
}

/// Appends runc's error line, `{"level":"error","msg":…,"time":RFC3339}`:
/// containerd shows the last such line to its user.
fn log_json_error(path: &std::path::Path, msg: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{}", runc_log_line(&tracing::Level::ERROR, msg));
    }
}

/// A command line clap refused (an unknown verb or flag an engine passed):
/// clap's message on stderr as usual, and, when the arguments asked for a
/// JSON log, the same error there, so the engine can show it.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(path) = json_log_path(&args) {
        let text = e.to_string();
        let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
        let msg = first.trim_start_matches("error: ").to_string();
        log_json_error(&path, &format!("{msg} (arguments: {})", args.join(" ")));
    }
    let _ = e.print();
    ExitCode::from(2)
}

/// `--log FILE` when the raw arguments also say `--log-format json`.
fn json_log_path(args: &[String]) -> Option<std::path::PathBuf> {
    let mut log = None;
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--log" => log = it.next().cloned(),
            "--log-format" => json = it.next().is_some_and(|f| f == "json"),
            _ if a.starts_with("--log=") => log = Some(a["--log=".len()..].to_string()),
            _ if a.starts_with("--log-format=") => json = &a["--log-format=".len()..] == "json",
            _ => {}
        }
    }
    log.filter(|_| json).map(Into::into)
}

/// `--version` as runc prints it; engines show it (podman info) or take the
/// first line.
fn version_text() -> String {
    format!(
        "minirun version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        libcontainer::oci_spec::runtime::VERSION
    )
}

/// Logs go to `--log` when given, else to stderr; the level is debug with
/// `--debug`, info for a log file, and nothing on stderr otherwise (the
/// one-line error says what went wrong). `MINIRUN_LOG` overrides the filter.
fn init_logging(global: &GlobalOpts) -> Result<()> {
    let default = match (global.debug, global.log.is_some()) {
        (true, _) => "debug",
        (false, true) => "info",
        (false, false) => "off",
    };
    let filter = EnvFilter::try_from_env("MINIRUN_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match &global.log {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open log file {}", path.display()))?;
            let builder = builder.with_writer(std::sync::Mutex::new(file)).with_ansi(false);
            match global.log_format {
                LogFormat::Json => builder.event_format(RuncJson).init(),
                LogFormat::Text => builder.init(),
            }
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}

/// runc's JSON log line for every event: `{"level","msg","time"}`, with
/// logrus's level names, the event's other fields appended to the message.
struct RuncJson;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for RuncJson
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut msg = MessageText::default();
        event.record(&mut msg);
        writeln!(writer, "{}", runc_log_line(event.metadata().level(), &msg.text()))
    }
}

fn runc_log_line(level: &tracing::Level, msg: &str) -> serde_json::Value {
    let level = match *level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warning",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG | tracing::Level::TRACE => "debug",
    };
    serde_json::json!({
        "level": level,
        "msg": msg,
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    })
}

/// An event's message followed by its other fields as `key=value`.
#[derive(Default)]
struct MessageText {
    message: String,
    fields: Vec<String>,
}

impl MessageText {
    fn text(&self) -> String {
        let mut out = self.message.clone();
        for f in &self.fields {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(f);
        }
        out
    }
}

impl tracing::field::Visit for MessageText {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields.push(format!("{}={value:?}", field.name()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields.push(format!("{}={value:?}", field.name()));
        }
    }
}

/// Guard against CVE-2019-5736 before a container can see this process
/// (see [`seal`]).
fn seal_self() -> Result<()> {
    seal::ensure_sealed().context("cannot re-execute minirun from a read-only or sealed copy")
}

fn dispatch(cli: Cli) -> Result<u8> {
    let g = cli.global;
    let state = StateRoot::open(&g.root)?.with_systemd(g.systemd_cgroup);
    let Some(command) = cli.command else {
        bail!("no command given; see minirun --help");
    };
    match command {
        Command::Create(a) => {
            seal_self()?;
            create_bundle(&state, &a.id, &a.bundle)?;
            Ok(0)
        }
        Command::Start(a) => {
            state.start(&a.id)?;
            Ok(0)
        }
        Command::State(a) => {
            println!("{}", serde_json::to_string_pretty(&state.state(&a.id)?)?);
            Ok(0)
        }
        Command::Kill(a) => {
            state.kill(&a.id, &a.signal, a.all)?;
            Ok(0)
        }
        Command::Delete(a) => {
            state.delete(&a.id, a.force)?;
            Ok(0)
        }
        Command::Pause(a) => {
            state.pause(&a.id)?;
            Ok(0)
        }
        Command::Resume(a) => {
            state.resume(&a.id)?;
            Ok(0)
        }
        Command::Update(a) => {
            state.update(&a.id, &read_resources(&a.resources)?)?;
            Ok(0)
        }
        Command::List(a) => {
            if a.sealed {
                seal_self()?;
            }
            list(&state, a.format, a.quiet)?;
            Ok(0)
        }
        Command::Run(a) => {
            let Some(opts) = a.bundle_opts() else {
                seal_self()?;
                return containers::run(&ctx(state, &g), &a);
            };
            let [id] = a.args.as_slice() else {
                bail!("run --bundle takes exactly one container id, got {:?}", a.args);
            };
            seal_self()?;
            if a.detach && a.net.is_some() {
                bail!("run --bundle --detach --net: a detached bundle has no monitor to tear its network down; use create/start, or run an image with -d");
            }
            let ctx = ctx(state, &g);
            run_bundle(&ctx, id, &opts, &a)
        }
        Command::Load(a) => {
            let store = ctx(state, &g).store()?;
            for r in store.load(&a.input).map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("Loaded image: {r}");
            }
            Ok(0)
        }
        Command::Images => {
            let store = ctx(state, &g).store()?;
            println!("{:<32} {:<16} {:<14} {:>10}", "REPOSITORY", "TAG", "IMAGE ID", "SIZE");
            for i in store.list().map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("{:<32} {:<16} {:<14} {:>10}", i.repository, i.tag, &i.id[..12], human_size(i.size));
            }
            Ok(0)
        }
        Command::Rmi(a) => {
            let ctx = ctx(state, &g);
            let store = ctx.store()?;
            for r in &a.images {
                let image = store.resolve(r).map_err(|e| anyhow::anyhow!("{e}"))?;
                let users: Vec<String> =
                    ctx.all()?.into_iter().filter(|m| m.image_id == image.id).map(|m| m.name).collect();
                if !users.is_empty() {
                    bail!("image \"{r}\" is used by container(s) {}: remove them first", users.join(", "));
                }
                for line in store.remove(r).map_err(|e| anyhow::anyhow!("{e}"))? {
                    println!("{line}");
                }
            }
            Ok(0)
        }
        Command::Ps(a) => {
            match &a.id {
                Some(id) => runc_ps(&state, id, a.format)?,
                None => containers::ps(&ctx(state, &g), a.all, a.quiet)?,
            }
            Ok(0)
        }
        Command::Features => {
            println!("{}", serde_json::to_string_pretty(&features())?);
            Ok(0)
        }
        Command::Logs(a) => {
            containers::logs(&ctx(state, &g), &a.container, a.follow)?;
            Ok(0)
        }
        Command::Exec(a) => containers::exec(&ctx(state, &g), &a),
        Command::Stop(a) => {
            let ctx = ctx(state, &g);
            for c in &a.containers {
                containers::stop(&ctx, c, a.time)?;
                println!("{c}");
            }
            Ok(0)
        }
        Command::Rm(a) => {
            let ctx = ctx(state, &g);
            for c in &a.containers {
                containers::rm(&ctx, c, a.force)?;
                println!("{c}");
            }
            Ok(0)
        }
        Command::Inspect(a) => {
            let ctx = ctx(state, &g);
            let mut out = Vec::new();
            for c in &a.containers {
                out.push(containers::inspect(&ctx, &ctx.resolve(c)?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(0)
        }
        Command::Port(a) => {
            let ctx = ctx(state, &g);
            for c in &a.containers {
                let meta = ctx.resolve(c)?;
                if let Some(att) = minirun_net::attach::load_attachment(&g.root, &meta.id).ok().flatten() {
                    for p in &att.ports {
                        let ip = p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into());
                        println!("{}/{} -> {ip}:{}", p.container_port, p.proto, p.host_port);
                    }
                }
            }
            Ok(0)
        }
        Command::Gc => {
            for id in containers::gc(&ctx(state, &g))? {
                println!("{id}");
            }
            Ok(0)
        }
        Command::Network(cmd) => networks::run(&ctx(state, &g), cmd),
    }
}

/// runc update --resources: OCI LinuxResources JSON from a file or stdin.
fn read_resources(from: &std::path::Path) -> Result<libcontainer::oci_spec::runtime::LinuxResources> {
    let text = if from == std::path::Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("cannot read resources from stdin")?;
        buf
    } else {
        std::fs::read(from).with_context(|| format!("cannot read resources from {}", from.display()))?
    };
    serde_json::from_slice(&text).with_context(|| format!("invalid resources JSON in {}", from.display()))
}

fn ctx(state: StateRoot, g: &GlobalOpts) -> containers::Ctx {
    let root = state.path().to_path_buf();
    containers::Ctx::new(state, root, g.data_root.clone())
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes}B") } else { format!("{v:.1}{}", UNITS[unit]) }
}

fn create_bundle(state: &StateRoot, id: &str, opts: &BundleOpts) -> Result<()> {
    lifecycle::valid_id(id)?;
    let mut spec = spec::load_bundle_spec(&opts.bundle)?;
    spec::prepare_for_create(&mut spec, &opts.bundle, id)?;
    state.create(&create_request(id, opts, &spec, true))?;
    Ok(())
}

/// runc run: create, start, wait with signals forwarded, then delete
/// (unless --keep); exits with the container's code, 128+N for signal N.
/// With --net, the bundle gets minirun's networking, undone at the end.
fn run_bundle(ctx: &containers::Ctx, id: &str, opts: &BundleOpts, a: &cli::RunArgs) -> Result<u8> {
    let state = &ctx.state;
    lifecycle::valid_id(id)?;
    let mut spec = spec::load_bundle_spec(&opts.bundle)?;
    spec::prepare_for_create(&mut spec, &opts.bundle, id)?;
    if a.detach {
        let create = create_request(id, opts, &spec, true);
        state.create(&create)?;
        state.start(id)?;
        return Ok(0);
    }
    if state.exists(id) {
        bail!("container \"{id}\" already exists");
    }
    let _hold = match &a.net {
        Some(_) => Some(ctx.hold(id)?),
        None => None,
    };
    let attachment = match &a.net {
        Some(net) => Some(containers::attach_bundle(ctx, id, net, &a.publish)?),
        None if !a.publish.is_empty() => bail!("-p with --bundle needs --net bridge"),
        None => None,
    };
    let detach_net = || {
        if let Some(att) = &attachment {
            if let Err(e) = minirun_net::detach(att) {
                tracing::warn!("detach network of {id}: {:#}", anyhow::Error::from(e));
            }
        }
    };
    if let Some(att) = &attachment {
        spec = containers::set_netns(spec, att.netns_path.as_deref());
    }
    let container = match state.create(&create_request(id, opts, &spec, false)) {
        Ok(c) => c,
        Err(e) => {
            detach_net();
            return Err(e);
        }
    };
    let pid = container.pid().context("created container has no pid")?;
    let dns_server = match containers::bind_dns(ctx, id, &a.dns) {
        Ok(s) => s,
        Err(e) => {
            let _ = state.delete(id, true);
            detach_net();
            return Err(e);
        }
    };
    let forwarder = wait::SignalForwarder::start(pid)?;
    let outcome = state.start(id).map(|_| {
        if let Some(s) = dns_server {
            s.spawn();
        }
        wait::wait_exit(pid)
    });
    forwarder.stop();
    let code = match outcome {
        Ok(code) => code,
        Err(e) => Err(e),
    };
    if code.is_err() || !a.keep {
        let _ = state.delete(id, true);
    }
    detach_net();
    code
}

fn create_request<'a>(id: &'a str, opts: &'a BundleOpts, spec: &'a libcontainer::oci_spec::runtime::Spec, detach: bool) -> CreateRequest<'a> {
    CreateRequest {
        id,
        bundle: &opts.bundle,
        spec,
        pid_file: opts.runc.pid_file.as_deref(),
        console_socket: opts.runc.console_socket.as_deref(),
        preserve_fds: opts.runc.preserve_fds,
        no_pivot: opts.runc.no_pivot,
        detach,
    }
}

/// runc ps: the pids in the container's cgroup.
fn runc_ps(state: &StateRoot, id: &str, format: ListFormat) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let c = state.load(id)?;
    let cgroup = c.spec().map_err(|e| anyhow::anyhow!("{e}"))?.cgroup_path;
    let manager = lifecycle::cgroup_manager(c.id(), cgroup, c.systemd())
        .map_err(|e| anyhow::anyhow!("cannot open the cgroup of \"{id}\": {e}"))?;
    let pids: Vec<i32> = manager
        .get_all_pids()
        .map_err(|e| anyhow::anyhow!("cannot list the processes of \"{id}\": {e}"))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&pids)?),
        ListFormat::Table => {
            println!("PID");
            for p in pids {
                println!("{p}");
            }
        }
    }
    Ok(())
}

/// runc features: what an engine may rely on.
fn features() -> serde_json::Value {
    serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": libcontainer::oci_spec::runtime::VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "nodev", "noexec", "private", "rprivate", "shared", "rshared", "slave", "rslave", "relatime", "strictatime"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps::all().iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false},
            "seccomp": {"enabled": true},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.opencontainers.runtime-spec.features.minirun.networking": "bridge,host,none,container"}
    })
}

fn list(state: &StateRoot, format: ListFormat, quiet: bool) -> Result<()> {
    let all = state.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => println!("{}", serde_json::to_string(&all)?),
        ListFormat::Table => {
            println!("{:<20} {:<8} {:<10} {:<40} {:<32} OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
            for s in &all {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                    s.id,
                    s.pid,
                    s.status,
                    s.bundle.display(),
                    s.created.as_deref().unwrap_or(""),
                    s.owner
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn usage_errors_find_the_json_log_in_either_spelling() {
        let shim = strings(&["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "frobnicate", "c"]);
        assert_eq!(json_log_path(&shim), Some("/b/log.json".into()));
        let joined = strings(&["--log=/l", "--log-format=json", "x"]);
        assert_eq!(json_log_path(&joined), Some("/l".into()));
        assert_eq!(json_log_path(&strings(&["--log", "/l", "x"])), None, "text logs get no JSON line");
        assert_eq!(json_log_path(&strings(&["--log-format", "json", "x"])), None);
    }

    #[test]
    fn log_lines_use_runcs_keys_and_logrus_levels() {
        let line = runc_log_line(&tracing::Level::WARN, "cgroup perf_event not supported");
        assert_eq!(line["level"], "warning");
        assert_eq!(line["msg"], "cgroup perf_event not supported");
        let time = line["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        let mut m = MessageText { message: "kill".into(), fields: vec!["pid=7".into()] };
        assert_eq!(m.text(), "kill pid=7");
        m.message.clear();
        assert_eq!(m.text(), "pid=7");
    }

    #[test]
    fn version_reads_like_runcs() {
        let text = version_text();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("minirun version "), "{text}");
        assert!(lines[1].starts_with("spec: 1."), "{text}");
    }
}
