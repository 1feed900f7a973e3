//! `commit [-a AUTHOR] [-m MESSAGE] [-c CHANGE]... NAME [REPO[:TAG]]`: a new
//! image, the container's image with its changes (its upper directory, with
//! whiteouts for deletions) as one more layer and its config (command,
//! environment, working directory, user) as the image's, as docker.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::Env;
use crate::cli::CommitArgs;

pub fn run(env: &Env, a: &CommitArgs) -> Result<u8> {
    let ctx = env.ctx();
    let r = super::inspect::container(&ctx, &a.container)?;
    let store = ctx.store()?;
    let base = store
        .resolve(&r.image_id)
        .with_context(|| format!("the image of container {} is gone", a.container))?;
    let dir = ctx.dir(&r.id);
    let upper = dir.join("upper");
    if !upper.is_dir() {
        bail!("container {} has no layer of its own to commit", a.container);
    }
    let changes = a.change.iter().map(|c| parse_change(c)).collect::<Result<Vec<_>>>()?;
    let reference = a.reference.as_deref().map(|r| {
        if r.contains(':') && !r.rsplit(':').next().unwrap_or("").contains('/') {
            r.to_string()
        } else {
            format!("{r}:latest")
        }
    });
    let summary = r.config.clone();
    let created_by = r.args.join(" ");
    let id = store.commit_container(&base, &upper, &dir, reference.as_deref(), |config| {
        let c = &mut config["config"];
        if !c.is_object() {
            *c = json!({});
        }
        if let Some(s) = &summary {
            c["Cmd"] = json!(s.cmd);
            c["Entrypoint"] = if s.entrypoint.is_empty() {
                Value::Null
            } else {
                json!(s.entrypoint)
            };
            c["Env"] = json!(s.env);
            c["WorkingDir"] = json!(s.working_dir);
            c["User"] = json!(s.user);
        }
        for (key, value) in changes {
            match key.as_str() {
                "Env" => merge_env(c, value),
                "Labels" | "ExposedPorts" | "Volumes" => {
                    if !c[&key].is_object() {
                        c[&key] = json!({});
                    }
                    if let (Some(have), Value::Object(add)) = (c[&key].as_object_mut(), value) {
                        have.extend(add);
                    }
                }
                _ => c[&key] = value,
            }
        }
        let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        config["created"] = json!(created);
        if let Some(author) = &a.author {
            config["author"] = json!(author);
        }
        if !config["history"].is_array() {
            config["history"] = json!([]);
        }
        let mut h = json!({"created": created, "created_by": created_by});
        if let Some(m) = &a.message {
            h["comment"] = json!(m);
        }
        if let Some(list) = config["history"].as_array_mut() {
            list.push(h);
        }
    })?;
    println!("sha256:{id}");
    Ok(0)
}

/// A Dockerfile instruction of `--change` as (Config key, value).
fn parse_change(text: &str) -> Result<(String, Value)> {
    let (word, rest) = text.trim().split_once(char::is_whitespace).unwrap_or((text.trim(), ""));
    let rest = rest.trim();
    let list = || -> Value {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => json!(v),
            Err(_) => json!(["/bin/sh", "-c", rest]),
        }
    };
    let pairs = || -> Value {
        let mut map = serde_json::Map::new();
        for p in rest.split_whitespace() {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            map.insert(k.to_string(), json!(v.trim_matches('"')));
        }
        Value::Object(map)
    };
    Ok(match word.to_ascii_uppercase().as_str() {
        "CMD" => ("Cmd".into(), list()),
        "ENTRYPOINT" => ("Entrypoint".into(), list()),
        "WORKDIR" => ("WorkingDir".into(), json!(rest)),
        "USER" => ("User".into(), json!(rest)),
        "STOPSIGNAL" => ("StopSignal".into(), json!(rest)),
        "ENV" => {
            let v: Vec<String> = if rest.contains('=') {
                rest.split_whitespace().map(|p| p.replace('"', "")).collect()
            } else {
                let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                vec![format!("{k}={}", v.trim())]
            };
            ("Env".into(), json!(v))
        }
        "LABEL" => ("Labels".into(), pairs()),
        "EXPOSE" => {
            let mut map = serde_json::Map::new();
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                map.insert(p, json!({}));
            }
            ("ExposedPorts".into(), Value::Object(map))
        }
        "VOLUME" => {
            let paths: Vec<String> =
                serde_json::from_str(rest).unwrap_or_else(|_| rest.split_whitespace().map(str::to_string).collect());
            (
                "Volumes".into(),
                Value::Object(paths.into_iter().map(|p| (p, json!({}))).collect()),
            )
        }
        other => bail!("{other} is not a valid change command"),
    })
}

/// ENV entries replace the ones of the same name, in place.
fn merge_env(c: &mut Value, add: Value) {
    let mut env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap_or_default();
    for e in add.as_array().into_iter().flatten().filter_map(Value::as_str) {
        let key = e.split('=').next().unwrap_or(e);
        match env.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            Some(x) => *x = e.to_string(),
            None => env.push(e.to_string()),
        }
    }
    c["Env"] = json!(env);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_as_dockerfile_instructions() {
        assert_eq!(
            parse_change("CMD [\"cat\", \"/x\"]").unwrap(),
            ("Cmd".into(), json!(["cat", "/x"]))
        );
        assert_eq!(
            parse_change("CMD echo hi").unwrap().1,
            json!(["/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(parse_change("ENV A=1 B=2").unwrap().1, json!(["A=1", "B=2"]));
        assert_eq!(parse_change("LABEL a=b").unwrap().1, json!({"a": "b"}));
        assert!(parse_change("FROM x").is_err());
    }
}
