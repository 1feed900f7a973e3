//! minirun: a daemonless, OCI-compatible container runtime.
//!
//! This file parses the command line and dispatches; each verb lives in
//! `commands/<verb>.rs`. See ARCHITECTURE.md for how one `run` flows
//! through the crates.

mod cli;
mod commands;
mod container;
mod events;
mod hook;
mod imagespec;
mod init;
mod logging;
mod oci;
mod seal;
mod spec;
mod tty;
mod util;
mod wait;

use std::process::ExitCode;

fn main() -> ExitCode {
    // an OCI hook run through minirun (see hook.rs): before anything else
    if let Some(code) = hook::run_if_shim() {
        return code;
    }
    // `--init`: minirun as a container's PID 1 (see init.rs)
    if let Some(code) = init::run_if_init() {
        return code;
    }
    // Rust starts with SIGPIPE ignored; an ignored disposition survives exec,
    // so containers would inherit it (and `minirun ps | head` would panic).
    // SAFETY: restoring a default disposition before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = match cli::parse_docker_like() {
        Ok(cli) => cli,
        Err(e) => return logging::usage_error(e),
    };
    if cli.version {
        print!("{}", logging::version_text());
        return ExitCode::SUCCESS;
    }
    let global = cli.global.clone();
    if let Err(e) = logging::init_logging(&global) {
        eprintln!("minirun: error: {e:#}");
        return ExitCode::from(1);
    }
    let result = commands::dispatch(cli);
    // nf_tables sockets used to delete elements make their last close wait
    // for the kernel; let a child pay that after we are gone
    minirun_net::Firewall::close_cached_after_exit();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logging::report_error(&global, &e);
            ExitCode::from(e.downcast_ref::<commands::ExitCodeError>().map_or(1, |c| c.code))
        }
    }
}
