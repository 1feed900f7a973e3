//! `run`: an image (`run [OPTIONS] IMAGE [COMMAND...]`, as docker) or a
//! bundle (`run --bundle DIR ID`, as runc). Every flag is checked here,
//! before anything is made; the container module does the rest.

use anyhow::{bail, Context, Result};
use minirun_net::NetMode;

use super::{seal_self, Env};
use crate::cli::{BundleOpts, RunArgs};
use crate::container::launch::{self, NetRequest};
use crate::container::{run, valid_name, Ctx};
use crate::imagespec::host::{Host, NsMode};
use crate::imagespec::mounts::{self, UserMount};
use crate::imagespec::{self, RunConfig, Volume};
use crate::oci::valid_id;
use crate::{spec, tty};

pub fn run(env: &Env, a: &RunArgs) -> Result<u8> {
    seal_self()?;
    // a container's process joins its cgroup in a few milliseconds
    crate::oci::start_migration_grace_period();
    let ctx = env.ctx();
    match a.bundle_opts() {
        Some(opts) => bundle(env, &ctx, &opts, a),
        None => image(&ctx, a),
    }
}

fn image(ctx: &Ctx, a: &RunArgs) -> Result<u8> {
    if !a.detach {
        tty::check_input_is_terminal(a.interactive, a.tty)?;
    }
    let detach_keys = tty::parse_detach_keys(a.detach_keys.as_deref().unwrap_or(tty::DEFAULT_DETACH_KEYS))?;
    let (image_ref, command) = a.args.split_first().expect("clap requires one argument");
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(imagespec::parse_env_file(f)?);
    }
    for e in &a.env {
        env.extend(imagespec::expand_env(e)?);
    }
    let mut volumes: Vec<Volume> = a.volume.iter().map(|v| v.parse()).collect::<Result<_>>()?;
    let mut tmpfs = a
        .mounts
        .tmpfs
        .iter()
        .map(|t| mounts::parse_tmpfs(t))
        .collect::<Result<Vec<_>>>()?;
    for m in &a.mounts.mount {
        match mounts::parse_mount(m)? {
            UserMount::Bind(v) => volumes.push(v),
            UserMount::Tmpfs(t) => tmpfs.push(t),
        }
    }
    for from in &a.mounts.volumes_from {
        volumes.extend(volumes_from(ctx, from)?);
    }
    let shm_size = a.mounts.shm_size.as_deref().map(mounts::parse_shm_size).transpose()?;
    let security = imagespec::security::Security::parse(&a.security)?;
    if let Some(name) = &a.name {
        valid_name(name)?;
        if ctx.name_taken(name) {
            bail!("the container name \"{name}\" is already in use");
        }
    }
    if let Some(h) = &a.hostname {
        if h.is_empty() || h.len() > 63 || !h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') {
            bail!("invalid hostname \"{h}\"");
        }
    }
    let runc = &a.runc;
    if a.keep || runc.console_socket.is_some() || runc.pid_file.is_some() || runc.preserve_fds != 0 || runc.no_pivot {
        bail!("--keep, --console-socket, --pid-file, --preserve-fds and --no-pivot apply to run --bundle only");
    }
    let mode: NetMode = a.net.first().map(String::as_str).unwrap_or("bridge").parse()?;
    crate::container::connect::check_networks(&a.net)?;
    launch::check_network_exists(ctx, &mode)?;
    for n in a.net.iter().skip(1) {
        launch::check_network_exists(ctx, &n.parse()?)?;
    }
    let host = Host::parse(&a.host, mode == NetMode::Host)?;
    let mut hostname = a.hostname.clone();
    if host.uts == NsMode::Host {
        if hostname.is_some() {
            bail!("conflicting options: hostname and the UTS mode (--uts host)");
        }
        hostname = Some(nix::unistd::gethostname()?.to_string_lossy().into_owned());
    }
    let joins = launch::join_namespaces(ctx, &host)?;
    for alias in &a.network_alias {
        if !matches!(&mode, NetMode::Bridge(n) if n != minirun_net::mode::DEFAULT_NETWORK) {
            bail!("--network-alias {alias}: aliases exist only on user-defined networks, not --net {mode}");
        }
        if alias.is_empty()
            || alias.len() > 63
            || !alias
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            bail!("invalid network alias \"{alias}\": expected 1-63 letters, digits, '-' or '_'");
        }
    }
    if a.docker.ip.is_some() && !matches!(&mode, NetMode::Bridge(n) if n != minirun_net::mode::DEFAULT_NETWORK) {
        bail!("user specified IP address is supported on user defined networks only (--ip with --net {mode})");
    }
    let mac = super::run_flags::mac(&a.docker, &mode)?;
    let mut ports = minirun_net::parse_publish_all(&a.publish)?;
    // issue 15's flags, checked before the image is pulled
    let (spec_flags, mut flags) = super::run_flags::parse(a, Default::default())?;
    let store = ctx.store()?;
    let image = super::pull::for_run(&store, image_ref, a)?;
    flags.healthcheck =
        crate::container::health::config(&a.docker, super::run_flags::image_healthcheck(ctx, &image.id))?;
    if let Some(labels) = image.config.config().as_ref().and_then(|c| c.labels().clone()) {
        for (k, v) in labels {
            flags.labels.entry(k).or_insert(v);
        }
    }
    if a.publish_all {
        let exposed = image
            .config
            .config()
            .as_ref()
            .and_then(|c| c.exposed_ports().clone())
            .unwrap_or_default();
        let mut all = a.publish.clone();
        all.extend(exposed.iter().map(|p| p.to_string()));
        // --expose too
        all.extend(flags.exposed_ports.iter().cloned());
        ports = minirun_net::parse_publish_all(&all)?;
    }
    let join_netns = launch::join_netns(ctx, &mode)?;
    let config = RunConfig {
        command: command.to_vec(),
        entrypoint: a.entrypoint.clone(),
        env,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        hostname,
        volumes,
        tmpfs,
        shm_size,
        host,
        joins,
        tty: a.tty,
        read_only: a.read_only,
        security,
        resources: spec_flags.resources,
        ulimits: spec_flags.ulimits,
        init_dir: if a.docker.init {
            Some(crate::init::prepare(&ctx.data_root)?)
        } else {
            None
        },
    };
    let args = imagespec::process_args(&image.config, &config)?;
    run::image(
        ctx,
        run::ImageRun {
            store,
            image,
            image_ref: image_ref.clone(),
            run: config,
            args,
            name: a.name.clone(),
            net: NetRequest {
                mode,
                ports,
                hostname: None,
                aliases: a.network_alias.clone(),
                join_netns,
                ip: a.docker.ip,
                mac,
                connect: a.net.iter().skip(1).cloned().collect(),
            },
            dns: a.dns.clone(),
            auto_remove: a.rm,
            detach: a.detach,
            interactive: a.interactive,
            detach_keys,
            flags,
        },
    )
}

/// runc run: exits with the container's code, 128+N for signal N; with
/// --net the bundle gets minirun's networking, undone at the end.
fn bundle(env: &Env, ctx: &Ctx, opts: &BundleOpts, a: &RunArgs) -> Result<u8> {
    if format!("{:?}", a.docker) != format!("{:?}", crate::cli::RunFlags::default()) {
        bail!("--memory, --cpus, --restart, --init, --health-*, --label and the other docker run flags apply to images, not to run --bundle (set them in the bundle's config.json)");
    }
    let [id] = a.args.as_slice() else {
        bail!("run --bundle takes exactly one container id, got {:?}", a.args);
    };
    if a.net.len() > 1 {
        bail!("run --bundle takes one --net");
    }
    if a.detach && !a.net.is_empty() {
        bail!("run --bundle --detach --net: a detached bundle has no monitor to tear its network down; use create/start, or run an image with -d");
    }
    if a.detach {
        super::create::create_bundle(env, id, opts)?;
        env.state.start(id)?;
        return Ok(0);
    }
    valid_id(id)?;
    let mut spec = spec::load_bundle_spec(&opts.bundle)?;
    spec::prepare_for_create(&mut spec, &opts.bundle, id)?;
    let net = match a.net.first() {
        Some(net) => {
            let mode: NetMode = net.parse()?;
            launch::check_network_exists(ctx, &mode)?;
            let ports = minirun_net::parse_publish_all(&a.publish)?;
            let join_netns = launch::join_netns(ctx, &mode)?;
            Some(NetRequest {
                mode,
                ports,
                hostname: None,
                aliases: Vec::new(),
                join_netns,
                ip: None,
                mac: None,
                connect: Vec::new(),
            })
        }
        None if !a.publish.is_empty() => bail!("-p with --bundle needs --net bridge"),
        None => None,
    };
    run::bundle(ctx, super::create::bundle_request(id, opts, &spec), net, &a.dns, a.keep)
}

/// `--volumes-from CONTAINER[:ro|rw]`: the volumes (named and bind) of another
/// container, at the same destinations, read-only as there unless `:ro`/`:rw`
/// says otherwise, as docker. A named volume is shared, not copied into again.
fn volumes_from(ctx: &crate::container::Ctx, spec: &str) -> Result<Vec<Volume>> {
    let (name, mode) = match spec.rsplit_once(':') {
        Some((n, m @ ("ro" | "rw"))) => (n, Some(m == "ro")),
        Some((_, m)) => bail!("invalid --volumes-from \"{spec}\": unknown mode \"{m}\" (ro or rw)"),
        None => (spec, None),
    };
    let r = ctx.resolve(name).with_context(|| format!("--volumes-from {name}"))?;
    Ok(r.volumes
        .iter()
        .map(|m| Volume {
            read_only: mode.unwrap_or(m.read_only),
            create_source: false,
            copy: false,
            ..Volume::bind(&m.source, &m.destination)
        })
        .collect())
}
