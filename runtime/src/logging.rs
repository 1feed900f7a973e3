//! Logging as runc does it: text or JSON (`{"level","msg","time"}`) to
//! `--log`, the one-line error on stderr, usage errors in the JSON log too,
//! and runc's `--version` text.

use std::fs::OpenOptions;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::cli::{GlobalOpts, LogFormat};

/// Prints the error (with its causes) as one line on stderr; with
/// `--log-format json` it also goes to the log file the way runc writes it,
/// which is where containerd's shim looks for it.
pub fn report_error(global: &GlobalOpts, e: &anyhow::Error) {
    let msg = format!("{e:#}");
    eprintln!("minirun: error: {msg}");
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
pub fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(path) = json_log_path(&args) {
        let text = e.to_string();
        let first = text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("invalid arguments");
        let msg = first.trim_start_matches("error: ").to_string();
        log_json_error(&path, &format!("{msg} (arguments: {})", args.join(" ")));
    }
    let verb = crate::seal::first_verb(std::env::args_os());
    match crate::cli::unknown_flag(&e, verb.as_deref()) {
        Some(text) => eprintln!("{text}"),
        None => {
            let _ = e.print();
        }
    }
    // docker's run exits 125 for its own errors, usage ones included
    match verb.as_deref() {
        Some("run") => ExitCode::from(125),
        _ => ExitCode::from(2),
    }
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
pub fn version_text() -> String {
    format!(
        "minirun version {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        libcontainer::oci_spec::runtime::VERSION
    )
}

/// Logs go to `--log` when given, else to stderr; the level is debug with
/// `--debug`, info for a log file, and nothing on stderr otherwise (the
/// one-line error says what went wrong). `MINIRUN_LOG` overrides the filter.
pub fn init_logging(global: &GlobalOpts) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn usage_errors_find_the_json_log_in_either_spelling() {
        let shim = strings(&[
            "--root",
            "/r",
            "--log",
            "/b/log.json",
            "--log-format",
            "json",
            "frobnicate",
            "c",
        ]);
        assert_eq!(json_log_path(&shim), Some("/b/log.json".into()));
        let joined = strings(&["--log=/l", "--log-format=json", "x"]);
        assert_eq!(json_log_path(&joined), Some("/l".into()));
        assert_eq!(
            json_log_path(&strings(&["--log", "/l", "x"])),
            None,
            "text logs get no JSON line"
        );
        assert_eq!(json_log_path(&strings(&["--log-format", "json", "x"])), None);
    }

    #[test]
    fn log_lines_use_runcs_keys_and_logrus_levels() {
        let line = runc_log_line(&tracing::Level::WARN, "cgroup perf_event not supported");
        assert_eq!(line["level"], "warning");
        assert_eq!(line["msg"], "cgroup perf_event not supported");
        let time = line["time"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");
        let mut m = MessageText {
            message: "kill".into(),
            fields: vec!["pid=7".into()],
        };
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
