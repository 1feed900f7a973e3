//! Registry credentials as docker and podman keep them: `auths` entries of
//! docker's `config.json` or podman's `auth.json` (base64 `user:password`),
//! and credential helpers (`credsStore`, `credHelpers`: `docker-credential-NAME`).
//!
//! Where they are read from, first match wins: `--authfile FILE` alone when
//! given; else `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`
//! (podman's), then `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`.
//! `login` and `logout` write `--authfile` or docker's file.
//!
//! Secrets never reach a message, a log line or a `Debug` output.

use crate::error::{Error, IoContext, Result};
use crate::reference::registry_domain;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// docker's key for docker.io in `auths` and for credential helpers.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and a password (or token).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub secret: String,
}

/// The user name docker's credential helpers answer with an identity token.
pub const IDENTITY_TOKEN_USER: &str = "<token>";

impl Credentials {
    /// An identity token (OAuth2 refresh token) kept in place of a password.
    pub fn identity_token(&self) -> Option<&str> {
        (self.username == IDENTITY_TOKEN_USER).then_some(self.secret.as_str())
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The key a registry domain has in `auths` and for helpers.
fn key_for(domain: &str) -> String {
    match domain {
        "docker.io" => DOCKER_HUB_KEY.to_string(),
        other => other.to_string(),
    }
}

/// docker's file: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker/config.json"))
}

/// The files credentials are read from, in order.
fn read_paths(authfile: Option<&Path>) -> Vec<PathBuf> {
    if let Some(file) = authfile {
        return vec![file.to_path_buf()];
    }
    let mut paths = Vec::new();
    if let Some(file) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        paths.push(PathBuf::from(file));
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        paths.push(PathBuf::from(dir).join("containers/auth.json"));
    }
    paths.extend(docker_config_path());
    paths
}

/// The file `login`/`logout` write.
pub fn write_path(authfile: Option<&Path>) -> Result<PathBuf> {
    authfile
        .map(Path::to_path_buf)
        .or_else(docker_config_path)
        .ok_or_else(|| Error::Credentials {
            what: "credentials file".into(),
            reason: "neither --authfile, $DOCKER_CONFIG nor $HOME is set".into(),
        })
}

fn read_json(path: &Path) -> Result<Option<Map<String, Value>>> {
    match fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Some(Map::new())),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Some(map)),
            Ok(_) => Err(bad_file(path, "not a JSON object".into())),
            Err(e) => Err(bad_file(path, format!("invalid JSON: {e}"))),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("read", path),
    }
}

fn bad_file(path: &Path, reason: String) -> Error {
    Error::Credentials {
        what: format!("credentials file {}", path.display()),
        reason,
    }
}

/// The `auths` key of `map` that names `domain`, if any.
fn auths_key(map: &Map<String, Value>, domain: &str) -> Option<String> {
    let auths = map.get("auths")?.as_object()?;
    let exact = key_for(domain);
    if auths.contains_key(&exact) {
        return Some(exact);
    }
    auths.keys().find(|k| registry_domain(k) == domain).cloned()
}

/// The helper a file names for `domain`: `credHelpers[domain]`, else `credsStore`.
fn helper_for(map: &Map<String, Value>, domain: &str) -> Option<String> {
    let helpers = map.get("credHelpers").and_then(Value::as_object);
    let specific = helpers.and_then(|h| {
        h.get(domain)
            .or_else(|| h.iter().find(|(k, _)| registry_domain(k) == domain).map(|(_, v)| v))
    });
    specific
        .or_else(|| map.get("credsStore"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// The credentials for registry `domain` (`docker.io`, `localhost:5000`), if any file has some.
pub fn lookup(domain: &str, authfile: Option<&Path>) -> Result<Option<Credentials>> {
    for path in read_paths(authfile) {
        let Some(map) = read_json(&path)? else {
            continue;
        };
        if let Some(helper) = helper_for(&map, domain) {
            if let Some(c) = helper_get(&helper, domain)? {
                return Ok(Some(c));
            }
        }
        if let Some(key) = auths_key(&map, domain) {
            let entry = &map["auths"][&key];
            // docker keeps the identity token a registry answered at login beside
            // (or instead of) the password, and uses it first
            if let Some(token) = entry
                .get("identitytoken")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
            {
                tracing::debug!(registry = domain, file = %path.display(), "using a stored identity token");
                return Ok(Some(Credentials {
                    username: IDENTITY_TOKEN_USER.to_string(),
                    secret: token.to_string(),
                }));
            }
            let Some(encoded) = entry.get("auth").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
                continue;
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| bad_file(&path, format!("auths[{key:?}].auth is not base64 of user:password")))?;
            let (username, secret) = decoded
                .split_once(':')
                .ok_or_else(|| bad_file(&path, format!("auths[{key:?}].auth is not base64 of user:password")))?;
            tracing::debug!(registry = domain, file = %path.display(), username, "using stored credentials");
            return Ok(Some(Credentials {
                username: username.to_string(),
                secret: secret.to_string(),
            }));
        }
    }
    Ok(None)
}

/// Store credentials for `domain` (login): through the file's credential
/// helper when it names one, else base64 in `auths`. Returns where they went.
pub fn store(domain: &str, creds: &Credentials, authfile: Option<&Path>) -> Result<String> {
    let path = write_path(authfile)?;
    let mut map = read_json(&path)?.unwrap_or_default();
    let key = auths_key(&map, domain).unwrap_or_else(|| key_for(domain));
    if let Some(helper) = helper_for(&map, domain) {
        helper_run(&helper, "store", domain, |stdin| {
            serde_json::to_writer(
                stdin,
                &serde_json::json!({"ServerURL": key_for(domain), "Username": creds.username, "Secret": creds.secret}),
            )
            .map_err(std::io::Error::from)
        })?;
        // The helper keeps them; an old inline copy would shadow nothing but is stale.
        if let Some(auths) = map.get_mut("auths").and_then(Value::as_object_mut) {
            if auths.remove(&key).is_some() {
                write_json(&path, &map)?;
            }
        }
        return Ok(format!("docker-credential-{helper}"));
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", creds.username, creds.secret));
    let auths = map
        .entry("auths")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| bad_file(&path, "\"auths\" is not an object".into()))?;
    auths.insert(key, serde_json::json!({ "auth": encoded }));
    write_json(&path, &map)?;
    Ok(path.display().to_string())
}

/// Remove the credentials for `domain` (logout): from the helper and the
/// file. False if there were none.
pub fn erase(domain: &str, authfile: Option<&Path>) -> Result<bool> {
    let path = write_path(authfile)?;
    let Some(mut map) = read_json(&path)? else {
        return Ok(false);
    };
    let mut found = false;
    if let Some(helper) = helper_for(&map, domain) {
        if helper_get(&helper, domain)?.is_some() {
            helper_run(&helper, "erase", domain, |stdin| {
                stdin.write_all(key_for(domain).as_bytes())
            })?;
            found = true;
        }
    }
    if let Some(key) = auths_key(&map, domain) {
        if let Some(auths) = map.get_mut("auths").and_then(Value::as_object_mut) {
            auths.remove(&key);
        }
        write_json(&path, &map)?;
        found = true;
    }
    Ok(found)
}

/// Replace the file atomically, readable by its owner only (it holds secrets).
fn write_json(path: &Path, map: &Map<String, Value>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).ctx("create directory", dir)?;
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let mut bytes = serde_json::to_vec_pretty(map).map_err(|e| bad_file(path, e.to_string()))?;
    bytes.push(b'\n');
    let result = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(&bytes)?;
            f.sync_all()
        })
        .ctx("write", &tmp)
        .and_then(|()| fs::rename(&tmp, path).ctx("replace", path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.json".into())
}

/// `docker-credential-NAME get`: `None` when the helper has nothing for the registry.
fn helper_get(helper: &str, domain: &str) -> Result<Option<Credentials>> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    let out = match helper_run(helper, "get", domain, |stdin| {
        stdin.write_all(key_for(domain).as_bytes())
    }) {
        Ok(out) => out,
        Err(Error::Credentials { reason, .. }) if reason.contains("not found") => return Ok(None),
        Err(e) => return Err(e),
    };
    let answer: Answer = serde_json::from_slice(&out).map_err(|_| Error::Credentials {
        what: format!("credential helper docker-credential-{helper}"),
        reason: "its answer to get is not the expected JSON".into(),
    })?;
    Ok(Some(Credentials {
        username: answer.username,
        secret: answer.secret,
    }))
}

/// Run `docker-credential-HELPER VERB`, feeding it stdin; its stdout.
fn helper_run(
    helper: &str,
    verb: &str,
    domain: &str,
    feed: impl FnOnce(&mut std::process::ChildStdin) -> std::io::Result<()>,
) -> Result<Vec<u8>> {
    let program = format!("docker-credential-{helper}");
    let err = |reason: String| Error::Credentials {
        what: format!("credential helper {program} {verb} for {domain}"),
        reason,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run it: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let fed = feed(&mut stdin);
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
    fed.map_err(|e| err(format!("cannot write to it: {e}")))?;
    if !out.status.success() {
        // Helpers say why on stdout ("credentials not found in native keychain").
        let said = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
        return Err(err(format!("{} ({said})", out.status)));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
    }

    #[test]
    fn reads_docker_and_podman_entries_by_registry() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        write(
            &file,
            &format!(
                r#"{{"auths": {{"https://index.docker.io/v1/": {{"auth": "{}"}},
                    "localhost:5000": {{"auth": "{}"}},
                    "https://ghcr.io": {{"auth": "{}"}},
                    "quay.example": {{"auth": "{}", "identitytoken": "refresh-1"}}}}}}"#,
                b64("hub:pw1"),
                b64("me:p:w"),
                b64("gh:tok"),
                b64("q:pw")
            ),
        );
        let get = |d: &str| lookup(d, Some(&file)).unwrap();
        assert_eq!(get("docker.io").unwrap().username, "hub");
        let local = get("localhost:5000").unwrap();
        assert_eq!((local.username.as_str(), local.secret.as_str()), ("me", "p:w"));
        assert_eq!(get("ghcr.io").unwrap().secret, "tok");
        assert_eq!(get("quay.io"), None);
        assert!(!format!("{local:?}").contains("p:w"));
        assert_eq!(local.identity_token(), None);
        // docker uses a stored identity token before the password
        let quay = get("quay.example").unwrap();
        assert_eq!(quay.identity_token(), Some("refresh-1"));
        assert!(!format!("{quay:?}").contains("refresh-1"));
    }

    #[test]
    fn store_and_erase_keep_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/config.json");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        write(
            &file,
            r#"{"psFormat": "x", "auths": {"other:1": {"auth": "b3Q6aGVy"}}}"#,
        );
        let creds = Credentials {
            username: "u".into(),
            secret: "s3cret".into(),
        };
        store("docker.io", &creds, Some(&file)).unwrap();
        store("localhost:5000", &creds, Some(&file)).unwrap();
        let map = read_json(&file).unwrap().unwrap();
        assert_eq!(map["psFormat"], "x");
        assert!(map["auths"].get(DOCKER_HUB_KEY).is_some());
        assert_eq!(lookup("localhost:5000", Some(&file)).unwrap(), Some(creds.clone()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(erase("localhost:5000", Some(&file)).unwrap());
        assert!(!erase("localhost:5000", Some(&file)).unwrap());
        assert_eq!(lookup("localhost:5000", Some(&file)).unwrap(), None);
        assert_eq!(lookup("other:1", Some(&file)).unwrap().unwrap().username, "ot");
    }

    #[test]
    fn a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("auth.json");
        write(&file, "{not json");
        let e = lookup("x.io", Some(&file)).unwrap_err().to_string();
        assert!(e.contains(&file.display().to_string()), "{e}");
    }
}
