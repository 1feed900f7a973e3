//! Pulling from a real registry (Debian's docker-registry 2.8 on 127.0.0.1,
//! see `minirun_integration::registry`), images pushed with skopeo (and
//! umoci): multi-layer, OCI and docker manifests, a multi-platform index,
//! gzip and zstd layers, `./` root entries; by tag and digest; errors; a
//! corrupted blob; `run --pull`; TLS with a CA made here; htpasswd basic
//! auth and bearer tokens with login/logout.
//!
//! minirun's credentials files are the test's own (DOCKER_CONFIG and
//! --authfile in its tempdir); containers use `--net none`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use minirun_integration::registry::{identity_token, Auth, Options, Registry};
use minirun_integration::{tool, Env, Run};
use rootfs_fixtures::{build_image_with_layers, ImageFormat, LayerEntry};
use serde_json::{json, Value};

const USER: &str = "tester";
const PASSWORD: &str = "s3cret-Pa55word";

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

fn file(path: &str, content: &str) -> LayerEntry {
    LayerEntry::File {
        path: path.into(),
        content: content.as_bytes().to_vec(),
        mode: 0o644,
    }
}

/// A docker-save archive of busybox plus one layer per `(path, content)`.
fn archive(env: &Env, name: &str, layers: &[(&str, &str)]) -> PathBuf {
    let out = env.path().join(format!("{name}.tar"));
    let extra: Vec<Vec<LayerEntry>> = layers.iter().map(|(p, c)| vec![file(p, c)]).collect();
    build_image_with_layers(&out, &format!("{name}:latest"), ImageFormat::DockerArchive, &extra)
        .expect("cannot build the image fixture");
    out
}

fn docker_archive(path: &Path) -> String {
    format!("docker-archive:{}", path.display())
}

/// `minirun ARGS` with the test's own credentials files (never the real user's).
fn mr(env: &Env, args: &[&str]) -> Run {
    mr_in(env, args, None)
}

fn mr_in(env: &Env, args: &[&str], input: Option<&[u8]>) -> Run {
    let mut cmd = env.cmd(args);
    cmd.env("DOCKER_CONFIG", docker_config_dir(env))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE");
    env.run_cmd(cmd, input)
}

fn docker_config_dir(env: &Env) -> PathBuf {
    env.path().join("docker-config")
}

fn pull(env: &Env, reference: &str, flags: &[&str]) -> Run {
    let mut args = vec!["pull"];
    args.extend_from_slice(flags);
    args.push(reference);
    mr(env, &args)
}

/// `run --rm --net none --pull never IMAGE CMD...`: stdout.
fn run_rm(env: &Env, image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--net", "none", "--pull", "never", image];
    args.extend_from_slice(cmd);
    mr(env, &args).ok().stdout
}

/// The `Digest: sha256:...` a pull printed.
fn digest_of(r: &Run) -> String {
    r.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in {r:#?}"))
        .to_string()
}

/// Layers, blobs, staging leftovers and references in the store.
fn store_contents(env: &Env) -> (BTreeSet<String>, Value) {
    let images = env.data_root.join("images");
    let mut names = BTreeSet::new();
    for sub in ["layers", "blobs/sha256", "tmp"] {
        if let Ok(rd) = fs::read_dir(images.join(sub)) {
            for e in rd.flatten() {
                names.insert(format!("{sub}/{}", e.file_name().to_string_lossy()));
            }
        }
    }
    let index = fs::read(images.join("index.json"))
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    (names, index)
}

fn count(names: &BTreeSet<String>, prefix: &str) -> usize {
    names.iter().filter(|n| n.starts_with(prefix)).count()
}

fn no_images(env: &Env) -> bool {
    let (names, index) = store_contents(env);
    count(&names, "tmp/") == 0
        && index["refs"].as_object().is_none_or(|r| r.is_empty())
        && index["images"].as_object().is_none_or(|r| r.is_empty())
        && count(&names, "blobs/") == 0
}

// ---------------------------------------------------------------------------
// pulls
// ---------------------------------------------------------------------------

#[test]
fn pulls_runs_and_pulls_again_without_downloading() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let tar = archive(&env, "app", &[("etc/one", "layer one\n"), ("etc/two", "layer two\n")]);
    reg.push(&docker_archive(&tar), "team/app:v1", &[]);
    reg.push(&docker_archive(&tar), "team/app-oci:v1", &["--format", "oci"]);
    let image = format!("{}/team/app:v1", reg.addr);

    let r = pull(&env, &image, &[]).ok();
    assert_eq!(r.stdout.lines().last(), Some(image.as_str()), "{r:#?}");
    assert_eq!(r.stdout.matches(": Pull complete").count(), 3, "{r:#?}");
    assert!(
        r.stdout
            .contains(&format!("Status: Downloaded newer image for {image}")),
        "{r:#?}"
    );
    assert_eq!(
        run_rm(&env, &image, &["cat", "/etc/one", "/etc/two"]),
        "layer one\nlayer two\n"
    );

    // everything is there: nothing is downloaded again
    let gets = reg.blob_gets();
    assert!(gets >= 4, "config and three layers: {}", reg.log());
    let r = pull(&env, &image, &[]).ok();
    assert!(r.stdout.contains("Image is up to date"), "{r:#?}");
    assert_eq!(r.stdout.matches(": Already exists").count(), 3, "{r:#?}");
    assert_eq!(reg.blob_gets(), gets, "a second pull downloaded blobs");

    // by digest: the image is found under repo@digest, run by it
    let digest = digest_of(&r);
    let by_digest = format!("{}/team/app@{digest}", reg.addr);
    let r = pull(&env, &by_digest, &["-q"]).ok();
    assert_eq!(r.stdout, format!("{by_digest}\n"), "-q prints the name only");
    assert_eq!(run_rm(&env, &by_digest, &["cat", "/etc/two"]), "layer two\n");

    // an OCI manifest of the same layers: no layer downloaded
    let oci = format!("{}/team/app-oci:v1", reg.addr);
    let before = reg.blob_gets();
    let r = pull(&env, &oci, &[]).ok();
    assert_eq!(r.stdout.matches(": Already exists").count(), 3, "{r:#?}");
    assert!(reg.blob_gets() <= before + 1, "only the config may be fetched");
    assert_eq!(run_rm(&env, &oci, &["cat", "/etc/one"]), "layer one\n");
    let images = mr(&env, &["images"]).ok().stdout;
    assert!(images.contains(&format!("{}/team/app ", reg.addr)), "{images}");
    assert!(images.contains(&format!("{}/team/app-oci ", reg.addr)), "{images}");
    // rmi takes it away again (its digest name with it, as docker)
    mr(&env, &["rmi", &image]).ok();
    mr(&env, &["rmi", &by_digest]).fails_with(&by_digest);
    mr(&env, &["rmi", &oci]).ok();
    assert!(no_images(&env), "{:?}", store_contents(&env));
}

#[test]
fn zstd_gzip_and_umoci_layers_with_root_entries() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let tar = archive(&env, "zz", &[("etc/zstd-layer", "zstd\n")]);
    reg.push(
        &docker_archive(&tar),
        "zz:v1",
        &["--format", "oci", "--dest-compress-format", "zstd"],
    );
    // umoci's layers start with the root entry "./"
    let layout = env.path().join("layout");
    tool(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(docker_archive(&tar))
            .arg(format!("oci:{}:v1", layout.display())),
    );
    let bundle = env.path().join("umoci-bundle");
    tool(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle),
    );
    fs::write(bundle.join("rootfs/etc/umoci-was-here"), "umoci\n").unwrap();
    tool(
        Command::new("umoci")
            .arg("repack")
            .arg("--image")
            .arg(format!("{}:v2", layout.display()))
            .arg(&bundle),
    );
    reg.push(&format!("oci:{}:v2", layout.display()), "umoci:v2", &[]);

    let zz = format!("{}/zz:v1", reg.addr);
    pull(&env, &zz, &[]).ok();
    assert_eq!(run_rm(&env, &zz, &["cat", "/etc/zstd-layer"]), "zstd\n");
    let umoci = format!("{}/umoci:v2", reg.addr);
    pull(&env, &umoci, &[]).ok();
    assert_eq!(
        run_rm(&env, &umoci, &["cat", "/etc/umoci-was-here", "/etc/zstd-layer"]),
        "umoci\nzstd\n"
    );
}

/// An OCI layout holding an index of the fixture for this machine and a
/// (config-only) arm64/v8 variant sharing its layers.
fn multi_platform_layout(env: &Env) -> PathBuf {
    let layout = env.path().join("multi");
    build_image_with_layers(
        &layout,
        "multi:latest",
        ImageFormat::OciDir,
        &[vec![file("etc/multi", "multi\n")]],
    )
    .unwrap();
    let blob = |hex: &str| layout.join("blobs/sha256").join(hex);
    let put = |bytes: &[u8]| -> (String, usize) {
        let hex = rootfs_fixtures::sha256_hex(bytes);
        fs::write(blob(&hex), bytes).unwrap();
        (hex, bytes.len())
    };
    let index: Value = serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"][0].clone();
    let manifest_hex = desc["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap()
        .to_string();
    let manifest: Value = serde_json::from_slice(&fs::read(blob(&manifest_hex)).unwrap()).unwrap();
    let config_hex = manifest["config"]["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let mut config: Value = serde_json::from_slice(&fs::read(blob(config_hex)).unwrap()).unwrap();
    config["architecture"] = json!("arm64");
    config["variant"] = json!("v8");
    let (arm_config, arm_config_len) = put(&serde_json::to_vec(&config).unwrap());
    let mut arm_manifest = manifest.clone();
    arm_manifest["config"]["digest"] = json!(format!("sha256:{arm_config}"));
    arm_manifest["config"]["size"] = json!(arm_config_len);
    let (arm_hex, arm_len) = put(&serde_json::to_vec(&arm_manifest).unwrap());
    let host = rootfs_fixtures::host_architecture();
    let nested = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": desc["digest"], "size": desc["size"],
             "platform": {"os": "linux", "architecture": host}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": format!("sha256:{arm_hex}"),
             "size": arm_len, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}
        ]
    });
    let (nested_hex, nested_len) = put(&serde_json::to_vec(&nested).unwrap());
    let top = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                       "digest": format!("sha256:{nested_hex}"), "size": nested_len,
                       "annotations": {"org.opencontainers.image.ref.name": "all"}}]
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    layout
}

#[test]
fn multi_platform_index_picks_the_platform_and_lists_the_others() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let layout = multi_platform_layout(&env);
    reg.push(&format!("oci:{}:all", layout.display()), "multi:latest", &["--all"]);
    let image = format!("{}/multi", reg.addr);

    let r = pull(&env, &image, &[]).ok();
    assert!(r.stdout.contains("Using default tag: latest"), "{r:#?}");
    assert_eq!(run_rm(&env, &image, &["cat", "/etc/multi"]), "multi\n");
    let host_id = mr(&env, &["images"]).ok().stdout;

    // another platform: its own config, the same layers (nothing downloaded)
    let before = reg.blob_gets();
    let r = pull(&env, &format!("{image}:latest"), &["--platform", "linux/arm64"]).ok();
    assert_eq!(r.stdout.matches("Already exists").count(), 2, "{r:#?}");
    assert_eq!(reg.blob_gets(), before + 1, "only the arm64 config is new");
    let arm_id = mr(&env, &["images"]).ok().stdout;
    assert_ne!(host_id, arm_id, "the tag moved to the arm64 image");

    let snapshot = store_contents(&env);
    pull(&env, &image, &["--platform", "linux/s390x"]).fails_with(&format!(
        "no image for platform linux/s390x; the registry has: linux/{}, linux/arm64/v8",
        rootfs_fixtures::host_architecture()
    ));
    pull(&env, &image, &["--platform", "linux"]).fails_with("\"linux\"");
    assert_eq!(store_contents(&env), snapshot, "a failed pull changed the store");
}

#[test]
fn errors_name_the_repository_tag_or_registry_and_leave_nothing() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let tar = archive(&env, "e", &[]);
    reg.push(&docker_archive(&tar), "there:v1", &[]);
    let a = &reg.addr;

    pull(&env, &format!("{a}/nowhere:v1"), &[]).fails_with(&format!("repository {a}/nowhere not found"));
    pull(&env, &format!("{a}/there:v2"), &[]).fails_with(&format!("manifest v2 not found in {a}/there"));
    let missing = format!("sha256:{}", "0".repeat(64));
    pull(&env, &format!("{a}/there@{missing}"), &[]).fails_with(&missing);
    pull(&env, "Bad:Name", &[]).fails_with("\"Bad:Name\"");
    // nothing listens there
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    pull(&env, &format!("{closed}/app"), &[]).fails_with(&format!("registry {closed} is unreachable"));
    assert!(no_images(&env), "{:?}", store_contents(&env));
    assert_eq!(count(&store_contents(&env).0, "layers/"), 0);
}

#[test]
fn a_corrupt_blob_stores_nothing_and_complete_layers_are_reused() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let tar = archive(&env, "c", &[("etc/good", "good\n"), ("etc/bad", "bad\n")]);
    reg.push(&docker_archive(&tar), "c:v1", &[]);
    let image = format!("{}/c:v1", reg.addr);
    // the top layer's blob in the registry's storage: flip bytes, keep the size
    let manifest: Value = serde_json::from_str(&tool(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{image}")),
    ))
    .unwrap();
    let top = manifest["layers"][2]["digest"].as_str().unwrap().to_string();
    let path = reg.blob_file(top.strip_prefix("sha256:").unwrap());
    let original = fs::read(&path).unwrap();
    let mut broken = original.clone();
    let mid = broken.len() / 2;
    for b in &mut broken[mid..mid + 16] {
        *b ^= 0xff;
    }
    fs::write(&path, &broken).unwrap();

    let r = pull(&env, &image, &[]).fails_with(&top);
    assert!(r.stderr.contains("digest"), "{r:#?}");
    let (names, index) = store_contents(&env);
    assert!(no_images(&env), "a partial image was recorded: {index:#}");
    assert_eq!(count(&names, "layers/"), 2, "the two good layers are kept: {names:?}");
    mr(
        &env,
        &["run", "--rm", "--net", "none", "--pull", "never", &image, "true"],
    )
    .fails_with(&image);

    // repaired: the next pull fetches the config and the one missing layer
    fs::write(&path, &original).unwrap();
    let before = reg.blob_gets();
    let r = pull(&env, &image, &[]).ok();
    assert_eq!(r.stdout.matches("Already exists").count(), 2, "{r:#?}");
    assert_eq!(reg.blob_gets(), before + 2, "{}", reg.log());
    assert_eq!(run_rm(&env, &image, &["cat", "/etc/good", "/etc/bad"]), "good\nbad\n");
}

#[test]
fn run_pull_policies() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let tar = archive(&env, "p", &[("etc/p", "p\n")]);
    reg.push(&docker_archive(&tar), "p:v1", &[]);
    let image = format!("{}/p:v1", reg.addr);
    let run = |policy: &str| {
        mr(
            &env,
            &[
                "run", "--rm", "--net", "none", "--pull", policy, &image, "cat", "/etc/p",
            ],
        )
    };

    run("never").fails_with(&image);
    assert_eq!(reg.manifest_gets(), 0);
    let r = run("missing").ok();
    assert_eq!(
        r.stdout, "p\n",
        "pull progress stays off the container's stdout: {r:#?}"
    );
    assert!(
        r.stderr.contains(&format!("Unable to find image '{image}' locally")),
        "{r:#?}"
    );
    let gets = reg.manifest_gets();
    assert!(gets >= 1);
    assert_eq!(run("missing").ok().stderr, "", "present: no pull");
    assert_eq!(reg.manifest_gets(), gets);
    let blobs = reg.blob_gets();
    let r = run("always").ok();
    assert!(r.stderr.contains("Image is up to date"), "{r:#?}");
    assert!(reg.manifest_gets() > gets);
    assert_eq!(reg.blob_gets(), blobs);
    // -q: no progress at all
    assert_eq!(
        mr(
            &env,
            &["run", "--rm", "--net", "none", "--pull", "always", "-q", &image, "true"]
        )
        .ok()
        .stderr,
        ""
    );
}

// ---------------------------------------------------------------------------
// TLS and authentication
// ---------------------------------------------------------------------------

#[test]
fn tls_registries_need_their_ca() {
    let env = Env::new();
    let reg = Registry::start(Options {
        tls: true,
        ..Default::default()
    });
    let tar = archive(&env, "t", &[]);
    reg.push(&docker_archive(&tar), "t:v1", &[]);
    let image = format!("{}/t:v1", reg.addr);
    let r = pull(&env, &image, &[]).fails_with(&format!("TLS with registry {} failed", reg.addr));
    assert!(r.stderr.contains("certificate"), "{r:#?}");
    assert!(no_images(&env));
    let cert_dir = reg.pki.as_ref().unwrap().cert_dir();
    pull(&env, &image, &["--cert-dir", cert_dir.to_str().unwrap()]).ok();
    mr(&env, &["rmi", &image]).ok();
    pull(&env, &image, &["--tls-verify=false"]).ok();
    assert_eq!(run_rm(&env, &image, &["echo", "tls"]), "tls\n");
}

#[test]
fn client_certificates_from_the_cert_dir_are_presented() {
    let env = Env::new();
    let reg = Registry::start(Options {
        tls: true,
        client_certs: true,
        auth: Auth::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
    });
    let tar = archive(&env, "c", &[]);
    reg.push(&docker_archive(&tar), "c/app:v1", &[]);
    let image = format!("{}/c/app:v1", reg.addr);
    let a = &reg.addr;
    let pki = reg.pki.as_ref().unwrap();
    let ca_only = pki.cert_dir();
    let with_client = pki.client_cert_dir();
    let ca_only = ca_only.to_str().unwrap();
    let with_client = with_client.to_str().unwrap();

    // Without a client certificate the registry ends the handshake.
    let r = pull(&env, &image, &["--cert-dir", ca_only]).fails_with(&format!("TLS with registry {a} failed"));
    assert!(r.stderr.contains("client certificate?"), "no hint: {r:#?}");
    login(&env, a, PASSWORD, &["--cert-dir", ca_only]).fails_with(&format!("TLS with registry {a} failed"));

    // A certificate without its key is refused before any request, naming the file.
    let no_key = env.path().join("no-key.d");
    fs::create_dir_all(&no_key).unwrap();
    fs::copy(pki.dir.join("ca.crt"), no_key.join("ca.crt")).unwrap();
    fs::copy(pki.dir.join("client.cert"), no_key.join("client.cert")).unwrap();
    pull(&env, &image, &["--cert-dir", no_key.to_str().unwrap()]).fails_with(&format!(
        "missing key for client certificate {}",
        no_key.join("client.cert").display()
    ));
    assert!(no_images(&env));

    // With it: basic auth through the certificate's connection (the
    // challenge, then the credentials), login, pull, run.
    pull(&env, &image, &["--cert-dir", with_client]).fails_with(&format!("`minirun login {a}`"));
    login(&env, a, "wrong-password", &["--cert-dir", with_client]).fails_with(&format!("login {a}: unauthorized"));
    assert_eq!(
        login(&env, a, PASSWORD, &["--cert-dir", with_client]).ok().stdout,
        "Login Succeeded\n"
    );
    let r = pull(&env, &image, &["--cert-dir", with_client, "--debug"]).ok();
    assert!(
        r.stderr.contains("presenting a client certificate"),
        "the pull did not say it presents the certificate: {r:#?}"
    );
    assert!(!r.stderr.contains(PASSWORD) && !r.stdout.contains(PASSWORD), "{r:#?}");
    assert_eq!(run_rm(&env, &image, &["echo", "mtls"]), "mtls\n");
    // Every layer came through: a second pull downloads nothing.
    let blobs = reg.blob_gets();
    pull(&env, &image, &["--cert-dir", with_client]).ok();
    assert_eq!(
        reg.blob_gets(),
        blobs,
        "a pull of a present image downloaded blobs again"
    );
}

fn login(env: &Env, addr: &str, password: &str, extra: &[&str]) -> Run {
    let mut args = vec!["login", "-u", USER, "--password-stdin"];
    args.extend_from_slice(extra);
    args.push(addr);
    mr_in(env, &args, Some(format!("{password}\n").as_bytes()))
}

/// Pull needs credentials; login stores them (never printing them), logout removes them.
fn check_login_flow(env: &Env, reg: &Registry) {
    let tar = archive(env, "s", &[]);
    reg.push(&docker_archive(&tar), "secret/app:v1", &[]);
    let image = format!("{}/secret/app:v1", reg.addr);
    let a = &reg.addr;

    pull(env, &image, &[]).fails_with(&format!("`minirun login {a}`"));
    login(env, a, "wrong-password", &[]).fails_with(&format!("login {a}: unauthorized"));
    let config = docker_config_dir(env).join("config.json");
    assert!(!config.exists(), "a refused login stored something");

    let r = login(env, a, PASSWORD, &["--debug"]).ok();
    assert_eq!(r.stdout, "Login Succeeded\n");
    assert!(
        !r.stderr.contains(PASSWORD),
        "login --debug printed the password: {r:#?}"
    );
    let stored: Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    assert!(stored["auths"][a]["auth"].is_string(), "{stored:#}");
    let r = pull(env, &image, &["--debug"]).ok();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, b64.as_str()] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "the secret was printed: {r:#?}"
        );
    }
    assert_eq!(run_rm(env, &image, &["echo", "in"]), "in\n");

    assert_eq!(
        mr(env, &["logout", a]).ok().stdout,
        format!("Removed login credentials for {a}\n")
    );
    mr(env, &["logout", a]).fails_with(&format!("not logged in to {a}"));
    pull(env, &image, &[]).fails_with("login");

    // podman's --authfile
    let authfile = env.path().join("auth.json");
    let authfile = authfile.to_str().unwrap();
    login(env, a, PASSWORD, &["--authfile", authfile]).ok();
    mr(env, &["rmi", &image]).ok();
    pull(env, &image, &["--authfile", authfile]).ok();
    assert!(!config.exists() || !fs::read_to_string(&config).unwrap().contains(a.as_str()));
}

/// A registry that wants USER/PASSWORD the way `auth` says.
fn registry_with(auth: fn(String, String) -> Auth) -> Registry {
    Registry::start(Options {
        auth: auth(USER.into(), PASSWORD.into()),
        ..Default::default()
    })
}

#[test]
fn basic_auth_login_pull_logout() {
    let env = Env::new();
    let reg = registry_with(|user, password| Auth::Basic { user, password });
    check_login_flow(&env, &reg);
}

#[test]
fn bearer_token_login_pull_logout() {
    let env = Env::new();
    let reg = registry_with(|user, password| Auth::Token { user, password });
    check_login_flow(&env, &reg);
    let requests = reg.token_server.as_ref().unwrap().requests.lock().unwrap().clone();
    assert!(
        requests.iter().any(|r| r == "granted repository:secret/app:pull"),
        "{requests:?}"
    );
}

#[test]
fn credential_helpers_are_asked() {
    let env = Env::new();
    let reg = Registry::start(Options {
        auth: Auth::Basic {
            user: USER.into(),
            password: PASSWORD.into(),
        },
        ..Default::default()
    });
    let tar = archive(&env, "h", &[]);
    reg.push(&docker_archive(&tar), "h:v1", &[]);
    pull_with_helper(&env, &reg.addr, USER, PASSWORD, &format!("{}/h:v1", reg.addr)).ok();
}

/// `pull IMAGE` with an authfile naming only a credential helper, which
/// answers USERNAME and SECRET for registry `addr` (and fails for any other).
fn pull_with_helper(env: &Env, addr: &str, username: &str, secret: &str, image: &str) -> Run {
    let bin = env.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-minirun-test");
    fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread host\n[ \"$1\" = get ] && [ \"$host\" = {addr} ] || exit 1\n\
             echo '{{\"ServerURL\":\"{addr}\",\"Username\":\"{username}\",\"Secret\":\"{secret}\"}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helper, fs::Permissions::from_mode(0o755)).unwrap();
    let authfile = env.path().join("helper.json");
    fs::write(&authfile, r#"{"credsStore": "minirun-test"}"#).unwrap();
    let mut cmd = env.cmd(["pull", "--authfile", authfile.to_str().unwrap(), image]);
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    cmd.env("PATH", path);
    env.run_cmd(cmd, None)
}

/// An identity token (OAuth2 refresh token) from a credential helper (user
/// `<token>`) or from `identitytoken` in config.json is traded for an access
/// token at the registry's realm; a refused one is "unauthorized", stores
/// nothing, and is never printed.
#[test]
fn identity_tokens_are_exchanged_for_access_tokens() {
    let env = Env::new();
    let reg = registry_with(|user, password| Auth::Token { user, password });
    let tar = archive(&env, "i", &[]);
    reg.push(&docker_archive(&tar), "idt/app:v1", &[]);
    let image = format!("{}/idt/app:v1", reg.addr);
    let token = identity_token(PASSWORD);
    let granted = || {
        let requests = reg.token_server.as_ref().unwrap().requests.lock().unwrap().clone();
        requests
            .iter()
            .filter(|r| *r == "granted by refresh token repository:idt/app:pull")
            .count()
    };

    // config.json's identitytoken: a wrong one is refused, nothing is stored
    let authfile = env.path().join("id.json");
    let write_authfile = |token: &str| {
        fs::write(
            &authfile,
            json!({"auths": {reg.addr.as_str(): {"identitytoken": token}}}).to_string(),
        )
        .unwrap()
    };
    write_authfile("identity-wrong");
    let r = pull(&env, &image, &["--authfile", authfile.to_str().unwrap()]).fails_with("refused the identity token");
    assert!(r.stderr.contains(&reg.addr), "{r:#?}");
    assert!(no_images(&env), "a refused pull stored something");
    assert_eq!(granted(), 0);
    write_authfile(&token);
    let r = pull(&env, &image, &["--authfile", authfile.to_str().unwrap(), "--debug"]).ok();
    assert!(
        !r.stdout.contains(&token) && !r.stderr.contains(&token),
        "the identity token was printed: {r:#?}"
    );
    assert_eq!(granted(), 1);
    assert_eq!(run_rm(&env, &image, &["echo", "in"]), "in\n");
    mr(&env, &["rmi", &image]).ok();

    // a credential helper answering user <token>
    pull_with_helper(&env, &reg.addr, "<token>", &token, &image).ok();
    assert_eq!(granted(), 2);
}

// ---------------------------------------------------------------------------
// tag and save
// ---------------------------------------------------------------------------

#[test]
fn tag_and_save_write_an_archive_others_load() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    let out = env.path().join("w.tar");
    build_image_with_layers(
        &out,
        "w:latest",
        ImageFormat::DockerArchive,
        &[
            vec![file("etc/keep", "keep\n")],
            vec![LayerEntry::Whiteout {
                path: "var/www/index.html".into(),
            }],
        ],
    )
    .unwrap();
    reg.push(&docker_archive(&out), "w:v1", &[]);
    let image = format!("{}/w:v1", reg.addr);
    pull(&env, &image, &["-q"]).ok();
    mr(&env, &["tag", &image, "saved/w:2"]).ok();
    mr(&env, &["tag", "nosuch:1", "x:1"]).fails_with("nosuch:1");
    mr(&env, &["tag", &image, "Bad Name"]).fails_with("\"Bad Name\"");
    let images = mr(&env, &["images"]).ok().stdout;
    assert!(images.contains("saved/w "), "{images}");

    let saved = env.path().join("saved.tar");
    mr(&env, &["save", "-o", saved.to_str().unwrap(), "saved/w:2"]).ok();
    let inspect: Value = serde_json::from_str(&tool(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", saved.display())),
    ))
    .unwrap();
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3, "{inspect:#}");
    // skopeo checks every layer against the config's diff_ids while copying
    tool(
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet"])
            .arg(format!("docker-archive:{}", saved.display()))
            .arg(format!("oci:{}:w", env.path().join("copied").display())),
    );
    // and minirun loads it elsewhere: whiteouts survive the round trip
    let other = Env::new();
    let r = other.run(["load", "-i", saved.to_str().unwrap()]).ok();
    assert_eq!(r.stdout, "Loaded image: saved/w:2\n");
    let out = other
        .run([
            "run",
            "--rm",
            "--net",
            "none",
            "saved/w:2",
            "sh",
            "-c",
            "cat /etc/keep; test -e /var/www/index.html || echo deleted",
        ])
        .ok()
        .stdout;
    assert_eq!(out, "keep\ndeleted\n");
    mr(&env, &["save", "-o", saved.to_str().unwrap(), "nosuch:2"]).fails_with("nosuch:2");
}

#[test]
fn uncompressed_layers_pull_and_foreign_layers_are_skipped() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    // the fixture's docker archive holds the layer as an uncompressed tar
    let tar = archive(&env, "u", &[("etc/u", "uncompressed\n")]);
    let unpacked = env.path().join("u-archive");
    fs::create_dir_all(&unpacked).unwrap();
    tool(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&unpacked));
    let manifest: Value = serde_json::from_slice(&fs::read(unpacked.join("manifest.json")).unwrap()).unwrap();
    let mut config: Value =
        serde_json::from_slice(&fs::read(unpacked.join(manifest[0]["Config"].as_str().unwrap())).unwrap()).unwrap();
    let mut layers = Vec::new();
    for path in manifest[0]["Layers"].as_array().unwrap() {
        let data = fs::read(unpacked.join(path.as_str().unwrap())).unwrap();
        let digest = reg.upload_blob("u", &data);
        layers.push(
            json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": digest, "size": data.len()}),
        );
    }
    // a foreign layer: listed, never in the registry, not to be fetched
    let foreign = format!("sha256:{}", "f".repeat(64));
    layers.push(json!({
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "digest": foreign, "size": 1234, "urls": ["https://foreign.invalid/layer"]
    }));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .unwrap()
        .push(json!(format!("sha256:{}", "e".repeat(64))));
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = reg.upload_blob("u", &config);
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": layers,
    });
    reg.put_manifest(
        "u",
        "v1",
        "application/vnd.docker.distribution.manifest.v2+json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let image = format!("{}/u:v1", reg.addr);
    let r = pull(&env, &image, &[]).ok();
    assert!(
        r.stdout
            .contains(&format!("{}: Skipped foreign layer", &foreign[7..19])),
        "{r:#?}"
    );
    assert_eq!(r.stdout.matches(": Pull complete").count(), 2, "{r:#?}");
    assert_eq!(run_rm(&env, &image, &["cat", "/etc/u"]), "uncompressed\n");
}

#[test]
fn a_killed_pull_records_no_image_and_the_next_reuses_its_layers() {
    let env = Env::new();
    let reg = Registry::start(Options::default());
    // busybox (~1 MB compressed) and 8 MB that do not compress
    let mut noise = vec![0u8; 8 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let out = env.path().join("k.tar");
    build_image_with_layers(
        &out,
        "k:latest",
        ImageFormat::DockerArchive,
        &[vec![LayerEntry::File {
            path: "noise".into(),
            content: noise,
            mode: 0o644,
        }]],
    )
    .unwrap();
    reg.push(&docker_archive(&out), "k:v1", &[]);
    let proxy = minirun_integration::registry::StallingProxy::start(&reg.addr, 3 << 20);
    let through_proxy = format!("{}/k:v1", proxy.addr);

    let mut cmd = env.cmd(["pull", "-q", &through_proxy]);
    cmd.env("DOCKER_CONFIG", docker_config_dir(&env))
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("REGISTRY_AUTH_FILE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    // the small layer committed (in index.json, not only moved into place)
    // while the big one hangs in the proxy
    let committed = || {
        let (_, index) = store_contents(&env);
        index["layers"].as_object().map_or(0, |l| l.len()) == 1
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(committed() && proxy.holding.load(std::sync::atomic::Ordering::SeqCst) > 0) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the pull ended before it could be interrupted"
        );
        assert!(std::time::Instant::now() < deadline, "the small layer never arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    proxy.release();
    let (names, index) = store_contents(&env);
    assert!(
        index["images"].as_object().is_none_or(|i| i.is_empty())
            && index["refs"].as_object().is_none_or(|r| r.is_empty()),
        "a killed pull recorded an image: {index:#}"
    );
    assert_eq!(count(&names, "layers/"), 1, "{names:?}");

    // the next pull (straight to the registry) fetches the config and the big layer only
    let image = format!("{}/k:v1", reg.addr);
    let before = reg.blob_gets();
    let r = pull(&env, &image, &[]).ok();
    assert_eq!(r.stdout.matches("Already exists").count(), 1, "{r:#?}");
    assert_eq!(reg.blob_gets(), before + 2);
    let (names, _) = store_contents(&env);
    assert_eq!(count(&names, "tmp/"), 0, "the killed pull's staging is gone: {names:?}");
    assert_eq!(run_rm(&env, &image, &["sh", "-c", "wc -c < /noise"]).trim(), "8388608");
}
