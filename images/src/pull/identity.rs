//! Identity tokens: the OAuth2 refresh token that `docker login` keeps as
//! `identitytoken` in `config.json`, or that a credential helper answers as
//! user `<token>`, in place of a password. It is traded for an access token
//! at the realm the registry's challenge names (`POST`,
//! `grant_type=refresh_token`), as docker does, and the pull then goes on
//! with that bearer token.

use super::*;
use http_auth::ChallengeParser;

/// What the registry's `GET /v2/` said about authentication.
#[derive(Debug, PartialEq)]
enum Challenge {
    /// No authentication needed.
    None,
    Bearer {
        realm: String,
        service: Option<String>,
    },
    /// Basic auth (or something else): an identity token cannot be used.
    Other(String),
}

/// Trade `refresh` for an access token to pull `remote`'s repository.
/// `schemes` are tried in order (https, then plain http where allowed);
/// returns the access token (None if the registry wants no authentication)
/// and whether the registry spoke plain HTTP.
pub(super) async fn exchange(
    http: &reqwest::Client,
    remote: &Remote,
    refresh: &str,
    schemes: &[&str],
    reference: &str,
) -> Result<(Option<String>, bool)> {
    let (domain, host, repository) = (remote.domain.as_str(), remote.host.as_str(), remote.path.as_str());
    let unauthorized = |reason: String| Error::Unauthorized {
        reference: reference.to_string(),
        registry: domain.to_string(),
        reason,
    };
    let mut last = None;
    for scheme in schemes {
        let response = match http.get(format!("{scheme}://{host}/v2/")).send().await {
            Ok(r) => r,
            Err(e) => {
                last = Some(request_error(reference, domain, &e));
                continue;
            }
        };
        let plain = *scheme == "http";
        let challenge = match response.status() {
            reqwest::StatusCode::UNAUTHORIZED => parse_challenge(
                response
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok()),
            ),
            _ => Challenge::None,
        };
        let (realm, service) = match challenge {
            Challenge::None => return Ok((None, plain)),
            Challenge::Other(scheme) => {
                return Err(unauthorized(format!(
                    "the registry asks for {scheme} authentication, and the stored credentials are an identity token"
                )))
            }
            Challenge::Bearer { realm, service } => (realm, service),
        };
        let scope = format!("repository:{repository}:pull");
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "minirun"),
            ("scope", scope.as_str()),
        ];
        if let Some(s) = &service {
            form.push(("service", s));
        }
        let answer = http
            .post(&realm)
            .form(&form)
            .send()
            .await
            .map_err(|e| request_error(reference, domain, &e))?;
        let status = answer.status();
        let body = answer.text().await.map_err(|e| request_error(reference, domain, &e))?;
        if !status.is_success() {
            return Err(unauthorized(format!(
                "the token server refused the identity token ({status}): {}",
                first_line(&body)
            )));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            token: Option<String>,
        }
        let token = serde_json::from_str::<Answer>(&body)
            .ok()
            .and_then(|a| a.access_token.or(a.token))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the token server's answer has no access_token".into()))?;
        return Ok((Some(token), plain));
    }
    Err(last.unwrap_or_else(|| Error::Unreachable {
        registry: domain.to_string(),
        reason: "no protocol to try".into(),
    }))
}

/// The bearer challenge of a 401's `WWW-Authenticate`, else the first scheme named.
fn parse_challenge(header: Option<&str>) -> Challenge {
    let Some(header) = header else {
        return Challenge::Other("unnamed".into());
    };
    let mut first = None;
    for challenge in ChallengeParser::new(header).flatten() {
        if challenge.scheme.eq_ignore_ascii_case("bearer") {
            let param = |name: &str| {
                challenge
                    .params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            if let Some(realm) = param("realm") {
                return Challenge::Bearer {
                    realm,
                    service: param("service"),
                };
            }
        }
        first.get_or_insert_with(|| challenge.scheme.to_string());
    }
    Challenge::Other(first.unwrap_or_else(|| "unnamed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_found_among_others() {
        assert_eq!(
            parse_challenge(Some(
                r#"Basic realm="x", Bearer realm="https://auth.example/token",service="registry.example",scope="a""#
            )),
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            }
        );
        assert_eq!(
            parse_challenge(Some(r#"Bearer realm="https://t/\"q\"""#)),
            Challenge::Bearer {
                realm: r#"https://t/"q""#.into(),
                service: None
            }
        );
        assert_eq!(
            parse_challenge(Some(r#"Basic realm="Registry Realm""#)),
            Challenge::Other("Basic".into())
        );
        // a bearer challenge without a realm cannot be used
        assert_eq!(
            parse_challenge(Some(r#"Bearer service="s""#)),
            Challenge::Other("Bearer".into())
        );
        assert_eq!(parse_challenge(None), Challenge::Other("unnamed".into()));
    }
}
