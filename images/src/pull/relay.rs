//! Client certificates for a registry, which oci-client cannot present.
//!
//! oci-client builds its own HTTP client and takes no client identity (0.18),
//! so a registry that asks for one (`client.cert`/`client.key` in its
//! `certs.d` directory, as docker and podman read them) is reached through a
//! relay that lives for one pull: an HTTP forward proxy on 127.0.0.1 that
//! oci-client is told to use for that registry, which sends each request on
//! over HTTPS with the certificate. It forwards only to that one registry,
//! only for the client holding its per-pull secret (the `Proxy-Authorization`
//! oci-client sends from the proxy URL), and passes bodies through as they
//! stream. Same-registry `https://` addresses in `Location` and in the
//! `WWW-Authenticate` realm are handed back as `http://`, so redirects and a
//! token server on the registry itself come through the relay too; any other
//! host is reached directly, without the certificate, as docker does.

use super::*;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::TryStreamExt as _;
use http_body_util::{combinators::BoxBody, BodyExt as _, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

/// A client certificate and its key, as `reqwest::Identity::from_pem` wants them.
#[derive(Clone)]
pub(super) struct ClientIdentity {
    /// The `*.cert` file, for messages.
    pub(super) cert: PathBuf,
    pem: Vec<u8>,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("ClientIdentity").field("cert", &self.cert).finish()
    }
}

impl ClientIdentity {
    /// `NAME.cert` and the `NAME.key` beside it (docker's rule: one without
    /// the other is an error).
    pub(super) fn load(cert: &Path) -> Result<ClientIdentity> {
        let key = cert.with_extension("key");
        let read = |path: &Path, what: &str| {
            std::fs::read(path).map_err(|e| Error::Credentials {
                what: format!("{what} {}", path.display()),
                reason: if e.kind() == io::ErrorKind::NotFound && what == "client key" {
                    format!("missing key for client certificate {}", cert.display())
                } else {
                    e.to_string()
                },
            })
        };
        let mut pem = read(cert, "client certificate")?;
        pem.push(b'\n');
        pem.extend(read(&key, "client key")?);
        let identity = ClientIdentity {
            cert: cert.to_path_buf(),
            pem,
        };
        identity.reqwest()?;
        Ok(identity)
    }

    pub(super) fn reqwest(&self) -> Result<reqwest::Identity> {
        reqwest::Identity::from_pem(&self.pem).map_err(|e| Error::Credentials {
            what: format!("client certificate {}", self.cert.display()),
            reason: chain(&e),
        })
    }
}

/// The running relay; it stops when dropped (and with the pull's runtime).
pub(super) struct Relay {
    /// What oci-client's `http_proxy` takes: `http://minirun:SECRET@127.0.0.1:PORT`.
    pub(super) proxy_url: String,
    state: Arc<State>,
    accept: tokio::task::JoinHandle<()>,
}

struct State {
    /// The registry, `host[:port]`: the only authority forwarded to.
    domain: String,
    /// The `Proxy-Authorization` value a request must carry.
    expected: HeaderValue,
    upstream: reqwest::Client,
    /// The last failure to reach the registry (TLS, connect), for the pull's error.
    failure: Mutex<Option<reqwest::Error>>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Relay {
    /// Listen on 127.0.0.1 (a port the kernel picks) and forward to `domain` through `upstream`.
    pub(super) async fn start(domain: &str, upstream: reqwest::Client) -> io::Result<Relay> {
        let listener = tokio::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut secret = [0u8; 24];
        fill_random(&mut secret)?;
        let secret = hex::encode(secret);
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("minirun:{secret}"))
        );
        let state = Arc::new(State {
            domain: domain.to_string(),
            expected: HeaderValue::from_str(&expected).map_err(io::Error::other)?,
            upstream,
            failure: Mutex::new(None),
        });
        let serving = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    // Out of descriptors, say: let the pull's other work go on.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let state = serving.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| forward(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(conn), service)
                        .await;
                });
            }
        });
        Ok(Relay {
            proxy_url: format!("http://minirun:{secret}@{addr}"),
            state,
            accept,
        })
    }

    /// Why the registry could not be reached, if that happened (taken once).
    pub(super) fn take_failure(&self) -> Option<reqwest::Error> {
        self.state.failure.lock().ok()?.take()
    }
}

fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        filled += rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty())?;
    }
    Ok(())
}

type Body = BoxBody<Bytes, io::Error>;

fn answer(status: StatusCode, text: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(text)).map_err(|e: Infallible| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

/// Headers that belong to one connection, not to the request (RFC 9110 7.6.1).
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in ["keep-alive", "proxy-connection"] {
        headers.remove(name);
    }
}

async fn forward(state: Arc<State>, req: Request<Incoming>) -> std::result::Result<Response<Body>, Infallible> {
    if req.headers().get(header::PROXY_AUTHORIZATION) != Some(&state.expected) {
        return Ok(answer(
            StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            "not this pull's client\n".into(),
        ));
    }
    let uri = req.uri();
    if uri.scheme_str() != Some("http") || uri.authority().map(|a| a.as_str()) != Some(state.domain.as_str()) {
        return Ok(answer(
            StatusCode::FORBIDDEN,
            format!("this relay forwards only to {}\n", state.domain),
        ));
    }
    let url = format!(
        "https://{}{}",
        state.domain,
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(answer(StatusCode::BAD_REQUEST, format!("{e}\n"))),
    };
    strip_hop_by_hop(&mut parts.headers);
    // reqwest sets these itself, for the registry's address and the body it sends
    parts.headers.remove(header::HOST);
    parts.headers.remove(header::CONTENT_LENGTH);
    let sent = state
        .upstream
        .request(parts.method, url)
        .headers(parts.headers)
        .body(body)
        .send()
        .await;
    let upstream = match sent {
        Ok(r) => r,
        Err(e) => {
            let text = format!("cannot reach {}: {}\n", state.domain, chain(&e));
            if let Ok(mut failure) = state.failure.lock() {
                *failure = Some(e);
            }
            return Ok(answer(StatusCode::BAD_GATEWAY, text));
        }
    };
    let status = upstream.status();
    let mut headers = upstream.headers().clone();
    strip_hop_by_hop(&mut headers);
    rewrite_same_registry(&mut headers, &state.domain);
    let body = StreamBody::new(upstream.bytes_stream().map_ok(Frame::data).map_err(io::Error::other));
    let mut resp = Response::new(http_body_util::BodyExt::boxed(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// `https://DOMAIN/...` in `Location` and `WWW-Authenticate` becomes
/// `http://DOMAIN/...`, so that the client comes back through the relay.
fn rewrite_same_registry(headers: &mut HeaderMap, domain: &str) {
    let from = format!("https://{domain}/");
    let to = format!("http://{domain}/");
    for name in [header::LOCATION, header::WWW_AUTHENTICATE] {
        let values: Vec<HeaderValue> = headers
            .get_all(&name)
            .iter()
            .map(|v| match v.to_str() {
                Ok(s) if s.contains(&from) => {
                    HeaderValue::from_str(&s.replace(&from, &to)).unwrap_or_else(|_| v.clone())
                }
                _ => v.clone(),
            })
            .collect();
        headers.remove(&name);
        for v in values {
            headers.append(&name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_registry_is_sent_back_through_the_relay() {
        let mut h = HeaderMap::new();
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="https://reg.example:5000/token",service="reg""#),
        );
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("https://cdn.example/blobs/sha256:ab?sig=1"),
        );
        rewrite_same_registry(&mut h, "reg.example:5000");
        assert_eq!(
            h[header::WWW_AUTHENTICATE],
            r#"Bearer realm="http://reg.example:5000/token",service="reg""#
        );
        assert_eq!(h[header::LOCATION], "https://cdn.example/blobs/sha256:ab?sig=1");

        let mut h = HeaderMap::new();
        h.insert(
            header::LOCATION,
            HeaderValue::from_static("https://reg.example:5000/v2/a/blobs/sha256:ab"),
        );
        // The same host on another port is another registry.
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="https://reg.example:5001/""#),
        );
        rewrite_same_registry(&mut h, "reg.example:5000");
        assert_eq!(h[header::LOCATION], "http://reg.example:5000/v2/a/blobs/sha256:ab");
        assert_eq!(
            h[header::WWW_AUTHENTICATE],
            r#"Basic realm="https://reg.example:5001/""#
        );
    }

    #[test]
    fn the_relay_serves_only_its_pull_and_only_its_registry() {
        // a registry that refuses connections, on the loopback: nothing leaves the machine
        let registry = "127.0.0.1:1";
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let upstream = reqwest::Client::builder().no_proxy().build().unwrap();
            let relay = Relay::start(registry, upstream).await.unwrap();
            let via = |proxy: &str| {
                reqwest::Client::builder()
                    .proxy(reqwest::Proxy::http(proxy).unwrap())
                    .build()
                    .unwrap()
            };
            let addr = relay.proxy_url.rsplit('@').next().unwrap().to_string();
            let status =
                |c: reqwest::Client, url: &'static str| async move { c.get(url).send().await.unwrap().status() };
            // another local process without the pull's secret
            assert_eq!(
                status(via(&format!("http://{addr}")), "http://127.0.0.1:1/v2/").await,
                StatusCode::PROXY_AUTHENTICATION_REQUIRED
            );
            assert_eq!(
                status(via(&format!("http://minirun:guess@{addr}")), "http://127.0.0.1:1/v2/").await,
                StatusCode::PROXY_AUTHENTICATION_REQUIRED
            );
            // the pull itself, for another host
            assert_eq!(
                status(via(&relay.proxy_url), "http://127.0.0.2:1/v2/").await,
                StatusCode::FORBIDDEN
            );
            assert!(relay.take_failure().is_none(), "nothing was forwarded yet");
            // the pull, for its registry: forwarded over HTTPS, which fails here, and kept
            assert_eq!(
                status(via(&relay.proxy_url), "http://127.0.0.1:1/v2/").await,
                StatusCode::BAD_GATEWAY
            );
            let failure = relay.take_failure().expect("the failure is kept for the pull's error");
            assert!(failure.is_connect(), "{failure}");
            assert_eq!(failure.url().map(|u| u.as_str()), Some("https://127.0.0.1:1/v2/"));
        });
    }

    #[test]
    fn a_certificate_needs_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("client.cert");
        std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let e = ClientIdentity::load(&cert).unwrap_err().to_string();
        assert!(e.contains("missing key for client certificate"), "{e}");
        assert!(e.contains("client.key"), "{e}");
        std::fs::write(dir.path().join("client.key"), "not a key").unwrap();
        let e = ClientIdentity::load(&cert).unwrap_err().to_string();
        assert!(e.contains(&cert.display().to_string()), "{e}");
    }

    #[test]
    fn hop_by_hop_headers_stay_on_their_connection() {
        let mut h = HeaderMap::new();
        h.insert(header::PROXY_AUTHORIZATION, HeaderValue::from_static("Basic eDp5"));
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        strip_hop_by_hop(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["authorization", "accept"]);
    }
}
