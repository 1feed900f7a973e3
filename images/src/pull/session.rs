//! One pull's session with its registry: manifests, config and layers.

use super::*;

/// Layer media types that are not to be downloaded from the registry.
pub(super) fn is_foreign(media_type: &str) -> bool {
    media_type.contains(".foreign.") || media_type.contains("nondistributable")
}

/// One pull: what it is about, and its client.
pub(super) struct Session<'a> {
    /// None for a login check.
    pub(super) store: Option<&'a Store>,
    pub(super) reference: Reference,
    /// For messages: what the user asked for, in full.
    pub(super) full: String,
    pub(super) remote: Remote,
    pub(super) client: Client,
    pub(super) auth: RegistryAuth,
    pub(super) progress: &'a dyn PullProgress,
    pub(super) max_concurrent: usize,
    /// Carries the client certificate, when the registry's directory has one.
    pub(super) relay: Option<Relay>,
}

impl Session<'_> {
    pub(super) fn oci_ref(&self, digest: Option<&str>) -> oci_client::Reference {
        let (host, path) = (self.remote.host.clone(), self.remote.path.clone());
        match (digest.or(self.reference.digest.as_deref()), &self.reference.tag) {
            (Some(d), _) => oci_client::Reference::with_digest(host, path, d.to_string()),
            (None, tag) => oci_client::Reference::with_tag(host, path, tag.clone().unwrap_or_else(|| "latest".into())),
        }
    }

    /// A user-facing error for what the client said.
    pub(super) fn classify(&self, e: OciDistributionError, wanted: &str) -> Error {
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
        // Through the relay, a failure to reach the registry (TLS, connect)
        // reaches oci-client as a 502: say what it was.
        if let Some(failure) = self.relay.as_ref().and_then(Relay::take_failure) {
            return request_error(&reference, &registry, &failure);
        }
        match e {
            OciDistributionError::RequestError(ref re) => request_error(&reference, &registry, re),
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

    pub(super) fn mismatch(&self, object: String, expected: String, actual: String) -> Error {
        Error::PullDigestMismatch {
            reference: self.full.clone(),
            object,
            expected,
            actual,
        }
    }

    pub(super) fn bad(&self, reason: String) -> Error {
        Error::Registry {
            reference: self.full.clone(),
            registry: self.remote.domain.clone(),
            reason,
        }
    }

    /// A manifest or index by tag or digest, verified; its bytes and digest.
    pub(super) async fn manifest(&self, digest: Option<&str>) -> Result<(Vec<u8>, String)> {
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
    pub(super) async fn small_blob(&self, desc: &Descriptor, what: &str) -> Result<Vec<u8>> {
        let digest = desc.digest().to_string();
        if desc.size() > MAX_CONFIG {
            return Err(self.bad(format!("{what} {digest} is too large ({} bytes)", desc.size())));
        }
        let mut stream = self.blob_stream(&digest).await?;
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
    pub(super) fn stream_error(&self, digest: &str, e: io::Error) -> Error {
        let text = chain(&e);
        if text.to_ascii_lowercase().contains("digest") {
            self.mismatch(format!("blob {digest}"), digest.to_string(), text)
        } else {
            self.bad(format!("downloading blob {digest}: {text}"))
        }
    }

    /// Follow an index down to the manifest for `platform`.
    pub(super) async fn resolve(
        &self,
        platform: &Platform,
    ) -> Result<(String, Option<String>, Vec<u8>, ImageManifest)> {
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
    pub(super) async fn unknown_repository_or(&self, e: Error) -> Error {
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

    /// The bytes of blob `digest` as the registry sends them.
    async fn blob_stream(&self, digest: &str) -> Result<oci_client::client::SizedStream> {
        self.client
            .pull_blob_stream(&self.oci_ref(None), digest)
            .await
            .map_err(|e| self.classify(e, digest))
    }

    /// Download one layer into the store.
    pub(super) async fn layer(&self, layer: &PendingLayer, size: u64) -> Result<()> {
        let (hex, _) = layer.blob.clone().expect("pulled layers have a digest");
        let digest = sha256_ref(&hex);
        let mut stream = self.blob_stream(&digest).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_layers_are_recognized() {
        assert!(is_foreign("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"));
        assert!(is_foreign(
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        ));
        assert!(!is_foreign("application/vnd.oci.image.layer.v1.tar+zstd"));
    }
}
