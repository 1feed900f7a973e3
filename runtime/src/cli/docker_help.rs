//! Help and usage as docker prints them: `Usage:  minirun VERB [OPTIONS]
//! ...` first, `-h` wherever the verb has no `-h` of its own, and an unknown
//! flag reported as `unknown flag: --x` (no guess at a similar one).

use clap::{Arg, ArgAction, Command, CommandFactory, FromArgMatches};

use super::Cli;

const TEMPLATE: &str = "\nUsage:  {usage}\n\n{about-with-newline}\n{all-args}{after-help}";

/// Verbs whose `-h` is not help: run/create (`--hostname`), and those
/// passing what follows the container on (top's ps options, exec's command).
const NO_SHORT_HELP: &[&str] = &["top", "exec"];

fn docker_like(cmd: Command) -> Command {
    let name = cmd.get_name().to_string();
    let has_h = cmd.get_arguments().any(|a| a.get_short() == Some('h'));
    let mut cmd = cmd.help_template(TEMPLATE).mut_subcommands(docker_like);
    if !has_h && !NO_SHORT_HELP.contains(&name.as_str()) {
        cmd = cmd.arg(
            Arg::new("docker_short_help")
                .short('h')
                .action(ArgAction::Help)
                .help("Print help")
                .hide(true),
        );
    }
    cmd
}

/// The command tree with docker's help conventions.
pub fn command() -> Command {
    docker_like(Cli::command())
}

/// Parses the process's arguments with [`command`].
pub fn parse() -> Result<Cli, clap::Error> {
    let matches = command().try_get_matches()?;
    Cli::from_arg_matches(&matches)
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
        let m = command().try_get_matches_from(std::iter::once("minirun").chain(args.iter().copied()))?;
        Cli::from_arg_matches(&m)
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
