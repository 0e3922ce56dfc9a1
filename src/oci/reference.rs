//! Image references: `registry.example.org:5000/group/name[:tag]`, with Docker's defaults
//! (`debian` means `docker.io/library/debian`).

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// `host[:port]` as written (the key for credentials).
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…` when the reference pins one (`name@sha256:…`); only for pulling.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(full: &str) -> Result<Reference, String> {
        let bad = |why: &str| format!("`{full}` is not an image reference: {why}");
        let (text, digest) = match full.split_once('@') {
            Some((name, digest)) => {
                let hex = digest.strip_prefix("sha256:").unwrap_or("");
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("the digest must be sha256: and 64 hex digits"));
                }
                (name, Some(digest.to_string()))
            }
            None => (full, None),
        };
        let (first, rest) = text.split_once('/').unwrap_or(("", text));
        let explicit = first.contains(['.', ':']) || first == "localhost";
        let (registry, path) = if explicit {
            (first.to_string(), rest.to_string())
        } else if first.is_empty() {
            ("docker.io".to_string(), format!("library/{rest}"))
        } else {
            ("docker.io".to_string(), text.to_string())
        };
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), Some(tag.to_string())),
            _ => (path, None),
        };
        let valid_component = |c: &str| {
            !c.is_empty()
                && c.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        };
        if repository.is_empty() || !repository.split('/').all(valid_component) {
            return Err(bad(
                "the repository path takes lower-case letters, digits, `.`, `_`, `-` and `/`",
            ));
        }
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// `registry/repository` as Docker Hub means it: `redis`, `library/redis`,
    /// `docker.io/redis`, `index.docker.io/library/redis` and
    /// `registry-1.docker.io/library/redis` are all `docker.io/library/redis`.
    pub fn canonical_name(&self) -> String {
        let hub = matches!(
            self.registry.as_str(),
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        );
        match (hub, self.repository.contains('/')) {
            (true, false) => format!("docker.io/library/{}", self.repository),
            (true, true) => format!("docker.io/{}", self.repository),
            (false, _) => format!("{}/{}", self.registry, self.repository),
        }
    }

    /// The reference as `name` spells the repository (`alpine`, `docker.io/library/alpine`),
    /// with this reference's tag and digest: the form to write over `name`, so a diff shows
    /// only the version.
    pub fn spelled_as(&self, name: &str) -> String {
        let without_digest = name.split('@').next().unwrap_or(name);
        let bare = match without_digest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => without_digest,
        };
        let mut text = bare.to_string();
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }

    /// What to ask the registry for: the digest if pinned, else the tag, else `latest`.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// The host to connect to (Docker Hub's API lives on another host than its name).
    pub fn api_host(&self) -> &str {
        if self.registry == "docker.io" {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }

    /// Registries on a loopback address may speak plain HTTP, as Docker allows.
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    self.registry.as_str()
                }
            });
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_docker() {
        let r = Reference::parse("registry.example.org:5000/lhcb/dirac:8.2.44").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("registry.example.org:5000", "lhcb/dirac", Some("8.2.44"))
        );
        let hub = Reference::parse("debian").unwrap();
        assert_eq!(
            (
                hub.registry.as_str(),
                hub.repository.as_str(),
                hub.api_host()
            ),
            ("docker.io", "library/debian", "registry-1.docker.io")
        );
        assert!(Reference::parse("127.0.0.1:5000/x").unwrap().is_loopback());
        assert!(Reference::parse("localhost/x").unwrap().is_loopback());
        assert!(!Reference::parse("gitlab.example.org/x")
            .unwrap()
            .is_loopback());
        assert!(Reference::parse("Registry.example.org/UPPER").is_err());
        assert!(Reference::parse("r.example.org/x@sha256:00").is_err());
        let pinned = Reference::parse(&format!(
            "r.example.org/base/alma:9@sha256:{}",
            "a".repeat(64)
        ))
        .unwrap();
        assert_eq!(
            pinned.manifest_reference(),
            format!("sha256:{}", "a".repeat(64))
        );
        assert_eq!(pinned.tag.as_deref(), Some("9"));
    }
}
