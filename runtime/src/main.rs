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
    // CVE-2019-5736 guard before the parse when the verb will need it (see seal.rs)
    seal::seal_early_for(std::env::args_os());
    let cli = match cli::parse_docker_like() {
        Ok(cli) => cli,
        Err(e) => return logging::usage_error(e),
    };
    // Rust starts with SIGPIPE ignored. A command that only prints gets the
    // default back, so `minirun ps | head` ends quietly instead of panicking.
    // Every other command keeps it ignored: a peer that closes a pipe or a
    // socket (a hook that does not read its state, a child that died) is an
    // error there, never a death halfway through a create or a teardown.
    // Container processes get the default back before exec (oci::seccomp_bpf::
    // ProcessExecutor), children run through std::process::Command too.
    if cli.command.as_ref().is_none_or(cli::Command::only_prints) {
        // SAFETY: restoring a default disposition before any thread exists.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    } else {
        end_like_sigpipe_when_stdout_closes();
    }
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
    // a warm-up child already done is reaped here rather than by init
    oci::reap_migration_warmup();
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

/// `println!` panics when the reader of our output is gone (SIGPIPE being
/// ignored): end the way a default SIGPIPE ends the process, between two
/// steps of the command (as Go's runtime does for writes to stdout and
/// stderr, and so runc), instead of with a panic's backtrace.
fn end_like_sigpipe_when_stdout_closes() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if msg.starts_with("failed printing to std") && msg.contains("(os error 32)") {
            // SAFETY: the default action of SIGPIPE ends the process here.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info)
    }));
}
