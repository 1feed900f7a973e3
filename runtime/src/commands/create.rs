//! `create [--bundle DIR] [--pid-file F] [--console-socket S] ID` (runc).

use anyhow::Result;
use libcontainer::oci_spec::runtime::Spec;

use super::{seal_self, Env};
use crate::cli::{BundleOpts, CreateArgs};
use crate::oci::{valid_id, CreateRequest};
use crate::spec;

pub fn run(env: &Env, a: &CreateArgs) -> Result<u8> {
    seal_self()?;
    create_bundle(env, &a.id, &a.bundle)?;
    Ok(0)
}

/// Creates container `id` from a bundle, detached, as runc's create does.
pub fn create_bundle(env: &Env, id: &str, opts: &BundleOpts) -> Result<()> {
    valid_id(id)?;
    let mut spec = spec::load_bundle_spec(&opts.bundle)?;
    spec::prepare_for_create(&mut spec, &opts.bundle, id)?;
    env.state.create(&CreateRequest {
        detach: true,
        ..bundle_request(id, opts, &spec)
    })?;
    Ok(())
}

/// runc's create options of a bundle, for a caller that waits for it.
pub fn bundle_request<'a>(id: &'a str, opts: &'a BundleOpts, spec: &'a Spec) -> CreateRequest<'a> {
    CreateRequest {
        pid_file: opts.runc.pid_file.as_deref(),
        console_socket: opts.runc.console_socket.as_deref(),
        preserve_fds: opts.runc.preserve_fds,
        no_pivot: opts.runc.no_pivot,
        ..CreateRequest::new(id, &opts.bundle, spec)
    }
}
