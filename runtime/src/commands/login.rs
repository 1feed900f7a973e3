//! `login [SERVER] -u USER --password-stdin` and `logout [SERVER]`: registry
//! credentials in docker's config.json (or `--authfile`), checked against
//! the registry first. The password is never echoed, logged or printed.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context, Result};
use minirun_images::{auth, PullOptions};

use crate::cli::{LoginArgs, LogoutArgs};

const DEFAULT_SERVER: &str = "docker.io";

pub fn login(a: &LoginArgs) -> Result<u8> {
    let domain = minirun_images::registry_domain(a.server.as_deref().unwrap_or(DEFAULT_SERVER));
    let Some(username) = a.username.clone().filter(|u| !u.is_empty()) else {
        bail!("login {domain}: a user name is required (-u USER)");
    };
    if !a.password_stdin {
        bail!("login {domain}: give the password on standard input with --password-stdin");
    }
    if std::io::stdin().is_terminal() {
        eprintln!("Password (then Enter):");
    }
    let mut secret = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut secret)
        .context("cannot read the password from standard input")?;
    let secret = secret.trim_end_matches(['\n', '\r']).to_string();
    if secret.is_empty() {
        bail!("login {domain}: the password on standard input is empty");
    }
    let credentials = auth::Credentials { username, secret };
    let opts = PullOptions {
        tls_verify: a.registry.tls_verify,
        cert_dir: a.registry.cert_dir.clone(),
        credentials: Some(credentials.clone()),
        ..Default::default()
    };
    match minirun_images::check_login(&domain, &opts) {
        Ok(()) => {}
        Err(minirun_images::Error::Unauthorized { .. }) => {
            bail!(
                "login {domain}: unauthorized: the registry refused user \"{}\" (wrong user name or password)",
                credentials.username
            )
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("login {domain}"))),
    }
    let stored_in = auth::store(&domain, &credentials, a.registry.authfile.as_deref())
        .with_context(|| format!("login {domain}: cannot store the credentials"))?;
    tracing::info!(registry = %domain, stored_in, "credentials stored");
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: &LogoutArgs) -> Result<u8> {
    let domain = minirun_images::registry_domain(a.server.as_deref().unwrap_or(DEFAULT_SERVER));
    if auth::erase(&domain, a.authfile.as_deref())? {
        println!("Removed login credentials for {domain}");
        Ok(0)
    } else {
        bail!("not logged in to {domain}");
    }
}
