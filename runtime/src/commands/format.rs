//! `--format` as docker reads it: Go template syntax (through `gotmpl`) with
//! docker's extra functions (json, join, split, upper, lower, title, pad,
//! truncate, table), `table ` for aligned columns under a header, and the
//! relative times docker prints ("Up 3 minutes", "2 hours ago").

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use gotmpl::{Template, Value};
use serde::Serialize;

/// A parsed `--format`: a Go template, and whether it asked for a table.
pub struct Format {
    template: Template,
    /// `table ...`: cells split at tabs, aligned, under a header row.
    pub table: bool,
}

impl Format {
    /// Parses `text` as docker does: a leading `table ` asks for a table; the
    /// escapes `\t` and `\n` typed in a shell become a tab and a newline.
    pub fn parse(text: &str) -> Result<Format> {
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with(' ') => (true, rest.trim()),
            _ => (false, text),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format {
            template: parse_template(&body)?,
            table,
        })
    }

    /// The template rendered on `data`.
    pub fn render<T: Serialize + ?Sized>(&self, data: &T) -> Result<String> {
        let value = gotmpl::to_value(data).map_err(|e| anyhow!("{e}"))?;
        self.template
            .execute_to_string(&value)
            .map_err(|e| anyhow!("template: {e}"))
    }
}

/// Parses a Go template with docker's functions registered.
pub fn parse_template(text: &str) -> Result<Template> {
    let t = Template::new("")
        .func("json", |args| {
            let v = args.first().map(to_json).unwrap_or(serde_json::Value::Null);
            Ok(Value::from(serde_json::to_string(&v).unwrap_or_default()))
        })
        .func("join", |args| {
            let sep = args.get(1).map(text_of).unwrap_or_default();
            let items: Vec<String> = match args.first() {
                Some(Value::List(l)) => l.iter().map(text_of).collect(),
                Some(v) => vec![text_of(v)],
                None => Vec::new(),
            };
            Ok(Value::from(items.join(&sep)))
        })
        .func("split", |args| {
            let s = args.first().map(text_of).unwrap_or_default();
            let sep = args.get(1).map(text_of).unwrap_or_default();
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::from(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(Value::from).collect()
            };
            Ok(Value::from(parts))
        })
        .func("upper", |args| {
            Ok(Value::from(
                args.first().map(text_of).unwrap_or_default().to_uppercase(),
            ))
        })
        .func("lower", |args| {
            Ok(Value::from(
                args.first().map(text_of).unwrap_or_default().to_lowercase(),
            ))
        })
        .func("title", |args| {
            Ok(Value::from(title(&args.first().map(text_of).unwrap_or_default())))
        })
        .func("pad", |args| {
            let s = args.first().map(text_of).unwrap_or_default();
            let n = |i: usize| args.get(i).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            Ok(Value::from(format!("{}{s}{}", " ".repeat(n(1)), " ".repeat(n(2)))))
        })
        .func("truncate", |args| {
            let s = args.first().map(text_of).unwrap_or_default();
            let n = args.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            Ok(Value::from(s.chars().take(n).collect::<String>()))
        })
        // `table` is read before the template is parsed; as a function it
        // passes its argument through.
        .func("table", |args| Ok(args.first().cloned().unwrap_or(Value::Nil)));
    t.parse(text).map_err(|e| anyhow!("template parsing error: {e}"))
}

/// What a value prints as inside a template (strings bare).
fn text_of(v: &Value) -> String {
    match v {
        Value::Nil => String::new(),
        v => v.to_string(),
    }
}

/// Go's deprecated strings.Title: every word's first letter upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// A template value back as JSON (for `json`).
fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Nil => serde_json::Value::Null,
        Value::Bool(b) => (*b).into(),
        Value::Int(n) => (*n).into(),
        Value::Uint(n) => (*n).into(),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into),
        Value::String(s) => s.to_string().into(),
        Value::List(l) => l.iter().map(to_json).collect(),
        Value::Map(m) => m
            .iter()
            .map(|(k, v)| (k.to_string(), to_json(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        _ => serde_json::Value::Null,
    }
}

/// Renders `rows` with `format`: as a table (header from `headers`, the
/// placeholders' column titles, cells aligned as docker's tabwriter does) or
/// one rendered line per row.
pub fn print_rows<T: Serialize>(format: &Format, headers: &BTreeMap<&str, &str>, rows: &[T]) -> Result<()> {
    let mut lines = Vec::new();
    if format.table {
        let header: BTreeMap<Arc<str>, Value> = headers.iter().map(|(k, v)| (Arc::from(*k), Value::from(*v))).collect();
        lines.push(
            format
                .template
                .execute_to_string(&Value::from(header))
                .map_err(|e| anyhow!("template: {e}"))?,
        );
    }
    for r in rows {
        lines.push(format.render(r)?);
    }
    if format.table {
        print!("{}", align(&lines.join("\n")));
        println!();
    } else {
        for l in lines {
            println!("{l}");
        }
    }
    Ok(())
}

/// Go's tabwriter as docker sets it (minwidth 10, padding 3): every
/// tab-terminated cell padded to its column's width; the last cell of a line
/// is left as it is.
pub fn align(text: &str) -> String {
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for r in &rows {
        for (i, c) in r.iter().enumerate().take(r.len().saturating_sub(1)) {
            let w = (c.chars().count() + 3).max(10);
            if widths.len() <= i {
                widths.push(w);
            } else {
                widths[i] = widths[i].max(w);
            }
        }
    }
    let mut out = Vec::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.push_str(&" ".repeat(widths[i] - c.chars().count()));
            }
        }
        out.push(line.trim_end().to_string());
    }
    out.join("\n")
}

/// Seconds as docker's go-units HumanDuration: "Less than a second", "About
/// a minute", "3 minutes", "About an hour", "2 hours", "3 days", "2 weeks",
/// "3 months", "2 years".
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    let hours = (s as f64 / 3600.0 + 0.5) as i64;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours / 24 / 365)
    }
}

/// Seconds since an RFC 3339 time (None if it does not parse).
pub fn seconds_since(t: &str) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(t).ok()?;
    Some((chrono::Utc::now() - t.with_timezone(&chrono::Utc)).num_seconds())
}

/// "3 minutes ago" from an RFC 3339 time, as docker's CREATED columns.
pub fn ago(t: &str) -> String {
    seconds_since(t)
        .map(|s| format!("{} ago", human_duration(s)))
        .unwrap_or_default()
}

/// Docker's size: 1000-based units, 3 significant digits ("4.26MB", "999B").
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    // %.4g, as go-units: at most four significant digits
    let digits = if v >= 1000.0 {
        0
    } else if v >= 100.0 {
        1
    } else if v >= 10.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Data {
        name: String,
        list: Vec<String>,
        map: BTreeMap<String, String>,
    }

    fn data() -> Data {
        Data {
            name: "web".into(),
            list: vec!["a".into(), "b".into()],
            map: [("k".to_string(), "v".to_string())].into_iter().collect(),
        }
    }

    #[test]
    fn docker_functions() {
        let r = |t: &str| Format::parse(t).unwrap().render(&data()).unwrap();
        assert_eq!(r("{{.Name}}"), "web");
        assert_eq!(r("{{upper .Name}} {{title .Name}}"), "WEB Web");
        assert_eq!(r("{{join .List \",\"}}"), "a,b");
        assert_eq!(r("{{json .Map}}"), r#"{"k":"v"}"#);
        assert_eq!(r("{{json .List}}"), r#"["a","b"]"#);
        assert_eq!(r("{{index .Map \"k\"}}"), "v");
        assert_eq!(r("{{range .List}}[{{.}}]{{end}}"), "[a][b]");
        assert_eq!(r("{{range $k, $v := .Map}}{{$k}}={{$v}}{{end}}"), "k=v");
        assert_eq!(r("{{len (split \"a:b:c\" \":\")}}"), "3");
        assert_eq!(r("a\\tb"), "a\tb");
    }

    #[test]
    fn tables_align_as_tabwriter() {
        assert_eq!(
            align("A\tB\tC\nlonger-name\tx\ty"),
            "A             B         C\nlonger-name   x         y"
        );
    }

    #[test]
    fn durations_as_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(45), "45 seconds");
        assert_eq!(human_duration(90), "About a minute");
        assert_eq!(human_duration(3 * 60 + 5), "3 minutes");
        assert_eq!(human_duration(3600 + 60), "About an hour");
        assert_eq!(human_duration(5 * 3600), "5 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_500), "1.5kB");
        assert_eq!(human_size(4_260_000), "4.26MB");
    }
}
