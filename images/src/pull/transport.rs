//! Reaching a registry: which protocol, which CA certificates, the
//! authenticated session, checking a login, and errors in a user's words.

use super::*;

/// True for hosts that may speak plain HTTP (as docker: the loopback).
pub(super) fn is_loopback(domain: &str) -> bool {
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
pub(super) fn loopback_speaks_plain_http(domain: &str) -> bool {
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

/// What TLS with one registry uses: CA certificates to trust besides the
/// system's, and the client certificate to present, if any.
#[derive(Debug, Default)]
pub(super) struct RegistryTls {
    pub(super) roots: Vec<Certificate>,
    pub(super) identity: Option<ClientIdentity>,
}

impl RegistryTls {
    /// An HTTP client builder that trusts the roots (anything with
    /// `insecure`) and presents the client certificate, if there is one.
    pub(super) fn client_builder(&self, insecure: bool) -> Result<reqwest::ClientBuilder> {
        let roots: Vec<reqwest::Certificate> = self
            .roots
            .iter()
            .filter_map(|c| reqwest::Certificate::try_from(c).ok())
            .collect();
        let builder = reqwest::Client::builder()
            .tls_certs_merge(roots)
            .danger_accept_invalid_certs(insecure);
        Ok(match &self.identity {
            Some(identity) => builder.identity(identity.reqwest()?),
            None => builder,
        })
    }
}

/// The TLS files for `domain`, as docker and podman read them: in
/// `cert_dir`, else in the `certs.d/<domain>` directories of podman and
/// docker, `*.crt` are CA certificates and `NAME.cert` with `NAME.key` a
/// client certificate (the first pair by name; more are ignored with a
/// warning, as one client certificate is presented).
pub(super) fn registry_tls(domain: &str, cert_dir: Option<&Path>) -> Result<RegistryTls> {
    let dirs: Vec<PathBuf> = match cert_dir {
        Some(d) => vec![d.to_path_buf()],
        None => CERTS_DIRS.iter().map(|d| Path::new(d).join(domain)).collect(),
    };
    let mut tls = RegistryTls::default();
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
                    tls.roots.push(Certificate {
                        encoding: CertificateEncoding::Pem,
                        data,
                    });
                }
                Some("cert") => {
                    let identity = ClientIdentity::load(&path)?;
                    match &tls.identity {
                        None => tls.identity = Some(identity),
                        Some(first) => tracing::warn!(
                            path = %path.display(),
                            using = %first.cert.display(),
                            "one client certificate is presented; ignoring this one"
                        ),
                    }
                }
                Some("key") if !path.with_extension("cert").exists() => {
                    return Err(Error::Credentials {
                        what: format!("client key {}", path.display()),
                        reason: format!("missing client certificate {}", path.with_extension("cert").display()),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(tls)
}

/// The first line of what a server said, at most 200 characters: enough to
/// say why, never a whole HTML page.
pub(super) fn first_line(text: &str) -> String {
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

/// What failed on the way to a registry, in a user's words: TLS, unreachable, or
/// another answer it could not use.
pub(super) fn request_error(reference: &str, registry: &str, re: &reqwest::Error) -> Error {
    let text = root_cause(re);
    let lower = text.to_ascii_lowercase();
    let registry = registry.to_string();
    if ["certificate", "tls", "handshake", "corrupt message"]
        .iter()
        .any(|w| lower.contains(w))
    {
        // The alerts a server sends when it wants a client certificate it
        // trusts (none, or one it does not accept).
        let reason = if ["badcertificate", "certificaterequired", "unknownca"]
            .iter()
            .any(|w| lower.contains(w))
        {
            format!(
                "{text} (does the registry want a client certificate? NAME.cert and NAME.key go in \
                 /etc/containers/certs.d/{registry}/ or --cert-dir)"
            )
        } else {
            text
        };
        Error::Tls { registry, reason }
    } else if re.is_connect() || re.is_timeout() {
        Error::Unreachable { registry, reason: text }
    } else {
        Error::Registry {
            reference: reference.to_string(),
            registry,
            reason: text,
        }
    }
}

/// A session with the registry of `reference`, authenticated (the version
/// check, GET /v2/, says how): HTTPS, or plain HTTP where allowed (see
/// [`PullOptions::tls_verify`]). Also returns the bearer token if the
/// registry uses them (to know that credentials were checked).
pub(super) async fn connect<'a>(
    store: Option<&'a Store>,
    reference: Reference,
    remote: Remote,
    tls: RegistryTls,
    opts: &PullOptions,
    progress: &'a dyn PullProgress,
) -> Result<(Session<'a>, Option<String>)> {
    let insecure = opts.tls_verify == Some(false);
    let full = reference.full();
    let registry_error = |reason: String| Error::Registry {
        reference: full.clone(),
        registry: remote.domain.clone(),
        reason,
    };
    // A client certificate: oci-client speaks plain HTTP to this pull's
    // relay, which speaks HTTPS to the registry with the certificate.
    let relay = match &tls.identity {
        Some(identity) => {
            // redirects go back to oci-client, which follows them itself
            let upstream = tls
                .client_builder(insecure)?
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(30))
                .read_timeout(std::time::Duration::from_secs(120))
                .build()
                .map_err(|e| Error::Credentials {
                    what: format!("client certificate {}", identity.cert.display()),
                    reason: chain(&e),
                })?;
            let relay = Relay::start(&remote.domain, upstream)
                .await
                .map_err(|e| registry_error(format!("cannot start the client-certificate relay: {e}")))?;
            tracing::debug!(registry = %remote.domain, cert = %identity.cert.display(), "presenting a client certificate");
            Some(relay)
        }
        None => None,
    };
    let may_fall_back = relay.is_none() && (insecure || is_loopback(&remote.domain));
    let mut plain =
        relay.is_none() && !insecure && is_loopback(&remote.domain) && loopback_speaks_plain_http(&remote.domain);
    let auth = match &opts.credentials {
        Some(c) => match c.identity_token() {
            Some(refresh) => {
                let http = identity_client(&tls, insecure)?;
                let schemes: &[&str] = match (plain, may_fall_back) {
                    (true, _) => &["http"],
                    (false, true) => &["https", "http"],
                    (false, false) => &["https"],
                };
                let (token, http_only) = super::identity::exchange(&http, &remote, refresh, schemes, &full).await?;
                plain = http_only;
                token.map_or(RegistryAuth::Anonymous, RegistryAuth::Bearer)
            }
            None => RegistryAuth::Basic(c.username.clone(), c.secret.clone()),
        },
        None => RegistryAuth::Anonymous,
    };
    let proxy_url = relay.as_ref().map(|r| r.proxy_url.clone());
    let make_client = |protocol: ClientProtocol| {
        Client::try_from(ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            extra_root_certificates: tls.roots.clone(),
            http_proxy: proxy_url.clone(),
            platform_resolver: None,
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(120)),
            ..Default::default()
        })
    };
    let mut session = Session {
        store,
        full: full.clone(),
        remote: remote.clone(),
        client: make_client(if plain || relay.is_some() {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        })
        .map_err(|e| registry_error(chain(&e)))?,
        relay,
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

/// The HTTP client of the identity-token exchange, with the pull's certificates.
fn identity_client(tls: &RegistryTls, insecure: bool) -> Result<reqwest::Client> {
    tls.client_builder(insecure)?
        .connect_timeout(std::time::Duration::from_secs(30))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Credentials {
            what: "the HTTP client of the identity-token exchange".into(),
            reason: chain(&e),
        })
}

/// Check credentials against registry `domain` (login): a token server
/// must grant a token, a registry with basic auth must accept them.
pub fn check_login(domain: &str, opts: &PullOptions) -> Result<()> {
    let reference = Reference::parse(&format!("{domain}/minirun/login-check"))?;
    let remote = reference.remote();
    let tls = registry_tls(&remote.domain, opts.cert_dir.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Registry {
            reference: domain.to_string(),
            registry: domain.to_string(),
            reason: format!("cannot start the HTTP client: {e}"),
        })?;
    let result = runtime.block_on(async {
        let (session, token) = connect(None, reference, remote, tls, opts, &NoProgress).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
