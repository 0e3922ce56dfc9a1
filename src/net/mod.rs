//! What every HTTPS client of tagpilot shares: one way to build an agent (platform roots or a
//! CA file, optionally a client certificate), and one reading of transport errors.

pub mod api;
pub mod retry;
mod unix;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};
use ureq::Agent;

use crate::error::{Error, Result};

/// How to check the server and present ourselves.
#[derive(Default)]
pub struct Tls {
    /// CA certificates instead of the platform's roots.
    pub roots: Option<Vec<Certificate<'static>>>,
    pub client: Option<ClientCert>,
    /// Kubeconfig's `insecure-skip-tls-verify`: the user asked for it by name.
    pub skip_verify: bool,
}

/// Whether an agent follows redirects.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Registries redirect blob reads to storage; ureq drops `Authorization` on the way.
    Follow,
    /// API clients send credentials in headers of their own (`PRIVATE-TOKEN`,
    /// `X-Nomad-Token`, `X-Registry-Auth`) that a redirect would carry anywhere: a redirect
    /// is an answer, reported, never followed. (Their requests carry their own deadline.)
    Refuse,
}

/// An agent that reports HTTP errors as responses (callers read the body for the reason).
pub fn agent(tls: Tls, receive_timeout: Duration, redirects: Redirects) -> Agent {
    let roots = match tls.roots {
        Some(certificates) => RootCerts::Specific(Arc::new(certificates)),
        None => RootCerts::PlatformVerifier,
    };
    let max_redirects = match redirects {
        Redirects::Follow => 10,
        Redirects::Refuse => 0,
    };
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(max_redirects)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(receive_timeout))
        .tls_config(
            TlsConfig::builder()
                .root_certs(roots)
                .client_cert(tls.client)
                .disable_verification(tls.skip_verify)
                .build(),
        )
        .user_agent(concat!("tagpilot/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

pub fn read_ca_file(path: &Path) -> Result<Vec<Certificate<'static>>> {
    let pem = std::fs::read(path).map_err(|e| Error::io("read CA file", path, e))?;
    certificates(&pem, &path.display().to_string())
}

/// The certificates in a PEM text; `origin` names it in the error.
pub fn certificates(pem: &[u8], origin: &str) -> Result<Vec<Certificate<'static>>> {
    let certificates: Vec<_> = ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certificates.is_empty() {
        return Err(Error::input(format!("{origin} holds no PEM certificate")));
    }
    Ok(certificates)
}

/// A client certificate chain and its key, from PEM texts.
pub fn client_cert(cert_pem: &[u8], key_pem: &[u8], origin: &str) -> Result<ClientCert> {
    let chain = certificates(cert_pem, origin)?;
    let key = PrivateKey::from_pem(key_pem)
        .map_err(|e| Error::input(format!("{origin}: the client key is not a PEM key: {e}")))?;
    Ok(ClientCert::new_with_certs(&chain, key))
}

/// The TLS error behind a failed request, whether ureq reports it as such or inside an I/O
/// error (as it does for handshake failures).
pub fn tls_error(error: &ureq::Error) -> Option<&rustls::Error> {
    match error {
        ureq::Error::Rustls(e) => Some(e),
        ureq::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

pub fn is_tls(error: &ureq::Error) -> bool {
    tls_error(error).is_some() || matches!(error, ureq::Error::Tls(_))
}

/// A transport failure worth another try (not a TLS refusal, which would only repeat).
pub fn retryable_error(error: &ureq::Error) -> bool {
    !is_tls(error)
        && matches!(
            error,
            ureq::Error::Io(_)
                | ureq::Error::Timeout(_)
                | ureq::Error::ConnectionFailed
                | ureq::Error::HostNotFound
        )
}

/// Statuses that say "try again shortly".
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// A URL path segment or query value, percent-encoded: everything but RFC 3986's unreserved
/// characters (`group/app` → `group%2Fapp`).
pub fn percent_encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - _ . ~`).
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `url` without a `user:password@` login, and the login: an address with a secret in it is
/// never printed or recorded as it is. A user alone (`ssh://git@host`) is no secret and stays.
pub fn split_login(url: &str) -> (String, Option<(String, String)>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_string(), None);
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return (url.to_string(), None);
    };
    match rest[..at].split_once(':') {
        Some((user, password)) => (
            format!("{scheme}://{}", &rest[at + 1..]),
            Some((user.to_string(), password.to_string())),
        ),
        None => (url.to_string(), None),
    }
}

/// The `Authorization` value of HTTP Basic auth.
pub fn basic_authorization(user: &str, secret: &str) -> String {
    use base64::Engine;
    let pair = format!("{user}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[cfg(test)]
mod encoding_tests {
    use super::*;

    #[test]
    fn a_login_in_an_address_is_split_off() {
        assert_eq!(
            split_login("https://oauth2:glpat-x@gitlab.example.org/g/p.git"),
            (
                "https://gitlab.example.org/g/p.git".to_string(),
                Some(("oauth2".to_string(), "glpat-x".to_string()))
            )
        );
        let plain = "ssh://git@gitlab.example.org/g/p.git";
        assert_eq!(split_login(plain), (plain.to_string(), None));
        let at_in_path = "https://host/a@b";
        assert_eq!(split_login(at_in_path), (at_in_path.to_string(), None));
    }

    #[test]
    fn slashes_and_plus_are_percent_encoded() {
        assert_eq!(percent_encode("group/app"), "group%2Fapp");
        assert_eq!(percent_encode("api/v1.0.0+build"), "api%2Fv1.0.0%2Bbuild");
        assert_eq!(percent_encode("1234"), "1234");
    }
}
