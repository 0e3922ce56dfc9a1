//! How tagpilot talks to a registry, below the distribution API: the scheme (HTTPS, or plain
//! HTTP to a loopback registry proven to speak it), answering the `WWW-Authenticate`
//! challenge (Basic, or a Bearer token from the realm, fetched again when it expires), the one
//! retry policy for requests that can be replayed (5xx, 429, broken connections), and errors
//! that say what was asked, what answered and which credential was used (never the secret).
//! Credentials go only to the registry's own host: never to an upload `Location` elsewhere.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::error::{Error, Result};
use crate::net::{self, retryable_error, retryable_status, tls_error};
use crate::ui::printable;
use crate::ui::transfers::Transfer;

use super::auth::{parse_challenge, Challenge, Credential};
use super::reference::Reference;

#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Plain HTTP to a registry that is not on a loopback address.
    pub insecure: bool,
    /// PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// The `Authorization` header, and how many times it was set.
#[derive(Default)]
struct Authorization {
    header: Option<String>,
    generation: u64,
}

impl Authorization {
    fn set(&mut self, header: String) {
        self.header = Some(header);
        self.generation += 1;
    }
}

/// What a request sends; a file is reopened for each attempt.
#[derive(Clone, Copy)]
pub enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
    /// A file whose bytes are shown as they go (the length still set, from the file).
    Shown(&'a Path, &'a Transfer),
}

/// Cloned for each upload thread: the clones share the agent's connection pool and the
/// authorization, so an expired token is fetched again once, not once per thread.
#[derive(Clone)]
pub struct Transport {
    agent: Agent,
    /// `scheme://host[:port]` of the registry.
    pub base: String,
    pub reference: Reference,
    credential: Option<Credential>,
    authorization: Arc<Mutex<Authorization>>,
    /// Other repositories a token must also allow pulling from (mount sources).
    pull_from: Vec<String>,
}

impl Transport {
    pub fn new(
        reference: &Reference,
        credential: Option<Credential>,
        connection: &Connection,
    ) -> Result<Transport> {
        let roots = match &connection.ca_file {
            Some(path) => Some(net::read_ca_file(path)?),
            None => None,
        };
        let tls = net::Tls {
            roots,
            ..Default::default()
        };
        let agent = net::agent(tls, Duration::from_secs(120), net::Redirects::Follow);
        let host = reference.api_host();
        let scheme = if connection.insecure {
            "http"
        } else if reference.is_loopback() && connection.ca_file.is_none() {
            loopback_scheme(&agent, host)
        } else {
            "https"
        };
        Ok(Transport {
            agent,
            base: format!("{scheme}://{host}"),
            reference: reference.clone(),
            credential,
            authorization: Arc::default(),
            pull_from: Vec::new(),
        })
    }

    /// Lets this client's tokens also pull from `repository` (to mount blobs from it).
    pub fn also_pull(&mut self, repository: &str) {
        self.pull_from.push(repository.to_string());
        self.authorization = Arc::default();
    }

    /// Streams `length` bytes from `source` in one PUT (a blob copied from another registry).
    /// It cannot be replayed, so it is sent once.
    pub fn put_stream(
        &self,
        url: &str,
        length: u64,
        source: &mut dyn std::io::Read,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        let length = length.to_string();
        let mut request = self
            .agent
            .put(url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", &length);
        if let Some(authorization) = self.authorization_for(url) {
            request = request.header("Authorization", &authorization);
        }
        request.send(ureq::SendBody::from_reader(source))
    }

    /// The `Authorization` header for `url`: only when it is on the registry's own scheme,
    /// host and port, as Docker and containerd do. An upload `Location` on another host (a
    /// storage backend, or a hostile registry) gets no credential.
    fn authorization_for(&self, url: &str) -> Option<String> {
        let same_origin = url == self.base || url.starts_with(&format!("{}/", self.base));
        self.auth().header.clone().filter(|_| same_origin)
    }

    fn auth(&self) -> std::sync::MutexGuard<'_, Authorization> {
        self.authorization.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn location(&self, response: &Response<Body>) -> Result<String> {
        let location = response
            .headers()
            .get("Location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Error::failed(format!(
                    "{}: the registry opened an upload without a Location",
                    self.reference
                ))
            })?;
        // The Location may be relative, and may already carry a query.
        Ok(
            if location.starts_with("http://") || location.starts_with("https://") {
                location.to_string()
            } else {
                format!("{}{location}", self.base)
            },
        )
    }

    /// Sends a request, authenticating on a challenge and retrying up to `attempts` times.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload,
        what: &str,
        attempts: u32,
    ) -> Result<Response<Body>> {
        let mut authenticated_now = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let generation = self.auth().generation;
            match self.send_once(method, url, headers, payload) {
                Ok(response) if response.status().as_u16() == 401 && !authenticated_now => {
                    self.authenticate(&response, generation)?;
                    authenticated_now = true;
                }
                Ok(response)
                    if retryable_status(response.status().as_u16()) && attempt < attempts =>
                {
                    net::retry::pause(attempt);
                }
                Ok(response) => return Ok(response),
                Err(e) if retryable_error(&e) && attempt < attempts => net::retry::pause(attempt),
                Err(e) => {
                    let error = Error::failed(format!(
                        "{}: could not {what} ({method} {url}) after {attempt} attempt(s): {e}",
                        self.reference
                    ))
                    .with_hint(transport_hint(&e));
                    // A TLS refusal is an answer: a release would hit it too.
                    return Err(if net::is_tls(&e) {
                        error
                    } else {
                        error.unreachable()
                    });
                }
            }
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload,
    ) -> std::result::Result<Response<Body>, ureq::Error> {
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        let authorization = self.authorization_for(url);
        if let Some(authorization) = &authorization {
            all.push(("Authorization", authorization));
        }
        macro_rules! with_headers {
            ($builder:expr) => {{
                let mut builder = $builder;
                for (key, value) in &all {
                    builder = builder.header(*key, *value);
                }
                builder
            }};
        }
        match (method, payload) {
            ("HEAD", _) => with_headers!(self.agent.head(url)).call(),
            ("GET", _) => with_headers!(self.agent.get(url)).call(),
            (_, Payload::None) => with_headers!(self.agent.post(url)).send_empty(),
            ("PUT", Payload::Bytes(bytes)) => with_headers!(self.agent.put(url)).send(bytes),
            ("PUT", Payload::File(path)) => {
                let file = File::open(path).map_err(ureq::Error::Io)?;
                with_headers!(self.agent.put(url)).send(file)
            }
            ("PUT", Payload::Shown(path, transfer)) => {
                let file = File::open(path).map_err(ureq::Error::Io)?;
                let length = file.metadata().map_err(ureq::Error::Io)?.len().to_string();
                transfer.restart();
                let mut counted = transfer.reader(file);
                with_headers!(self.agent.put(url))
                    .header("Content-Length", &length)
                    .send(ureq::SendBody::from_reader(&mut counted))
            }
            ("PATCH", Payload::Bytes(bytes)) => with_headers!(self.agent.patch(url)).send(bytes),
            (_, Payload::Bytes(bytes)) => with_headers!(self.agent.post(url)).send(bytes),
            (_, Payload::File(_) | Payload::Shown(..)) => unreachable!("files are only PUT"),
        }
    }

    /// Answers a 401 challenge: Basic with our credential, or a Bearer token from the realm.
    /// `seen` is the authorization the refused request went with: when another thread has
    /// replaced it since, that one is used rather than fetching yet another.
    fn authenticate(&self, response: &Response<Body>, seen: u64) -> Result<()> {
        let mut auth = self.auth();
        if auth.generation != seen {
            return Ok(());
        }
        let header = response
            .headers()
            .get("WWW-Authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        match parse_challenge(header) {
            Some(Challenge::Basic) => {
                let credential = self
                    .credential
                    .as_ref()
                    .ok_or_else(|| self.no_credential())?;
                auth.set(credential.basic_header());
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref())?;
                auth.set(format!("Bearer {token}"));
                Ok(())
            }
            None => Err(Error::failed(format!(
                "{}: the registry asked for authentication it does not describe (`{header}`)",
                self.reference
            ))),
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
        // The login goes to the realm: never in clear for a registry reached over HTTPS.
        if self.base.starts_with("https://") && !realm.starts_with("https://") {
            return Err(Error::input(format!(
                "{}: the registry sends logins to the token service `{}`, which is not HTTPS; tagpilot will not send a password there",
                self.reference,
                printable(realm)
            )));
        }
        let scope = format!("repository:{}:pull,push", self.reference.repository);
        let mut url = format!(
            "{realm}?scope={}",
            scope.replace(':', "%3A").replace(',', "%2C")
        );
        if let Some(service) = service {
            url.push_str(&format!("&service={}", service.replace(' ', "%20")));
        }
        let mut request = self.agent.get(&url);
        if let Some(credential) = &self.credential {
            request = request.header("Authorization", credential.basic_header());
        }
        let response = request.call().map_err(|e| {
            Error::failed(format!(
                "{}: could not get a token from {realm}: {e}",
                self.reference
            ))
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(Error::input(format!(
                "{}: the token service {realm} refused {} (HTTP {status})",
                self.reference,
                self.credential
                    .as_ref()
                    .map_or("anonymous access".to_string(), Credential::describe)
            )));
        }
        let text = response.into_body().read_to_string().map_err(|e| {
            Error::failed(format!(
                "{}: unreadable token from {realm}: {e}",
                self.reference
            ))
        })?;
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            Error::failed(format!(
                "{}: unreadable token from {realm}: {e}",
                self.reference
            ))
        })?;
        body["token"]
            .as_str()
            .or_else(|| body["access_token"].as_str())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::failed(format!(
                    "{}: the token service {realm} sent no token",
                    self.reference
                ))
            })
    }

    fn no_credential(&self) -> Error {
        Error::input(format!(
            "{}: the registry requires a login and no credential was found for {}",
            self.reference, self.reference.registry
        ))
        .with_hint("In GitLab CI set CI_REGISTRY_USER/CI_REGISTRY_PASSWORD (automatic for $CI_REGISTRY); elsewhere `docker login`, DOCKER_CONFIG or DOCKER_AUTH_CONFIG")
    }

    /// An error for a response that said no, with the registry's own error codes.
    pub fn refusal(&self, response: Response<Body>, what: &str) -> Error {
        let status = response.status().as_u16();
        let body = response.into_body().read_to_string().unwrap_or_default();
        let codes: Vec<String> = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["errors"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!(
                    "{} ({})",
                    printable(e["code"].as_str().unwrap_or("?")),
                    printable(e["message"].as_str().unwrap_or(""))
                )
            })
            .collect();
        let who = self
            .credential
            .as_ref()
            .map_or("anonymously".to_string(), |c| {
                format!("as {}", c.describe())
            });
        let detail = if codes.is_empty() {
            String::new()
        } else {
            format!(": {}", codes.join("; "))
        };
        let message = format!(
            "{}: could not {what}: HTTP {status}{detail} (signed in {who})",
            self.reference
        );
        match status {
            401 | 403 => Error::input(message)
                .with_hint("Check that this credential may push to this repository"),
            404 => Error::input(message).with_hint("Check the repository name (image.repository)"),
            _ => Error::failed(message),
        }
    }
}

pub fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

/// A registry on a loopback address may speak plain HTTP (as Docker allows). HTTPS is tried
/// first. Plain HTTP is used only on proof: the TLS attempt got no TLS answer (bytes that are
/// not TLS, or a connection closed on the hello), and a plain `GET /v2/` gets a registry's
/// answer (200, or 401 with a challenge). Any TLS answer (an untrusted certificate, a client
/// certificate required) and a handshake that times out keep HTTPS, so a password is never
/// sent in clear to a server that speaks TLS.
fn loopback_scheme(agent: &Agent, host: &str) -> &'static str {
    let probe = |scheme: &str| {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let answer = agent
                .get(format!("{scheme}://{host}/v2/"))
                .config()
                .timeout_global(Some(Duration::from_secs(5)))
                .build()
                .call();
            match answer {
                Err(e) if attempt < 3 && transient(&e) => net::retry::pause(attempt),
                answer => return answer,
            }
        }
    };
    match probe("https") {
        Ok(_) => "https",
        Err(e) if !no_tls_answer(&e) => "https",
        Err(_) => match probe("http") {
            Ok(reply) if speaks_registry(&reply) => "http",
            _ => "https",
        },
    }
}

/// A broken connection that a second try may get through (not a timeout: a slow TLS
/// handshake is an answer of sorts, and keeps HTTPS).
fn transient(error: &ureq::Error) -> bool {
    !net::is_tls(error) && matches!(error, ureq::Error::Io(_) | ureq::Error::ConnectionFailed)
}

/// The TLS hello got something that is not TLS: bytes of another protocol (a plain HTTP
/// server's `400`), or the connection closed without a word.
fn no_tls_answer(error: &ureq::Error) -> bool {
    match tls_error(error) {
        Some(tls) => matches!(
            tls,
            rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. }
        ),
        None => match error {
            ureq::Error::Io(io) => matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::UnexpectedEof
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::InvalidData
            ),
            _ => false,
        },
    }
}

/// A registry's answer to `GET /v2/`: 200, or 401 with a challenge (a TLS server's "plain HTTP
/// sent to an HTTPS port" page is a 400, and proves nothing).
fn speaks_registry(reply: &Response<Body>) -> bool {
    match reply.status().as_u16() {
        200 => true,
        401 => reply.headers().contains_key("WWW-Authenticate"),
        _ => false,
    }
}

fn transport_hint(error: &ureq::Error) -> &'static str {
    if net::is_tls(error) {
        "For a registry with a private CA, set image.ca_file; for plain HTTP off loopback, image.insecure: true"
    } else {
        "Check that the registry is up and reachable from here; re-running resumes where this stopped"
    }
}
