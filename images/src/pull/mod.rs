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

mod identity;
mod platform;
mod relay;
mod session;
mod transport;

use platform::pick;
pub use platform::Platform;
use relay::{ClientIdentity, Relay};
use session::{is_foreign, Session};
pub use transport::check_login;
use transport::{connect, first_line, registry_tls, request_error, RegistryTls};

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
    /// Where `ca.crt` (`*.crt`) and client certificate (`NAME.cert` with
    /// `NAME.key`) files are, instead of `certs.d/HOST:PORT`.
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
        let tls = registry_tls(&remote.domain, opts.cert_dir.as_deref())?;
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
        let result = runtime.block_on(self.pull_async(parsed, remote, tls, &platform, opts, progress));
        // Every thread of the runtime ends here, before the caller forks.
        drop(runtime);
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn pull_async(
        &self,
        reference: Reference,
        remote: Remote,
        tls: RegistryTls,
        platform: &Platform,
        opts: &PullOptions,
        progress: &dyn PullProgress,
    ) -> Result<Pulled> {
        let (session, _) = connect(Some(self), reference, remote, tls, opts, progress).await?;
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
