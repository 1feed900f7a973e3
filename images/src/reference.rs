//! Image reference parsing and normalization.
//!
//! References are kept in docker's "familiar" form: `docker.io/library/busybox:latest`,
//! `library/busybox` and `busybox` all become repository `busybox`, while other
//! registries keep their domain (`ghcr.io/x/y`, `localhost:5000/app`).

use crate::digest::sha256_hex;
use crate::error::{Error, Result};

pub(crate) const DEFAULT_TAG: &str = "latest";
const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const DOCKER_HUB_REGISTRY: &str = "registry-1.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Familiar repository name, e.g. `busybox`, `user/app`, `ghcr.io/x/y`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<hex>`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parse `name[:tag][@sha256:<hex>]`.
    pub fn parse(input: &str) -> Result<Reference> {
        let invalid = |reason: &str| Error::InvalidReference {
            reference: input.to_string(),
            reason: reason.to_string(),
        };
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                if sha256_hex(digest).is_none() {
                    return Err(invalid("digest must be sha256:<64 lowercase hex digits>"));
                }
                (rest, Some(digest.to_string()))
            }
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(invalid(
                    "tag must be 1-128 characters of [A-Za-z0-9_.-], not starting with '.' or '-'",
                ));
            }
        }
        if name.is_empty() {
            return Err(invalid("empty repository name"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid("repository name longer than 255 characters"));
        }
        let (domain, path) = split_domain(name);
        if let Some(domain) = domain {
            if !valid_domain(domain) {
                return Err(invalid("invalid registry domain"));
            }
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(invalid(
                "repository name components must be lowercase letters and digits \
                 separated by '.', '_', '__' or '-'",
            ));
        }
        if crate::digest::is_sha256_hex(path) {
            return Err(invalid(
                "a 64-character hexadecimal string is an image id, not a repository name",
            ));
        }
        Ok(Reference {
            repository: familiar(domain, path),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// `repository:tag`, with the default tag when none was given.
    pub fn tagged(&self) -> String {
        format!("{}:{}", self.repository, self.tag.as_deref().unwrap_or(DEFAULT_TAG))
    }

    /// Where the repository lives: its registry and its path there.
    pub fn remote(&self) -> Remote {
        let (domain, path) = match split_domain(&self.repository) {
            (Some(domain), path) => (domain.to_string(), path.to_string()),
            (None, path) if path.contains('/') => (DOCKER_HUB.to_string(), path.to_string()),
            (None, path) => (DOCKER_HUB.to_string(), format!("{OFFICIAL_PREFIX}{path}")),
        };
        let host = match domain.as_str() {
            DOCKER_HUB => DOCKER_HUB_REGISTRY.to_string(),
            _ => domain.clone(),
        };
        Remote { domain, host, path }
    }

    /// The full name as docker prints it on pull: `docker.io/library/busybox:latest`,
    /// `localhost:5000/app@sha256:...`.
    pub fn full(&self) -> String {
        let remote = self.remote();
        let mut s = format!("{}/{}", remote.domain, remote.path);
        if let Some(tag) = &self.tag {
            s.push_str(&format!(":{tag}"));
        }
        match &self.digest {
            Some(digest) => s.push_str(&format!("@{digest}")),
            None if self.tag.is_none() => s.push_str(&format!(":{DEFAULT_TAG}")),
            None => {}
        }
        s
    }
}

/// The registry `reference` names (`docker.io` for `busybox`, `localhost:5000`
/// for `localhost:5000/app`): the key of its credentials.
pub fn registry_of(reference: &str) -> Result<String> {
    Ok(Reference::parse(reference)?.remote().domain)
}

/// A repository's registry and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// The registry's name as users write it (`docker.io`, `localhost:5000`):
    /// the key of credentials and of `certs.d` directories.
    pub domain: String,
    /// The host (and port) to connect to (`registry-1.docker.io` for docker.io).
    pub host: String,
    /// The repository inside the registry (`library/busybox`).
    pub path: String,
}

/// The registry host of docker.io (domain or a credentials key like `https://index.docker.io/v1/`).
pub fn registry_domain(name: &str) -> String {
    let bare = name.trim_start_matches("https://").trim_start_matches("http://");
    let host = bare.split('/').next().unwrap_or(bare);
    match host {
        LEGACY_DOCKER_HUB | DOCKER_HUB_REGISTRY | DOCKER_HUB => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

/// Split a stored `repository:tag` into its two parts.
pub(crate) fn split_tagged(tagged: &str) -> (&str, &str) {
    match tagged.rfind(':') {
        Some(i) if !tagged[i..].contains('/') => (&tagged[..i], &tagged[i + 1..]),
        _ => (tagged, DEFAULT_TAG),
    }
}

/// docker's rule: the first component is a registry domain if it has a '.' or ':',
/// is `localhost`, or has uppercase letters.
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':']) || first == "localhost" || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn familiar(domain: Option<&str>, path: &str) -> String {
    match domain {
        None | Some(DOCKER_HUB) | Some(LEGACY_DOCKER_HUB) => match path.strip_prefix(OFFICIAL_PREFIX) {
            Some(official) if !official.contains('/') => official.to_string(),
            _ => path.to_string(),
        },
        Some(domain) => format!("{domain}/{path}"),
    }
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_lower_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// `host(.host)*(:port)?` with hosts of letters, digits and inner '-'.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label_ok) && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = tag.as_bytes();
    !b.is_empty() && b.len() <= MAX_TAG_LEN && word(b[0]) && b.iter().all(|&c| word(c) || c == b'.' || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tagged(s: &str) -> String {
        Reference::parse(s).unwrap().tagged()
    }

    #[test]
    fn docker_hub_names_normalize_to_familiar_form() {
        for s in [
            "busybox",
            "busybox:latest",
            "library/busybox",
            "docker.io/busybox",
            "docker.io/library/busybox",
            "docker.io/library/busybox:latest",
            "index.docker.io/library/busybox",
        ] {
            assert_eq!(tagged(s), "busybox:latest", "{s}");
        }
        assert_eq!(tagged("docker.io/user/app:1.2"), "user/app:1.2");
        assert_eq!(tagged("user/app"), "user/app:latest");
        assert_eq!(tagged("docker.io/library/a/b"), "library/a/b:latest");
    }

    #[test]
    fn other_registries_keep_their_domain() {
        assert_eq!(tagged("ghcr.io/x/y:v1"), "ghcr.io/x/y:v1");
        assert_eq!(tagged("localhost/app"), "localhost/app:latest");
        assert_eq!(tagged("localhost:5000/app:dev"), "localhost:5000/app:dev");
        assert_eq!(tagged("Registry/app"), "Registry/app:latest");
        // "foo:5000" without a slash is a name and a tag, as in docker.
        let r = Reference::parse("foo:5000").unwrap();
        assert_eq!((r.repository.as_str(), r.tag.as_deref()), ("foo", Some("5000")));
    }

    #[test]
    fn digests_are_parsed() {
        let hex = "a".repeat(64);
        let r = Reference::parse(&format!("docker.io/library/busybox@sha256:{hex}")).unwrap();
        assert_eq!(r.repository, "busybox");
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(format!("sha256:{hex}").as_str()));
        let r = Reference::parse(&format!("busybox:1@sha256:{hex}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
    }

    #[test]
    fn invalid_references_are_rejected_with_the_reference_named() {
        for s in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busy//box",
            "-busybox",
            "busybox@sha256:abc",
            "busybox@md5:abc",
            "a..b",
            "bad_domain.io:x/app",
            &"a".repeat(64),
            &format!("busybox:{}", "t".repeat(129)),
        ] {
            let err = Reference::parse(s).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidReference { reference, .. } if reference == s),
                "{s:?}: {err}"
            );
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
    }

    #[test]
    fn remotes_follow_docker_normalization() {
        let remote = |s: &str| {
            let r = Reference::parse(s).unwrap();
            let m = r.remote();
            (m.domain, m.host, m.path, r.full())
        };
        let hub = |path: &str, full: &str| {
            (
                "docker.io".to_string(),
                "registry-1.docker.io".to_string(),
                path.to_string(),
                full.to_string(),
            )
        };
        assert_eq!(
            remote("busybox"),
            hub("library/busybox", "docker.io/library/busybox:latest")
        );
        assert_eq!(
            remote("docker.io/library/busybox:1.36"),
            hub("library/busybox", "docker.io/library/busybox:1.36")
        );
        assert_eq!(
            remote("index.docker.io/user/app"),
            hub("user/app", "docker.io/user/app:latest")
        );
        let hex = "b".repeat(64);
        let (domain, host, path, full) = remote(&format!("localhost:5000/a/b@sha256:{hex}"));
        assert_eq!(
            (domain.as_str(), host.as_str(), path.as_str()),
            ("localhost:5000", "localhost:5000", "a/b")
        );
        assert_eq!(full, format!("localhost:5000/a/b@sha256:{hex}"));
        assert_eq!(remote("ghcr.io/org/app:1.2").2, "org/app");
    }

    #[test]
    fn credential_keys_name_their_registry() {
        assert_eq!(registry_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_domain("registry-1.docker.io"), "docker.io");
        assert_eq!(registry_domain("docker.io"), "docker.io");
        assert_eq!(registry_domain("https://localhost:5000/v2/"), "localhost:5000");
        assert_eq!(registry_domain("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn split_tagged_handles_registry_ports() {
        assert_eq!(split_tagged("busybox:latest"), ("busybox", "latest"));
        assert_eq!(split_tagged("localhost:5000/app:1"), ("localhost:5000/app", "1"));
        assert_eq!(split_tagged("localhost:5000/app"), ("localhost:5000/app", "latest"));
    }
}
