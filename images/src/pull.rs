//! Pulling images from registries (the OCI distribution protocol, through
//! `oci-client`) into the store.
//!
//! The client runs on a current-thread tokio runtime made for one pull and
//! dropped before [`Store::pull`] returns, so no thread of it outlives the
//! pull (libcontainer forks afterwards). Layers download in parallel; each
//! streams straight into [`unpack_layer`](crate::unpack_layer) on a thread
//! of its own, hashed as it goes, and is committed to the store on its own
//! when its digest and diff_id check out: an interrupted pull keeps the
//! layers it completed and the next pull does not fetch them again. The
//! image itself (config, manifest, references) is recorded last.

use crate::archive::{PendingImage, PendingLayer, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::auth::Credentials;
use crate::digest::{sha256_hex, sha256_of, sha256_ref};
use crate::error::{chain, Error, Result};
use crate::reference::{Reference, Remote};
use crate::store::{LockMode, Store, GC_LOCK};
use futures_util::StreamExt as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const MAX_MANIFEST: usize = 4 << 20;
const MAX_CONFIG: u64 = 16 << 20;
/// Layers downloaded at once, as docker.
pub const DEFAULT_CONCURRENT_DOWNLOADS: usize = 3;
const CERTS_DIRS: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `os/arch[/variant]`; default: this machine's.
    pub platform: Option<String>,
    /// `Some(false)`: accept any certificate, and fall back to plain HTTP.
    /// Otherwise certificates are verified, and plain HTTP is used only
    /// for a registry on the loopback (localhost, 127.0.0.0/8, ::1) that
    /// does not speak TLS.
    pub tls_verify: Option<bool>,
    /// Where `ca.crt` (`*.crt`) files are, instead of `certs.d/HOST:PORT`.
    pub cert_dir: Option<PathBuf>,
    pub credentials: Option<Credentials>,
    /// Layers downloaded at once; 0 means the default.
    pub max_concurrent: usize,
}

/// What a pull reports while it runs. Digests are `sha256:<hex>` of blobs.
#[derive(Debug, Clone, Copy)]
pub enum PullEvent<'a> {
    /// The manifest to pull: its digest, and how many layers need downloading.
    Resolved {
        digest: &'a str,
        missing: usize,
    },
    /// The layer is in the store already.
    LayerExists {
        digest: &'a str,
    },
    /// A foreign (non-distributable) layer, not downloaded.
    LayerSkipped {
        digest: &'a str,
        media_type: &'a str,
    },
    LayerStart {
        digest: &'a str,
        size: u64,
    },
    /// `bytes` more bytes of the layer arrived.
    LayerBytes {
        digest: &'a str,
        bytes: u64,
    },
    /// Downloaded, verified, unpacked and stored.
    LayerDone {
        digest: &'a str,
    },
}

/// Receives [`PullEvent`]s (from several tasks at once).
pub trait PullProgress: Sync {
    fn event(&self, event: PullEvent<'_>);
}

/// No progress reports.
pub struct NoProgress;

impl PullProgress for NoProgress {
    fn event(&self, _: PullEvent<'_>) {}
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference as stored (`busybox:latest`, or `repo@sha256:...` for pulls by digest).
    pub reference: String,
    /// docker's full name (`docker.io/library/busybox:latest`).
    pub full: String,
    /// The image id (config digest, hex).
    pub id: String,
    /// `sha256:` digest of what the reference names in the registry (the index, for multi-platform images).
    pub digest: String,
    /// Layers downloaded; 0 when everything was in the store.
    pub downloaded: usize,
}

/// A platform: `os/arch[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub arch: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's (linux/<arch>), as Go names architectures.
    pub fn host() -> Platform {
        Platform {
            os: "linux".into(),
            arch: oci_spec::image::Arch::default().to_string(),
            variant: None,
        }
    }

    fn of(p: &oci_spec::image::Platform) -> Platform {
        Platform {
            os: p.os().to_string(),
            arch: p.architecture().to_string(),
            variant: p.variant().clone().filter(|v| !v.is_empty()),
        }
    }

    /// `self` (wanted) is satisfied by `have`: the same os and architecture,
    /// and the variant when one is wanted (arm64 without one is v8).
    fn accepts(&self, have: &Platform) -> bool {
        let variant = |p: &Platform| match (&p.variant, p.arch.as_str()) {
            (None, "arm64") => Some("v8".to_string()),
            (v, _) => v.clone(),
        };
        self.os == have.os && self.arch == have.arch && (self.variant.is_none() || variant(self) == variant(have))
    }
}

impl std::str::FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Platform {
                os: os.to_string(),
                arch: arch.to_string(),
                variant: Some(variant.to_string()),
            }),
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant], e.g. linux/arm64/v8"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Layer media types that are not to be downloaded from the registry.
fn is_foreign(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains("nondistributable")
}

/// True for hosts that may speak plain HTTP (as docker: the loopback).
fn is_loopback(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => domain.rsplit_once(':').map_or(domain, |(h, _)| h),
    };
    host == "localhost" || host == "::1" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|a| a.is_loopback())
}

/// For a loopback registry: does it answer plain HTTP as a registry? One
/// `GET /v2/` without credentials over a bare TCP connection, before any
/// client exists. It spares the failed TLS handshake (tens of ms: the
/// registry answers a ClientHello only after a delayed ACK) that would
/// otherwise come first on every pull from a plain-HTTP local registry.
fn loopback_speaks_plain_http(domain: &str) -> bool {
    use std::io::Write as _;
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let Some((_, port)) = domain
        .rsplit_once(':')
        .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
    else {
        return false;
    };
    let host = domain[..domain.len() - port.len() - 1]
        .trim_start_matches('[')
        .trim_end_matches(']');
    let Some(addr) = (host, port.parse::<u16>().unwrap_or(0))
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.find(|a| a.ip().is_loopback()))
    else {
        return false;
    };
    let timeout = Duration::from_secs(2);
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(timeout));
    let _ = conn.set_write_timeout(Some(timeout));
    if conn
        .write_all(format!("GET /v2/ HTTP/1.0\r\nHost: {domain}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut head = Vec::with_capacity(1024);
    let _ = conn.take(1024).read_to_end(&mut head);
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    head.starts_with("http/1.") && head.contains("docker-distribution-api-version")
}

/// The CA certificates for `domain`: `*.crt` in `cert_dir`, else in the
/// `certs.d/<domain>` directories of podman and docker. Client certificates
/// (`*.cert`, `*.key`) are reported, not used: oci-client cannot present one.
fn ca_certificates(domain: &str, cert_dir: Option<&Path>) -> Result<Vec<Certificate>> {
    let dirs: Vec<PathBuf> = match cert_dir {
        Some(d) => vec![d.to_path_buf()],
        None => CERTS_DIRS.iter().map(|d| Path::new(d).join(domain)).collect(),
    };
    let mut certs = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound && cert_dir.is_none() => continue,
            Err(e) => {
                return Err(Error::Credentials {
                    what: format!("certificate directory {}", dir.display()),
                    reason: e.to_string(),
                })
            }
        };
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for path in names {
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let data = std::fs::read(&path).map_err(|e| Error::Credentials {
                        what: format!("CA certificate {}", path.display()),
                        reason: e.to_string(),
                    })?;
                    certs.push(Certificate {
                        encoding: CertificateEncoding::Pem,
                        data,
                    });
                }
                Some("cert") => {
                    tracing::warn!(path = %path.display(), "client certificates are not supported; ignoring it")
                }
                _ => {}
            }
        }
    }
    Ok(certs)
}

/// The first line of what a server said, at most 200 characters: enough to
/// say why, never a whole HTML page.
fn first_line(text: &str) -> String {
    text.trim().lines().next().unwrap_or("").chars().take(200).collect()
}

/// The innermost cause of an error (reqwest wraps it in "error sending
/// request for url (...)" and "client error (Connect)").
fn root_cause(e: &dyn std::error::Error) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last.replace('\n', " ")
}

/// One pull: what it is about, and its client.
struct Session<'a> {
    /// None for a login check.
    store: Option<&'a Store>,
    reference: Reference,
    /// For messages: what the user asked for, in full.
    full: String,
    remote: Remote,
    client: Client,
    auth: RegistryAuth,
    progress: &'a dyn PullProgress,
    max_concurrent: usize,
}

impl Session<'_> {
    fn oci_ref(&self, digest: Option<&str>) -> oci_client::Reference {
        let (host, path) = (self.remote.host.clone(), self.remote.path.clone());
        match (digest.or(self.reference.digest.as_deref()), &self.reference.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(host, path, d.to_string()),
            (None, tag) => oci_client::Reference::with_tag(host, path, tag.clone().unwrap_or_else(|| "latest".into())),
        }
    }

    /// A user-facing error for what the client said.
    fn classify(&self, e: OciDistributionError, wanted: &str) -> Error {
        let registry = self.remote.domain.clone();
        let reference = self.full.clone();
        let repository = format!("{}/{}", self.remote.domain, self.remote.path);
        let unauthorized = |reason: String| Error::Unauthorized {
            reference: reference.clone(),
            registry: registry.clone(),
            reason,
        };
        let unknown_manifest = || Error::UnknownManifest {
            reference: reference.clone(),
            wanted: wanted.to_string(),
            repository: repository.clone(),
            registry: registry.clone(),
        };
        match e {
            OciDistributionError::RequestError(ref re) => {
                let text = root_cause(re);
                let lower = text.to_ascii_lowercase();
                if ["certificate", "tls", "handshake", "corrupt message"]
                    .iter()
                    .any(|w| lower.contains(w))
                {
                    Error::Tls { registry, reason: text }
                } else if re.is_connect() || re.is_timeout() {
                    Error::Unreachable { registry, reason: text }
                } else {
                    Error::Registry {
                        reference,
                        registry,
                        reason: text,
                    }
                }
            }
            OciDistributionError::UnauthorizedError { .. } => unauthorized("unauthorized".into()),
            OciDistributionError::AuthenticationFailure(reason) => {
                unauthorized(format!("authentication failed: {}", first_line(&reason)))
            }
            OciDistributionError::RegistryError { ref envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                if codes.contains(&&OciErrorCode::NameUnknown) {
                    Error::UnknownRepository {
                        reference,
                        repository,
                        registry,
                    }
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::ManifestUnknown | OciErrorCode::BlobUnknown))
                {
                    unknown_manifest()
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    unauthorized(
                        envelope
                            .errors
                            .iter()
                            .map(|e| e.message.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    )
                } else {
                    Error::Registry {
                        reference,
                        registry,
                        reason: envelope
                            .errors
                            .iter()
                            .map(|e| format!("{:?}: {}", e.code, e.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    }
                }
            }
            OciDistributionError::ImageManifestNotFoundError(_) => unknown_manifest(),
            OciDistributionError::ServerError { code: 404, .. } => unknown_manifest(),
            OciDistributionError::ServerError {
                code: code @ (401 | 403),
                ..
            } => unauthorized(format!("HTTP {code}")),
            OciDistributionError::ServerError { code, ref message, .. } => Error::Registry {
                reference,
                registry,
                reason: format!("HTTP {code}: {}", first_line(message)),
            },
            other => Error::Registry {
                reference,
                registry,
                reason: chain(&other),
            },
        }
    }

    fn mismatch(&self, object: String, expected: String, actual: String) -> Error {
        Error::PullDigestMismatch {
            reference: self.full.clone(),
            object,
            expected,
            actual,
        }
    }

    fn bad(&self, reason: String) -> Error {
        Error::Registry {
            reference: self.full.clone(),
            registry: self.remote.domain.clone(),
            reason,
        }
    }

    /// A manifest or index by tag or digest, verified; its bytes and digest.
    async fn manifest(&self, digest: Option<&str>) -> Result<(Vec<u8>, String)> {
        let r = self.oci_ref(digest);
        let wanted = r.digest().or(r.tag()).unwrap_or("latest").to_string();
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST];
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&r, &self.auth, &accept)
            .await
            .map_err(|e| self.classify(e, &wanted))?;
        if bytes.len() > MAX_MANIFEST {
            return Err(self.bad(format!("manifest {wanted} is too large ({} bytes)", bytes.len())));
        }
        let actual = sha256_ref(&sha256_of(&bytes));
        if let Some(expected) = r.digest() {
            if expected != actual {
                return Err(self.mismatch(format!("manifest {expected}"), expected.to_string(), actual));
            }
        }
        Ok((bytes.to_vec(), actual))
    }

    /// A small blob (the config), verified.
    async fn small_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let digest = desc.digest().to_string();
        if desc.size() > MAX_CONFIG {
            return Err(self.bad(format!("{what} {digest} is too large ({} bytes)", desc.size())));
        }
        let r = self.oci_ref(None);
        let mut stream = self
            .client
            .pull_blob_stream(&r, digest.as_str())
            .await
            .map_err(|e| self.classify(e, &digest))?;
        let mut data = Vec::with_capacity(desc.size() as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.stream_error(&digest, e))?;
            data.extend_from_slice(&chunk);
            if data.len() as u64 > desc.size() {
                break;
            }
        }
        let actual = sha256_ref(&sha256_of(&data));
        if actual != digest || data.len() as u64 != desc.size() {
            return Err(self.mismatch(
                format!("{what} ({} bytes)", desc.size()),
                digest,
                format!("{actual} ({} bytes)", data.len()),
            ));
        }
        Ok(data)
    }

    /// A broken blob stream: oci-client's own digest check, or the transport.
    fn stream_error(&self, digest: &str, e: io::Error) -> Error {
        let text = chain(&e);
        if text.to_ascii_lowercase().contains("digest") {
            self.mismatch(format!("blob {digest}"), digest.to_string(), text)
        } else {
            self.bad(format!("downloading blob {digest}: {text}"))
        }
    }

    /// Follow an index down to the manifest for `platform`.
    async fn resolve(&self, platform: &Platform) -> Result<(String, Option<String>, Vec<u8>, ImageManifest)> {
        let (mut bytes, top) = match self.manifest(None).await {
            Err(e @ Error::UnknownManifest { .. }) => return Err(self.unknown_repository_or(e).await),
            other => other?,
        };
        let mut digest = top.clone();
        let mut index_digest = None;
        for _ in 0..3 {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| self.bad(format!("manifest {digest}: invalid JSON: {e}")))?;
            if value.get("schemaVersion").and_then(|v| v.as_i64()) == Some(1) {
                return Err(self.bad(format!(
                    "manifest {digest} is a docker schema 1 manifest, which is not supported"
                )));
            }
            let media_type = value.get("mediaType").and_then(|m| m.as_str()).unwrap_or("");
            let is_index = media_type == OCI_INDEX
                || media_type == DOCKER_MANIFEST_LIST
                || (media_type.is_empty() && value.get("manifests").is_some());
            if !is_index {
                let manifest: ImageManifest =
                    serde_json::from_slice(&bytes).map_err(|e| self.bad(format!("manifest {digest}: invalid: {e}")))?;
                return Ok((digest, index_digest, bytes, manifest));
            }
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| self.bad(format!("image index {digest}: invalid: {e}")))?;
            let chosen = pick(index.manifests(), platform).map_err(|available| Error::NoPlatform {
                reference: self.full.clone(),
                wanted: platform.to_string(),
                available,
            })?;
            let child = chosen.digest().to_string();
            index_digest = Some(digest.clone());
            let (child_bytes, child_digest) = self.manifest(Some(&child)).await?;
            bytes = child_bytes;
            digest = child_digest;
        }
        Err(self.bad(format!("image index {top}: nested too deeply")))
    }

    /// Registries answer MANIFEST_UNKNOWN for a repository they do not have
    /// too; the tag list tells the two apart.
    async fn unknown_repository_or(&self, e: Error) -> Error {
        match self
            .client
            .list_tags(&self.oci_ref(None), &self.auth, Some(1), None)
            .await
        {
            Err(tags_error) => match self.classify(tags_error, "tags") {
                repo @ Error::UnknownRepository { .. } => repo,
                _ => e,
            },
            Ok(_) => e,
        }
    }

    /// Download one layer into the store.
    async fn layer(&self, layer: &PendingLayer, size: u64) -> Result<()> {
        let (hex, _) = layer.blob.clone().expect("pulled layers have a digest");
        let digest = sha256_ref(&hex);
        let r = self.oci_ref(None);
        let mut stream = self
            .client
            .pull_blob_stream(&r, digest.as_str())
            .await
            .map_err(|e| self.classify(e, &digest))?;
        self.progress.event(PullEvent::LayerStart { digest: &digest, size });
        let (tx, reader) = crate::chunks::channel(16);
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let store = self.store.expect("pulls have a store").clone();
        let diff_id = layer.diff_id.clone();
        let reference = self.full.clone();
        let blob_hex = hex.clone();
        let unpacker = std::thread::Builder::new()
            .name("minirun-unpack".into())
            .spawn(move || {
                let mismatch = |object, expected, actual| Error::PullDigestMismatch {
                    reference: reference.clone(),
                    object,
                    expected,
                    actual,
                };
                let _ = done_tx.send(store.add_layer(reader, &blob_hex, size, &diff_id, &mismatch));
            })
            .map_err(|e| self.bad(format!("cannot start a thread: {e}")))?;
        // A transport failure (or oci-client's own digest check) stops the
        // unpacker with a bare error; the reason reported is this one.
        let mut transport = None;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => {
                    self.progress.event(PullEvent::LayerBytes {
                        digest: &digest,
                        bytes: c.len() as u64,
                    });
                    Ok(c)
                }
                Err(e) => {
                    transport = Some(self.stream_error(&digest, e));
                    Err(io::Error::other("the download failed"))
                }
            };
            // A closed channel: the unpacker failed, and its result says why.
            if tx.send(chunk).await.is_err() || transport.is_some() {
                break;
            }
        }
        drop(tx);
        let result = done_rx
            .await
            .map_err(|_| self.bad(format!("unpacking layer {digest} panicked")))?;
        // It has sent its result: it is returning. No thread outlives the pull.
        let _ = unpacker.join();
        if let Some(e) = transport {
            return Err(e);
        }
        result.map_err(|e| match e {
            e @ Error::PullDigestMismatch { .. } => e,
            other => Error::Layer {
                archive: PathBuf::from(format!("{}/{}", self.remote.domain, self.remote.path)),
                layer: digest.clone(),
                source: Box::new(other),
            },
        })?;
        self.progress.event(PullEvent::LayerDone { digest: &digest });
        Ok(())
    }
}

/// A session with the registry of `reference`, authenticated (the version
/// check, GET /v2/, says how): HTTPS, or plain HTTP where allowed (see
/// [`PullOptions::tls_verify`]). Also returns the bearer token if the
/// registry uses them (to know that credentials were checked).
async fn connect<'a>(
    store: Option<&'a Store>,
    reference: Reference,
    remote: Remote,
    certs: Vec<Certificate>,
    opts: &PullOptions,
    progress: &'a dyn PullProgress,
) -> Result<(Session<'a>, Option<String>)> {
    let auth = match &opts.credentials {
        Some(c) => RegistryAuth::Basic(c.username.clone(), c.secret.clone()),
        None => RegistryAuth::Anonymous,
    };
    let insecure = opts.tls_verify == Some(false);
    let may_fall_back = insecure || is_loopback(&remote.domain);
    let make_client = |protocol: ClientProtocol| {
        Client::try_from(ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            extra_root_certificates: certs.clone(),
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        })
    };
    let full = reference.full();
    let plain = !insecure && is_loopback(&remote.domain) && loopback_speaks_plain_http(&remote.domain);
    let mut session = Session {
        store,
        full: full.clone(),
        remote: remote.clone(),
        client: make_client(if plain {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        })
        .map_err(|e| Error::Registry {
            reference: full.clone(),
            registry: remote.domain.clone(),
            reason: chain(&e),
        })?,
        auth,
        progress,
        reference,
        max_concurrent: if opts.max_concurrent == 0 {
            DEFAULT_CONCURRENT_DOWNLOADS
        } else {
            opts.max_concurrent
        },
    };
    let probe = session.oci_ref(None);
    let token = match session
        .client
        .auth(&probe, &session.auth, RegistryOperation::Pull)
        .await
    {
        Ok(token) => token,
        Err(e) => {
            let https_error = session.classify(e, "/v2/");
            tracing::debug!(registry = %remote.domain, plain, error = %https_error, "version check failed");
            // Plain HTTP where allowed, unless a certificate was the problem
            // (a TLS registry whose certificate we do not trust stays an error).
            let retry = may_fall_back
                && !plain
                && match &https_error {
                    Error::Tls { reason, .. } => insecure || !reason.to_ascii_lowercase().contains("certificate"),
                    Error::Unreachable { .. } => true,
                    _ => false,
                };
            if !retry {
                return Err(https_error);
            }
            tracing::debug!(registry = %remote.domain, "no TLS; using plain HTTP");
            session.client = make_client(ClientProtocol::Http).map_err(|e| session.bad(chain(&e)))?;
            session
                .client
                .auth(&probe, &session.auth, RegistryOperation::Pull)
                .await
                .map_err(|e| session.classify(e, "/v2/"))?
        }
    };
    Ok((session, token))
}

/// Check credentials against registry `domain` (login): a token server
/// must grant a token, a registry with basic auth must accept them.
pub fn check_login(domain: &str, opts: &PullOptions) -> Result<()> {
    let reference = Reference::parse(&format!("{domain}/minirun/login-check"))?;
    let remote = reference.remote();
    let certs = ca_certificates(&remote.domain, opts.cert_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Registry {
            reference: domain.to_string(),
            registry: domain.to_string(),
            reason: format!("cannot start the HTTP client: {e}"),
        })?;
    let result = runtime.block_on(async {
        let (session, token) = connect(None, reference, remote, certs, opts, &NoProgress).await?;
        if token.is_some() {
            return Ok(());
        }
        // Basic auth (or none): any answer but 401 means the credentials passed.
        match session
            .client
            .list_tags(&session.oci_ref(None), &session.auth, Some(1), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match session.classify(e, "tags") {
                e @ (Error::Unauthorized { .. } | Error::Tls { .. } | Error::Unreachable { .. }) => Err(e),
                _ => Ok(()),
            },
        }
    });
    drop(runtime);
    result
}

/// The index entry for `platform`; else the platforms there are.
fn pick<'d>(manifests: &'d [Descriptor], platform: &Platform) -> std::result::Result<&'d Descriptor, Vec<String>> {
    let images: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            let t = d.media_type().to_string();
            t == OCI_MANIFEST || t == DOCKER_MANIFEST || t == OCI_INDEX || t == DOCKER_MANIFEST_LIST
        })
        // Attestations and signatures come as unknown/unknown entries.
        .filter(|d| d.platform().as_ref().is_none_or(|p| p.os().to_string() != "unknown"))
        .collect();
    if let Some(d) = images.iter().find(|d| {
        d.platform()
            .as_ref()
            .is_some_and(|p| platform.accepts(&Platform::of(p)))
    }) {
        return Ok(d);
    }
    if let [only] = images.as_slice() {
        if only.platform().is_none() {
            return Ok(only);
        }
    }
    let mut available: Vec<String> = images
        .iter()
        .filter_map(|d| d.platform().as_ref().map(|p| Platform::of(p).to_string()))
        .collect();
    available.dedup();
    if available.is_empty() {
        available.push("no platforms listed".into());
    }
    Err(available)
}

impl Store {
    /// Pull `reference` (docker's normalization: `busybox` is
    /// `docker.io/library/busybox:latest`) from its registry into the store.
    /// Layers in the store already are not downloaded. On any failure no
    /// image and no reference is recorded (layers that completed stay, for
    /// the next pull).
    pub fn pull(&self, reference: &str, opts: &PullOptions, progress: &dyn PullProgress) -> Result<Pulled> {
        let parsed = Reference::parse(reference)?;
        let platform = match &opts.platform {
            Some(p) => p.parse::<Platform>().map_err(|reason| Error::InvalidReference {
                reference: p.clone(),
                reason,
            })?,
            None => Platform::host(),
        };
        let remote = parsed.remote();
        let certs = ca_certificates(&remote.domain, opts.cert_dir.as_deref())?;
        self.collect_garbage()?;
        // Shared: pulls and loads run in parallel; no removal deletes a layer we rely on.
        let _gc = self.lock(GC_LOCK, LockMode::Shared)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Registry {
                reference: parsed.full(),
                registry: remote.domain.clone(),
                reason: format!("cannot start the HTTP client: {e}"),
            })?;
        let result = runtime.block_on(self.pull_async(parsed, remote, certs, &platform, opts, progress));
        // Every thread of the runtime ends here, before the caller forks.
        drop(runtime);
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull_async(
        &self,
        reference: Reference,
        remote: Remote,
        certs: Vec<Certificate>,
        platform: &Platform,
        opts: &PullOptions,
        progress: &dyn PullProgress,
    ) -> Result<Pulled> {
        let (session, _) = connect(Some(self), reference, remote, certs, opts, progress).await?;
        let (manifest_digest, index_digest, manifest_bytes, manifest) = session.resolve(platform).await?;
        let full = session.full.clone();
        let top_digest = index_digest.clone().unwrap_or_else(|| manifest_digest.clone());
        let config_desc = manifest.config();
        let id = sha256_hex(config_desc.digest().as_ref())
            .map(str::to_string)
            .ok_or_else(|| session.bad(format!("config digest {} is not sha256", config_desc.digest())))?;
        // A pull by digest records the repository, not a tag (as docker).
        let stored = match session.reference.digest {
            None => vec![session.reference.tagged()],
            Some(_) => Vec::new(),
        };
        let repos = match session.reference.digest {
            Some(_) => vec![session.reference.repository.clone()],
            None => Vec::new(),
        };
        let manifest_hex = sha256_hex(&manifest_digest).expect("computed here").to_string();

        // The image is here already: only references change.
        let config = if self.has_image(&id)? {
            progress.event(PullEvent::Resolved {
                digest: &top_digest,
                missing: 0,
            });
            std::fs::read(self.blob_path(&id)).map_err(|e| Error::Io {
                op: "read",
                path: self.blob_path(&id),
                source: e,
            })?
        } else {
            session.small_blob(config_desc, "config").await?
        };
        let parsed: ImageConfiguration =
            serde_json::from_slice(&config).map_err(|e| session.bad(format!("config {id}: invalid: {e}")))?;
        // A single-platform image asked for with --platform: it must be that one.
        if opts.platform.is_some() && index_digest.is_none() {
            let have = Platform {
                os: parsed.os().to_string(),
                arch: parsed.architecture().to_string(),
                variant: parsed.variant().clone().filter(|v| !v.is_empty()),
            };
            if !platform.accepts(&have) {
                return Err(Error::NoPlatform {
                    reference: full,
                    wanted: platform.to_string(),
                    available: vec![have.to_string()],
                });
            }
        }
        let diff_ids = parsed.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(session.bad(format!(
                "config {id} lists {} layer diff_ids but manifest {manifest_digest} has {} layers",
                diff_ids.len(),
                manifest.layers().len()
            )));
        }
        let present = self.present_layers()?;
        let mut layers = Vec::new();
        let mut missing = Vec::new();
        for (desc, diff_id) in manifest.layers().iter().zip(diff_ids) {
            let media_type = desc.media_type().to_string();
            let digest = desc.digest().to_string();
            if is_foreign(&media_type) {
                tracing::warn!(layer = %digest, media_type, "skipping a foreign (non-distributable) layer");
                progress.event(PullEvent::LayerSkipped {
                    digest: &digest,
                    media_type: &media_type,
                });
                continue;
            }
            let (Some(hex), Some(diff_hex)) = (sha256_hex(&digest), sha256_hex(diff_id)) else {
                return Err(session.bad(format!(
                    "layer {digest} (diff_id {diff_id}): only sha256 digests are supported"
                )));
            };
            let layer = PendingLayer {
                entry: PathBuf::new(),
                blob: Some((hex.to_string(), Some(desc.size()))),
                diff_id: diff_hex.to_string(),
            };
            if present.contains(diff_hex) || missing.iter().any(|(l, _): &(PendingLayer, u64)| l.diff_id == diff_hex) {
                if !missing.iter().any(|(l, _): &(PendingLayer, u64)| l.diff_id == diff_hex) {
                    progress.event(PullEvent::LayerExists { digest: &digest });
                }
            } else {
                missing.push((layer.clone(), desc.size()));
            }
            layers.push(layer);
        }
        if !self.has_image(&id)? {
            progress.event(PullEvent::Resolved {
                digest: &top_digest,
                missing: missing.len(),
            });
        }
        let downloaded = AtomicUsize::new(0);
        let session = &session;
        let results: Vec<Result<()>> = futures_util::stream::iter(missing.iter())
            .map(|(layer, size)| {
                let downloaded = &downloaded;
                async move {
                    let r = session.layer(layer, *size).await;
                    if r.is_ok() {
                        downloaded.fetch_add(1, Ordering::Relaxed);
                    }
                    r
                }
            })
            .buffer_unordered(session.max_concurrent)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>>>()?;

        let image = PendingImage {
            refs: stored.clone(),
            id: id.clone(),
            created: parsed.created().clone(),
            config,
            manifest: Some((manifest_hex, manifest_bytes)),
            index: index_digest.as_deref().and_then(sha256_hex).map(str::to_string),
            repos,
            layers,
        };
        self.commit_pulled(&image)?;
        let reference = match &session.reference.digest {
            Some(d) => format!("{}@{d}", session.reference.repository),
            None => stored[0].clone(),
        };
        Ok(Pulled {
            reference,
            full,
            id,
            digest: top_digest,
            downloaded: downloaded.into_inner(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_print_and_match() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.accepts(&"linux/arm64".parse().unwrap()));
        let arm: Platform = "linux/arm".parse().unwrap();
        assert!(arm.accepts(&"linux/arm/v7".parse().unwrap()));
        assert!(!"linux/arm/v6"
            .parse::<Platform>()
            .unwrap()
            .accepts(&"linux/arm/v7".parse().unwrap()));
        assert!(!arm.accepts(&"linux/amd64".parse().unwrap()));
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            let e = bad.parse::<Platform>().unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn loopback_registries_may_speak_plain_http() {
        for d in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(d), "{d}");
        }
        for d in [
            "registry-1.docker.io",
            "10.0.0.1:5000",
            "localhost.example.com",
            "ghcr.io",
        ] {
            assert!(!is_loopback(d), "{d}");
        }
    }

    #[test]
    fn foreign_layers_are_recognized() {
        assert!(is_foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
        assert!(is_foreign(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        ));
        assert!(!is_foreign("application/vnd.oci.image.layer.v1.tar+zstd"));
    }

    #[test]
    fn index_entries_are_chosen_by_platform_and_listed_otherwise() {
        let index: ImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "1".repeat(64)),
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "2".repeat(64)),
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "size": 1, "digest": format!("sha256:{}", "3".repeat(64)),
                 "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        }))
        .unwrap();
        let arm = pick(index.manifests(), &"linux/arm64".parse().unwrap()).unwrap();
        assert!(arm.digest().to_string().ends_with(&"2".repeat(64)));
        let err = pick(index.manifests(), &"linux/s390x".parse().unwrap()).unwrap_err();
        assert_eq!(err, ["linux/amd64", "linux/arm64/v8"]);
    }
}
