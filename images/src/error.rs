use std::io;
use std::path::PathBuf;

/// Errors of the image store. Every variant names the object it is about:
/// the image reference, the archive path, the layer and tar entry, or the digest.
///
/// A variant's message never repeats its cause: the cause is its
/// [`source`](std::error::Error::source). Print the whole chain (anyhow's
/// `{:#}`, or walk `source()`), not just `{}`, to see why something failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation on `path` failed.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("image {reference:?} not found")]
    NotFound { reference: String },

    #[error("image reference {reference:?} is ambiguous: it matches images {}", .matches.join(", "))]
    Ambiguous { reference: String, matches: Vec<String> },

    #[error(
        "cannot remove {reference:?}: image {id} is referenced in multiple repositories ({}); \
         remove the references one by one",
        .references.join(", ")
    )]
    Conflict {
        reference: String,
        id: String,
        references: Vec<String>,
    },

    /// The archive or layout is unreadable, corrupt, truncated or unsupported.
    #[error("archive {}: {reason}", archive.display())]
    Archive { archive: PathBuf, reason: String },

    /// Content in the archive does not hash (or size) to what its descriptor says.
    #[error("archive {}: {object}: digest mismatch: expected {expected}, got {actual}", archive.display())]
    DigestMismatch {
        archive: PathBuf,
        object: String,
        expected: String,
        actual: String,
    },

    /// Unpacking a layer of an archive failed.
    #[error("archive {}: layer {layer}", archive.display())]
    Layer {
        archive: PathBuf,
        layer: String,
        #[source]
        source: Box<Error>,
    },

    /// A tar entry would land outside the directory it is unpacked into.
    #[error("layer entry {entry:?}: {reason}; refusing to unpack it")]
    UnsafeEntry { entry: PathBuf, reason: &'static str },

    /// Creating a tar entry failed.
    #[error("layer entry {entry:?}")]
    Entry {
        entry: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The layer stream itself (compression or tar framing) is corrupt or truncated.
    #[error("layer stream{}", near_entry(.near))]
    Stream {
        /// The tar entry being read, or the last one read, when the stream broke.
        near: Option<PathBuf>,
        #[source]
        source: io::Error,
    },

    #[error("mount {what} on {}", target.display())]
    Mount {
        what: &'static str,
        target: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("image store index {}: {reason}", path.display())]
    Index { path: PathBuf, reason: String },

    /// The registry has no such repository.
    #[error("pull {reference}: repository {repository} not found in registry {registry}")]
    UnknownRepository {
        reference: String,
        repository: String,
        registry: String,
    },

    /// The repository has no such tag or digest.
    #[error("pull {reference}: manifest {wanted} not found in {repository} (registry {registry})")]
    UnknownManifest {
        reference: String,
        wanted: String,
        repository: String,
        registry: String,
    },

    /// The registry refused the credentials, or wants some.
    #[error(
        "pull {reference}: access denied by registry {registry} ({reason}); log in with `minirun login {registry}`"
    )]
    Unauthorized {
        reference: String,
        registry: String,
        reason: String,
    },

    /// An image index without a manifest for the wanted platform.
    #[error("pull {reference}: no image for platform {wanted}; the registry has: {}", .available.join(", "))]
    NoPlatform {
        reference: String,
        wanted: String,
        available: Vec<String>,
    },

    #[error("TLS with registry {registry} failed: {reason}")]
    Tls { registry: String, reason: String },

    #[error("registry {registry} is unreachable: {reason}")]
    Unreachable { registry: String, reason: String },

    /// Any other answer of a registry the pull cannot use.
    #[error("pull {reference} from registry {registry}: {reason}")]
    Registry {
        reference: String,
        registry: String,
        reason: String,
    },

    /// Content from a registry does not hash (or size) to what its descriptor says.
    #[error("pull {reference}: {object}: digest mismatch: expected {expected}, got {actual}")]
    PullDigestMismatch {
        reference: String,
        object: String,
        expected: String,
        actual: String,
    },

    /// A credentials file, credential helper or certificate directory is unusable.
    #[error("{what}: {reason}")]
    Credentials { what: String, reason: String },

    #[error("image {image}: layer sha256:{layer} is missing from the store ({})", path.display())]
    MissingLayer {
        image: String,
        layer: String,
        path: PathBuf,
    },
}

fn near_entry(near: &Option<PathBuf>) -> String {
    match near {
        Some(p) => format!(" (at tar entry {p:?})"),
        None => String::new(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `e` and its sources on one line, joined with ": " (the text anyhow's
/// `{:#}` prints), leaving out a source whose text the previous one already
/// contains (foreign errors often repeat their cause). For messages this
/// crate makes itself (logs, tests, errors from other crates' errors).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ").replace('\n', " ")
}

/// Attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(io::Error::from).ctx(op, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_says_each_cause_once() {
        let e = Error::Layer {
            archive: PathBuf::from("/a.tar"),
            layer: "l1/layer.tar".into(),
            source: Box::new(Error::Entry {
                entry: PathBuf::from("etc/passwd"),
                source: io::Error::from_raw_os_error(28),
            }),
        };
        assert_eq!(e.to_string(), "archive /a.tar: layer l1/layer.tar");
        assert_eq!(
            chain(&e),
            "archive /a.tar: layer l1/layer.tar: layer entry \"etc/passwd\": \
             No space left on device (os error 28)"
        );
    }
}
