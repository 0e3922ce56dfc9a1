//! Registry credentials and the token dance. Credentials come from GitLab CI
//! (`CI_REGISTRY_USER` / `CI_REGISTRY_PASSWORD` for `CI_REGISTRY`), GitLab's
//! `DOCKER_AUTH_CONFIG` variable, or Docker's `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker/config.json`). Secrets are never printed: only where a credential came from.

use std::path::PathBuf;

use base64::Engine;
use serde_json::Value;

#[derive(Clone)]
pub struct Credential {
    pub user: String,
    pub secret: String,
    /// Where it came from, for messages: `CI_REGISTRY_USER`, `~/.docker/config.json`, ...
    pub source: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential {{ user: {:?}, source: {:?} }}",
            self.user, self.source
        )
    }
}

impl Credential {
    pub fn basic_header(&self) -> String {
        crate::net::basic_authorization(&self.user, &self.secret)
    }

    /// `user (from SOURCE)`, for error messages.
    pub fn describe(&self) -> String {
        format!("user `{}` from {}", self.user, self.source)
    }
}

/// The credential for `registry` (`host[:port]`), if any source has one.
pub fn find(registry: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<Credential> {
    if env("CI_REGISTRY").as_deref() == Some(registry) {
        if let (Some(user), Some(secret)) = (env("CI_REGISTRY_USER"), env("CI_REGISTRY_PASSWORD")) {
            return Some(Credential {
                user,
                secret,
                source: "CI_REGISTRY_USER/CI_REGISTRY_PASSWORD".into(),
            });
        }
    }
    if let Some(text) = env("DOCKER_AUTH_CONFIG") {
        if let Some(found) = from_docker_config(&text, registry, "DOCKER_AUTH_CONFIG") {
            return Some(found);
        }
    }
    let path = env("DOCKER_CONFIG")
        .map(|dir| PathBuf::from(dir).join("config.json"))
        .or_else(|| env("HOME").map(|home| PathBuf::from(home).join(".docker/config.json")))?;
    let text = std::fs::read_to_string(&path).ok()?;
    from_docker_config(&text, registry, &path.display().to_string())
}

/// Reads `auths` of a Docker config: `auth` (base64 `user:password`) or `username`/`password`.
/// Keys may be written as `host`, `https://host` or `https://host/v1/`.
fn from_docker_config(text: &str, registry: &str, source: &str) -> Option<Credential> {
    let config: Value = serde_json::from_str(text).ok()?;
    let auths = config["auths"].as_object()?;
    let entry = auths.iter().find_map(|(key, entry)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("");
        let same = host == registry || (registry == "docker.io" && host == "index.docker.io");
        same.then_some(entry)
    })?;
    let (user, secret) = match entry["auth"].as_str() {
        Some(encoded) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let pair = String::from_utf8(decoded).ok()?;
            let (user, secret) = pair.split_once(':')?;
            (user.to_string(), secret.to_string())
        }
        None => (
            entry["username"].as_str()?.to_string(),
            entry["password"].as_str()?.to_string(),
        ),
    };
    Some(Credential {
        user,
        secret,
        source: source.to_string(),
    })
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let (scheme, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    // key="value" pairs; values may contain commas (scopes do), so split on quotes.
    let mut rest = params;
    while let Some((key, after)) = rest.split_once('=') {
        let key = key.trim().trim_start_matches(',').trim();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => after.split_once(',').unwrap_or((after, "")),
        };
        match key {
            "realm" => realm = Some(value.to_string()),
            "service" => service = Some(value.to_string()),
            "scope" => scope = Some(value.to_string()),
            _ => {}
        }
        rest = after;
    }
    Some(Challenge::Bearer {
        realm: realm?,
        service,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge("Basic realm=\"Registry\""),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=\"https://gitlab.example.org/jwt/auth\",service=\"container_registry\",scope=\"repository:lhcb/dirac:pull,push\""),
            Some(Challenge::Bearer {
                realm: "https://gitlab.example.org/jwt/auth".into(),
                service: Some("container_registry".into()),
                scope: Some("repository:lhcb/dirac:pull,push".into()),
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
    }

    #[test]
    fn credentials_from_ci_and_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"auths":{"https://registry.example.org/v1/":{"auth":"Ym90OnMzY3JldA=="},"other.example.org":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let docker_config = dir.path().to_string_lossy().into_owned();
        let env = |name: &str| match name {
            "CI_REGISTRY" => Some("gitlab.example.org:5050".to_string()),
            "CI_REGISTRY_USER" => Some("gitlab-ci-token".to_string()),
            "CI_REGISTRY_PASSWORD" => Some("job-token".to_string()),
            "DOCKER_CONFIG" => Some(docker_config.clone()),
            _ => None,
        };
        let ci = find("gitlab.example.org:5050", &env).unwrap();
        assert_eq!(
            (ci.user.as_str(), ci.secret.as_str()),
            ("gitlab-ci-token", "job-token")
        );
        let docker = find("registry.example.org", &env).unwrap();
        assert_eq!(
            (docker.user.as_str(), docker.secret.as_str()),
            ("bot", "s3cret")
        );
        assert!(docker.source.ends_with("config.json"));
        assert_eq!(find("other.example.org", &env).unwrap().user, "u");
        assert!(find("unknown.example.org", &env).is_none());
        assert!(
            !format!("{docker:?}").contains("s3cret"),
            "Debug never shows the secret"
        );
    }
}
