//! `system prune|df|info`, `info` and `version`, in docker's output shapes
//! (and through `--format` templates).

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;

use super::format::{human_size, Format};
use super::ps_docker::dir_size;
use super::Env;
use crate::cli::{DfArgs, FormatArg, SystemCmd};
use crate::container::Status;

pub fn run(env: &Env, cmd: &SystemCmd) -> Result<u8> {
    match cmd {
        SystemCmd::Prune(a) => super::prune::system(env, a),
        SystemCmd::Df(a) => df(env, a),
        SystemCmd::Info(a) => info(env, a),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DfRow {
    #[serde(rename = "Type")]
    kind: String,
    total_count: usize,
    active: usize,
    size: String,
    reclaimable: String,
}

fn df(env: &Env, a: &DfArgs) -> Result<u8> {
    let ctx = env.ctx();
    let images = ctx.store()?.list()?;
    let containers = ctx.all()?;
    let used: BTreeSet<&str> = containers.iter().map(|r| r.image_id.as_str()).collect();
    let mut seen = BTreeSet::new();
    let (mut total, mut unused, mut count, mut active) = (0u64, 0u64, 0, 0);
    for i in &images {
        if !seen.insert(i.id.clone()) {
            continue;
        }
        count += 1;
        total += i.size;
        if used.contains(i.id.as_str()) {
            active += 1;
        } else {
            unused += i.size;
        }
    }
    let pct = |part: u64, whole: u64| (part * 100).checked_div(whole).unwrap_or(0);
    let (mut c_size, mut c_free, mut running) = (0u64, 0u64, 0);
    for r in &containers {
        let size = dir_size(&ctx.dir(&r.id).join("upper"));
        c_size += size;
        if ctx.status(r) == Status::Running {
            running += 1;
        } else {
            c_free += size;
        }
    }
    let rows = vec![
        DfRow {
            kind: "Images".into(),
            total_count: count,
            active,
            size: human_size(total),
            reclaimable: format!("{} ({}%)", human_size(unused), pct(unused, total)),
        },
        DfRow {
            kind: "Containers".into(),
            total_count: containers.len(),
            active: running,
            size: human_size(c_size),
            reclaimable: format!("{} ({}%)", human_size(c_free), pct(c_free, c_size)),
        },
        DfRow {
            kind: "Local Volumes".into(),
            total_count: 0,
            active: 0,
            size: "0B".into(),
            reclaimable: "0B".into(),
        },
        DfRow {
            kind: "Build Cache".into(),
            total_count: 0,
            active: 0,
            size: "0B".into(),
            reclaimable: "0B".into(),
        },
    ];
    let text = a
        .format
        .as_deref()
        .unwrap_or("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}");
    let headers = [
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ]
    .into_iter()
    .collect();
    super::format::print_rows(&Format::parse(text)?, &headers, &rows)?;
    Ok(0)
}

/// `docker info`'s fields that mean something here.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Info {
    containers: usize,
    containers_running: usize,
    containers_paused: usize,
    containers_stopped: usize,
    images: usize,
    driver: &'static str,
    cgroup_driver: &'static str,
    cgroup_version: &'static str,
    kernel_version: String,
    operating_system: String,
    #[serde(rename = "OSType")]
    os_type: &'static str,
    architecture: String,
    #[serde(rename = "NCPU")]
    ncpu: usize,
    mem_total: u64,
    name: String,
    docker_root_dir: String,
    server_version: &'static str,
    default_runtime: &'static str,
    security_options: Vec<String>,
}

pub fn info(env: &Env, a: &FormatArg) -> Result<u8> {
    let ctx = env.ctx();
    let containers = ctx.all()?;
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    for r in &containers {
        match super::inspect::docker_status(&ctx, r) {
            (_, "paused") => paused += 1,
            (Status::Running, _) => running += 1,
            _ => stopped += 1,
        }
    }
    let images: BTreeSet<String> = ctx.store()?.list()?.into_iter().map(|i| i.id).collect();
    let uts = nix::sys::utsname::uname()?;
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME=").map(|v| v.trim_matches('"').to_string()))
        })
        .unwrap_or_else(|| "Linux".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0)
        * 1024;
    let mut security = vec!["name=seccomp,profile=default".to_string()];
    if v2 {
        security.push("name=cgroupns".into());
    }
    let i = Info {
        containers: containers.len(),
        containers_running: running,
        containers_paused: paused,
        containers_stopped: stopped,
        images: images.len(),
        driver: "overlay2",
        cgroup_driver: if env.global.systemd_cgroup {
            "systemd"
        } else {
            "cgroupfs"
        },
        cgroup_version: if v2 { "2" } else { "1" },
        kernel_version: uts.release().to_string_lossy().into_owned(),
        operating_system: os,
        os_type: "linux",
        architecture: uts.machine().to_string_lossy().into_owned(),
        ncpu: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        mem_total: mem,
        name: uts.nodename().to_string_lossy().into_owned(),
        docker_root_dir: env.global.data_root.display().to_string(),
        server_version: env!("CARGO_PKG_VERSION"),
        default_runtime: "minirun",
        security_options: security,
    };
    if let Some(f) = &a.format {
        println!("{}", Format::parse(f)?.render(&i)?);
        return Ok(0);
    }
    println!("Client:\n Context:    default\n Debug Mode: false\n");
    println!("Server:");
    println!(" Containers: {}", i.containers);
    println!("  Running: {}", i.containers_running);
    println!("  Paused: {}", i.containers_paused);
    println!("  Stopped: {}", i.containers_stopped);
    println!(" Images: {}", i.images);
    println!(" Server Version: {}", i.server_version);
    println!(" Storage Driver: {}", i.driver);
    println!(" Cgroup Driver: {}", i.cgroup_driver);
    println!(" Cgroup Version: {}", i.cgroup_version);
    println!(" Plugins:\n  Network: bridge host none\n  Log: local");
    println!(" Runtimes: minirun\n Default Runtime: minirun");
    println!(" Security Options:");
    for s in &i.security_options {
        println!("  {}", s.replace(",profile=", "\n   Profile: ").replace("name=", ""));
    }
    println!(" Kernel Version: {}", i.kernel_version);
    println!(" Operating System: {}", i.operating_system);
    println!(" OSType: {}", i.os_type);
    println!(" Architecture: {}", i.architecture);
    println!(" CPUs: {}", i.ncpu);
    println!(" Total Memory: {}", binary(i.mem_total));
    println!(" Name: {}", i.name);
    println!(" Docker Root Dir: {}", i.docker_root_dir);
    println!(" Debug Mode: {}", env.global.debug);
    Ok(0)
}

fn binary(bytes: u64) -> String {
    let gib = bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    format!("{gib:.2}GiB")
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Version {
    client: VersionPart,
    server: VersionPart,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct VersionPart {
    version: &'static str,
    #[serde(rename = "ApiVersion")]
    api_version: &'static str,
    os: &'static str,
    arch: &'static str,
    #[serde(rename = "OCIVersion")]
    oci_version: &'static str,
}

pub fn version(a: &FormatArg) -> Result<u8> {
    let part = VersionPart {
        version: env!("CARGO_PKG_VERSION"),
        api_version: "1.41",
        os: "linux",
        arch: std::env::consts::ARCH,
        oci_version: libcontainer::oci_spec::runtime::VERSION,
    };
    let v = Version {
        client: VersionPart { ..part },
        server: VersionPart {
            version: env!("CARGO_PKG_VERSION"),
            api_version: "1.41",
            os: "linux",
            arch: std::env::consts::ARCH,
            oci_version: libcontainer::oci_spec::runtime::VERSION,
        },
    };
    if let Some(f) = &a.format {
        println!("{}", Format::parse(f)?.render(&v)?);
        return Ok(0);
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    println!("Client:");
    println!(" Version:           {}", v.client.version);
    println!(" API version:       {}", v.client.api_version);
    println!(" OS/Arch:           linux/{arch}");
    println!(" Context:           default");
    println!();
    println!("Server:");
    println!(" Engine:");
    println!("  Version:          {}", v.server.version);
    println!("  API version:      {} (minimum version 1.12)", v.server.api_version);
    println!("  OS/Arch:          linux/{arch}");
    println!(" minirun:");
    println!("  Version:          {}", v.server.version);
    println!("  OCI spec:         {}", v.server.oci_version);
    Ok(0)
}
