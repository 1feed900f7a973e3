//! A real registry for pull tests: Debian's `docker-registry` (2.8) on
//! 127.0.0.1 with a free port and its own storage in a tempdir, optionally
//! with TLS (a CA made here with the `openssl` CLI), htpasswd basic auth, or
//! bearer tokens from a small token server that runs in the test. Stopped
//! (by pid) when dropped, also when the test panics.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// How a [`Registry`] authenticates clients.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Auth {
    #[default]
    None,
    /// htpasswd basic auth with this user and password.
    Basic { user: String, password: String },
    /// Bearer tokens from a [`TokenServer`] that knows this user and password.
    Token { user: String, password: String },
}

/// What to start.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub tls: bool,
    /// With `tls`: the registry wants a client certificate signed by the test CA.
    pub client_certs: bool,
    pub auth: Auth,
}

/// A CA and a certificate for 127.0.0.1 signed by it.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    /// `ca.crt`/`ca.key` and `server.crt`/`server.key` (SAN 127.0.0.1, localhost) in `dir`.
    pub fn create(dir: &Path) -> Pki {
        fs::create_dir_all(dir).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("cannot run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=minirun test CA",
        ]);
        // A key NAME.key and a certificate signed by the CA (with extensions `ext`) in `cert`.
        let signed = |name: &str, subject: &str, ext: &str, cert: &str| {
            let (key, csr, cnf) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}-ext.cnf"));
            run(&[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
            ]);
            fs::write(dir.join(&cnf), ext).unwrap();
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                cert,
                "-days",
                "2",
                "-extfile",
                &cnf,
            ]);
        };
        signed(
            "server",
            "/CN=127.0.0.1",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            "server.crt",
        );
        // A client certificate, as docker's certs.d keeps one.
        signed(
            "client",
            "/CN=minirun test client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            "client.cert",
        );
        Pki { dir: dir.to_path_buf() }
    }

    /// A directory holding only `ca.crt`: what `--cert-dir` takes.
    pub fn cert_dir(&self) -> PathBuf {
        let d = self.dir.join("certs.d");
        fs::create_dir_all(&d).unwrap();
        fs::copy(self.dir.join("ca.crt"), d.join("ca.crt")).unwrap();
        d
    }

    /// A directory holding `ca.crt` and the client's `client.cert` and `client.key`.
    pub fn client_cert_dir(&self) -> PathBuf {
        let d = self.dir.join("client-certs.d");
        fs::create_dir_all(&d).unwrap();
        for f in ["ca.crt", "client.cert", "client.key"] {
            fs::copy(self.dir.join(f), d.join(f)).unwrap();
        }
        d
    }
}

/// A running `docker-registry serve`.
pub struct Registry {
    dir: tempfile::TempDir,
    child: Child,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub pki: Option<Pki>,
    pub token_server: Option<TokenServer>,
    /// The user and password the registry accepts, if it wants some.
    pub creds: Option<(String, String)>,
    client_certs: bool,
    markers: std::sync::atomic::AtomicUsize,
}

impl Registry {
    pub fn start(opts: Options) -> Registry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: apt-get install docker-registry"
        );
        let dir = tempfile::Builder::new().prefix("minirun-registry-").tempdir().unwrap();
        let pki = opts.tls.then(|| Pki::create(&dir.path().join("pki")));
        let token_server = match &opts.auth {
            Auth::Token { user, password } => Some(TokenServer::start(&dir.path().join("token"), user, password)),
            _ => None,
        };
        let creds = match &opts.auth {
            Auth::None => None,
            Auth::Basic { user, password } | Auth::Token { user, password } => Some((user.clone(), password.clone())),
        };
        // The port is free when we look; another process may take it before
        // the registry binds it: then try another.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let mut config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    \
                 rootdirectory: {}\n  delete:\n    enabled: true\nvalidation:\n  manifests:\n    urls:\n      \
                 allow:\n        - ^https?://\nhttp:\n  addr: {addr}\n",
                dir.path().join("storage").display()
            );
            if let Some(pki) = &pki {
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    pki.dir.join("server.crt").display(),
                    pki.dir.join("server.key").display()
                ));
                if opts.client_certs {
                    config.push_str(&format!(
                        "    clientcas:\n      - {}\n",
                        pki.dir.join("ca.crt").display()
                    ));
                }
            }
            match &opts.auth {
                Auth::None => {}
                Auth::Basic { user, password } => {
                    let htpasswd = dir.path().join("htpasswd");
                    let out = Command::new("htpasswd")
                        .args(["-Bbn", user, password])
                        .output()
                        .expect("cannot run htpasswd (apache2-utils)");
                    assert!(out.status.success());
                    fs::write(&htpasswd, out.stdout).unwrap();
                    config.push_str(&format!(
                        "auth:\n  htpasswd:\n    realm: minirun-test\n    path: {}\n",
                        htpasswd.display()
                    ));
                }
                Auth::Token { .. } => {
                    let ts = token_server.as_ref().unwrap();
                    config.push_str(&format!(
                        "auth:\n  token:\n    realm: http://{}/token\n    service: {}\n    issuer: {}\n    \
                         rootcertbundle: {}\n",
                        ts.addr,
                        TokenServer::SERVICE,
                        TokenServer::ISSUER,
                        ts.cert.display()
                    ));
                }
            }
            let config_path = dir.path().join("config.yml");
            fs::write(&config_path, config).unwrap();
            let log_path = dir.path().join("registry.log");
            let log = fs::File::create(&log_path).unwrap();
            let mut child = Command::new(REGISTRY_BIN)
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("cannot start docker-registry");
            if wait_ready(&mut child, &addr) {
                return Registry {
                    dir,
                    child,
                    addr,
                    pki,
                    token_server,
                    creds,
                    client_certs: opts.client_certs,
                    markers: Default::default(),
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            assert!(
                log.contains("address already in use"),
                "docker-registry did not start:\n{log}"
            );
        }
        panic!("docker-registry found no free port");
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What the registry logged so far (access log included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Blob GETs the registry answered so far (requests for layers and configs).
    pub fn blob_gets(&self) -> usize {
        self.gets("/blobs/sha256:")
    }

    /// Manifest GETs the registry answered so far.
    pub fn manifest_gets(&self) -> usize {
        self.gets("/manifests/")
    }

    /// GETs under /v2/ whose path has `part`, counted in the access log once
    /// every earlier request is in it: the registry logs a request when its
    /// handler returns, which may be just after the client got the answer,
    /// so a marker request is sent and waited for first.
    fn gets(&self, part: &str) -> usize {
        let marker = format!(
            "/v2/log-marker-{}/tags/list",
            self.markers.fetch_add(1, Ordering::SeqCst)
        );
        let mut curl = Command::new("curl");
        curl.args(["-s", "-o", "/dev/null", "-k"]);
        if let (true, Some(pki)) = (self.client_certs, &self.pki) {
            curl.arg("--cert").arg(pki.dir.join("client.cert"));
            curl.arg("--key").arg(pki.dir.join("client.key"));
        }
        let _ = curl
            .arg(format!(
                "{}://{}{marker}",
                if self.pki.is_some() { "https" } else { "http" },
                self.addr
            ))
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(&marker) {
                return log
                    .lines()
                    .filter(|l| l.contains("\"GET /v2/") && l.contains(part) && !l.contains("level="))
                    .count();
            }
            assert!(Instant::now() < deadline, "the registry never logged {marker}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Where the registry keeps blob `hex`.
    pub fn blob_file(&self, hex: &str) -> PathBuf {
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    /// skopeo's flags to write to this registry.
    pub fn dest_flags(&self) -> Vec<String> {
        let mut f = vec!["--dest-tls-verify=false".to_string()];
        if self.client_certs {
            let pki = self.pki.as_ref().expect("client certificates need TLS");
            f.push(format!("--dest-cert-dir={}", pki.client_cert_dir().display()));
        }
        if let Some((u, p)) = &self.creds {
            f.push(format!("--dest-creds={u}:{p}"));
        }
        f
    }

    /// Upload `data` as a blob of `repo` (plain HTTP, no auth); its `sha256:` digest.
    pub fn upload_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = format!("sha256:{}", rootfs_fixtures::sha256_hex(data));
        let dir = self.dir.path().join("uploads");
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join(&digest[7..]);
        fs::write(&file, data).unwrap();
        let location = curl(&[
            "-sS",
            "-X",
            "POST",
            "-o",
            "/dev/null",
            "-w",
            "%header{location}",
            &format!("http://{}/v2/{repo}/blobs/uploads/", self.addr),
        ]);
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = if location.starts_with('/') {
            format!("http://{}{location}{sep}digest={digest}", self.addr)
        } else {
            format!("{location}{sep}digest={digest}")
        };
        curl(&[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", file.display()),
            &url,
        ]);
        digest
    }

    /// Put a manifest under `repo:tag`.
    pub fn put_manifest(&self, repo: &str, tag: &str, media_type: &str, manifest: &[u8]) {
        let file = self.dir.path().join("uploads/manifest.json");
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, manifest).unwrap();
        curl(&[
            "-sSf",
            "-X",
            "PUT",
            "-H",
            &format!("Content-Type: {media_type}"),
            "--data-binary",
            &format!("@{}", file.display()),
            &format!("http://{}/v2/{repo}/manifests/{tag}", self.addr),
        ]);
    }

    /// `skopeo copy [extra] SRC docker://ADDR/DEST`; panics on failure.
    pub fn push(&self, src: &str, dest: &str, extra: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["--insecure-policy", "copy", "--quiet"])
            .args(self.dest_flags())
            .args(extra)
            .arg(src)
            .arg(format!("docker://{}/{dest}", self.addr));
        let out = cmd.output().expect("cannot run skopeo");
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `curl ARGS`: its stdout; panics on failure.
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl").args(args).output().expect("cannot run curl");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls until the registry accepts connections; false if it died first.
fn wait_ready(child: &mut Child, addr: &str) -> bool {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("docker-registry did not listen on {addr} within {START_TIMEOUT:?}");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A token server as the registry's `auth: token:` wants: it checks basic
/// credentials and answers RS256 JWTs (signed with the `openssl` CLI, the
/// certificate in the `x5c` header) granting pull and push on the scope asked.
pub struct TokenServer {
    pub addr: String,
    cert: PathBuf,
    pub user: String,
    pub password: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Token requests served, and how many were refused.
    pub requests: Arc<std::sync::Mutex<Vec<String>>>,
}

/// The identity token a [`TokenServer`] for `password` accepts in a
/// `grant_type=refresh_token` request.
pub fn identity_token(password: &str) -> String {
    format!("identity-{password}")
}

impl TokenServer {
    pub const SERVICE: &'static str = "minirun-test-registry";
    pub const ISSUER: &'static str = "minirun-test-issuer";

    fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=minirun token signer",
            ])
            .current_dir(dir)
            .output()
            .expect("cannot run openssl");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let der = Command::new("openssl")
            .args(["x509", "-in", "token.crt", "-outform", "DER"])
            .current_dir(dir)
            .output()
            .unwrap()
            .stdout;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let ctx = TokenCtx {
            refresh: identity_token(password),
            key: dir.join("token.key"),
            x5c: base64::engine::general_purpose::STANDARD.encode(der),
            expected: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
        };
        let (stop2, requests2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let line = ctx.serve(conn);
                    requests2.lock().unwrap().push(line);
                }
            }
        });
        TokenServer {
            addr,
            cert: dir.join("token.crt"),
            user: user.to_string(),
            password: password.to_string(),
            stop,
            thread: Some(thread),
            requests,
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct TokenCtx {
    key: PathBuf,
    x5c: String,
    expected: String,
    /// The identity token (OAuth2 refresh token) this server accepts.
    refresh: String,
}

impl TokenCtx {
    /// Answer one request; returns "granted SCOPE" or "refused".
    fn serve(&self, conn: TcpStream) -> String {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return "broken".into();
        }
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_string());
                } else if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        // GET ?scope=...&service=... with basic auth (docker's token spec), or
        // POST grant_type=refresh_token&refresh_token=... (its OAuth2 spec)
        let post = request_line.starts_with("POST ");
        let query = if post {
            let mut body = vec![0; length.min(64 * 1024)];
            if reader.read_exact(&mut body).is_err() {
                return "broken".into();
            }
            String::from_utf8_lossy(&body).into_owned()
        } else {
            request_line
                .split_whitespace()
                .nth(1)
                .and_then(|p| p.split_once('?'))
                .map(|(_, q)| q.to_string())
                .unwrap_or_default()
        };
        let field = |name: &str| -> Vec<String> {
            query
                .split('&')
                .filter_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .map(percent_decode)
                .collect()
        };
        let scopes = field("scope");
        let mut conn = conn;
        let allowed = if post {
            field("grant_type") == ["refresh_token"] && field("refresh_token") == [self.refresh.clone()]
        } else {
            authorization.as_deref() == Some(self.expected.as_str())
        };
        if !allowed {
            let body = r#"{"details":"incorrect username or password"}"#;
            let _ = write!(
                conn,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return "refused".into();
        }
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .filter_map(|s| {
                let mut parts = s.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
            })
            .collect();
        let token = self.jwt(&access);
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let how = if post { "granted by refresh token" } else { "granted" };
        format!("{how} {}", scopes.join(" "))
    }

    fn jwt(&self, access: &[serde_json::Value]) -> String {
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": TokenServer::ISSUER, "sub": "tester", "aud": TokenServer::SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now - 10,
            "jti": format!("{now}-{}", std::process::id()), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut child = Command::new("openssl")
            .args(["dgst", "-sha256", "-binary", "-sign"])
            .arg(&self.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("cannot run openssl");
        child.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
        let mut sig = Vec::new();
        child.stdout.take().unwrap().read_to_end(&mut sig).unwrap();
        assert!(child.wait().unwrap().success(), "openssl dgst -sign failed");
        format!("{signing_input}.{}", b64(&sig))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A TCP proxy in front of a registry that holds every connection's answer
/// once it has passed `limit` bytes, until [`StallingProxy::release`]: a
/// pull through it gets its small blobs and hangs in the middle of a large
/// one, for as long as the test wants.
pub struct StallingProxy {
    pub addr: String,
    released: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Connections being held right now.
    pub holding: Arc<std::sync::atomic::AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StallingProxy {
    pub fn start(upstream: &str, limit: u64) -> StallingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let released = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let holding = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (upstream, r2, h2, s2) = (upstream.to_string(), released.clone(), holding.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for client in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let (Ok(client), Ok(server)) = (client, TcpStream::connect(&upstream)) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_read, &mut s_write);
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                let (released, holding) = (r2.clone(), h2.clone());
                std::thread::spawn(move || {
                    let mut passed = 0u64;
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match s_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        passed += n as u64;
                        if passed > limit {
                            let (lock, cond) = &*released;
                            let mut done = lock.lock().unwrap();
                            if !*done {
                                holding.fetch_add(1, Ordering::SeqCst);
                                while !*done {
                                    done = cond.wait(done).unwrap();
                                }
                                holding.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                        if c_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        StallingProxy {
            addr,
            released,
            holding,
            stop,
            thread: Some(thread),
        }
    }

    /// Let every held answer go on.
    pub fn release(&self) {
        let (lock, cond) = &*self.released;
        *lock.lock().unwrap() = true;
        cond.notify_all();
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.release();
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
