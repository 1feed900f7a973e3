//! Help and usage as docker prints them: `Usage:  minirun VERB [OPTIONS]
//! ...` first, `-h` wherever the verb has no `-h` of its own, and an unknown
//! flag reported as `unknown flag: --x` (no guess at a similar one).

use clap::{Command, CommandFactory, FromArgMatches};

use super::Cli;

const TEMPLATE: &str = "\nUsage:  {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// Verbs whose `-h` is not help: run/create (`--hostname`), and those
/// passing what follows the container on (top's ps options, exec's command).
const NO_SHORT_HELP: &[&str] = &["top", "exec"];

fn docker_like(cmd: Command) -> Command {
    cmd.help_template(TEMPLATE).mut_subcommands(docker_like)
}

/// The command tree with docker's help conventions.
pub fn command() -> Command {
    docker_like(Cli::command())
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    parse_from(std::env::args_os().collect())
}

/// `-h` is help wherever the verb has no `-h` of its own. A verb's flags
/// are built only when it is the one given (`defer` on [`super::Command`]:
/// building every verb's flags cost each call 278 page faults and about
/// 0.6 ms), so whether it has one is known when the parse fails on it.
fn parse_from(mut args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let e = match command().try_get_matches_from(&args) {
        Ok(m) => return Cli::from_arg_matches(&m),
        Err(e) => e,
    };
    let unknown_h = e.kind() == ErrorKind::UnknownArgument
        && matches!(e.get(ContextKind::InvalidArg), Some(ContextValue::String(s)) if s == "-h");
    let verb = crate::seal::first_verb(args.iter().cloned());
    if !unknown_h || verb.is_some_and(|v| NO_SHORT_HELP.contains(&v.as_str())) {
        return Err(e);
    }
    let Some(at) = args.iter().position(|a| a == "-h") else {
        return Err(e);
    };
    args[at] = "--help".into();
    let m = command().try_get_matches_from(&args)?;
    Cli::from_arg_matches(&m)
}

/// docker's words for an unknown flag, with the verb it was given to.
pub fn unknown_flag(e: &clap::Error, verb: Option<&str>) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return None,
    };
    if !flag.starts_with('-') {
        return None;
    }
    let flag = flag.split('=').next().unwrap_or(&flag).to_string();
    let help = match verb {
        Some(v) => format!("minirun {v} --help"),
        None => "minirun --help".into(),
    };
    let what = if flag.starts_with("--") {
        format!("unknown flag: {flag}")
    } else {
        format!("unknown shorthand flag: '{}' in {flag}", flag.trim_start_matches('-'))
    };
    Some(format!("{what}\nSee '{help}'."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(
            std::iter::once("minirun")
                .chain(args.iter().copied())
                .map(Into::into)
                .collect(),
        )
    }

    #[test]
    fn dash_h_is_help_except_where_it_means_something() {
        let e = try_parse(&["ps", "-h"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(e.to_string().contains("Usage:  minirun ps"), "{e}");
        // run's -h is --hostname
        let e = try_parse(&["run", "-h"]).unwrap_err();
        assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        let e = try_parse(&["network", "create", "-h"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
    }

    #[test]
    fn unknown_flags_in_dockers_words() {
        let e = try_parse(&["run", "--frobnicate", "busybox"]).unwrap_err();
        assert_eq!(
            unknown_flag(&e, Some("run")).unwrap(),
            "unknown flag: --frobnicate\nSee 'minirun run --help'."
        );
    }

    #[test]
    fn run_help_reads_like_dockers() {
        let mut cmd = command();
        cmd.build();
        let help = cmd.find_subcommand_mut("run").unwrap().render_help().to_string();
        assert!(
            help.trim_start()
                .starts_with("Usage:  minirun run [OPTIONS] IMAGE [COMMAND] [ARG...]\n"),
            "{help}"
        );
        let runc = help.find("runc Options:").expect("a runc group");
        let bundle = help.find("-b, --bundle").unwrap();
        let publish = help.find("--publish").unwrap();
        assert!(bundle > runc && publish < runc, "{help}");
    }
}
