//! `image inspect|ls|rm`: docker's `image` management verbs; `image
//! inspect` prints docker's shape.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::format::Format;
use super::inspect::{print_inspected, Empty};
use super::Env;
use crate::cli::{ImageCmd, ImageInspectArgs};
use crate::container::Ctx;

pub fn run(env: &Env, cmd: &ImageCmd) -> Result<u8> {
    match cmd {
        ImageCmd::Inspect(a) => inspect(env, a),
        ImageCmd::Ls(a) => super::images::run(env, a),
        ImageCmd::Rm(a) => super::rmi::run(env, a),
        ImageCmd::Prune(a) => super::prune::images(env, a),
    }
}

fn inspect(env: &Env, a: &ImageInspectArgs) -> Result<u8> {
    let ctx = env.ctx();
    let format = a.format.as_deref().map(Format::parse).transpose()?;
    let mut out = Vec::new();
    let mut failed = 0;
    for i in &a.images {
        match inspect_one(&ctx, i) {
            Ok(v) => out.push(v),
            Err(_) => {
                eprintln!("Error: No such image: {i}");
                failed += 1;
            }
        }
    }
    print_inspected(format.as_ref(), &out)?;
    Ok(u8::from(failed > 0))
}

/// An image as docker 20.10's `image inspect` shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageInspect {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub parent: String,
    pub comment: String,
    pub created: String,
    pub container: String,
    pub docker_version: String,
    pub author: String,
    pub config: ImageConfig,
    pub architecture: String,
    pub os: String,
    pub size: u64,
    pub virtual_size: u64,
    #[serde(rename = "RootFS")]
    pub root_fs: RootFs,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub image: String,
    pub volumes: Option<BTreeMap<String, Empty>>,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RootFs {
    #[serde(rename = "Type")]
    pub kind: &'static str,
    pub layers: Vec<String>,
}

/// The image `reference` names, in docker's shape.
pub fn inspect_one(ctx: &Ctx, reference: &str) -> Result<ImageInspect> {
    let store = ctx.store()?;
    let image = store.resolve(reference)?;
    let size = store
        .list()?
        .into_iter()
        .find(|s| s.id == image.id)
        .map(|s| s.size)
        .unwrap_or(0);
    let c = &image.config;
    let cfg = c.config().clone().unwrap_or_default();
    Ok(ImageInspect {
        id: format!("sha256:{}", image.id),
        repo_tags: image.references.clone(),
        repo_digests: Vec::new(),
        parent: String::new(),
        comment: String::new(),
        created: c.created().clone().unwrap_or_default(),
        container: String::new(),
        docker_version: String::new(),
        author: c.author().clone().unwrap_or_default(),
        config: ImageConfig {
            hostname: String::new(),
            domainname: String::new(),
            user: cfg.user().clone().unwrap_or_default(),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: cfg
                .exposed_ports()
                .clone()
                .map(|p| p.into_iter().map(|p| (p, Empty {})).collect()),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            env: cfg.env().clone(),
            cmd: cfg.cmd().clone(),
            image: String::new(),
            volumes: cfg
                .volumes()
                .clone()
                .map(|v| v.into_iter().map(|p| (p, Empty {})).collect()),
            working_dir: cfg.working_dir().clone().unwrap_or_default(),
            entrypoint: cfg.entrypoint().clone(),
            on_build: None,
            labels: cfg.labels().clone().map(|l| l.into_iter().collect()),
            stop_signal: cfg.stop_signal().clone(),
        },
        architecture: c.architecture().to_string(),
        os: c.os().to_string(),
        size,
        virtual_size: size,
        root_fs: RootFs {
            kind: "layers",
            layers: c.rootfs().diff_ids().clone(),
        },
    })
}
