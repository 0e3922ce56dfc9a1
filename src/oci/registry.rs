//! A registry client for the OCI distribution API, as far as pushing needs it: blob existence,
//! monolithic streamed uploads, manifests. Authentication follows the registry's
//! `WWW-Authenticate` challenge (Basic, or a Bearer token from the realm, fetched again when it
//! expires). Requests that can be replayed are retried with backoff on 5xx, 429 and broken
//! connections; everything else fails with what was asked, what answered, and which credential
//! was used (never the secret).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use ureq::http::Response;
use ureq::{Agent, Body};

use crate::error::{Error, Result};
use crate::net::{self, retryable_error, retryable_status, tls_error};

use super::auth::{parse_challenge, Challenge, Credential};
use super::reference::Reference;

/// Bytes per `PATCH` when a registry refuses one big upload.
const CHUNK: usize = 8 << 20;

/// Attempts per request, and the first backoff (doubled each time).
const ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// Every manifest type we push or read.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Plain HTTP to a registry that is not on a loopback address.
    pub insecure: bool,
    /// PEM file of CA certificates to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// What a request sends; a file is reopened for each attempt.
#[derive(Clone, Copy)]
enum Payload<'a> {
    None,
    Bytes(&'a [u8]),
    File(&'a Path),
}

pub struct Client {
    agent: Agent,
    base: String,
    reference: Reference,
    credential: Option<Credential>,
    authorization: Option<String>,
    /// Other repositories a token must also allow pulling from (mount sources).
    pull_from: Vec<String>,
}

impl Client {
    pub fn new(
        reference: &Reference,
        credential: Option<Credential>,
        connection: &Connection,
    ) -> Result<Client> {
        let roots = match &connection.ca_file {
            Some(path) => Some(net::read_ca_file(path)?),
            None => None,
        };
        let tls = net::Tls {
            roots,
            ..Default::default()
        };
        let agent = net::agent(tls, Duration::from_secs(120));
        let host = reference.api_host();
        let scheme = if connection.insecure {
            "http"
        } else if reference.is_loopback() {
            loopback_scheme(&agent, host)
        } else {
            "https"
        };
        Ok(Client {
            agent,
            base: format!("{scheme}://{host}"),
            reference: reference.clone(),
            credential,
            authorization: None,
            pull_from: Vec::new(),
        })
    }

    /// Lets this client's tokens also pull from `repository` (to mount blobs from it).
    pub fn also_pull(&mut self, repository: &str) {
        self.pull_from.push(repository.to_string());
        self.authorization = None;
    }

    pub fn reference(&self) -> &Reference {
        &self.reference
    }

    fn repo_url(&self, path: &str) -> String {
        format!("{}/v2/{}/{path}", self.base, self.reference.repository)
    }

    /// `true` if the repository has the blob.
    pub fn has_blob(&mut self, digest: &str) -> Result<bool> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response = self.send("HEAD", &url, &[], Payload::None, "check a blob", ATTEMPTS)?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Err(self.refusal(response, &format!("check blob {digest}"))),
        }
    }

    /// Uploads a blob from a file in one streamed PUT (the most widely accepted way). A PUT
    /// that breaks off leaves its upload session in an unknown state, so a retry starts a new
    /// session rather than repeating the PUT.
    pub fn upload_blob(&mut self, digest: &str, path: &Path) -> Result<()> {
        let headers = [("Content-Type", "application/octet-stream")];
        let mut attempt = 0;
        loop {
            attempt += 1;
            let location = self.open_upload(digest)?;
            let url = with_digest(&location, digest);
            let outcome = self.send(
                "PUT",
                &url,
                &headers,
                Payload::File(path),
                "upload a blob",
                1,
            );
            match outcome {
                Ok(response) if matches!(response.status().as_u16(), 201 | 204) => return Ok(()),
                // Too big for one request (a proxy's body limit): send it in chunks instead.
                Ok(response) if response.status().as_u16() == 413 => {
                    return self.upload_chunked(digest, path)
                }
                Ok(response)
                    if attempt < ATTEMPTS
                        && (retryable_status(response.status().as_u16())
                            || response.status().as_u16() == 404) => {}
                Ok(response) => {
                    return Err(self.refusal(response, &format!("upload blob {digest}")))
                }
                Err(_) if attempt < ATTEMPTS => {}
                Err(e) => return Err(e),
            }
            backoff(attempt);
        }
    }

    /// Uploads a blob in `PATCH` chunks (`Content-Range: first-last`, inclusive), following the
    /// newest `Location` after each, then closes the session with `PUT ?digest=`.
    fn upload_chunked(&mut self, digest: &str, path: &Path) -> Result<()> {
        use std::io::Read;
        let mut location = self.open_upload(digest)?;
        let mut file = File::open(path).map_err(|e| Error::io("read", path, e))?;
        let mut chunk = vec![0u8; CHUNK];
        let mut offset = 0u64;
        loop {
            let mut filled = 0;
            while filled < chunk.len() {
                match file
                    .read(&mut chunk[filled..])
                    .map_err(|e| Error::io("read", path, e))?
                {
                    0 => break,
                    n => filled += n,
                }
            }
            if filled == 0 {
                break;
            }
            let range = format!("{offset}-{}", offset + filled as u64 - 1);
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", range.as_str()),
            ];
            let response = self.send(
                "PATCH",
                &location,
                &headers,
                Payload::Bytes(&chunk[..filled]),
                "upload a chunk",
                1,
            )?;
            if response.status().as_u16() != 202 {
                return Err(
                    self.refusal(response, &format!("upload bytes {range} of blob {digest}"))
                );
            }
            location = self.location(&response)?;
            offset += filled as u64;
        }
        let url = with_digest(&location, digest);
        let response = self.send(
            "PUT",
            &url,
            &[],
            Payload::Bytes(&[]),
            "finish a chunked upload",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self.refusal(response, &format!("finish the upload of blob {digest}"))),
        }
    }

    /// Opens an upload session; returns its location.
    fn open_upload(&mut self, digest: &str) -> Result<String> {
        let start = self.repo_url("blobs/uploads/");
        let response = self.send(
            "POST",
            &start,
            &[],
            Payload::None,
            "start an upload",
            ATTEMPTS,
        )?;
        if response.status().as_u16() != 202 {
            return Err(self.refusal(response, &format!("start the upload of blob {digest}")));
        }
        self.location(&response)
    }

    /// The digest a tag (or digest) points at now, or `None` if it does not exist.
    pub fn manifest_digest(&mut self, reference: &str) -> Result<Option<String>> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let response = self.send(
            "HEAD",
            &url,
            &[("Accept", MANIFEST_TYPES)],
            Payload::None,
            "check a tag",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            200 => Ok(response
                .headers()
                .get("Docker-Content-Digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)),
            404 => Ok(None),
            _ => Err(self.refusal(response, &format!("check tag {reference}"))),
        }
    }

    /// A manifest's exact bytes, its media type and its digest (from the registry's header, or
    /// computed when it sends none).
    pub fn get_manifest(&mut self, reference: &str) -> Result<(Vec<u8>, String, String)> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let response = self.send(
            "GET",
            &url,
            &[("Accept", MANIFEST_TYPES)],
            Payload::None,
            "read a manifest",
            ATTEMPTS,
        )?;
        if response.status().as_u16() != 200 {
            return Err(self.refusal(response, &format!("read manifest {reference}")));
        }
        let media_type = header(&response, "Content-Type").unwrap_or_default();
        let bytes = response
            .into_body()
            .with_config()
            .limit(8 << 20)
            .read_to_vec()
            .map_err(|e| {
                Error::failed(format!(
                    "{}: could not read manifest {reference}: {e}",
                    self.reference
                ))
            })?;
        let digest = format!("sha256:{}", crate::digest::sha256_hex(&bytes));
        if reference.starts_with("sha256:") && reference != digest {
            return Err(Error::failed(format!(
                "{}: the registry sent a manifest whose digest is {digest}, not the {reference} asked for",
                self.reference
            )));
        }
        Ok((bytes, media_type, digest))
    }

    /// A blob as a stream of its bytes (a config, or a layer to copy elsewhere).
    pub fn get_blob(&mut self, digest: &str) -> Result<impl std::io::Read + use<>> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let response = self.send("GET", &url, &[], Payload::None, "read a blob", ATTEMPTS)?;
        if response.status().as_u16() != 200 {
            return Err(self.refusal(response, &format!("read blob {digest}")));
        }
        Ok(response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader())
    }

    /// Asks the registry to link a blob from another repository on it. `Ok(true)` when it did
    /// (201); `Ok(false)` when it opened an upload instead (a legal 202) or cannot mount.
    pub fn mount_blob(&mut self, digest: &str, from: &str) -> Result<bool> {
        let url = self.repo_url(&format!(
            "blobs/uploads/?mount={}&from={from}",
            digest.replace(':', "%3A")
        ));
        let response = self.send("POST", &url, &[], Payload::None, "mount a blob", ATTEMPTS)?;
        Ok(response.status().as_u16() == 201)
    }

    /// Uploads a blob streamed from `source` (another registry), `size` bytes long.
    pub fn upload_blob_from(
        &mut self,
        digest: &str,
        size: u64,
        source: &mut dyn std::io::Read,
    ) -> Result<()> {
        let location = self.open_upload(digest)?;
        let url = with_digest(&location, digest);
        let length = size.to_string();
        let mut request = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", &length);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let response = request
            .send(ureq::SendBody::from_reader(source))
            .map_err(|e| {
                Error::failed(format!(
                    "{}: could not copy blob {digest}: {e}",
                    self.reference
                ))
            })?;
        match response.status().as_u16() {
            201 | 204 => Ok(()),
            _ => Err(self.refusal(response, &format!("copy blob {digest}"))),
        }
    }

    /// Puts a manifest's exact bytes under `reference` (a tag or its digest).
    pub fn put_manifest(&mut self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<()> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let headers = [("Content-Type", media_type)];
        let response = self.send(
            "PUT",
            &url,
            &headers,
            Payload::Bytes(bytes),
            "put a manifest",
            ATTEMPTS,
        )?;
        match response.status().as_u16() {
            201 | 200 | 204 => Ok(()),
            _ => Err(self.refusal(response, &format!("put manifest {reference}"))),
        }
    }

    fn location(&self, response: &Response<Body>) -> Result<String> {
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
    fn send(
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
            match self.send_once(method, url, headers, payload) {
                Ok(response) if response.status().as_u16() == 401 && !authenticated_now => {
                    self.authenticate(&response)?;
                    authenticated_now = true;
                }
                Ok(response)
                    if retryable_status(response.status().as_u16()) && attempt < attempts =>
                {
                    backoff(attempt);
                }
                Ok(response) => return Ok(response),
                Err(e) if retryable_error(&e) && attempt < attempts => backoff(attempt),
                Err(e) => {
                    return Err(Error::failed(format!(
                        "{}: could not {what} ({method} {url}) after {attempt} attempt(s): {e}",
                        self.reference
                    ))
                    .with_hint(transport_hint(&e)))
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
        if let Some(authorization) = &self.authorization {
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
            ("PATCH", Payload::Bytes(bytes)) => with_headers!(self.agent.patch(url)).send(bytes),
            (_, Payload::Bytes(bytes)) => with_headers!(self.agent.post(url)).send(bytes),
            (_, Payload::File(_)) => unreachable!("files are only PUT"),
        }
    }

    /// Answers a 401 challenge: Basic with our credential, or a Bearer token from the realm.
    fn authenticate(&mut self, response: &Response<Body>) -> Result<()> {
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
                self.authorization = Some(credential.basic_header());
                Ok(())
            }
            Some(Challenge::Bearer { realm, service, .. }) => {
                let token = self.fetch_token(&realm, service.as_deref())?;
                self.authorization = Some(format!("Bearer {token}"));
                Ok(())
            }
            None => Err(Error::failed(format!(
                "{}: the registry asked for authentication it does not describe (`{header}`)",
                self.reference
            ))),
        }
    }

    fn fetch_token(&self, realm: &str, service: Option<&str>) -> Result<String> {
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
    fn refusal(&self, response: Response<Body>, what: &str) -> Error {
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
                    e["code"].as_str().unwrap_or("?"),
                    e["message"].as_str().unwrap_or("")
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

/// An upload location with `digest=` added, to close the session (it may carry a query already).
fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={}", digest.replace(':', "%3A"))
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
}

/// A registry on a loopback address may speak plain HTTP (as Docker allows): HTTPS is tried
/// first; a certificate it rejects means a TLS registry (its error comes with the real
/// request), while a server that does not speak TLS at all gets plain HTTP.
fn loopback_scheme(agent: &Agent, host: &str) -> &'static str {
    let probe = agent
        .get(format!("https://{host}/v2/"))
        .config()
        .timeout_global(Some(Duration::from_secs(5)))
        .build();
    match probe.call() {
        Ok(_) => "https",
        Err(e) if matches!(tls_error(&e), Some(rustls::Error::InvalidCertificate(_))) => "https",
        Err(_) => "http",
    }
}

fn transport_hint(error: &ureq::Error) -> &'static str {
    if net::is_tls(error) {
        "For a registry with a private CA, set image.ca_file; for plain HTTP off loopback, image.insecure: true"
    } else {
        "Check that the registry is up and reachable from here; re-running resumes where this stopped"
    }
}

fn backoff(attempt: u32) {
    std::thread::sleep(FIRST_BACKOFF * 2u32.pow(attempt - 1));
}

/// A registry's documents, for choosing a base from it.
impl super::base::Documents for Client {
    fn manifest(&mut self, digest: &str) -> Result<Value> {
        let (bytes, _, _) = self.get_manifest(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "{}: manifest {digest} is not JSON: {e}",
                self.reference
            ))
        })
    }

    fn config(&mut self, digest: &str) -> Result<Value> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(self.get_blob(digest)?, 8 << 20),
            &mut bytes,
        )
        .map_err(|e| {
            Error::failed(format!(
                "{}: could not read config {digest}: {e}",
                self.reference
            ))
        })?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::failed(format!(
                "{}: config {digest} is not JSON: {e}",
                self.reference
            ))
        })
    }
}
